"""Scales and modes: the seven diatonic modes, harmonic and melodic minor, on any spelled tonic.

Pitches of a scale are addressed by their *position in degrees*: position 0 is the tonic in
octave -1, position 7 the tonic an octave up, and so on, so a melodic move of ``k`` scale steps
is ``position + k``. :class:`Scale` turns positions into MIDI key numbers and spelled names
(``Bb`` major spells its fourth degree ``Eb``, A harmonic minor its seventh ``G#``).

Frequencies are not here: see ``musicgym.music.tunings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from musicgym.errors import PitchError, ScaleError
from musicgym.music.pitch import SpelledPitch, alter_text, parse_pitch, spell

MODES: dict[str, tuple[int, ...]] = {
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic_minor": (0, 2, 3, 5, 7, 9, 11),
}
MODE_ALIASES = {"major": "ionian", "natural_minor": "aeolian", "minor": "aeolian"}


def mode_steps(mode: str) -> tuple[int, ...]:
    """Semitones of the seven degrees above the tonic for a mode name (aliases accepted).

    Raises
    ------
    ScaleError
        If the mode is unknown (the message lists the known ones).
    """
    key = MODE_ALIASES.get(mode, mode)
    if key not in MODES:
        known = ", ".join([*MODES, *MODE_ALIASES])
        raise ScaleError(f"unknown mode {mode!r}; use one of: {known}")
    return MODES[key]


@dataclass(frozen=True)
class Scale:
    """A heptatonic scale: a spelled tonic (``"C"``, ``"F#"``, ``"Bb"``) and a mode.

    Parameters
    ----------
    tonic : str
        Tonic pitch class with its spelling, without octave.
    mode : str
        One of :data:`MODES` or :data:`MODE_ALIASES` (``major``, ``natural_minor``, ``minor``).

    Examples
    --------
    >>> s = Scale("Bb", "major")
    >>> s.name(s.position_of("Eb4"))
    'Eb4'
    """

    tonic: str
    mode: str = "major"
    steps: tuple[int, ...] = field(init=False, repr=False)
    _tonic_pitch: SpelledPitch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", mode_steps(self.mode))
        try:
            tonic = parse_pitch(self.tonic, default_octave=-1)
        except PitchError as exc:
            raise ScaleError(f"bad tonic {self.tonic!r}: {exc}") from None
        object.__setattr__(self, "_tonic_pitch", SpelledPitch(tonic.letter, tonic.alter, -1))

    @property
    def pitch_classes(self) -> np.ndarray:
        """The 7 pitch classes (0 = C) in degree order, shape (7,)."""
        return (self._tonic_pitch.midi + np.asarray(self.steps)) % 12

    def midi(self, positions: np.ndarray | int) -> np.ndarray:
        """MIDI key numbers of scale positions, same shape as ``positions``."""
        positions = np.asarray(positions)
        octaves, index = np.divmod(positions, 7)
        return self._tonic_pitch.midi + 12 * octaves + np.asarray(self.steps)[index]

    def degree(self, positions: np.ndarray | int) -> np.ndarray:
        """Scale degree numbers 1..7 of positions (1 = tonic, 7 = seventh degree)."""
        return np.asarray(positions) % 7 + 1

    def pitch(self, position: int) -> SpelledPitch:
        """The spelled pitch at a position."""
        return spell(self._tonic_pitch.diatonic_index + int(position), int(self.midi(position)))

    def name(self, position: int) -> str:
        """Note name at a position, e.g. ``"G#4"``."""
        return self.pitch(position).name

    def position_of(self, note: str | SpelledPitch) -> int:
        """Position in degrees of a note of this scale.

        A note spelled enharmonically (``A#4`` in B-flat major) is accepted.

        Raises
        ------
        ScaleError
            If the note is not in the scale.
        """
        pitch = parse_pitch(note) if isinstance(note, str) else note
        position = pitch.diatonic_index - self._tonic_pitch.diatonic_index
        if int(self.midi(position)) == pitch.midi:
            return position
        for candidate in (position - 1, position + 1):
            if int(self.midi(candidate)) == pitch.midi:
                return candidate
        raise ScaleError(
            f"{pitch.name} is not in {self.tonic} {self.mode} "
            f"(its notes are {', '.join(self.pitch_class_names)})"
        )

    @property
    def pitch_class_names(self) -> list[str]:
        """Spelled names of the 7 degrees without octave, e.g. ``['Bb', 'C', 'D', ...]``."""
        return [self.pitch(p).letter + alter_text(self.pitch(p).alter) for p in range(7, 14)]

    def contains_midi(self, midi: np.ndarray | int) -> np.ndarray:
        """Whether MIDI key numbers belong to the scale (any octave)."""
        return np.isin(np.asarray(midi) % 12, self.pitch_classes)
