"""Intervals between pitches: consonance, perfect intervals, qualities (``m3``, ``A2``, ``d5``).

An interval is described by two numbers: its size in semitones and its size in letter steps
(scale steps for notes of one heptatonic scale). Both are needed to tell an augmented second
(G#->F in A harmonic minor, 1 step, 3 semitones) from a minor third (2 steps, 3 semitones).
All functions accept arrays and broadcast.
"""

from __future__ import annotations

import numpy as np

# semitone classes (mod 12) that count as consonant in two-voice species counterpoint:
# unison/octave, minor and major third, perfect fifth, minor and major sixth (the fourth is not)
CONSONANT_CLASSES = (0, 3, 4, 7, 8, 9)
PERFECT_CLASSES = (0, 7)
# smallest and largest semitone size of a simple interval with 0..6 letter steps
# (unison, second, ..., seventh) that is neither augmented nor diminished
_MIN_SEMITONES = np.array([0, 1, 3, 5, 7, 8, 10])
_MAX_SEMITONES = np.array([0, 2, 4, 5, 7, 9, 11])
_PERFECT_STEPS = (0, 3, 4)
_CONSONANT_TABLE = np.isin(np.arange(12), CONSONANT_CLASSES)
_PERFECT_TABLE = np.isin(np.arange(12), PERFECT_CLASSES)


def is_consonant(semitones: np.ndarray | int) -> np.ndarray:
    """Whether harmonic intervals are consonant (P1/P8, m3, M3, P5, m6, M6; P4 is not)."""
    return _CONSONANT_TABLE[np.abs(semitones) % 12]


def is_perfect(semitones: np.ndarray | int) -> np.ndarray:
    """Whether harmonic intervals are perfect consonances (unison, fifth, octave, compounds)."""
    return _PERFECT_TABLE[np.abs(semitones) % 12]


def _simple(steps: np.ndarray | int, semitones: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(steps)
    semitones = np.asarray(semitones)
    # measure the semitones along the direction of the letter steps
    sign = np.where(steps < 0, -1, 1)
    along = semitones * sign
    octaves = np.abs(steps) // 7
    return np.abs(steps) % 7, along - 12 * octaves


def is_augmented(steps: np.ndarray | int, semitones: np.ndarray | int) -> np.ndarray:
    """Whether intervals are augmented (larger than major or perfect), e.g. A2 = (1, 3)."""
    number, size = _simple(steps, semitones)
    return size > _MAX_SEMITONES[number]


def is_diminished(steps: np.ndarray | int, semitones: np.ndarray | int) -> np.ndarray:
    """Whether intervals are diminished (smaller than minor or perfect), e.g. d4 = (3, 4)."""
    number, size = _simple(steps, semitones)
    return size < _MIN_SEMITONES[number]


def interval_name(steps: int, semitones: int) -> str:
    """Quality and number of an interval, e.g. ``interval_name(2, 4) == "M3"``.

    Parameters
    ----------
    steps : int
        Letter (scale) steps; negative for a descending interval.
    semitones : int
        Semitones, with the same direction convention.

    Returns
    -------
    str
        ``P``/``M``/``m``/``A``/``d`` (doubled for doubly augmented or diminished), then the
        interval number (``1`` unison, ``8`` octave, ``10`` tenth...).
    """
    number, size = (int(x) for x in _simple(steps, semitones))
    full_number = abs(int(steps)) + 1
    low, high = int(_MIN_SEMITONES[number]), int(_MAX_SEMITONES[number])
    if number in _PERFECT_STEPS and size == low:
        quality = "P"
    elif number in _PERFECT_STEPS:
        quality = "A" * (size - high) if size > high else "d" * (low - size)
    elif size == high:
        quality = "M"
    elif size == low:
        quality = "m"
    else:
        quality = "A" * (size - high) if size > high else "d" * (low - size)
    return f"{quality}{full_number}"
