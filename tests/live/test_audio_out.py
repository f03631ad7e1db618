"""--audio-out: the improviser's synth sounding on a real audio device, through sounddevice
and PortAudio to a JACK server with the dummy backend (started by the test; skipped with the
reason when jackd or sounddevice is missing)."""

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from musicgym.errors import ImproviseConfigError


@pytest.fixture(scope="module")
def jack():
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (apt install jackd2): no audio device to test on")
    sd = pytest.importorskip("sounddevice", reason="sounddevice (live extra) is not installed")
    name = f"musicgym-test-{os.getpid()}"
    env = {**os.environ, "JACK_DEFAULT_SERVER": name}
    proc = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "44100",
                             "-p", "256"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        time.sleep(1.5)
        if proc.poll() is not None:
            pytest.skip("jackd -d dummy did not start")
        sd._terminate()
        sd._initialize()   # PortAudio looks for the JACK server now
        names = [d["name"] for d in sd.query_devices()]
        if not any("system" in n for n in names):
            pytest.skip(f"PortAudio sees no JACK device (devices: {names})")
        yield sd
    finally:
        sd._terminate()   # let PortAudio's JACK client go before its server does
        proc.terminate()
        proc.wait(timeout=10)
        sd._initialize()
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old


def test_audio_out_plays_the_synth_stream_on_jack(jack):
    from musicgym.envs.synths import make_synth
    from musicgym.live.improvise import AudioOut

    heard = []

    class Heard(AudioOut):   # what the device was given, block by block
        def _callback(self, outdata, frames, time_info, status):
            super()._callback(outdata, frames, time_info, status)
            heard.append(outdata[:, 0].copy())

    out = Heard(make_synth("sine"), np.array([0.2, 0.5]), sr=44100, device="system",
                blocksize=256)
    out.start()
    time.sleep(0.5)
    out.set_params(np.array([0.4, 0.5]))
    time.sleep(0.5)
    out.close()
    assert out.blocks >= 20   # the dummy backend ran the callback in real time
    audio = np.concatenate(heard)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=1e-3)
    assert np.all(np.isfinite(audio))
    steps = np.abs(np.diff(audio)).max()
    assert steps < 2 * np.pi * 1028 / 44100 * 0.5 + 1e-3   # no click: only the sine's slope


def test_audio_out_refuses_a_pd_synth_and_a_bad_device(jack):
    from pathlib import Path

    import musicgym
    from musicgym.envs.pd_synth import PdSynth
    from musicgym.envs.synths import make_synth
    from musicgym.live.improvise import AudioOut

    pd = PdSynth(Path(musicgym.__file__).parent / "data" / "pd" / "sine_synth.pd")
    with pytest.raises(ImproviseConfigError, match="sounds in Pd"):
        AudioOut(pd, np.array([0.5, 0.5]))
    with pytest.raises(ImproviseConfigError, match="cannot open audio output"):
        AudioOut(make_synth("sine"), np.array([0.5, 0.5]), device="no such device")
