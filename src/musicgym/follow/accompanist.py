"""The accompanist's dynamics, shared by the env and the tempo-model baselines.

An *episode* is one performance of the soloist's part, already followed: the stream of the
follower's reports (time, score onset) plus what the accompanist has to play (its score onsets)
and where both parts start a note together (the shared onsets, with the time the soloist played
each). The accompanist moves through its part at a beat period it chooses at every report; its
position is continuous (it never jumps), so its onsets are where that position crosses its own
score onsets. Asynchrony at a shared onset is the accompanist's onset time minus the soloist's,
in ms: positive when the accompanist is late.

One exception to continuity is the *re-synchronisation* ACCompanion does when it has lost the
soloist: when, at a report, the accompanist's position is more than ``resync_s`` seconds (at
its beat period) from where the soloist is, it jumps there. Jumping ahead skips notes; jumping
back waits, since notes already played are never played again. ``RESYNC_S`` is the default,
chosen on the training takes with the OLTW follower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from musicgym.errors import AccompanyConfigError
from musicgym.follow.duets import onsets
from musicgym.follow.followers import Follower, OracleFollower
from musicgym.follow.tempo import MAX_BEAT_PERIOD_S, MIN_BEAT_PERIOD_S
from musicgym.music.score import MatchedPerformance

RESYNC_S = 0.2


@dataclass(frozen=True)
class Episode:
    """One followed performance of the soloist, with the accompaniment to play against it.

    Attributes
    ----------
    name : str
        For reports, e.g. ``"Brahms_Hungarian-Dance-5 take 6"``.
    piece : str
    take : int
        Take number (0 for simulated performances).
    report_sec, report_beat : numpy.ndarray, shape (r,)
        The follower's reports: the env's steps.
    report_onset_sec : numpy.ndarray, shape (r,)
        When the follower reckons each reported onset was played (<= ``report_sec``).
    solo_beat, solo_sec : numpy.ndarray, shape (m,)
        The soloist's true onsets (distinct score onsets played, and when).
    solo_score_beat : numpy.ndarray
        Every distinct onset of the soloist's score (for the gaps ahead).
    accompaniment_beat : numpy.ndarray
        Every distinct onset of the accompanist's score.
    shared_beat, shared_solo_sec : numpy.ndarray, shape (k,)
        Shared score onsets that the soloist played, and when.
    bar_start_beat, beats_per_bar : numpy.ndarray, shape (n_bars,)
        Where each bar starts and its length (real bar lines).
    human_sec : numpy.ndarray or None
        The human accompanist's time at each shared onset (NaN where not played), or None.
    """

    name: str
    piece: str
    take: int
    report_sec: np.ndarray
    report_beat: np.ndarray
    report_onset_sec: np.ndarray
    solo_beat: np.ndarray
    solo_sec: np.ndarray
    solo_score_beat: np.ndarray
    accompaniment_beat: np.ndarray
    shared_beat: np.ndarray
    shared_solo_sec: np.ndarray
    bar_start_beat: np.ndarray
    beats_per_bar: np.ndarray
    human_sec: np.ndarray | None = None

    def metrical_phase(self, beat: float) -> float:
        """Position within its bar, in [0, 1)."""
        i = max(int(np.searchsorted(self.bar_start_beat, beat + 1e-9, side="right")) - 1, 0)
        return float(((beat - self.bar_start_beat[i]) / self.beats_per_bar[i]) % 1.0)

    def solo_time(self, beat: float) -> float:
        """When the soloist played score position ``beat`` (interpolated between onsets)."""
        return float(np.interp(beat, self.solo_beat, self.solo_sec))


def make_episode(
    solo: MatchedPerformance,
    accompaniment_score: np.ndarray,
    *,
    follower: Follower | None = None,
    accompaniment: MatchedPerformance | None = None,
    piece: str = "piece",
    take: int = 0,
) -> Episode:
    """Follow a soloist's performance and pair it with the accompaniment's score.

    Parameters
    ----------
    solo : MatchedPerformance
        The soloist's performance (real or simulated).
    accompaniment_score : numpy.ndarray
        The accompanist's score notes (``onset_beat``; ``bar`` etc. if SCORE_DTYPE).
    follower : Follower or None, keyword-only
        Who turns the solo into reports (default: :class:`OracleFollower`).
    accompaniment : MatchedPerformance or None, keyword-only
        The human accompanist's performance of the same take, for comparison.
    piece, take : keyword-only
        Labels.

    Returns
    -------
    Episode
    """
    follower = follower or OracleFollower()
    report_sec, report_beat, onset_sec = follower.follow(solo.performed)
    if len(report_sec) < 3:
        raise AccompanyConfigError(
            f"{follower.name} follower reported {len(report_sec)} onsets of {piece!r} "
            f"take {take}; an episode needs at least 3"
        )
    solo_beat, solo_sec = onsets(solo.score)
    keep = solo_sec >= np.maximum.accumulate(solo_sec)
    solo_beat, solo_sec = solo_beat[keep], solo_sec[keep]
    accompaniment_beat = np.unique(accompaniment_score["onset_beat"])
    shared, i_solo, _ = np.intersect1d(solo_beat, accompaniment_beat, return_indices=True)
    human = None
    if accompaniment is not None:
        acc_beat, acc_sec = onsets(accompaniment.score)
        human = np.full(len(shared), np.nan)
        both, i_shared, i_acc = np.intersect1d(shared, acc_beat, return_indices=True)
        human[i_shared] = acc_sec[i_acc]
    bar_start, beats_per_bar = bar_lines(solo.score, accompaniment_score)
    return Episode(
        name=f"{piece} take {take}",
        piece=piece,
        take=take,
        report_sec=np.asarray(report_sec, dtype=float),
        report_beat=np.asarray(report_beat, dtype=float),
        report_onset_sec=np.asarray(onset_sec, dtype=float),
        solo_beat=solo_beat,
        solo_sec=solo_sec,
        solo_score_beat=np.unique(solo.score["onset_beat"]),
        accompaniment_beat=accompaniment_beat,
        shared_beat=shared,
        shared_solo_sec=solo_sec[i_solo],
        bar_start_beat=bar_start,
        beats_per_bar=beats_per_bar,
        human_sec=human,
    )


def bar_lines(*scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each bar starts (beats) and its length, from the bar columns of score note
    arrays (SCORE_DTYPE); 4/4 bars from beat 0 where no array has them."""
    notes = [s for s in scores if "onset_beat_in_bar" in s.dtype.names]
    if not notes:
        last = max(float(s["onset_beat"].max()) for s in scores)
        starts = np.arange(0.0, last + 4.0, 4.0)
        return starts, np.full(len(starts), 4.0)
    start = np.concatenate([s["onset_beat"] - s["onset_beat_in_bar"] for s in notes])
    length = np.concatenate([s["beats_per_bar"] for s in notes])
    start, first = np.unique(np.round(start, 6), return_index=True)
    return start, length[first].astype(float)


