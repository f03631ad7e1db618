"""Tunings: how pitch numbers become frequencies in Hz.

Four kinds, all one :class:`Tuning` value:

* 12-tone equal temperament at any A4 (:func:`equal_temperament`);
* n-tone equal divisions of the octave, n-EDO (:func:`edo`), where spelled notes map to steps
  through the EDO's best fifth (in 19-EDO a whole tone is 3 steps, a diatonic semitone 2, so
  C# and Db differ);
* 5-limit just intonation on a tonic (:func:`just_intonation`);
* Scala ``.scl`` files (:func:`read_scl`, :func:`parse_scl`).

A tuning numbers its pitches in *steps*: MIDI key numbers for 12-note tunings, EDO steps above
C-1 for n-EDO. :meth:`Tuning.step` turns a spelled pitch into its step number and
:meth:`Tuning.frequency_hz` a step number into Hz. MIDI output (pitch bend) is in
``musicgym.music.midi``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from musicgym.errors import TuningError
from musicgym.music.pitch import LETTERS, SpelledPitch

# 5-limit just ratios of the 12 chromatic degrees above the tonic
FIVE_LIMIT_RATIOS = (
    Fraction(1, 1), Fraction(16, 15), Fraction(9, 8), Fraction(6, 5), Fraction(5, 4),
    Fraction(4, 3), Fraction(45, 32), Fraction(3, 2), Fraction(8, 5), Fraction(5, 3),
    Fraction(9, 5), Fraction(15, 8),
)


def midi_to_hz(midi: np.ndarray | float, *, a4_hz: float = 440.0) -> np.ndarray:
    """12-TET frequency of (fractional) MIDI key numbers: ``a4_hz * 2 ** ((midi - 69) / 12)``."""
    return a4_hz * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def ratio_to_cents(ratio: float) -> float:
    """Cents of a frequency ratio (``3/2`` -> 701.955)."""
    return 1200.0 * math.log2(float(ratio))


def cents_between(frequency_hz: np.ndarray | float, reference_hz: np.ndarray | float,
                  ) -> np.ndarray:
    """Cents from ``reference_hz`` up to ``frequency_hz`` (negative when below)."""
    return 1200.0 * np.log2(np.asarray(frequency_hz, dtype=float)
                            / np.asarray(reference_hz, dtype=float))


@dataclass(frozen=True)
class Tuning:
    """A periodic tuning: a cents table repeated every ``period_cents``.

    Step ``root_step`` sounds at ``root_hz``; step ``root_step + i`` (0 <= i < len(cents))
    sounds ``cents[i]`` above it, and every ``len(cents)`` steps the table repeats one period
    higher. ``mapping`` says how spelled pitches become steps: ``"midi"`` (the MIDI key
    number, for 12-note tunings and, linearly, Scala scales of other sizes) or ``"edo"``.
    """

    name: str
    cents: tuple[float, ...]
    period_cents: float
    root_step: int
    root_hz: float
    mapping: str = "midi"

    @property
    def size(self) -> int:
        """Number of steps per period."""
        return len(self.cents)

    def frequency_hz(self, steps: np.ndarray | int) -> np.ndarray:
        """Frequencies in Hz of step numbers, same shape as ``steps``."""
        periods, index = np.divmod(np.asarray(steps) - self.root_step, self.size)
        cents = periods * self.period_cents + np.asarray(self.cents)[index]
        return self.root_hz * 2.0 ** (cents / 1200.0)

    def step(self, pitch: SpelledPitch) -> int:
        """Step number of a spelled pitch in this tuning."""
        if self.mapping == "edo":
            whole, half = _edo_tone_steps(self.size)
            letter_steps = (0, whole, 2 * whole, 2 * whole + half, 3 * whole + half,
                            4 * whole + half, 5 * whole + half)
            return ((pitch.octave + 1) * self.size + letter_steps[LETTERS.index(pitch.letter)]
                    + pitch.alter * (whole - half))
        return pitch.midi

    def pitch_hz(self, pitch: SpelledPitch) -> float:
        """Frequency in Hz of a spelled pitch."""
        return float(self.frequency_hz(self.step(pitch)))

    @property
    def is_12tet(self) -> bool:
        """Whether this is 12-tone equal temperament (at any A4): no cents marks needed."""
        return (self.size == 12 and abs(self.period_cents - 1200.0) < 1e-6
                and all(abs(c - 100.0 * i) < 1e-6 for i, c in enumerate(self.cents)))

    def cents_from_12tet(self, pitch: SpelledPitch, *, a4_hz: float = 440.0) -> float:
        """How many cents this tuning's ``pitch`` lies above the same written note in 12-TET
        at ``a4_hz`` (just intonation's E4 over C: 5/4 is 386.3 cents, so -13.7).

        This is the deviation notation marks next to a note. For 12-note tunings it is the
        deviation from the nearest 12-TET pitch whenever that is under 50 cents.
        """
        return float(cents_between(self.pitch_hz(pitch), midi_to_hz(pitch.midi, a4_hz=a4_hz)))


def _check_a4(a4_hz: float) -> float:
    if not (isinstance(a4_hz, (int, float)) and math.isfinite(a4_hz) and 100.0 <= a4_hz <= 1000.0):
        raise TuningError(f"a4_hz must be a number of Hz between 100 and 1000, got {a4_hz!r}")
    return float(a4_hz)


def equal_temperament(*, a4_hz: float = 440.0) -> Tuning:
    """12-tone equal temperament with A4 at ``a4_hz`` (C4 is 261.626 Hz at 440)."""
    a4_hz = _check_a4(a4_hz)
    return Tuning(f"12-TET A4={a4_hz:g}", tuple(100.0 * i for i in range(12)), 1200.0, 69, a4_hz)


def _edo_tone_steps(divisions: int) -> tuple[int, int]:
    """Whole tone and diatonic semitone in steps of n-EDO, from its best fifth."""
    fifth = round(divisions * math.log2(1.5))
    whole = 2 * fifth - divisions
    return whole, fifth - 3 * whole


def edo(divisions: int, *, a4_hz: float = 440.0) -> Tuning:
    """``divisions`` equal steps per octave, A4 at ``a4_hz``; notes map through the best fifth.

    Raises
    ------
    TuningError
        If ``divisions`` is not an integer from 5 to 72 or its best fifth gives no usable
        diatonic scale.
    """
    if not isinstance(divisions, int) or isinstance(divisions, bool) or not 5 <= divisions <= 72:
        raise TuningError(f"EDO divisions must be an integer from 5 to 72, got {divisions!r}")
    whole, half = _edo_tone_steps(divisions)
    if whole <= 0 or half < 0:
        raise TuningError(f"{divisions}-EDO has no usable diatonic scale (fifth too far off 3/2)")
    a4_hz = _check_a4(a4_hz)
    cents = tuple(1200.0 * i / divisions for i in range(divisions))
    tuning = Tuning(f"{divisions}-EDO A4={a4_hz:g}", cents, 1200.0, 0, 1.0, mapping="edo")
    a4_step = tuning.step(SpelledPitch("A", 0, 4))
    root_hz = a4_hz / 2.0 ** (a4_step / divisions)
    return Tuning(tuning.name, cents, 1200.0, 0, root_hz, mapping="edo")


def just_intonation(tonic_midi: int = 60, *, a4_hz: float = 440.0) -> Tuning:
    """5-limit just intonation on the tonic key ``tonic_midi`` (tuned as in 12-TET at ``a4_hz``).

    Degree ``i`` semitones above the tonic sounds at :data:`FIVE_LIMIT_RATIOS` ``[i]``; the
    tonic itself keeps its equal-tempered frequency, so a piece stays near concert pitch.
    """
    a4_hz = _check_a4(a4_hz)
    cents = tuple(ratio_to_cents(r) for r in FIVE_LIMIT_RATIOS)
    root_hz = float(midi_to_hz(tonic_midi, a4_hz=a4_hz))
    return Tuning(f"5-limit JI on key {tonic_midi}", cents, 1200.0, int(tonic_midi), root_hz)


def _scl_value(token: str, where: str) -> float:
    if "." in token:
        try:
            cents = float(token)
        except ValueError:
            raise TuningError(f"{where}: {token!r} is not a number of cents") from None
    else:
        try:
            ratio = Fraction(token)
        except (ValueError, ZeroDivisionError):
            raise TuningError(
                f"{where}: {token!r} is neither cents (with a '.') nor a ratio such as 3/2"
            ) from None
        if ratio <= 0:
            raise TuningError(f"{where}: ratio {token} must be positive")
        # log2 of each integer apart: a ratio of 400 digits has no float but has a log
        cents = 1200.0 * (math.log2(ratio.numerator) - math.log2(ratio.denominator))
    if not abs(cents) <= MAX_SCL_CENTS:
        shown = token if len(token) <= 24 else f"{token[:20]}... ({len(token)} characters)"
        raise TuningError(f"{where}: {shown} is {cents:g} cents, beyond the "
                          f"{MAX_SCL_CENTS:g} cents (10 octaves) a scale may span")
    return cents


def parse_scl(
    text: str,
    *,
    source: str = "<scl>",
    root_midi: int = 60,
    root_hz: float | None = None,
    a4_hz: float = 440.0,
) -> Tuning:
    """Read a Scala scale (``.scl`` text) into a :class:`Tuning`.

    Parameters
    ----------
    text : str
        The file's text: ``!`` comment lines, a description line, the number of notes, then
        one pitch per line in cents (a number with ``.``) or as a ratio (``5/4``, ``2``); the
        last pitch is the period.
    source : str, keyword-only
        File name used in error messages.
    root_midi : int, keyword-only
        MIDI key that plays degree 0 (Scala's default keyboard mapping: middle C).
    root_hz : float or None, keyword-only
        Its frequency (default: the 12-TET frequency of ``root_midi`` at ``a4_hz``).
    a4_hz : float, keyword-only
        Concert pitch used for the default ``root_hz``.

    Returns
    -------
    Tuning
        Keys map to degrees one by one from ``root_midi`` (12-note scales retune the 12 keys).

    Raises
    ------
    TuningError
        With the file and line of the first problem.
    """
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines())]
    content = [(n, ln) for n, ln in lines if not ln.startswith("!")]
    if len(content) < 2:
        raise TuningError(f"{source}: a .scl file needs a description line and a note count")
    (count_line, count_text) = content[1]
    try:
        count = int(count_text.split()[0])
    except (ValueError, IndexError):
        raise TuningError(
            f"{source}, line {count_line}: expected the number of notes, got {count_text!r}"
        ) from None
    if count < 1:
        raise TuningError(f"{source}, line {count_line}: the number of notes must be at least 1")
    pitch_lines = [(n, ln) for n, ln in content[2:] if ln]
    if len(pitch_lines) < count:
        raise TuningError(
            f"{source}: line {count_line} announces {count} notes but only "
            f"{len(pitch_lines)} follow"
        )
    values = [_scl_value(ln.split()[0], f"{source}, line {n}") for n, ln in pitch_lines[:count]]
    period = values[-1]
    if period <= 0 or any(v >= period or v < 0 for v in values[:-1]):
        raise TuningError(
            f"{source}: pitches must lie between 1/1 and the period ({period:.3f} cents), "
            "the last pitch being the period"
        )
    a4_hz = _check_a4(a4_hz)
    hz = float(midi_to_hz(root_midi, a4_hz=a4_hz)) if root_hz is None else float(root_hz)
    name = content[0][1] or Path(source).stem
    return Tuning(name, (0.0, *values[:-1]), period, int(root_midi), hz)


def read_scl(path: str | Path, **kwargs: float) -> Tuning:
    """Read a Scala ``.scl`` file; keyword arguments as in :func:`parse_scl`.

    Raises
    ------
    TuningError
        If the file cannot be read or parsed.
    """
    from musicgym.safeio import read_bounded

    path = Path(path)
    data = read_bounded(path, max_bytes=MAX_SCL_BYTES, error=TuningError, what="Scala file")
    text = data.decode("latin-1")
    return parse_scl(text, source=str(path), **kwargs)


# a Scala file lists one pitch a line; the archive's largest has a few thousand
MAX_SCL_BYTES = 1_000_000
MAX_SCL_CENTS = 12_000.0

TUNING_KINDS = ("12tet", "edo", "just", "scala")


def make_tuning(kind: str = "12tet", *, tonic_midi: int = 60, **params: object) -> Tuning:
    """Build a tuning from a config-style description.

    Parameters
    ----------
    kind : {"12tet", "edo", "just", "scala"}
        ``edo`` takes ``divisions``; ``scala`` takes ``path`` (and ``root_midi``/``root_hz``);
        every kind takes ``a4_hz``.
    tonic_midi : int, keyword-only
        Tonic key of the piece, used by ``just``.

    Raises
    ------
    TuningError
        For an unknown kind or parameter.
    """
    allowed = {"12tet": {"a4_hz"}, "edo": {"a4_hz", "divisions"}, "just": {"a4_hz"},
               "scala": {"a4_hz", "path", "root_midi", "root_hz"}}
    if kind not in allowed:
        raise TuningError(f"unknown tuning kind {kind!r}; use one of {', '.join(TUNING_KINDS)}")
    unknown = set(params) - allowed[kind]
    if unknown:
        raise TuningError(
            f"tuning kind {kind!r} does not take {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(sorted(allowed[kind]))}"
        )
    if kind == "12tet":
        return equal_temperament(**params)
    if kind == "edo":
        if "divisions" not in params:
            raise TuningError("tuning kind 'edo' needs 'divisions' (e.g. 19)")
        return edo(params.pop("divisions"), **params)
    if kind == "just":
        return just_intonation(tonic_midi, **params)
    if "path" not in params:
        raise TuningError("tuning kind 'scala' needs 'path' (a .scl file)")
    return read_scl(params.pop("path"), **params)
