"""--audio-out: the improviser's synth sounding on a real audio device, through sounddevice
and PortAudio to a JACK server with the dummy backend (started by the test; skipped with the
reason when jackd or sounddevice is missing: conftest.py's ``jack_audio``)."""

import time

import numpy as np
import pytest

from musicgym.errors import ImproviseConfigError


def test_audio_out_plays_the_synth_stream_on_jack(jack_audio):
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


def test_audio_out_refuses_a_pd_synth_and_a_bad_device(jack_audio):
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
