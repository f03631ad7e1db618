"""The accompanist core: one state object that hears the follower's reports and schedules the
accompaniment, shared by ``musicgym/Accompany-v0``, the tempo-model baselines and live play.

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

:class:`Accompanist` is that state; two drivers move it: :class:`AccompanistRun` through a
recorded :class:`Episode` (report by report: the env, the evaluation) and
``musicgym.live.accompany.LiveAccompanist`` by the clock (frame by frame, a follower hearing
the soloist). At each report a :class:`Controller` chooses the next beat period from the
state: :class:`TempoModelController` (a tempo model) or :class:`AgentController` (a policy's
action, alone or as a residual on a tempo model: the mix the env's ``residual_on`` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from musicgym.errors import AccompanyConfigError
from musicgym.follow.duets import onsets
from musicgym.follow.followers import Follower, OracleFollower
from musicgym.follow.tempo import MAX_BEAT_PERIOD_S, MIN_BEAT_PERIOD_S, TempoModel
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


class Accompanist:
    """The accompanist's state as it plays: where it is, how fast, what it has heard and played.

    Its score position moves at its beat period; :meth:`play_until` moves it on in time and
    returns the accompaniment onsets it crossed (each played once: never again after a jump
    back, never when jumped over); :meth:`hear` takes a follower's report (the first is the
    cue: the accompanist joins there) and re-synchronises when lost; :meth:`set_beat_period`
    takes a controller's answer, bounded. A driver calls, at each report, ``play_until(report
    time)`` (once started), ``hear(...)``, ``controller.start(self)`` at the first report only,
    then ``set_beat_period(controller.decide(self))``.

    Parameters
    ----------
    solo_score_beat : numpy.ndarray
        Every distinct onset of the soloist's score (beats, increasing).
    accompaniment_beat : numpy.ndarray
        Every distinct onset of the accompanist's score (beats, increasing).
    beat_period_s : float
        Beat period to join at (a count-in, or the expected tempo).
    max_log_ratio : float, keyword-only
        Largest change of log beat period per report.
    resync_s : float or None, keyword-only
        Jump to the soloist's position when the two are further apart than this (seconds at
        the accompanist's beat period); None never jumps.
    end_beat : float, keyword-only
        Nothing after this score position is played (default: the whole part).
    """

    def __init__(
        self,
        solo_score_beat: np.ndarray,
        accompaniment_beat: np.ndarray,
        *,
        beat_period_s: float,
        max_log_ratio: float = 0.5,
        resync_s: float | None = RESYNC_S,
        end_beat: float = math.inf,
    ) -> None:
        if resync_s is not None and not resync_s > 0:
            raise AccompanyConfigError(
                f"resync_s must be > 0 seconds (or None to never jump), got {resync_s!r}"
            )
        if not max_log_ratio > 0:
            raise AccompanyConfigError(f"max_log_ratio must be > 0, got {max_log_ratio!r}")
        self.solo_score_beat = np.asarray(solo_score_beat, dtype=float)
        self.accompaniment_beat = np.asarray(accompaniment_beat, dtype=float)
        self.max_log_ratio, self.resync_s, self.end_beat = max_log_ratio, resync_s, end_beat
        self.beat_period_s = float(beat_period_s)
        self.beat_periods_s: list[float] = [self.beat_period_s]
        self.time_s, self.position_beat = 0.0, math.nan
        self.start_beat = math.nan
        self.played_to_beat = -math.inf  # nothing at or before it is played (again)
        self.report_sec: list[float] = []
        self.report_beat: list[float] = []
        self.report_onset_sec: list[float] = []  # the follower's date of each reported onset
        self.played_beat: list[float] = []
        self.played_sec: list[float] = []
        self.resyncs = 0
        # (soloist minus own position) in seconds at each report, before any jump: the error
        # the accompanist hears (the timing features of the observation read it)
        self.report_gap_s: list[float] = []

    @property
    def started(self) -> bool:
        """Whether the soloist's first onset has been heard (the cue)."""
        return bool(self.report_beat)

    def hear(self, time_s: float, beat: float, onset_s: float) -> None:
        """Take a report made at ``time_s``: the soloist reached score onset ``beat``, played at
        ``onset_s``. The first report is the cue (the accompanist joins at ``beat`` then);
        after it, the accompanist re-synchronises if it is more than ``resync_s`` from the
        soloist. Call :meth:`play_until` up to ``time_s`` first."""
        self.report_sec.append(float(time_s))
        self.report_beat.append(float(beat))
        self.report_onset_sec.append(float(onset_s))
        if len(self.report_beat) == 1:
            self.time_s, self.position_beat = float(time_s), float(beat)
            self.start_beat = self.played_to_beat = float(beat)
            self.report_gap_s.append(0.0)
            return
        solo = self.solo_position_beat()
        self.report_gap_s.append((solo - self.position_beat) * self.beat_period_s)
        if self.resync_s is not None and (
            abs(solo - self.position_beat) * self.beat_period_s > self.resync_s
        ):
            self.position_beat = solo  # notes already played stay played (played_to_beat)
            self.resyncs += 1

    def bound(self, beat_period_s: float) -> float:
        """Clip a wanted beat period to what one report allows."""
        low = self.beat_period_s * math.exp(-self.max_log_ratio)
        high = self.beat_period_s * math.exp(self.max_log_ratio)
        low, high = max(low, MIN_BEAT_PERIOD_S), min(high, MAX_BEAT_PERIOD_S)
        return float(min(max(beat_period_s, low), high))

    def set_beat_period(self, wanted_s: float) -> float:
        """Play on at ``wanted_s`` (bounded by :meth:`bound`); returns the beat period set."""
        self.beat_period_s = self.bound(wanted_s)
        self.beat_periods_s.append(self.beat_period_s)
        return self.beat_period_s

    def play_until(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Move on at the beat period up to ``time_s``.

        Returns
        -------
        beat, sec : numpy.ndarray
            The accompaniment onsets played on the way (score beats) and when.
        """
        new_position = self.position_beat + (time_s - self.time_s) / self.beat_period_s
        return self._move(float(time_s), new_position)

    def play_out(self) -> tuple[np.ndarray, np.ndarray]:
        """Play on at the beat period up to ``end_beat`` (the end of a segment)."""
        new_position = max(self.position_beat, self.end_beat)
        end_s = self.time_s + (new_position - self.position_beat) * self.beat_period_s
        return self._move(end_s, new_position)

    def _move(self, time_s: float, new_position: float) -> tuple[np.ndarray, np.ndarray]:
        acc = self.accompaniment_beat
        lo = np.searchsorted(acc, max(self.position_beat, self.played_to_beat), side="right")
        hi = np.searchsorted(acc, min(new_position, self.end_beat), side="right")
        beats = acc[lo:hi]
        times = self.time_s + (beats - self.position_beat) * self.beat_period_s
        self.played_beat.extend(beats.tolist())
        self.played_sec.extend(times.tolist())
        self.played_to_beat = max(self.played_to_beat, min(new_position, self.end_beat))
        self.time_s, self.position_beat = time_s, new_position
        return beats, times

    def solo_position_beat(self) -> float:
        """Where the soloist is now by the latest report: the onset it names, plus what the
        soloist has played since (at the accompanist's beat period)."""
        since_s = max(self.time_s - self.report_onset_sec[-1], 0.0)
        return self.report_beat[-1] + since_s / self.beat_period_s

    def horizon_beats(self, solo_beat: float) -> float:
        """Score distance from ``solo_beat`` to the soloist's next score onset."""
        score = self.solo_score_beat
        i = int(np.searchsorted(score, solo_beat + 1e-6, side="right"))
        return float(score[i] - solo_beat) if i < len(score) else 1.0


class AccompanistRun(Accompanist):
    """The accompanist driven through a recorded episode, from report ``start`` to ``stop``.

    Each :meth:`advance` is one report (the env's step): play at the chosen beat period until
    the next report, then hear it; the last one plays out to the segment's last reported
    onset.

    Parameters
    ----------
    episode : Episode
    start, stop : int
        First and one-past-last report of the segment (``stop - start >= 2``).
    max_log_ratio : float
        Largest change of log beat period per step.
    resync_s : float or None
        As :class:`Accompanist`.
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
        super().__init__(
            episode.solo_score_beat, episode.accompaniment_beat,
            beat_period_s=count_in_beat_period(episode, float(episode.report_beat[start])),
            max_log_ratio=max_log_ratio, resync_s=resync_s,
            end_beat=float(episode.report_beat[stop - 1]),
        )
        self.episode, self.start, self.stop = episode, start, stop
        self.k = start
        self._hear_report(start)

    @property
    def done(self) -> bool:
        """Whether the segment has been played to its end."""
        return self.k >= self.stop

    def _hear_report(self, k: int) -> None:
        ep = self.episode
        self.hear(float(ep.report_sec[k]), float(ep.report_beat[k]),
                  float(ep.report_onset_sec[k]))

    def advance(self, beat_period_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Play at ``beat_period_s`` until the next report (to the end on the last step).

        Returns
        -------
        shared_beat, asynchrony_ms : numpy.ndarray
            The shared onsets the accompanist played during this step and their asynchrony.
        """
        ep = self.episode
        self.set_beat_period(beat_period_s)
        if self.k + 1 < self.stop:
            beats, times = self.play_until(float(ep.report_sec[self.k + 1]))
            self.k += 1
            self._hear_report(self.k)
        else:  # the last step plays out what is left of the segment
            beats, times = self.play_out()
            self.k += 1
        shared, i_beats, i_shared = np.intersect1d(beats, ep.shared_beat, return_indices=True)
        return shared, 1000.0 * (times[i_beats] - ep.shared_solo_sec[i_shared])


class Controller(Protocol):
    """Chooses the accompanist's beat period at each report.

    ``start`` is called once, at the cue (the first report heard); ``decide`` at every report
    (the cue included), after the accompanist has played up to it and heard it.
    """

    def start(self, accompanist: Accompanist) -> None:
        """Begin a performance at the accompanist's first report."""

    def decide(self, accompanist: Accompanist) -> float:
        """The beat period (seconds) to play at until the next report (it is then bounded)."""


class TempoModelController:
    """A tempo model (:mod:`musicgym.follow.tempo`) as a :class:`Controller`."""

    def __init__(self, model: TempoModel) -> None:
        self.model = model

    def start(self, accompanist: Accompanist) -> None:
        a = accompanist
        self.model.reset(time_s=a.report_onset_sec[-1], solo_beat=a.position_beat,
                         beat_period_s=a.beat_period_s)

    def decide(self, accompanist: Accompanist) -> float:
        a = accompanist
        solo_beat = a.report_beat[-1]
        return self.model.update(
            time_s=a.report_onset_sec[-1], now_s=a.time_s, solo_beat=solo_beat,
            accompanist_beat=a.position_beat, beat_period_s=a.beat_period_s,
            horizon_beats=a.horizon_beats(solo_beat),
        )


def beat_period_action(accompanist: Accompanist, beat_period_s: float) -> float:
    """The Accompany-v0 action (in [-1, 1]) that asks for ``beat_period_s``."""
    scaled = math.log(beat_period_s / accompanist.beat_period_s) / accompanist.max_log_ratio
    return float(np.clip(scaled, -1.0, 1.0))


def action_beat_period(accompanist: Accompanist, action: float) -> float:
    """The beat period an Accompany-v0 action in [-1, 1] asks for."""
    a = float(np.clip(action, -1.0, 1.0))
    return accompanist.beat_period_s * math.exp(a * accompanist.max_log_ratio)


class Policy(Protocol):
    """A trained policy as Stable-Baselines3 exposes it (``RecurrentPPO``, ``PPO``...)."""

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        """``(action, state)`` for a batch of observations."""


class AgentController:
    """A policy's action as a :class:`Controller`, alone or as a residual on a tempo model.

    Without ``base`` the action ``a`` in [-1, 1] is Accompany-v0's: the log beat period
    changes by ``a * max_log_ratio``. With ``base`` (Accompany-v0's ``residual_on``) the
    action played is ``clip(b + scale * a, -1, 1)``, ``b`` the action with which the tempo
    model would play this report (:func:`beat_period_action`), and ``b`` is appended to the
    policy's observation: a policy that outputs 0 plays exactly as the tempo model. The env
    uses :meth:`observe_base` and :meth:`mix` (its agent acts from outside); live play and the
    evaluation give a ``policy`` and an ``observe`` function and call :meth:`decide`.

    Parameters
    ----------
    base : tempo model or None
        The model the policy corrects (``reset``/``update`` as :class:`TempoModel`).
    scale : float
        Largest correction, in units of the action.
    policy : Policy or None
        Acts on ``observe(accompanist)`` (deterministic; its recurrent state kept).
    observe : callable or None
        ``observe(accompanist) -> observation`` (float32, without the base action).
    """

    def __init__(
        self,
        base: TempoModel | None = None,
        *,
        scale: float = 0.1,
        policy: Policy | None = None,
        observe: Callable[[Accompanist], np.ndarray] | None = None,
    ) -> None:
        if base is not None and not scale > 0:
            raise AccompanyConfigError(f"residual_scale must be > 0, got {scale!r}")
        self.base = None if base is None else TempoModelController(base)
        self.scale, self.policy, self.observe = scale, policy, observe
        self.base_action = 0.0
        self._state = None
        self._episode_start = np.ones((1,), dtype=bool)

    def start(self, accompanist: Accompanist) -> None:
        self._state, self._episode_start = None, np.ones((1,), dtype=bool)
        if self.base is not None:
            self.base.start(accompanist)

    def observe_base(self, accompanist: Accompanist) -> float:
        """The tempo model's action at this report (0 without a base): call it once a report
        (it updates the model), before :meth:`observation` and :meth:`mix`."""
        self.base_action = (0.0 if self.base is None else
                            beat_period_action(accompanist, self.base.decide(accompanist)))
        return self.base_action

    def mix(self, accompanist: Accompanist, action: float) -> float:
        """The beat period the policy's ``action`` asks for (on the base, if any)."""
        a = float(np.clip(action, -1.0, 1.0))
        if self.base is not None:
            a = float(np.clip(np.float32(self.base_action) + self.scale * np.float32(a),
                              -1.0, 1.0))
        return action_beat_period(accompanist, a)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The policy's observation: the env's, with the base action appended if any."""
        if self.base is None:
            return np.asarray(observation, dtype=np.float32)
        return np.append(observation, np.float32(self.base_action)).astype(np.float32)

    def decide(self, accompanist: Accompanist) -> float:
        if self.policy is None or self.observe is None:
            raise AccompanyConfigError("AgentController.decide needs a policy and observe")
        self.observe_base(accompanist)
        obs = self.observation(self.observe(accompanist))
        action, self._state = self.policy.predict(
            obs[None, :], state=self._state, episode_start=self._episode_start,
            deterministic=True,
        )
        self._episode_start = np.zeros((1,), dtype=bool)
        return self.mix(accompanist, float(np.asarray(action, dtype=np.float32).reshape(-1)[0]))


def run_controller(run: AccompanistRun, controller: Controller) -> AccompanistRun:
    """Play ``run`` to its end, ``controller`` choosing the beat period at each report."""
    controller.start(run)
    while not run.done:
        run.advance(controller.decide(run))
    return run
