"""A seeded performance simulator: expressive timing and playing errors from any score.

The tempo is a beat-period curve over score time, the sum of four parts in log space:
phrase arches (faster in the middle of each phrase), ritardandi (at phrase ends and at the end
of the piece), a slow random drift (an AR(1) walk per bar) and nothing else; each distinct score
onset is then played at the time this curve gives plus onset jitter, each note of a chord with its
own asynchrony (the top voice a little ahead), and notes are left out, played wrong, or added.
:func:`performance_statistics` measures the same quantities on real and simulated takes, so the
defaults can be (and are, in the tests) checked against the real Brahms duets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicgym.errors import AccompanyConfigError
from musicgym.music.notes import NOTE_DTYPE
from musicgym.music.score import SCORE_DTYPE, MatchedPerformance


@dataclass(frozen=True)
class Expression:
    """How a simulated player plays. Defaults are fitted to the Brahms duet takes.

    Attributes
    ----------
    beat_period_s : float
        Mean beat period (seconds per beat) of the performance.
    phrase_bars : int
        Bars per phrase (the arch and the phrase-end ritardando repeat with this period).
    arch_depth : float
        Depth of the phrase arch in log beat period (0.1 is about 10 % faster mid-phrase).
    phrase_rit_depth : float
        Log beat-period increase at the very end of each phrase.
    final_rit_depth : float, final_rit_beats : float
        Log beat-period increase at the end of the piece, and over how many beats it builds.
    drift_sd : float, drift_memory : float
        Per-bar innovation and AR(1) coefficient of the slow log-tempo drift.
    onset_jitter_ms : float
        Standard deviation of each onset's timing error around the tempo curve.
    chord_spread_ms : float, melody_lead_ms : float
        Spread of the notes of one chord, and how far the highest note leads.
    p_missing, p_wrong, p_extra : float
        Per-note probability of leaving a note out, playing a neighbour pitch, adding a note.
    """

    beat_period_s: float = 0.42
    phrase_bars: int = 8
    arch_depth: float = 0.18
    phrase_rit_depth: float = 0.2
    final_rit_depth: float = 0.4
    final_rit_beats: float = 4.0
    drift_sd: float = 0.07
    drift_memory: float = 0.9
    onset_jitter_ms: float = 18.0
    chord_spread_ms: float = 13.0
    melody_lead_ms: float = 5.0
    p_missing: float = 0.05
    p_wrong: float = 0.01
    p_extra: float = 0.01

    def check(self) -> None:
        """Raise AccompanyConfigError naming the first out-of-range field."""
        positive = ("beat_period_s", "phrase_bars", "final_rit_beats")
        for name in positive:
            if not getattr(self, name) > 0:
                raise AccompanyConfigError(f"Expression.{name} must be > 0")
        for name in ("p_missing", "p_wrong", "p_extra", "drift_memory"):
            if not 0 <= getattr(self, name) < 1:
                raise AccompanyConfigError(f"Expression.{name} must lie in [0, 1)")
        for name in ("onset_jitter_ms", "chord_spread_ms", "drift_sd"):
            if not getattr(self, name) >= 0:
                raise AccompanyConfigError(f"Expression.{name} must be >= 0")


def _with_bars(score: np.ndarray, beats_per_bar: float) -> np.ndarray:
    if "bar" in score.dtype.names:
        return score
    out = np.zeros(len(score), dtype=SCORE_DTYPE)
    for name in NOTE_DTYPE.names:
        out[name] = score[name]
    out["bar"] = np.floor(score["onset_beat"] / beats_per_bar).astype(int) + 1
    out["onset_beat_in_bar"] = score["onset_beat"] % beats_per_bar
    out["beats_per_bar"] = beats_per_bar
    return out


def tempo_curve(
    onset_beat: np.ndarray, bar: np.ndarray, expression: Expression, rng: np.random.Generator
) -> np.ndarray:
    """Log beat period at each distinct onset: arches + ritardandi + drift, around the mean.

    Parameters
    ----------
    onset_beat : numpy.ndarray, shape (m,)
        Sorted distinct score onsets in beats.
    bar : numpy.ndarray, shape (m,)
        Bar number of each onset.
    expression : Expression
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape (m,)
        Natural log of the beat period (seconds per beat).
    """
    e = expression
    bar0 = bar - bar.min()
    phrase = bar0 // e.phrase_bars
    starts = np.array([onset_beat[phrase == p].min() for p in phrase], dtype=float)
    ends = np.array([onset_beat[phrase == p].max() for p in phrase], dtype=float)
    x = (onset_beat - starts) / np.maximum(ends - starts, 1e-9)
    arch = e.arch_depth * ((2.0 * x - 1.0) ** 2 - 1.0 / 3.0)
    phrase_rit = e.phrase_rit_depth * np.clip((x - 0.85) / 0.15, 0.0, 1.0) ** 2
    to_end = onset_beat.max() - onset_beat
    final_rit = e.final_rit_depth * np.clip(1.0 - to_end / e.final_rit_beats, 0.0, 1.0) ** 2
    n_bars = int(bar0.max()) + 1
    walk = np.zeros(n_bars)
    innovations = rng.normal(0.0, e.drift_sd, n_bars)
    for k in range(1, n_bars):
        walk[k] = e.drift_memory * walk[k - 1] + innovations[k]
    return np.log(e.beat_period_s) + arch + phrase_rit + final_rit + walk[bar0]


def simulate_performance(
    score: np.ndarray,
    *,
    seed: int | None = None,
    expression: Expression | None = None,
    start_sec: float = 0.5,
    beats_per_bar: float = 4.0,
) -> MatchedPerformance:
    """Play a score as a simulated human would: expressive timing, asynchrony and errors.

    Parameters
    ----------
    score : numpy.ndarray, shape (n,)
        A score note array (:data:`SCORE_DTYPE`, or :data:`NOTE_DTYPE` whose bars are then
        counted every ``beats_per_bar`` beats).
    seed : int or None, keyword-only
        Seed of the random generator; the same seed gives the same performance.
    expression : Expression or None, keyword-only
        How to play (default :class:`Expression()`, fitted to the Brahms takes).
    start_sec : float, keyword-only
        Time of the first onset.
    beats_per_bar : float, keyword-only
        Bar length for scores without bar numbers.

    Returns
    -------
    MatchedPerformance
        ``score`` with performed times (NaN for missing notes), ``performed`` with wrong
        pitches and extra notes (``onset_beat`` NaN), ``path`` None.

    Examples
    --------
    >>> from musicgym.music.notes import make_notes
    >>> melody = make_notes([0, 1, 2, 3], 1.0, [60, 62, 64, 65])
    >>> take = simulate_performance(melody, seed=0)
    >>> bool((take.performed["onset_sec"] > 0).all())
    True
    """
    e = expression or Expression()
    e.check()
    if len(score) == 0:
        raise AccompanyConfigError("simulate_performance got an empty score: nothing to play")
    rng = np.random.default_rng(seed)
    notes = _with_bars(score, beats_per_bar).copy()
    onset_beat, first, inverse = np.unique(
        notes["onset_beat"], return_index=True, return_inverse=True
    )
    log_bp = tempo_curve(onset_beat, notes["bar"][first], e, rng)
    beat_gaps = np.diff(onset_beat)
    onset_sec = start_sec + np.concatenate([[0.0], np.cumsum(beat_gaps * np.exp(log_bp[:-1]))])
    ioi_sec = np.diff(onset_sec)
    room = 0.4 * np.minimum(np.r_[np.inf, ioi_sec], np.r_[ioi_sec, np.inf])
    jitter = rng.normal(0.0, e.onset_jitter_ms / 1000.0, len(onset_sec))
    onset_sec = onset_sec + np.clip(jitter, -room, room)

    spread = rng.normal(0.0, e.chord_spread_ms / 1000.0, len(notes))
    top_pitch = np.full(len(onset_beat), -1)
    np.maximum.at(top_pitch, inverse, notes["pitch"])
    top = notes["pitch"] == top_pitch[inverse]
    note_sec = onset_sec[inverse] + spread - np.where(top, e.melody_lead_ms / 1000.0, 0.0)
    beat_period_at_note = np.exp(log_bp)[inverse]
    notes["onset_sec"] = note_sec
    notes["duration_sec"] = 0.85 * notes["duration_beat"] * beat_period_at_note
    notes["velocity"] = np.clip(rng.normal(64, 10, len(notes)), 20, 120).astype(int)

    missing = rng.random(len(notes)) < e.p_missing
    notes["onset_sec"][missing] = np.nan
    notes["duration_sec"][missing] = np.nan
    notes["velocity"][missing] = 0
    played = notes[~missing]
    performed = np.zeros(len(played), dtype=NOTE_DTYPE)
    for name in NOTE_DTYPE.names:
        performed[name] = played[name]
    wrong = rng.random(len(performed)) < e.p_wrong
    performed["pitch"][wrong] += rng.choice([-2, -1, 1, 2], wrong.sum())
    performed["id"] = [f"p{i}" for i in range(len(performed))]
    extra = _extra_notes(performed, e.p_extra, rng)
    performed = np.concatenate([performed, extra])
    performed = performed[np.argsort(performed["onset_sec"], kind="stable")]
    return MatchedPerformance(score=notes, performed=performed, path=None)


def _extra_notes(performed: np.ndarray, p_extra: float, rng: np.random.Generator) -> np.ndarray:
    """Insertions: neighbour-pitch notes near randomly chosen played notes."""
    near = np.flatnonzero(rng.random(len(performed)) < p_extra)
    extra = np.zeros(len(near), dtype=NOTE_DTYPE)
    extra["onset_sec"] = performed["onset_sec"][near] + rng.uniform(0.02, 0.12, len(near))
    extra["duration_sec"] = 0.08
    extra["pitch"] = performed["pitch"][near] + rng.choice([-1, 1], len(near))
    extra["velocity"] = 40
    extra["onset_beat"] = np.nan
    extra["duration_beat"] = np.nan
    extra["id"] = [f"x{i}" for i in range(len(near))]
    return extra


def performance_statistics(performance: MatchedPerformance) -> dict[str, float]:
    """Timing statistics of one performance, comparable between real and simulated takes.

    Returns
    -------
    dict
        ``median_beat_period_s``: median local beat period; ``tempo_spread_log``: standard
        deviation of the log beat period smoothed over 4 beats; ``local_timing_log``: standard
        deviation of the log beat period of single inter-onset intervals around that smoothed
        curve; ``chord_spread_ms``: median standard deviation of the onsets of one chord;
        ``missing_rate``, ``extra_rate``: shares of score notes left out and of performed notes
        with no score note.
    """
    from musicgym.follow.duets import onsets

    score = performance.score
    onset_beat, onset_sec = onsets(score)
    beat_period = np.diff(onset_sec) / np.diff(onset_beat)
    ok = beat_period > 0.02
    ahead = np.minimum(np.searchsorted(onset_beat, onset_beat + 4.0), len(onset_beat) - 1)
    span = ahead > np.arange(len(onset_beat))
    idx = np.flatnonzero(span)
    smooth = np.log(
        (onset_sec[ahead[idx]] - onset_sec[idx]) / (onset_beat[ahead[idx]] - onset_beat[idx])
    )
    smooth_at = np.interp(onset_beat[:-1], onset_beat[idx], smooth)
    residual = np.log(beat_period[ok]) - smooth_at[ok]

    played = score[np.isfinite(score["onset_sec"])]
    _, chord, counts = np.unique(played["onset_beat"], return_inverse=True, return_counts=True)
    sums = np.bincount(chord, played["onset_sec"])
    squares = np.bincount(chord, played["onset_sec"] ** 2)
    var = squares / counts - (sums / counts) ** 2
    chord_sd_ms = 1000.0 * np.sqrt(np.maximum(var[counts > 1], 0.0))
    return {
        "median_beat_period_s": float(np.median(beat_period[ok])),
        "tempo_spread_log": float(np.std(smooth)),
        "local_timing_log": float(np.std(residual)),
        "chord_spread_ms": float(np.median(chord_sd_ms)) if chord_sd_ms.size else 0.0,
        "missing_rate": performance.n_deleted / len(score),
        "extra_rate": performance.n_inserted / max(len(performance.performed), 1),
    }
