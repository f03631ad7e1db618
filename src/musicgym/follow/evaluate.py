"""Measure an accompanist (a tempo model or a trained policy) against the soloist.

The figures are those of the accompaniment literature: the share of shared onsets within
50/100/250 ms of the soloist, mean and median |asynchrony|, and tempo jitter (the standard
deviation of the change in log beat period between successive accompaniment onsets), for
the accompanist and, where a take has one, for the human who played the part.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from musicgym.follow.accompanist import (
    RESYNC_S,
    AccompanistRun,
    Episode,
    TempoModelController,
    beat_period_action,
    run_controller,
)
from musicgym.follow.tempo import TempoModel

THRESHOLDS_MS = (50, 100, 250)


def tempo_jitter(onset_beat: np.ndarray, onset_sec: np.ndarray) -> float:
    """Standard deviation of the change in log local beat period between successive onsets.

    Intervals shorter than a quarter beat are ignored (grace notes, ornaments).
    """
    onset_beat, onset_sec = np.asarray(onset_beat), np.asarray(onset_sec)
    ok = np.isfinite(onset_sec)
    beat, sec = onset_beat[ok], onset_sec[ok]
    d_beat, d_sec = np.diff(beat), np.diff(sec)
    usable = (d_beat >= 0.25) & (d_sec > 0)
    log_period = np.log(d_sec[usable] / d_beat[usable])
    return float(np.std(np.diff(log_period))) if log_period.size > 2 else float("nan")


def asynchrony_metrics(
    asynchrony_ms: np.ndarray, *, n_expected: int | None = None
) -> dict[str, float]:
    """Shares within 50/100/250 ms, mean and median |asynchrony| (ms) of shared onsets.

    ``n_expected`` is the number of shared onsets the accompanist should have played (default:
    those given); onsets it skipped count as outside every threshold, and ``skipped`` is their
    share. Mean and median are over the onsets played.
    """
    a = np.abs(np.asarray(asynchrony_ms, dtype=float))
    a = a[np.isfinite(a)]
    n = a.size if n_expected is None else max(n_expected, a.size)
    out = {f"within_{t}_ms": float(np.sum(a <= t) / n) for t in THRESHOLDS_MS}
    out["mean_abs_ms"] = float(np.mean(a))
    out["median_abs_ms"] = float(np.median(a))
    out["n_onsets"] = int(n)
    out["skipped"] = float(1.0 - a.size / n)
    return out


def run_tempo_model(
    episode: Episode,
    model: TempoModel,
    *,
    start: int = 0,
    stop: int | None = None,
    max_log_ratio: float = 0.5,
    resync_s: float | None = RESYNC_S,
) -> AccompanistRun:
    """Let a tempo model accompany one episode (segment of reports ``[start, stop)``).

    ``resync_s`` is :class:`AccompanistRun`'s recovery: jump to the soloist when further
    apart than this.

    Returns
    -------
    AccompanistRun
        Played through; ``played_beat``/``played_sec`` hold every accompaniment onset.
    """
    stop = len(episode.report_sec) if stop is None else stop
    run = AccompanistRun(episode, start, stop, max_log_ratio=max_log_ratio, resync_s=resync_s)
    return run_controller(run, TempoModelController(model))


def run_metrics(run: AccompanistRun) -> dict[str, float]:
    """Asynchrony figures and tempo jitter of a played-through run (skipped onsets count as
    misses)."""
    return pool_runs([run])


def _run_asynchrony_ms(run: AccompanistRun) -> tuple[np.ndarray, int]:
    """Asynchrony at the shared onsets the run played, and how many it should have played
    (those after its start, up to its end)."""
    ep = run.episode
    beat, sec = np.asarray(run.played_beat), np.asarray(run.played_sec)
    _, i_played, i_shared = np.intersect1d(beat, ep.shared_beat, return_indices=True)
    expected = (ep.shared_beat > run.start_beat) & (ep.shared_beat <= run.end_beat)
    return 1000.0 * (sec[i_played] - ep.shared_solo_sec[i_shared]), int(expected.sum())


def human_metrics(episode: Episode, *, from_beat: float = -np.inf) -> dict[str, float]:
    """The same figures for the human accompanist of the take (shared onsets after
    ``from_beat`` that both played)."""
    if episode.human_sec is None:
        raise ValueError(f"{episode.name} has no human accompaniment")
    keep = (episode.shared_beat > from_beat) & np.isfinite(episode.human_sec)
    out = asynchrony_metrics(1000.0 * (episode.human_sec - episode.shared_solo_sec)[keep])
    out["tempo_jitter"] = tempo_jitter(episode.shared_beat[keep], episode.human_sec[keep])
    return out


def evaluate_tempo_model(
    episodes: list[Episode],
    make_model: Callable[[], TempoModel],
    *,
    max_log_ratio: float = 0.5,
    resync_s: float | None = RESYNC_S,
) -> dict[str, float]:
    """Pool a tempo model's asynchronies over whole episodes (one fresh model per episode)."""
    runs = [
        run_tempo_model(ep, make_model(), max_log_ratio=max_log_ratio, resync_s=resync_s)
        for ep in episodes
    ]
    return pool_runs(runs)


def pool_runs(runs: list[AccompanistRun]) -> dict[str, float]:
    """Asynchrony figures over all runs' shared onsets (skipped ones count as misses); tempo
    jitter averaged over runs."""
    asynchrony_ms, expected, jitter = [], 0, []
    for run in runs:
        played, n = _run_asynchrony_ms(run)
        asynchrony_ms.append(played)
        expected += n
        jitter.append(tempo_jitter(np.asarray(run.played_beat), np.asarray(run.played_sec)))
    out = asynchrony_metrics(np.concatenate(asynchrony_ms), n_expected=expected)
    out["tempo_jitter"] = float(np.nanmean(jitter))
    return out


def tempo_model_action(model: TempoModel, run: AccompanistRun) -> np.ndarray:
    """The Accompany-v0 action that makes the env's accompanist do what ``model`` wants.

    Call ``model.reset(...)`` with the run's start (time, position, beat period) first.
    """
    wanted = TempoModelController(model).decide(run)
    return np.array([beat_period_action(run, wanted)], dtype=np.float32)
