import numpy as np
import pytest

from musicgym.errors import PitchError, ScaleError
from musicgym.music.intervals import (
    interval_name,
    is_augmented,
    is_consonant,
    is_diminished,
    is_perfect,
)
from musicgym.music.pitch import midi_to_name, note_to_midi, parse_pitch
from musicgym.music.scales import MODES, Scale


@pytest.mark.parametrize(
    ("name", "midi"), [("C4", 60), ("A4", 69), ("Bb3", 58), ("F#5", 78), ("Cb4", 59), ("B#3", 60),
                       ("Ebb2", 38), ("C-1", 0)]
)
def test_note_names_to_midi(name, midi):
    assert note_to_midi(name) == midi


def test_midi_to_name_sharps_and_flats():
    assert midi_to_name(61) == "C#4"
    assert midi_to_name(61, prefer_flats=True) == "Db4"


@pytest.mark.parametrize("bad", ["H4", "C", "Cbbb4", "", "4C"])
def test_bad_note_names_raise_pitch_error(bad):
    with pytest.raises(PitchError, match="note name"):
        parse_pitch(bad)


def test_bb_major_is_spelled_with_flats():
    scale = Scale("Bb", "major")
    assert scale.pitch_class_names == ["Bb", "C", "D", "Eb", "F", "G", "A"]
    assert scale.name(scale.position_of("Eb4")) == "Eb4"
    # enharmonic input is accepted and respelled
    assert scale.name(scale.position_of("D#4")) == "Eb4"


def test_harmonic_and_melodic_minor_raise_the_seventh():
    assert Scale("A", "harmonic_minor").pitch_class_names == ["A", "B", "C", "D", "E", "F", "G#"]
    assert Scale("A", "melodic_minor").pitch_class_names == ["A", "B", "C", "D", "E", "F#", "G#"]


def test_seven_modes_of_the_white_keys():
    # each church mode on its white-key final uses only white keys
    finals = {"ionian": "C", "dorian": "D", "phrygian": "E", "lydian": "F", "mixolydian": "G",
              "aeolian": "A", "locrian": "B"}
    for mode, final in finals.items():
        assert mode in MODES
        assert set(Scale(final, mode).pitch_class_names) == set("CDEFGAB")


def test_positions_and_midi_round_trip():
    scale = Scale("D", "dorian")
    positions = np.arange(30, 50)
    for p, m in zip(positions, scale.midi(positions), strict=True):
        assert scale.position_of(scale.name(int(p))) == p
        assert scale.pitch(int(p)).midi == m
    assert scale.degree(scale.position_of("D4")) == 1


def test_note_outside_scale_raises_scale_error():
    with pytest.raises(ScaleError, match="not in C major"):
        Scale("C", "major").position_of("F#4")
    with pytest.raises(ScaleError, match="unknown mode"):
        Scale("C", "hypermixolydian")
    with pytest.raises(ScaleError, match="bad tonic"):
        Scale("Q")


def test_consonance_and_perfect_intervals():
    semis = np.arange(13)
    assert list(semis[is_consonant(semis)]) == [0, 3, 4, 7, 8, 9, 12]
    assert list(semis[is_perfect(semis)]) == [0, 7, 12]


def test_interval_qualities():
    assert interval_name(2, 4) == "M3"
    assert interval_name(1, 3) == "A2"  # F -> G# in A harmonic minor
    assert interval_name(-1, -3) == "A2"
    assert interval_name(4, 6) == "d5"
    assert interval_name(3, 6) == "A4"
    assert interval_name(7, 12) == "P8"
    assert interval_name(9, 16) == "M10"
    assert bool(is_augmented(1, 3)) and not bool(is_augmented(2, 3))
    assert bool(is_diminished(3, 4)) and not bool(is_diminished(2, 4))
