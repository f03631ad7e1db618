"""Spelled pitches: note names such as ``C4``, ``F#3`` or ``Bb5`` and their MIDI key numbers.

A spelled pitch keeps its letter and its alteration, so ``G#4`` and ``Ab4`` are different
pitches with the same key number. Spelling matters for intervals (an augmented second is not a
minor third) and for notation; frequencies live in ``musicgym.music.tunings``.

This module is not about scales (``musicgym.music.scales``) or tunings.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from musicgym.errors import PitchError

LETTERS = "CDEFGAB"
# semitones of each natural letter above C
LETTER_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ALTER_TEXT = {"#": 1, "##": 2, "x": 2, "b": -1, "bb": -2, "": 0}
_NAME_RE = re.compile(r"^([A-Ga-g])(##|#|x|bb|b|)(-?\d+)?$")


class SpelledPitch(NamedTuple):
    """A pitch with its spelling: ``letter`` in ``CDEFGAB``, ``alter`` in semitones, ``octave``
    in scientific pitch notation (C4 is middle C)."""

    letter: str
    alter: int
    octave: int

    @property
    def midi(self) -> int:
        """MIDI key number (C4 = 60)."""
        return 12 * (self.octave + 1) + LETTER_SEMITONES[self.letter] + self.alter

    @property
    def name(self) -> str:
        """The name, e.g. ``"Bb3"``."""
        return f"{self.letter}{alter_text(self.alter)}{self.octave}"

    @property
    def diatonic_index(self) -> int:
        """Letter steps above C-1: adding 1 moves one letter up (B3 -> C4)."""
        return 7 * (self.octave + 1) + LETTERS.index(self.letter)


def alter_text(alter: int) -> str:
    """Accidental text for an alteration in semitones (``-1`` -> ``"b"``, ``2`` -> ``"##"``)."""
    return "#" * alter if alter >= 0 else "b" * -alter


def parse_pitch(name: str, *, default_octave: int | None = None) -> SpelledPitch:
    """Parse a note name such as ``"C4"``, ``"F#3"``, ``"Bb5"`` or ``"Ebb2"``.

    Parameters
    ----------
    name : str
        Letter, optional accidental (``#``, ``##``, ``x``, ``b``, ``bb``) and octave.
    default_octave : int or None, keyword-only
        Octave to use when ``name`` has none (a pitch class such as ``"Bb"``); ``None`` makes
        the octave mandatory.

    Returns
    -------
    SpelledPitch

    Raises
    ------
    PitchError
        If the name does not follow that pattern.

    Examples
    --------
    >>> parse_pitch("Bb3").midi
    58
    """
    match = _NAME_RE.match(str(name).strip())
    if match is None or (match.group(3) is None and default_octave is None):
        raise PitchError(
            f"cannot read the note name {name!r}: write a letter A-G, an optional accidental "
            "(#, ##, b, bb) and an octave, e.g. 'C4', 'F#3', 'Bb5'"
        )
    letter, accidental, octave = match.groups()
    return SpelledPitch(
        letter.upper(),
        _ALTER_TEXT[accidental],
        int(octave) if octave is not None else int(default_octave),
    )


def note_to_midi(name: str) -> int:
    """MIDI key number of a note name (``"A4"`` -> 69)."""
    return parse_pitch(name).midi


def midi_to_name(midi: int, *, prefer_flats: bool = False) -> str:
    """Name of a MIDI key number, spelled with sharps (default) or flats (``61`` -> ``"C#4"``)."""
    octave, pc = divmod(int(midi), 12)
    sharps = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    flats = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]
    return f"{(flats if prefer_flats else sharps)[pc]}{octave - 1}"


def spell(diatonic_index: int, midi: int) -> SpelledPitch:
    """The pitch with a given letter position (see :attr:`SpelledPitch.diatonic_index`) and key.

    Raises
    ------
    PitchError
        If the spelling would need more than two sharps or flats.
    """
    octave_plus_one, letter_pos = divmod(int(diatonic_index), 7)
    letter = LETTERS[letter_pos]
    natural = 12 * octave_plus_one + LETTER_SEMITONES[letter]
    alter = int(midi) - natural
    if abs(alter) > 2:
        raise PitchError(f"key {midi} cannot be spelled as a {letter} (alteration {alter})")
    return SpelledPitch(letter, alter, octave_plus_one - 1)
