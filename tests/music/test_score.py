"""Reading scores and match files, on the real Brahms duet files."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.errors import ScoreFileError
from musicgym.follow.duets import BRAHMS, default_duets_dir
from musicgym.music.score import SCORE_DTYPE, read_match, read_score

BRAHMS_DIR = default_duets_dir() / BRAHMS
needs_duets = pytest.mark.skipif(
    not BRAHMS_DIR.is_dir(),
    reason=f"real duets not found at {BRAHMS_DIR}: set MUSICGYM_DUETS_DIR to the shared folder",
)
PRIMO_1 = BRAHMS_DIR / "match" / "Brahms_Hungarian-Dance-5_Primo_2021-08-10_1.match"
FULL = BRAHMS_DIR / "musicxml" / "Brahms_Hungarian-Dance-5_Full.musicxml"


@needs_duets
def test_read_match_real_take():
    take = read_match(PRIMO_1)
    score = take.score
    assert score.dtype == SCORE_DTYPE
    assert len(score) == 1025
    # first line of the file: snote(n2,[C,#],4,1:1,0,3/8,0.0,1.5,[])-note(n0,[C,#],4,526,1061,...)
    first = score[0]
    assert first["pitch"] == 61 and first["onset_beat"] == 0.0 and first["duration_beat"] == 1.5
    assert first["bar"] == 1 and first["onset_beat_in_bar"] == 0.0 and first["beats_per_bar"] == 2
    assert first["onset_sec"] == pytest.approx(526 / 480 * 0.5, abs=1e-4)  # ticks at 120 bpm
    # 2/4 throughout: bar k starts at beat 2(k-1)
    np.testing.assert_allclose(score["onset_beat"] - score["onset_beat_in_bar"],
                               2.0 * (score["bar"] - 1))
    assert take.n_deleted == 48  # the file's 48 '-deletion.' lines
    assert take.n_inserted == 0
    played = take.performed
    assert len(played) == 1025 - 48
    assert np.all(np.diff(played["onset_sec"]) >= 0)
    # matched notes: score onsets increase with performed time, apart from chord asynchrony
    ok = np.isfinite(score["onset_sec"])
    assert np.corrcoef(score["onset_beat"][ok], score["onset_sec"][ok])[0, 1] > 0.99


@needs_duets
def test_read_score_musicxml_parts_and_bars():
    primo = read_score(FULL, part="Piano 1")
    secondo = read_score(FULL, part="p2")
    both = read_score(FULL)
    assert len(primo) + len(secondo) == len(both)
    assert primo["bar"].min() == 1 and primo["bar"].max() == 126
    match_score = read_match(PRIMO_1).score
    # the match file's score and the MusicXML primo are the same notes
    assert len(primo) == len(match_score)
    np.testing.assert_array_equal(primo["onset_beat"], match_score["onset_beat"])
    np.testing.assert_array_equal(primo["pitch"], match_score["pitch"])
    np.testing.assert_array_equal(primo["bar"], match_score["bar"])
    assert primo["onset_sec"][5] == pytest.approx(primo["onset_beat"][5] * 0.5)


def test_read_score_midi_roundtrip(tmp_path):
    mido = pytest.importorskip("mido")
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    pitches = [60, 62, 64, 65, 67, 69, 71, 72]  # two full 4/4 bars (a short one is a pickup)
    for pitch in pitches:
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=480))
    path = tmp_path / "scale.mid"
    midi.save(path)
    notes = read_score(path)
    np.testing.assert_array_equal(notes["pitch"], pitches)
    np.testing.assert_allclose(notes["onset_beat"], np.arange(8))
    np.testing.assert_array_equal(notes["bar"], [1, 1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_allclose(notes["onset_beat_in_bar"], np.arange(8) % 4)


def test_missing_file_says_which(tmp_path):
    with pytest.raises(ScoreFileError, match="nope.match.*does not exist"):
        read_match(tmp_path / "nope.match")
    with pytest.raises(ScoreFileError, match="nope.musicxml.*does not exist"):
        read_score(tmp_path / "nope.musicxml")


def test_malformed_match_names_the_line(tmp_path):
    bad = tmp_path / "bad.match"
    bad.write_text(
        "info(matchFileVersion,5.0).\n"
        "snote(n2,[C,#],4,1:1,0,3/8,0.0,1.5,[])-note(n0,[C,#],4,526,1061,1061,50).\n"
        "snote(n3,[F,#],4,1:2,1/8\n"
    )
    with pytest.raises(ScoreFileError, match="line 3"):
        read_match(bad)
    empty = tmp_path / "empty.match"
    empty.write_text("info(matchFileVersion,5.0).\n")
    with pytest.raises(ScoreFileError, match="no 'snote"):
        read_match(empty)


def test_bad_score_format_and_content(tmp_path):
    text = tmp_path / "score.txt"
    text.write_text("C D E")
    with pytest.raises(ScoreFileError, match="unknown score format '.txt'"):
        read_score(text)
    broken = tmp_path / "broken.musicxml"
    broken.write_text("not xml")
    with pytest.raises(ScoreFileError, match="broken.musicxml.*could not be read"):
        read_score(broken)


@needs_duets
def test_wrong_part_name_lists_parts():
    with pytest.raises(ScoreFileError, match="no part 'Violin'.*Piano 1.*Piano 2"):
        read_score(FULL, part="Violin")


def test_partitura_imports_without_network_when_fluidsynth_is_installed():
    """pyfluidsynth (the music extra) makes partitura fetch a SoundFont over FTP at import;
    musicgym's import of partitura must not touch the network, whatever was imported first."""
    import subprocess
    import sys

    pytest.importorskip("fluidsynth")
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network touched: %r' % (a,))\n"
        "socket.getaddrinfo = socket.gethostbyname = socket.create_connection = refuse\n"
        "import fluidsynth\n"
        "from musicgym.music.score import _partitura\n"
        "pt = _partitura()\n"
        "import partitura.utils.fluidsynth as f\n"
        "assert f.HAS_FLUIDSYNTH is False\n"
        "import sys; assert sys.modules['fluidsynth'] is fluidsynth\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
