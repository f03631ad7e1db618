"""Duet takes: loading, onsets and the human secondo's asynchrony, on the real Brahms takes."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.errors import ScoreFileError
from musicgym.follow.duets import human_asynchrony_ms, load_duet, onsets, shared_onsets


def test_seven_takes_on_one_clock(brahms_takes):
    assert [t.take for t in brahms_takes] == [1, 2, 3, 4, 5, 6, 7]
    for take in brahms_takes:
        assert take.piece == "Brahms_Hungarian-Dance-5"
        both = shared_onsets(take.solo.score, take.accompaniment.score)
        assert 300 < len(both) < 400
        beat, asynchrony_ms = human_asynchrony_ms(take)
        # same clock: the two players are within a few tens of ms, not seconds, apart
        assert np.median(np.abs(asynchrony_ms)) < 40


def test_human_duo_matches_the_data_readme(brahms_takes):
    # the data's README: about 86 % of shared onsets within 50 ms, 99 % within 100 ms
    all_ms = np.concatenate([human_asynchrony_ms(t)[1] for t in brahms_takes])
    assert np.mean(np.abs(all_ms) <= 50) == pytest.approx(0.86, abs=0.03)
    assert np.mean(np.abs(all_ms) <= 100) == pytest.approx(0.99, abs=0.02)


def test_onsets_average_chords():
    from musicgym.music.notes import make_notes

    notes = make_notes([0, 0, 1], 1.0, [60, 64, 62], onset_sec=[1.0, 1.02, np.nan])
    beat, sec = onsets(notes)
    np.testing.assert_allclose(beat, [0.0])
    np.testing.assert_allclose(sec, [1.01])


def test_load_duet_errors(tmp_path, brahms_match_dir):
    with pytest.raises(ScoreFileError, match="does not exist"):
        load_duet(tmp_path / "absent")
    with pytest.raises(ScoreFileError, match="no match file of part 'Violin'"):
        load_duet(brahms_match_dir, solo_part="Violin", accompaniment_part="Cello")
    lonely = tmp_path / "duet"
    lonely.mkdir()
    (lonely / "Piece_Primo_2021-01-01_1.match").symlink_to(
        brahms_match_dir / "Brahms_Hungarian-Dance-5_Primo_2021-08-10_1.match"
    )
    with pytest.raises(ScoreFileError, match="take 1 of 'Piece'.*no 'secondo'"):
        load_duet(lonely)
