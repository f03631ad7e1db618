"""A user's Pd synth sounding live (``PdAudioOut``, ``live improvise --pd-audio``): Pd started on
a real JACK server (conftest.py's ``jack_audio``: ``jackd -d dummy``), its output connected to a
PortAudio capture client (sounddevice), and the captured sound checked against the parameters
sent. Skipped with the reason where pd, jackd or sounddevice is missing; the error tests need
pd only."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import musicgym
from musicgym.errors import ImproviseConfigError, PdAudioError

SINE = Path(musicgym.__file__).parent / "data" / "pd" / "sine_synth.pd"
SR = 44100

needs_pd = pytest.mark.skipif(shutil.which("pd") is None and not os.environ.get("MUSICGYM_PD"),
                              reason="Pure Data is not installed (apt install puredata-core)")


def _freq_hz(params) -> float:
    return 100.0 + 900.0 * params[0]   # sine_synth.pd: [* 900] [+ 100] [osc~], [*~ amp]


def _group_alive(pgid: int) -> list[str]:
    """The live (not zombie) processes of a process group."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(stat.parent.name)
    return alive


def _analyse(audio: np.ndarray) -> tuple[float, float]:
    """(amplitude, frequency of the spectrum's peak in Hz) of a stretch of sine. The amplitude
    is the median of the peaks of 1024-sample pieces (each holds a period or more), so that a
    piece the capture client dropped on a loaded machine (zeros) does not move it."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    pieces = audio[:len(audio) // 1024 * 1024].reshape(-1, 1024)
    return float(np.median(np.abs(pieces).max(axis=1))), float(np.argmax(spectrum) * SR /
                                                                 len(audio))


class Capture:
    """A PortAudio (sounddevice) input on JACK that keeps what it hears, with Pd's output
    connected to it."""

    def __init__(self, sd, server, source: str) -> None:
        self.blocks: list[np.ndarray] = []
        self.stream = sd.InputStream(samplerate=SR, blocksize=256, channels=1,
                                     dtype="float32", device="system",
                                     callback=lambda data, *_: self.blocks.append(data[:, 0]
                                                                                  .copy()))
        self.stream.start()
        ports = server.ports()
        into = [p for p in ports if p.startswith("PortAudio") and p.endswith(":in_0")]
        assert len(into) == 1, f"one PortAudio input expected among {ports}"
        subprocess.run(["jack_connect", source, into[0]], check=True, timeout=10)
        self.n_at_start = self.frames

    @property
    def frames(self) -> int:
        return sum(len(b) for b in list(self.blocks))

    def audio(self) -> np.ndarray:
        return np.concatenate(self.blocks)

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


@pytest.fixture()
def jack_tools(jack_audio):
    if shutil.which("pd") is None and not os.environ.get("MUSICGYM_PD"):
        pytest.skip("Pure Data is not installed (apt install puredata-core)")
    if shutil.which("jack_connect") is None:
        pytest.skip("jack_connect is not installed (jackd2's tools)")
    return jack_audio


def test_the_pd_synth_sounds_on_jack_as_the_parameters_say(jack_tools):
    from musicgym.live.pd_audio import PdAudioOut

    sd = jack_tools.portaudio()
    schedule = [(0.1, 0.2), (0.6, 0.8), (0.3, 0.5), (0.3, 0.0)]   # (freq, amp) in [0, 1]
    marks = []
    with PdAudioOut(SINE, schedule[0], api="jack", jack_name="mg-pd-test",
                    jack_connect=False) as pd:
        ports = jack_tools.ports()
        assert "mg-pd-test:output_1" in ports and "mg-pd-test:output_2" in ports, ports
        capture = Capture(sd, jack_tools, "mg-pd-test:output_1")
        try:
            for k, params in enumerate(schedule):
                if k:
                    pd.set_params(params)
                marks.append(capture.frames)
                time.sleep(0.6)
            marks.append(capture.frames)
        finally:
            capture.close()
        pgid = pd.proc.pid
        assert pd.messages == len(schedule) and pd.running
    assert pd.proc.returncode == 0   # it quit when asked
    deadline = time.monotonic() + 3.0
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_alive(pgid) == [], "Pd left processes behind"
    assert not any(p.startswith("mg-pd-test:") for p in jack_tools.ports())

    audio = capture.audio()
    for k, (freq, amp) in enumerate(schedule):
        # from 0.2 s after the change (JACK's and PortAudio's buffers, the machine's load) to
        # the next change
        start, end = marks[k] + int(0.2 * SR), marks[k + 1]
        assert end - start > 0.2 * SR, (marks, "the capture did not run in real time")
        level, peak_hz = _analyse(audio[start:end])
        if amp == 0:
            assert np.abs(audio[start:end]).max() < 1e-4, k
            continue
        assert level == pytest.approx(amp, rel=0.01), (k, level)
        assert peak_hz == pytest.approx(_freq_hz((freq,)), abs=6.0), (k, peak_hz)


def test_live_improvise_pd_audio_sounds_each_decision(jack_tools, tmp_path):
    """The CLI end to end: the server decides on the musician's audio and Pd plays each
    decision's parameters, as replied."""
    from musicgym.live.improvise import AUDIO, REPLY_PARAMS, osc_message, parse_packet

    sd = jack_tools.portaudio()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "musicgym", "live", "improvise", "--synth", str(SINE),
         "--subdiv", "9", "--features", "loudness-dB", "pitch", "--port", str(port),
         "--reply-port", "0", "--pd-audio", "jack", "--pd-options=-nojackconnect",
         "--seconds", "4"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(musicgym.__file__).parents[1])},
        start_new_session=True)
    watchdog = threading.Timer(90.0, server.kill)
    watchdog.start()
    try:
        line = server.stdout.readline()
        assert "listening on" in line, (line, server.stderr.read() if server.poll() else "")
        capture = Capture(sd, jack_tools, "musicgym-pd:output_1")
        replies, marks = [], []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as musician:
            musician.settimeout(5.0)
            t = np.arange(2048) / SR
            for freq, amp in [(190.0, 0.1), (820.0, 0.6)]:   # a quiet low, a loud high
                sine = (amp * np.sin(2 * np.pi * freq * t)).astype("<f4")
                musician.sendto(osc_message(AUDIO, [sine.tobytes()]), ("127.0.0.1", port))
                while True:
                    address, args = parse_packet(musician.recvfrom(1 << 16)[0])[0]
                    if address == REPLY_PARAMS:
                        break
                replies.append(args)
                marks.append(capture.frames)
                time.sleep(0.7)
            marks.append(capture.frames)
        capture.close()
        out, err = server.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert '"pd_messages": 3' in out, out   # the start and the two decisions
    assert not any(p.startswith("musicgym-pd:") for p in jack_tools.ports())
    low, high = replies
    assert high[0] > low[0] and high[1] > low[1], replies   # it followed the musician
    audio = capture.audio()
    for k, params in enumerate(replies):
        level, peak_hz = _analyse(audio[marks[k] + int(0.25 * SR):marks[k + 1]])
        assert level == pytest.approx(params[1], rel=0.01, abs=1e-4), (k, params, level)
        if params[1] > 0.05:
            assert peak_hz == pytest.approx(_freq_hz(params), abs=8.0), (k, params, peak_hz)


