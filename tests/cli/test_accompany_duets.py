"""Any duet: ``evaluate-accompany --duets DIR`` and ``live accompany`` with separate part files
and an unaligned MIDI reference, on the real Brahms takes."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest

from musicgym.cli import main
from musicgym.errors import ScoreFileError
from musicgym.follow.duets import BRAHMS, align_to_score, default_duets_dir, find_duet_takes
from musicgym.live.accompany import read_performance

BRAHMS_DIR = default_duets_dir() / BRAHMS
needs_duets = pytest.mark.skipif(not BRAHMS_DIR.is_dir(),
                                 reason=f"real duets not found under {default_duets_dir()}")
MATCH = BRAHMS_DIR / "match"
XML = BRAHMS_DIR / "musicxml"
PRIMO = str(MATCH / "Brahms_Hungarian-Dance-5_Primo_2021-08-10_{}.match")


def _renamed_copy(tmp_path):
    """Three takes under other names: ``day2_<n>_<part>.match``, part names solo/piano."""
    folder = tmp_path / "other_piece"
    folder.mkdir()
    for n, take in ((1, 1), (2, 2), (10, 6)):  # 10 sorts after 2: natural order
        for part, role in (("Primo", "solo"), ("Secondo", "piano")):
            (folder / f"day2_{n}_{role}.match").symlink_to(
                MATCH / f"Brahms_Hungarian-Dance-5_{part}_2021-08-10_{take}.match")
    (folder / "day2_3_solo.match").symlink_to(MATCH / _primo_name(1))  # no partner: ignored
    return folder


def _unplayable(reference):
    bad = reference.copy()
    bad["pitch"] = 1  # a key the solo part never plays
    return bad


def _primo_name(take: int) -> str:
    return f"Brahms_Hungarian-Dance-5_Primo_2021-08-10_{take}.match"


@needs_duets
def test_find_duet_takes_pairs_by_the_part_field(tmp_path):
    takes = find_duet_takes(MATCH)
    assert [t.take for t in takes] == list(range(1, 8))
    assert len(takes[5].solo.performed) == 966  # take 6's primo
    other = find_duet_takes(_renamed_copy(tmp_path), solo_part="solo",
                            accompaniment_part="piano")
    assert [t.take for t in other] == [1, 2, 3]
    assert len(other[2].solo.performed) == 966  # day2_10 is Brahms take 6, sorted last
    with pytest.raises(ScoreFileError, match="--solo-part"):
        find_duet_takes(tmp_path / "other_piece", solo_part="Primo")


@needs_duets
def test_evaluate_accompany_on_any_folder_of_duets(tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["evaluate-accompany", "--duets", str(_renamed_copy(tmp_path)),
                 "--solo-part", "solo", "--accompaniment-part", "piano", "--takes", "3",
                 "--followers", "hmm", "--json", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    assert results["takes"] == [3]
    timed = next(r for r in results["rows"] if r["accompanist"] == "kalman+timing")
    # take 6 of the Brahms behind the HMM, against take 1, timed by takes 1-2
    assert timed["within_50_ms"] > 0.8 and timed["within_100_ms"] > 0.9
    assert main(["evaluate-accompany", "--duets", str(tmp_path / "other_piece"),
                 "--solo-part", "solo", "--accompaniment-part", "piano",
                 "--takes", "9"]) == 1
    assert "choose takes to test" in capsys.readouterr().err


@needs_duets
def test_live_accompany_with_separate_parts_and_a_midi_reference(tmp_path, capsys):
    # the seed's layout: a metronomic MIDI of the solo part as the reference, no match file
    from musicgym.music.midi import write_midi
    from musicgym.music.score import read_score

    solo = read_score(XML / "Brahms_Hungarian-Dance-5_Primo.musicxml", part=0, bpm=140)
    reference_mid = tmp_path / "reference.mid"
    write_midi(reference_mid, solo, bpm=140.0)
    reference = read_performance(reference_mid)
    aligned = align_to_score(reference, solo)
    assert np.isfinite(aligned["onset_beat"]).mean() > 0.95
    code = main(["live", "accompany",
                 "--solo-score", str(XML / "Brahms_Hungarian-Dance-5_Primo.musicxml"),
                 "--accompaniment-score", str(XML / "Brahms_Hungarian-Dance-5_Secondo.musicxml"),
                 "--tempo-model", "kalman", "--reference", str(reference_mid),
                 "--replay", PRIMO.format(6), "--speed", "0", "--bpm", "140",
                 "-o", str(tmp_path / "out")])
    assert code == 0 and "re-synchronisations" in capsys.readouterr().out
    played = [m for m in mido.MidiFile(tmp_path / "out" / "duet.mid").tracks[1]
              if m.type == "note_on"]
    assert 800 < len(played) < 1200
    assert main(["live", "accompany", "--solo-score", PRIMO.format(6), "--tempo-model",
                 "kalman", "--replay", PRIMO.format(6)]) == 1
    assert "--accompaniment-score" in capsys.readouterr().err
    with pytest.raises(ScoreFileError, match="does not follow the solo part"):
        align_to_score(_unplayable(reference),
                       solo)