def count_in_beat_period(episode: Episode, beat: float, span_beats: float = 2.0) -> float:
    """The soloist's beat period over the ``span_beats`` before ``beat`` (after it at the
    start of the piece): what the accompanist hears before joining, or a count-in."""
    first, last = episode.solo_beat[0], episode.solo_beat[-1]
    if beat - span_beats >= first:
        a, b = beat - span_beats, beat
    else:
        a, b = beat, min(beat + span_beats, last)
    period = (episode.solo_time(b) - episode.solo_time(a)) / max(b - a, 1e-9)
    return float(min(max(period, MIN_BEAT_PERIOD_S), MAX_BEAT_PERIOD_S))


class AccompanistRun:
    """The accompanist playing through one episode from report ``start`` to report ``stop``.

    Parameters
    ----------
    episode : Episode
    start, stop : int
        First and one-past-last report of the segment (``stop - start >= 2``).
    max_log_ratio : float
        Largest change of log beat period per step.
    resync_s : float or None
        Jump to the soloist's position when the two are further apart than this (seconds at
        the accompanist's beat period); None never jumps.
    """

    def __init__(
        self,
        episode: Episode,
        start: int,
        stop: int,
        *,
        max_log_ratio: float,
        resync_s: float | None = RESYNC_S,
    ) -> None:
        if not 0 <= start < stop - 1 < len(episode.report_sec):
            raise AccompanyConfigError(
                f"segment [{start}, {stop}) does not fit the {len(episode.report_sec)} "
                f"reports of {episode.name}"
            )
        if resync_s is not None and not resync_s > 0:
            raise AccompanyConfigError(
                f"resync_s must be > 0 seconds (or None to never jump), got {resync_s!r}"
            )
        self.resync_s = resync_s
        self.resyncs = 0
        self.episode, self.start, self.stop = episode, start, stop
        self.max_log_ratio = max_log_ratio
        self.k = start
        self.time_s = float(episode.report_sec[start])
        self.position_beat = float(episode.report_beat[start])
        self.start_beat = self.position_beat
        self.end_beat = float(episode.report_beat[stop - 1])
        self.beat_period_s = count_in_beat_period(episode, self.position_beat)
        self.played_to_beat = self.position_beat  # nothing at or before it is played again
        self.played_beat: list[float] = []
        self.played_sec: list[float] = []
        self.beat_periods_s: list[float] = [self.beat_period_s]

    @property
    def done(self) -> bool:
        """Whether the segment has been played to its end."""
        return self.k >= self.stop

    def bound(self, beat_period_s: float) -> float:
        """Clip a wanted beat period to what one step allows."""
        low = self.beat_period_s * math.exp(-self.max_log_ratio)
        high = self.beat_period_s * math.exp(self.max_log_ratio)
        low, high = max(low, MIN_BEAT_PERIOD_S), min(high, MAX_BEAT_PERIOD_S)
        return float(min(max(beat_period_s, low), high))

    def advance(self, beat_period_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Play at ``beat_period_s`` until the next report (to the end on the last step).

        Returns
        -------
        shared_beat, asynchrony_ms : numpy.ndarray
            The shared onsets the accompanist played during this step and their asynchrony.
        """
        ep = self.episode
        self.beat_period_s = self.bound(beat_period_s)
        self.beat_periods_s.append(self.beat_period_s)
        if self.k + 1 < self.stop:
            next_time = float(ep.report_sec[self.k + 1])
            new_position = self.position_beat + (next_time - self.time_s) / self.beat_period_s
        else:  # the last step plays out what is left of the segment
            new_position = max(self.position_beat, self.end_beat)
            next_time = self.time_s + (new_position - self.position_beat) * self.beat_period_s
        lo = np.searchsorted(
            ep.accompaniment_beat, max(self.position_beat, self.played_to_beat), side="right"
        )
        hi = np.searchsorted(ep.accompaniment_beat, min(new_position, self.end_beat), side="right")
        beats = ep.accompaniment_beat[lo:hi]
        times = self.time_s + (beats - self.position_beat) * self.beat_period_s
        self.played_beat.extend(beats.tolist())
        self.played_sec.extend(times.tolist())
        self.played_to_beat = max(self.played_to_beat, min(new_position, self.end_beat))
        self.k += 1
        self.time_s, self.position_beat = next_time, new_position
        if not self.done:
            self._resync()
        shared, i_beats, i_shared = np.intersect1d(beats, ep.shared_beat, return_indices=True)
        return shared, 1000.0 * (times[i_beats] - ep.shared_solo_sec[i_shared])

    def solo_position_beat(self) -> float:
        """Where the soloist is now by the latest report: the onset it names, plus what the
        soloist has played since (at the accompanist's beat period)."""
        ep, k = self.episode, min(self.k, self.stop - 1)
        since_s = max(self.time_s - float(ep.report_onset_sec[k]), 0.0)
        return float(ep.report_beat[k]) + since_s / self.beat_period_s

    def _resync(self) -> None:
        solo = self.solo_position_beat()
        if self.resync_s is not None and (
            abs(solo - self.position_beat) * self.beat_period_s > self.resync_s
        ):
            self.position_beat = solo
            self.resyncs += 1

    def horizon_beats(self, solo_beat: float) -> float:
        """Score distance from ``solo_beat`` to the soloist's next score onset."""
        score = self.episode.solo_score_beat
        i = int(np.searchsorted(score, solo_beat + 1e-6, side="right"))
        return float(score[i] - solo_beat) if i < len(score) else 1.0