# -- errors (pd only, no JACK) -----------------------------------------------------------------
@needs_pd
def test_a_synth_pd_cannot_load_is_a_clear_error(tmp_path):
    from musicgym.live.pd_audio import PdAudioOut

    bad = tmp_path / "bad_synth.pd"
    bad.write_text(SINE.read_text().replace("osc~", "nosuchosc~"))
    with pytest.raises(PdAudioError, match=r"could not be created.*nosuchosc~"):
        PdAudioOut(bad, api="none")


@needs_pd
def test_pd_without_audio_takes_the_parameters_and_stops_cleanly():
    from musicgym.live.pd_audio import PdAudioOut

    pd = PdAudioOut(SINE, [0.5, 0.5], api="none")
    try:
        pd.set_params(np.array([0.25, 1.0]))
        assert pd.running and pd.messages == 2
        with pytest.raises(ImproviseConfigError, match="in \\[0, 1\\]"):
            pd.set_params([1.5, 0.0])
        with pytest.raises(ImproviseConfigError, match="shaped"):
            pd.set_params([0.5])
    finally:
        assert pd.close() == 0
    assert not pd.running and pd.summary() == {"pd_messages": 2, "pd_exit": 0}
    with pytest.raises(PdAudioError, match="not started"):
        pd.set_params([0.5, 0.5])


