"""Audio input over a real JACK server (`jackd -d dummy`, conftest.py's ``jack_audio``) through
sounddevice."""

import shutil
import subprocess
import time

import numpy as np
import pytest

from musicgym.errors import AccompanyConfigError, ParameterError


def _accompanist():
    from musicgym.follow.accompanist import TempoModelController
    from musicgym.follow.followers import HMMFollower
    from musicgym.follow.tempo import make_tempo_model
    from musicgym.live.accompany import LiveAccompanist

    notes = np.zeros(3, dtype=[("onset_sec", float), ("duration_sec", float), ("pitch", int),
                               ("onset_beat", float), ("duration_beat", float),
                               ("velocity", int)])
    notes[:] = [(0.0, 0.4, 60, 0.0, 1.0, 80), (0.5, 0.4, 62, 1.0, 1.0, 80),
                (1.0, 0.4, 64, 2.0, 1.0, 80)]
    return LiveAccompanist(notes, notes, HMMFollower(notes),
                           TempoModelController(make_tempo_model("kalman")), beat_period_s=0.5)


def test_listening_over_jack_runs_on_the_input_clock(jack_audio):
    from musicgym.live.accompany.audio import listen_audio

    accompanist = _accompanist()
    start = time.perf_counter()
    events, audio, sr = listen_audio(accompanist, device="system", seconds=1.0,
                                     keep_audio=True)
    wall_s = time.perf_counter() - start
    assert sr == 44100 and audio.size >= sr
    # real time: the dummy driver's clock, not as fast as possible (no upper bound: a loaded
    # machine may start the stream late, which says nothing about the clock it runs on)
    assert wall_s > 0.9
    assert events == [] and accompanist.report_beat == []  # the dummy input is silent


def test_an_unknown_audio_input_is_a_clear_error():
    pytest.importorskip("sounddevice")
    from musicgym.live.accompany.audio import listen_audio

    with pytest.raises(AccompanyConfigError, match="cannot open audio input"):
        listen_audio(_accompanist(), device="no such sound card", seconds=0.1)


def test_the_round_trip_over_jack_is_measured(jack_audio):
    from musicgym.live.accompany.audio import measure_round_trip_s

    def loopback():  # the stream's own output into its input, as a cable would
        ports = subprocess.run(["jack_lsp"], capture_output=True, text=True, check=True,
                               timeout=5).stdout.split()
        out = [p for p in ports if p.startswith("PortAudio") and ":out_" in p]
        into = [p for p in ports if p.startswith("PortAudio") and ":in_" in p]
        assert out and into, f"no PortAudio ports among {ports}"
        subprocess.run(["jack_connect", out[-1], into[-1]], check=True, timeout=5)

    if shutil.which("jack_connect") is None or shutil.which("jack_lsp") is None:
        pytest.skip("jack_connect/jack_lsp are not installed (jackd2's tools)")
    round_trip_s = measure_round_trip_s("system", sr=44100, block=256, loopback=loopback)
    # two 256-sample periods (JACK's buffering) at least, and not more than a few of them
    assert 2 * 256 / 44100 - 1e-6 <= round_trip_s < 8 * 256 / 44100
    with pytest.raises(AccompanyConfigError, match="never came back"):
        measure_round_trip_s("system", sr=44100, block=256, seconds=0.3)


def test_the_orchestra_sounds_through_jack(jack_audio):
    from musicgym.audio.soundfont import soundfont_available
    from musicgym.live.accompany import NoteEvent
    from musicgym.live.accompany.audio import Orchestra

    if not soundfont_available():
        pytest.skip("needs libfluidsynth3 and timgm6mb-soundfont")
    with Orchestra(program="strings", device="system", latency_s=0.0116) as orchestra:
        assert orchestra.peak < 1e-3  # silence (a least significant bit at most)
        orchestra.play([NoteEvent(0.1, 60, 100), NoteEvent(0.4, 60, 0)])
        time.sleep(0.6)
        assert orchestra.peak > 0.01 and orchestra._queue == []
    with pytest.raises(ParameterError, match="program"):
        Orchestra(program="kazoo")


def test_listening_with_the_orchestra_over_jack(jack_audio):
    from musicgym.audio.soundfont import soundfont_available
    from musicgym.live.accompany.audio import Orchestra, listen_audio

    if not soundfont_available():
        pytest.skip("needs libfluidsynth3 and timgm6mb-soundfont")
    orchestra = Orchestra(program="piano", device="system", latency_s=0.0116)
    events, _, sr = listen_audio(_accompanist(), device="system", seconds=0.5,
                                 orchestra=orchestra)
    assert sr == 44100 and events == [] and orchestra._sample >= 0.4 * 44100


def test_the_cli_listens_over_jack_and_writes_what_it_played(jack_audio, tmp_path, capsys):
    """``musicgym live accompany --audio-input system``: the whole command over JACK's dummy."""
    from musicgym.audio.io import read_audio
    from musicgym.audio.soundfont import soundfont_available
    from musicgym.cli import main

    if not soundfont_available():
        pytest.skip("needs libfluidsynth3 and timgm6mb-soundfont")
    score = tmp_path / "duet.mid"
    _write_duet(score)
    mix = tmp_path / "heard.wav"
    code = main(["live", "accompany", "--score", str(score), "--part", "solo=0",
                 "--part", "accompaniment=1", "--tempo-model", "kalman",
                 "--audio-input", "system", "--seconds", "1",
                 "--round-trip-ms", "11.6", "--wav", str(mix), "-o", str(tmp_path / "out")])
    assert code == 0
    printed = capsys.readouterr()
    assert "listening on audio input system" in printed.err
    assert "0 solo onsets followed" in printed.out  # the dummy input is silent
    assert (tmp_path / "out" / "duet.mid").is_file()
    audio, sr = read_audio(mix)
    assert sr == 44100 and audio.shape[-1] >= sr  # a second heard (and the silence rendered)


def test_the_cli_refuses_a_bad_round_trip_before_listening(tmp_path, capsys):
    from musicgym.cli import main

    score = tmp_path / "duet.mid"
    _write_duet(score)
    code = main(["live", "accompany", "--score", str(score), "--part", "solo=0",
                 "--part", "accompaniment=1", "--tempo-model", "kalman",
                 "--audio-input", "system", "--seconds", "1",
                 "--round-trip-ms", "-5", "-o", str(tmp_path / "out")])
    assert code == 1
    assert "--round-trip-ms must be in [0, 1000)" in capsys.readouterr().err


def _write_duet(path) -> None:
    """A two-track MIDI score: a four-note solo over a held accompaniment."""
    import mido

    midi = mido.MidiFile(ticks_per_beat=480)
    for pitches in ([60, 62, 64, 65], [48, 48, 48, 48]):
        track = mido.MidiTrack()
        midi.tracks.append(track)
        for pitch in pitches:
            track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    midi.save(path)
