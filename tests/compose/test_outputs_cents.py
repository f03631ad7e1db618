"""Cents marks in MusicXML and LilyPond for tunings other than 12-TET, checked against the
ratios of the tuning (musicgym.music.tunings) and read back with music21."""

import re

import pytest

from musicgym.compose.outputs import note_cents, write_piece
from musicgym.compose.piece import piece_from_counterpoint
from musicgym.compose.search import random_search
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import ScoreFileError
from musicgym.music.notation import cents_mark, lilypond_text
from musicgym.music.notes import make_notes
from musicgym.music.pitch import parse_pitch
from musicgym.music.tunings import (
    FIVE_LIMIT_RATIOS,
    equal_temperament,
    just_intonation,
    ratio_to_cents,
    read_scl,
)

MEANTONE_SCL = ("! meantone.scl\n!\nQuarter-comma meantone, 12 notes\n 12\n!\n"
                " 76.04900\n 193.15686\n 310.26471\n 5/4\n 503.42157\n 579.46569\n 696.57843\n"
                " 25/16\n 889.73529\n 1006.84314\n 1082.89214\n 2/1\n")
# D dorian in 5-limit JI on D: degree -> ratio above D; mark = its cents - 12-TET's
JI_ON_D = {"D": "0c", "E": "+4c", "F": "+16c", "G": "-2c", "A": "+2c", "B": "-16c", "C": "+18c"}
# quarter-comma meantone from C: each letter's cents in the .scl minus 12-TET's
MEANTONE_ON_C = {"C": "0c", "D": "-7c", "E": "-14c", "F": "+3c", "G": "-3c", "A": "-10c",
                 "B": "-17c"}


@pytest.fixture(scope="module")
def dorian_state():
    env = CounterpointEnv(cantus_firmus="fux_dorian", species=1)
    _, actions = random_search(env, seed=3)
    env.reset()
    for action in actions:
        env.step(action)
    assert env.state.finished
    return env.state, actions


def test_expected_marks_follow_from_the_ratios():
    # the literal tables above are what the tuning's ratios give (no sharps/flats in D dorian)
    semitones = {"D": 0, "E": 2, "F": 3, "G": 5, "A": 7, "B": 9, "C": 10}
    for letter, mark in JI_ON_D.items():
        ratio = FIVE_LIMIT_RATIOS[semitones[letter]]
        assert cents_mark(ratio_to_cents(ratio) - 100 * semitones[letter]) == mark
    assert cents_mark(0.4) == "0c" and cents_mark(-0.6) == "-1c" and cents_mark(13.5) == "+14c"


def _marks_in_lilypond(text):
    """(letter, mark) of every marked note in the LilyPond text."""
    return re.findall(r"\b([a-g])(?:is|es)*[',]*[0-9.]+\^\\markup \{ \"([+-]?\d+c)\" \}", text)


def _marks_in_musicxml(path):
    """Per part: (letter of the note, mark above it) for every note onset."""
    import music21

    score = music21.converter.parse(path)
    result = []
    for part in score.parts:
        flat = part.flatten()
        words = {float(e.offset): e.content for e in flat.getElementsByClass("TextExpression")}
        onsets = [n for n in flat.notes if n.tie is None or n.tie.type == "start"]
        assert set(words) == {float(n.offset) for n in onsets}, "one mark per note onset"
        result.append([(n.pitch.step, words[float(n.offset)]) for n in onsets])
    return result


@pytest.mark.parametrize("kind", ["just", "scala"])
def test_marks_match_the_tuning(dorian_state, tmp_path, kind):
    state, actions = dorian_state
    if kind == "just":
        tuning, expected = just_intonation(62), JI_ON_D
    else:
        scl = tmp_path / "meantone.scl"
        scl.write_text(MEANTONE_SCL)
        tuning, expected = read_scl(scl), MEANTONE_ON_C
    piece = piece_from_counterpoint(state, actions=actions, tuning=tuning)
    cents = note_cents(piece)
    for name, value in zip(piece.names, cents, strict=True):
        assert value == pytest.approx(tuning.cents_from_12tet(parse_pitch(name)), abs=1e-6)
        assert cents_mark(value) == expected[name[0]]
    paths = write_piece(tmp_path / kind, piece, wav=False)

    ly_marks = _marks_in_lilypond(paths["lilypond"].read_text())
    assert len(ly_marks) == len(piece.notes)  # one per note, tied halves not marked twice
    assert all(mark == expected[letter.upper()] for letter, mark in ly_marks)
    assert "cents from the written note in 12-TET" in paths["lilypond"].read_text()

    parts = _marks_in_musicxml(paths["musicxml"])
    assert sum(len(p) for p in parts) == len(piece.notes)
    assert all(mark == expected[letter] for p in parts for letter, mark in p)
    # the marks are not all zero: the tuning really differs from 12-TET here
    assert len({mark for p in parts for _, mark in p}) > 2


def test_twelve_tet_pieces_have_no_marks(dorian_state, tmp_path):
    state, actions = dorian_state
    piece = piece_from_counterpoint(state, actions=actions, tuning=equal_temperament(a4_hz=432))
    assert note_cents(piece) is None
    paths = write_piece(tmp_path / "tet", piece, wav=False)
    assert "\\markup" not in paths["lilypond"].read_text()
    assert "<words>" not in paths["musicxml"].read_text()


def test_a_tied_note_is_marked_once():
    notes = make_notes([0.0, 2.0], [2.0, 4.0], [60, 64])
    text = lilypond_text(notes, ["C4", "E4"], cents=[0.0, -13.7])
    assert "c'2^\\markup { \"0c\" } e'2^\\markup { \"-14c\" }~ e'2" in text


def test_bad_cents_are_refused():
    notes = make_notes([0.0], [1.0], [60])
    with pytest.raises(ScoreFileError, match="one finite number per note"):
        lilypond_text(notes, ["C4"], cents=[1.0, 2.0])