@needs_pd
def test_pd_on_a_jack_server_that_is_not_there(monkeypatch):
    from musicgym.live.pd_audio import PdAudioOut

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "musicgym-no-such-server")
    with pytest.raises(PdAudioError, match="audio did not open.*JACK server running"):
        PdAudioOut(SINE, api="jack")


@needs_pd
@pytest.mark.parametrize(("api", "device"), [("alsa", "/dev/snd"), ("oss", "/dev/dsp")])
def test_pd_on_a_sound_card_that_is_not_there(api, device):
    from musicgym.live.pd_audio import PdAudioOut

    if Path(device).exists():
        pytest.skip(f"{device} exists here: Pd may well open it")
    with pytest.raises(PdAudioError, match="audio did not open"):
        PdAudioOut(SINE, api=api)


@needs_pd
def test_pd_that_dies_while_playing_is_reported():
    from musicgym.live.pd_audio import PdAudioOut

    pd = PdAudioOut(SINE, api="none")
    os.killpg(pd.proc.pid, 9)
    pd.proc.wait(5)
    with pytest.raises(PdAudioError, match="pd stopped while playing"):
        pd.set_params([0.5, 0.5])
    pd.close()


def test_pd_missing_failing_or_hanging_is_a_clear_error(monkeypatch, tmp_path):
    from musicgym.live.pd_audio import PdAudioOut

    sleep = shutil.which("sleep")
    monkeypatch.delenv("MUSICGYM_PD", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PdAudioError, match="needs Pure Data's pd"):
        PdAudioOut(SINE, api="none")
    monkeypatch.setenv("MUSICGYM_PD", str(tmp_path / "no-pd-here"))
    with pytest.raises(PdAudioError, match="cannot run"):
        PdAudioOut(SINE, api="none")

    failing = tmp_path / "failing-pd"
    failing.write_text("#!/bin/sh\necho 'pd: bad flag' >&2\nexit 3\n")
    failing.chmod(0o755)
    monkeypatch.setenv("MUSICGYM_PD", str(failing))
    with pytest.raises(PdAudioError, match=r"exited \(status 3\).*bad flag"):
        PdAudioOut(SINE, api="none")

    hanging = tmp_path / "hanging-pd"
    hanging.write_text("#!/bin/sh\necho $$ > " + str(tmp_path / "pid") + f"\nexec {sleep} 60\n")
    hanging.chmod(0o755)
    monkeypatch.setenv("MUSICGYM_PD", str(hanging))
    start = time.monotonic()
    with pytest.raises(PdAudioError, match="did not load the synth 'sine_synth' within 0.5 s"):
        PdAudioOut(SINE, api="none", start_timeout_s=0.5)
    assert time.monotonic() - start < 5.0
    pid = int((tmp_path / "pid").read_text())
    assert _group_alive(pid) == []   # killed, not left sleeping


def test_bad_settings_are_clear_errors(tmp_path):
    from musicgym.live.pd_audio import PdAudioOut

    with pytest.raises(PdAudioError, match="unknown Pd audio API 'coreaudio'"):
        PdAudioOut(SINE, api="coreaudio")
    with pytest.raises(ImproviseConfigError, match="no Pd synth"):
        PdAudioOut(tmp_path / "missing.pd")
    with pytest.raises(ImproviseConfigError, match="in \\[0, 1\\]"):
        PdAudioOut(SINE, [2.0, 0.0], start=False)


