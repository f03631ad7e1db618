"""A species-aware measure of a counterpoint's quality, from Fux's advice (0 to 3).

RL-Musician's five scores (``scores``) judge texture (loops, pitch entropy, narrow ranges,
climax, skips) and are tuned for fifth species: a correct first-species line on Fux's dorian
cantus scores -8.5 there, because whole notes repeat in 4-eighth windows that the "looped
fragments" score counts as loops. This score instead judges what Fux's *Gradus ad Parnassum*
(Book II) asks of a correct counterpoint in every species, beyond the rules (which the env's
masks already enforce). Six criteria, each from 0 to 1; the score is 3 x their mean, so 3.0
is the best, like RL-Musician's total:

``imperfect``
    Share of the structural verticals (see below), first and last bar excepted, that are
    imperfect consonances (thirds and sixths), over 0.8: "imperfect consonances are to be
    preferred", perfect ones give emptiness. 1 when at least four in five are.
``contrary``
    Share of motions between consecutive structural verticals that are contrary (the voices
    move in opposite directions), over 3/4: Fux's first advice. 1 when three in four are.
``climax``
    The counterpoint's highest note (above the cantus; its lowest below it) sounds once: 1;
    twice: 0.5; more: 0.
``steps``
    Share of melodic moves that are steps, over a species target (first species 0.6, where
    Fux's lines leap more; other species 0.8). 1 when it reaches the target.
``cadence``
    The last note is reached by step in contrary motion to the cantus (the clausula vera: the
    sixth to the octave above, the third to the unison/octave below): 1; by step, not
    contrary: 0.5; by a leap: 0.
``variety``
    1 minus 0.25 for each note repeated at once (a repeated pitch, not a tie) and for each run
    of more than three consecutive parallel thirds or sixths (Fux allows three), floored at 0.

The *structural verticals* are the cantus note against the counterpoint note sounding on
each downbeat (species 1, 2, 3, 5), or on each half bar (species 4, whose downbeats are
suspensions, dissonant by design, resolving onto a consonance the next note).

Everything is computed from a finished :class:`~musicgym.music.rules.species.
CounterpointState` (or from plain arrays with :func:`fux_quality_of_notes`), in well under a
millisecond.
"""

from __future__ import annotations

import numpy as np

from musicgym.music.rules.species import EIGHTHS_PER_BAR, CounterpointState

QUALITY_NAMES = ("imperfect", "contrary", "climax", "steps", "cadence", "variety")
_IMPERFECT = np.isin(np.arange(12), (3, 4, 8, 9))
STEP_TARGETS = {1: 0.6, 2: 0.8, 3: 0.8, 4: 0.8, 5: 0.8}
IMPERFECT_TARGET, CONTRARY_TARGET = 0.8, 0.75


def fux_quality_of_notes(cantus_midi: np.ndarray, midi_at_eighth: np.ndarray,
                         positions: list[int] | np.ndarray, cantus_positions: np.ndarray, *,
                         species: int, above: bool, durations: list[int] | None = None,
                         ) -> dict[str, float]:
    """The Fux quality (see the module docstring) of a finished counterpoint.

    Parameters
    ----------
    cantus_midi : array of int, shape (n_bars,)
        The cantus's MIDI keys, one per bar.
    midi_at_eighth : array of int, shape (8 * n_bars,)
        The counterpoint's MIDI key sounding at each eighth (-1 during the opening rest).
    positions : sequence of int
        The counterpoint's notes in scale positions (steps are moves of one position).
    cantus_positions : array of int
        The cantus's notes in scale positions.
    species : int
        1 to 5.
    above : bool
        Whether the counterpoint lies above the cantus.
    durations : list of int or None
        Note durations in eighths (unused, for callers that have them).

    Returns
    -------
    dict
        Each criterion in [0, 1] and ``total`` = 3 x their mean.
    """
    cf = np.asarray(cantus_midi, dtype=np.int64)
    n_bars = len(cf)
    offset = EIGHTHS_PER_BAR // 2 if species == 4 else 0
    # structural verticals of the inner bars (the first and last are given)
    at = np.arange(1, n_bars - 1) * EIGHTHS_PER_BAR + offset
    cp = np.asarray(midi_at_eighth, dtype=np.int64)[at]
    cfv = cf[1:n_bars - 1]
    intervals = np.abs(cp - cfv)
    imperfect_share = float(_IMPERFECT[intervals % 12].mean()) if len(at) else 1.0
    # motions between all structural verticals, the first and last bars included
    all_at = np.arange(n_bars) * EIGHTHS_PER_BAR + offset
    all_at[0] = max(all_at[0], EIGHTHS_PER_BAR - 1)  # the opening note after its rest
    all_at[-1] = (n_bars - 1) * EIGHTHS_PER_BAR
    cp_all = np.asarray(midi_at_eighth, dtype=np.int64)[all_at]
    d_cp, d_cf = np.diff(cp_all), np.diff(cf)
    contrary_share = float(np.mean(d_cp * d_cf < 0)) if len(d_cp) else 1.0
    pos = np.asarray(positions, dtype=np.int64)
    line = pos if above else -pos
    peak_count = int(np.sum(line == line.max()))
    climax = {1: 1.0, 2: 0.5}.get(peak_count, 0.0)
    moves = np.diff(pos)
    moving = moves[moves != 0]
    step_share = float(np.mean(np.abs(moving) == 1)) if len(moving) else 0.0
    last_cp_move = int(pos[-1] - pos[-2]) if len(pos) >= 2 else 0
    last_cf_move = int(cantus_positions[-1] - cantus_positions[-2])
    if abs(last_cp_move) == 1:
        cadence = 1.0 if last_cp_move * last_cf_move < 0 else 0.5
    else:
        cadence = 0.0
    # repeated notes: consecutive equal positions that are separate notes
    repeats = int(np.sum(moves == 0))
    # parallel imperfects: runs of > 3 equal-direction, same-interval-class imperfect verticals
    classes = np.abs(cp_all - cf) % 12
    runs, run = 0, 1
    for i in range(1, len(cp_all)):
        parallel = (d_cp[i - 1] * d_cf[i - 1] > 0 and _IMPERFECT[classes[i]]
                    and (classes[i] in (3, 4)) == (classes[i - 1] in (3, 4))
                    and _IMPERFECT[classes[i - 1]])
        run = run + 1 if parallel else 1
        if run == 4:
            runs += 1
    out = {
        "imperfect": min(1.0, imperfect_share / IMPERFECT_TARGET),
        "contrary": min(1.0, contrary_share / CONTRARY_TARGET),
        "climax": climax,
        "steps": min(1.0, step_share / STEP_TARGETS[species]),
        "cadence": cadence,
        "variety": max(0.0, 1.0 - 0.25 * (repeats + runs)),
    }
    out["total"] = 3.0 * float(np.mean([out[k] for k in QUALITY_NAMES]))
    return out


def fux_quality(piece: CounterpointState) -> dict[str, float]:
    """The Fux quality of a finished counterpoint (see the module docstring)."""
    setup = piece.setup
    return fux_quality_of_notes(setup.cantus_midi, piece.midi_at_eighth, piece.positions,
                                setup.cantus_positions, species=setup.species,
                                above=setup.counterpoint_above)
