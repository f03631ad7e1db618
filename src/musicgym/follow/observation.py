"""What the accompanist sees: the observation of ``musicgym/Accompany-v0`` (its docstring's
table), built from the follower's reports up to now, the accompanist's state and, with memory,
the earlier takes' tempo curves. The env, the evaluation of a trained agent and live play build
it here, so a policy sees the same numbers wherever it plays.
"""

from __future__ import annotations

import math

import numpy as np

from musicgym.follow.accompanist import Accompanist, AccompanistRun, Episode
from musicgym.follow.tempo import MAX_BEAT_PERIOD_S, MIN_BEAT_PERIOD_S


def observation_bounds(
    history: int, lookahead: int, *, memory: bool = False, timing: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Low and high bounds of Accompany-v0's observation (the class docstring's table)."""
    h, n = history, lookahead
    low = [-2.0] * h + [0.0] * h + [-4.0, -2.0, -2.0, MIN_BEAT_PERIOD_S]
    high = [2.0] * h + [8.0] * h + [4.0, 2.0, 2.0, MAX_BEAT_PERIOD_S]
    low += [0.0] * (2 * n) + [-1.0, -1.0, 0.0, 0.0]
    high += [8.0] * (2 * n) + [1.0, 1.0, 1.0, 1.0]
    if memory:
        low += [-2.0] * n + [0.0]
        high += [2.0] * n + [1.0]
    if timing:
        low += [-1.0] * h + [0.0] * h + [-1.0] * h
        high += [1.0] * h + [1.0] * h + [1.0] * h
    return np.array(low, dtype=np.float32), np.array(high, dtype=np.float32)


def accompany_observation(
    episode: Episode,
    k: int,
    position_beat: float,
    beat_period_s: float,
    *,
    count_in_s: float,
    progress: float,
    history: int,
    lookahead: int,
) -> np.ndarray:
    """The observation of Accompany-v0 without memory features (unclipped, float64).

    It reads the follower's reports up to ``k`` only, so a live accompanist that has heard
    ``k + 1`` reports builds the same observation as the env (see the class docstring).

    Parameters
    ----------
    episode : Episode
        Reports (``report_sec``/``report_beat``, at least ``k + 1``), scores and bar lines.
    k : int
        Index of the latest report.
    position_beat, beat_period_s : float
        The accompanist's score position and beat period.
    count_in_s : float, keyword-only
        Beat period the accompanist started with.
    progress : float, keyword-only
        Share of the performance played, in [0, 1].
    history, lookahead : int, keyword-only
        H and L of the class docstring.

    Returns
    -------
    numpy.ndarray, shape (2 * history + 2 * lookahead + 8,)
    """
    ep, bp = episode, beat_period_s
    solo_beat = float(ep.report_beat[k])
    lo = max(k - history, 0)
    d_beat = np.diff(ep.report_beat[lo : k + 1])
    d_sec = np.diff(ep.report_onset_sec[lo : k + 1])
    ok = (d_beat > 1e-6) & (d_sec > 0)
    ratios = np.zeros(history)
    beats = np.zeros(history)
    n = len(d_beat)
    ratios[history - n :] = np.where(
        ok, np.log(np.where(ok, d_sec, 1.0) / np.where(ok, d_beat, 1.0) / bp), 0.0
    )
    beats[history - n :] = d_beat
    # the report comes after the onset: the soloist has played on since, at about own tempo
    played_since = max(float(ep.report_sec[k] - ep.report_onset_sec[k]), 0.0) / bp
    gap = solo_beat + played_since - position_beat
    phase = ep.metrical_phase(solo_beat)
    parts = [
        ratios, beats,
        [gap, gap * bp, math.log(bp / count_in_s), bp],
        gaps_ahead(ep.solo_score_beat, solo_beat, lookahead),
        gaps_ahead(ep.accompaniment_beat, position_beat, lookahead),
        [math.sin(2 * math.pi * phase), math.cos(2 * math.pi * phase),
         ep.metrical_phase(position_beat), progress],
    ]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


def gaps_ahead(onset_beat: np.ndarray, beat: float, count: int) -> np.ndarray:
    """Score distances from ``beat`` to the next ``count`` onsets (0 past the end)."""
    i = int(np.searchsorted(onset_beat, beat + 1e-6, side="right"))
    ahead = onset_beat[i : i + count]
    gaps = np.diff(np.concatenate([[beat], ahead]))
    return np.pad(gaps, (0, count - len(gaps)))


def memory_features(
    curves: list[tuple[np.ndarray, np.ndarray]], solo_beat: float, lookahead: int,
    solo_score_beat: np.ndarray, beat_period_s: float,
) -> np.ndarray:
    """The memory part of the observation: log(earlier takes' median beat period over each of
    the next ``lookahead`` solo gaps / own), then 1 (0s and a 0 flag without earlier takes)."""
    if not curves:
        return np.zeros(lookahead + 1)
    gaps = gaps_ahead(solo_score_beat, solo_beat, lookahead)
    edges = solo_beat + np.concatenate([[0.0], np.cumsum(gaps)])
    periods = []
    for beat, sec in curves:
        times = np.interp(edges, beat, sec)
        periods.append(np.diff(times) / np.maximum(np.diff(edges), 1e-6))
    median = np.median(np.array(periods), axis=0)
    valid = np.diff(edges) > 1e-6
    feature = np.where(valid, np.log(np.maximum(median, 1e-3) / beat_period_s), 0.0)
    return np.concatenate([feature, [1.0]])


def timing_features(
    accompanist: Accompanist, curves: list[tuple[np.ndarray, np.ndarray]], history: int,
) -> np.ndarray:
    """What the tempo models underneath do not read: over the last ``history`` reports, the
    gap heard at each (soloist minus own position, s: the accompanist's own recent errors as
    the follower shows them), each report's delay after the onset it dates (s: a late report
    is an unsure one), and the soloist's interval before each against the earlier takes'
    median over the same score span (log ratio: how the soloist departs from the rehearsals
    just now; 0 without earlier takes). Oldest first, zeros before the first report.

    Returns
    -------
    numpy.ndarray, shape (3 * history,), unclipped
    """
    h = history
    gaps, delays, deviations = np.zeros(h), np.zeros(h), np.zeros(h)
    recent_gap = np.asarray(accompanist.report_gap_s[-h:], dtype=float)
    gaps[h - len(recent_gap):] = recent_gap
    report_s = np.asarray(accompanist.report_sec[-h:], dtype=float)
    onset_s = np.asarray(accompanist.report_onset_sec[-h:], dtype=float)
    delays[h - len(report_s):] = np.maximum(report_s - onset_s, 0.0)
    if curves:
        beat = np.asarray(accompanist.report_beat[-(h + 1):], dtype=float)
        sec = np.asarray(accompanist.report_onset_sec[-(h + 1):], dtype=float)
        d_beat, d_sec = np.diff(beat), np.diff(sec)
        spans = np.array([np.diff(np.interp(beat, b, t)) for b, t in curves])
        rehearsed = np.median(spans, axis=0) if len(spans) else np.zeros(len(d_beat))
        ok = (d_beat > 1e-6) & (d_sec > 0) & (rehearsed > 1e-3)
        ratio = np.where(ok, np.log(np.where(ok, d_sec, 1.0) / np.where(ok, rehearsed, 1.0)),
                         0.0)
        deviations[h - len(ratio):] = ratio
    return np.concatenate([gaps, delays, deviations])


def observation(
    episode: Episode, k: int, position_beat: float, beat_period_s: float, *,
    count_in_s: float, progress: float, history: int, lookahead: int, memory: bool,
    curves: list[tuple[np.ndarray, np.ndarray]], timing_of: Accompanist | None = None,
) -> np.ndarray:
    """The full observation (memory features included when ``memory``, then the
    :func:`timing_features` of ``timing_of`` when given), clipped to
    :func:`observation_bounds`, float32."""
    obs = accompany_observation(
        episode, k, position_beat, beat_period_s, count_in_s=count_in_s, progress=progress,
        history=history, lookahead=lookahead,
    )
    if memory:
        extra = memory_features(curves, float(episode.report_beat[k]), lookahead,
                                episode.solo_score_beat, beat_period_s)
        obs = np.concatenate([obs, extra])
    if timing_of is not None:
        obs = np.concatenate([obs, timing_features(timing_of, curves, history)])
    low, high = observation_bounds(history, lookahead, memory=memory,
                                   timing=timing_of is not None)
    return np.clip(obs, low, high).astype(np.float32)


def run_observation(
    run: AccompanistRun, *, history: int, lookahead: int, memory: bool,
    curves: list[tuple[np.ndarray, np.ndarray]], timing: bool = False,
) -> np.ndarray:
    """The observation of an :class:`AccompanistRun` at its current report, as the env shows
    it (``progress``: the share of the segment's reports heard; ``timing``: with
    :func:`timing_features`)."""
    k = min(run.k, len(run.episode.report_sec) - 1)
    return observation(
        run.episode, k, run.position_beat, run.beat_period_s, count_in_s=run.beat_periods_s[0],
        progress=(run.k - run.start) / max(run.stop - run.start, 1), history=history,
        lookahead=lookahead, memory=memory, curves=curves,
        timing_of=run if timing else None,
    )