@needs_pd
def test_another_synth_pd_beside_the_users_is_not_the_one_played(tmp_path):
    """Pd looks in a [declare -path] folder before the patch's own: the copy's name must be
    one no user's file has (a stray synth.pd beside my_synth.pd once shadowed it)."""
    from musicgym.envs.pd_synth import PdSynth
    from musicgym.live.pd_audio import PdAudioOut

    mine = tmp_path / "my_synth.pd"
    mine.write_text(SINE.read_text())
    (tmp_path / "synth.pd").write_text(SINE.read_text().replace("osc~", "nosuchosc~"))
    with PdAudioOut(mine, [0.5, 0.5], api="none") as pd:
        assert pd.running
    audio = PdSynth(mine).render(np.array([[0.0, 0.5]]), n_samples=4410)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=1e-3)


def test_live_improvise_pd_audio_refuses_what_it_cannot_play(capsys):
    from musicgym.cli import main

    base = ["live", "improvise", "--port", "0", "--seconds", "0.1", "--subdiv", "3"]
    assert main([*base, "--synth", "sine", "--pd-audio"]) == 1
    assert "--pd-audio plays a Pd synth (--synth path/to/synth.pd); 'sine' is musicgym's " \
           "own: sound it with --audio-out" in capsys.readouterr().err
    assert main([*base, "--synth", "sine", "--pd-options=-nojackconnect"]) == 1
    assert "add --pd-audio" in capsys.readouterr().err


@needs_pd
def test_live_improvise_pd_audio_starts_and_stops_pd(capsys):
    from musicgym.cli import main

    base = ["live", "improvise", "--port", "0", "--seconds", "0.2", "--subdiv", "3",
            "--synth", str(SINE)]
    assert main([*base, "--pd-audio", "none"]) == 0
    out, err = capsys.readouterr()
    assert '"pd_messages": 1' in out and '"pd_exit": 0' in out, out   # the start, then quit
    assert "--pd-audio: pd plays" in err
    assert main([*base, "--pd-audio", "none", "--audio-out"]) == 1
    assert "choose one" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@needs_pd
@pytest.mark.parametrize("how", ["interrupt", "kill"])
def test_no_pd_is_left_behind_when_the_server_is_stopped(how):
    """Ctrl-C stops Pd cleanly (quit); a server killed outright takes its Pd with it."""
    import signal

    from musicgym.live.improvise import DESCRIPTORS, osc_message

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    server = subprocess.Popen(
        [sys.executable, "-m", "musicgym", "live", "improvise", "--synth", str(SINE),
         "--subdiv", "3", "--port", str(port), "--reply-port", "0", "--pd-audio", "none",
         "--seconds", "60"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(musicgym.__file__).parents[1])},
        start_new_session=True)
    try:
        line = server.stdout.readline()
        assert "listening on" in line, (line, server.stderr.read() if server.poll() else "")
        pds = [pid for pid in _children(server.pid)
               if Path(f"/proc/{pid}/comm").read_text().strip() == "pd"]
        assert len(pds) == 1, _children(server.pid)
        wrapper = Path(Path(f"/proc/{pds[0]}/cmdline").read_text().split("\0")[-2])
        assert wrapper.name == "main.pd" and not wrapper.parent.exists()  # removed once loaded
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as musician:  # serving?
            musician.settimeout(20.0)
            musician.sendto(osc_message(DESCRIPTORS, ["loudness-dB", -20.0]),
                            ("127.0.0.1", port))
            musician.recvfrom(1 << 16)   # yes (an interrupt before serving exits 130)
        server.send_signal(signal.SIGINT if how == "interrupt" else signal.SIGKILL)
        out, err = server.communicate(timeout=60)  # a loaded CI box is slow to stop
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    deadline = time.monotonic() + 5.0
    while _alive(pds[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pds[0]), f"pd {pds[0]} outlived the server ({how})"
    if how == "interrupt":
        assert server.returncode == 0, err
        assert '"pd_exit": 0' in out, out   # Pd quit when asked, not killed
