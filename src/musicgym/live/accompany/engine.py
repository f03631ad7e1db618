"""The live accompanist's engine: the accompanist core driven by the clock, one input frame at
a time.

:class:`LiveAccompanist` is :class:`~musicgym.follow.accompanist.Accompanist` (the state the
env plays through recorded reports) fed by a live follower: at each input frame it plays its
part on up to now, feeds the frame to the follower and, when the follower reports a solo onset,
hears it (re-synchronising if lost) and asks its controller (a
:class:`~musicgym.follow.accompanist.TempoModelController`, or an
:class:`~musicgym.follow.accompanist.AgentController` seeing the observation Accompany-v0 would
show it, :func:`agent_controller`) for the next beat period. :func:`replay` feeds it a recorded
performance in real time, faster, or as fast as possible; ``musicgym.live.accompany.ports``
feeds it MIDI ports. The accompanist joins at the soloist's first reported onset (the soloist's
first note is its cue), at ``beat_period_s``.
"""

from __future__ import annotations

import copy
import heapq
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicgym.errors import AccompanyConfigError
from musicgym.follow.accompanist import (
    RESYNC_S,
    Accompanist,
    AgentController,
    Controller,
    Episode,
    Policy,
    bar_lines,
)
from musicgym.follow.followers import N_KEYS, ONSET_DECAY, SUSTAIN_WEIGHT, OnlineFollower
from musicgym.follow.observation import observation
from musicgym.follow.tempo import MAX_BEAT_PERIOD_S, MIN_BEAT_PERIOD_S, build_tempo_model


@dataclass(frozen=True, order=True)
class NoteEvent:
    """One accompaniment MIDI event: ``velocity`` 0 is a note-off."""

    time_s: float
    pitch: int
    velocity: int


class FrameBuilder:
    """Turns note-on/off messages into the frames :class:`OLTWFollower` compares.

    The same features as :func:`musicgym.follow.followers.piano_roll`: a sounding key weighs
    ``SUSTAIN_WEIGHT``, an onset adds ``ONSET_DECAY`` over its first frames.
    """

    def __init__(self) -> None:
        self._sounding = np.zeros(N_KEYS, dtype=bool)
        self._in_frame = np.zeros(N_KEYS, dtype=bool)  # sounded at some time in this frame
        self._onsets: list[tuple[int, int]] = []  # (pitch, frames since onset)

    def note_on(self, pitch: int) -> None:
        self._sounding[pitch] = self._in_frame[pitch] = True
        self._onsets.append((pitch, 0))

    def note_off(self, pitch: int) -> None:
        self._sounding[pitch] = False

    def next_frame(self) -> np.ndarray:
        """The frame for the time since the last call, shape (128,), float32."""
        frame = np.where(self._in_frame, SUSTAIN_WEIGHT, 0.0).astype(np.float32)
        kept = []
        for pitch, age in self._onsets:
            frame[pitch] += ONSET_DECAY[age]
            if age + 1 < len(ONSET_DECAY):
                kept.append((pitch, age + 1))
        self._onsets = kept
        self._in_frame = self._sounding.copy()
        return frame


class LiveAccompanist(Accompanist):
    """The accompanist core as time goes on, one input frame at a time.

    Parameters
    ----------
    solo_score, accompaniment_score : numpy.ndarray
        Score note arrays (``onset_beat``, ``duration_beat``, ``pitch``, ``velocity``; bar
        columns where the score has them).
    follower : OnlineFollower
        Follows the soloist (OLTW or HMM); its frame length is the engine's.
    controller : Controller
        Chooses the beat period at each report.
    beat_period_s : float
        Beat period to start with (the expected tempo).
    resync_s : float or None
        Jump to the soloist when further apart than this (None: never).
    max_log_ratio : float
        Largest change of log beat period per report.
    """

    def __init__(
        self, solo_score: np.ndarray, accompaniment_score: np.ndarray,
        follower: OnlineFollower, controller: Controller, *, beat_period_s: float,
        resync_s: float | None = RESYNC_S, max_log_ratio: float = 0.5,
    ) -> None:
        if not MIN_BEAT_PERIOD_S <= beat_period_s <= MAX_BEAT_PERIOD_S:
            raise AccompanyConfigError(
                f"beat_period_s must lie in [{MIN_BEAT_PERIOD_S}, {MAX_BEAT_PERIOD_S}] s, got "
                f"{beat_period_s!r} (a --bpm of {60 / MAX_BEAT_PERIOD_S:g} to "
                f"{60 / MIN_BEAT_PERIOD_S:g})"
            )
        if not isinstance(follower, OnlineFollower):
            raise AccompanyConfigError(
                f"{type(follower).__name__} cannot follow live: it needs report(frame), frame_s "
                "and reported_onset_s (an online follower: oltw or hmm)"
            )
        order = np.argsort(accompaniment_score["onset_beat"], kind="stable")
        self.notes = accompaniment_score[order]
        super().__init__(
            np.unique(solo_score["onset_beat"]), np.unique(self.notes["onset_beat"]),
            beat_period_s=beat_period_s, max_log_ratio=max_log_ratio, resync_s=resync_s,
        )
        self.bar_start_beat, self.beats_per_bar = bar_lines(solo_score, accompaniment_score)
        self.follower, self.controller = follower, controller
        self.frame_s = follower.frame_s
        self._offs: list[NoteEvent] = []
        self._warm = False
        self.played: list[tuple[float, float, int, int]] = []  # onset_s, duration_s, pitch, vel

    def feed(self, frame: np.ndarray, now_s: float) -> list[NoteEvent]:
        """Play on up to ``now_s``, then hear one input frame (ending at ``now_s``).

        Returns
        -------
        list of NoteEvent
            Accompaniment events due by ``now_s``, in time order.
        """
        events = self._play_until(now_s) if self.started else []
        beat = self.follower.report(frame)
        if beat is not None:
            self._hear(now_s, beat)
        return events + self._due_offs(now_s)

    def warm_up(self) -> None:
        """Run a copy of the follower on one frame with a note, so that the first real onset
        does not pay for compiling its code (numba: about 0.5 s from the cache, seconds
        without), which live would hold up the input and the accompaniment. Once is enough;
        the follower itself is left as it was."""
        if self._warm:
            return
        frame = np.zeros(N_KEYS, dtype=np.float32)
        frame[60] = SUSTAIN_WEIGHT + ONSET_DECAY[0]
        copy.deepcopy(self.follower).report(frame)
        self._warm = True

    def play_ahead(self, until_s: float) -> list[NoteEvent]:
        """The events due by ``until_s`` (up to the next frame's end), ahead of time.

        The beat period changes only when a frame is heard, after the accompanist has played
        on to it, so the notes up to the next frame are the ones :meth:`feed` would return
        then, at the same times: a driver can send each at its own time instead of at the
        frame's end (``play_ports``). :meth:`feed` does not return them again.
        """
        events = self._play_until(until_s) if self.started else []
        return events + self._due_offs(until_s)

    def finish(self) -> list[NoteEvent]:
        """The note-offs still pending (at the end of the performance)."""
        return self._due_offs(float("inf"))

    def _hear(self, now_s: float, beat: float) -> None:
        heard_s = self.follower.reported_onset_s
        onset_s = min(max(heard_s, *self.report_onset_sec[-1:], 0.0), now_s)
        first = not self.started
        self.hear(now_s, beat, onset_s)
        if first:
            self.controller.start(self)
        self.set_beat_period(self.controller.decide(self))

    def _play_until(self, now_s: float) -> list[NoteEvent]:
        beats, times = self.play_until(now_s)
        events = []
        onsets = self.notes["onset_beat"]
        for beat, at in zip(beats.tolist(), times.tolist(), strict=True):
            lo = int(np.searchsorted(onsets, beat, side="left"))
            hi = int(np.searchsorted(onsets, beat, side="right"))
            for note in self.notes[lo:hi]:
                pitch, velocity = int(note["pitch"]), int(note["velocity"]) or 64
                events.append(NoteEvent(at, pitch, velocity))
                duration_s = max(float(note["duration_beat"]), 0.05) * self.beat_period_s
                heapq.heappush(self._offs, NoteEvent(at + duration_s, pitch, 0))
                self.played.append((at, duration_s, pitch, velocity))
        return events

    def _due_offs(self, now_s: float) -> list[NoteEvent]:
        due = []
        while self._offs and self._offs[0].time_s <= now_s:
            due.append(heapq.heappop(self._offs))
        return due

    def heard_episode(self) -> Episode:
        """What has been heard so far, as an :class:`Episode` (reports only, no future)."""
        reports_sec, reports_beat = np.asarray(self.report_sec), np.asarray(self.report_beat)
        empty = np.zeros(0)
        return Episode(
            name="live", piece="live", take=0, report_sec=reports_sec, report_beat=reports_beat,
            report_onset_sec=np.asarray(self.report_onset_sec),
            solo_beat=reports_beat, solo_sec=np.asarray(self.report_onset_sec),
            solo_score_beat=self.solo_score_beat,
            accompaniment_beat=self.accompaniment_beat, shared_beat=empty, shared_solo_sec=empty,
            bar_start_beat=self.bar_start_beat, beats_per_bar=self.beats_per_bar,
        )


def agent_controller(
    policy: Policy, env_kwargs: dict[str, Any],
    rehearsals: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> AgentController:
    """A trained agent as a live controller: the Accompany-v0 observation built from what the
    live accompanist has heard, and the env's residual mix (``residual_on``, ``residual_scale``
    of ``env_kwargs``, the settings it was trained with).

    Live, "share of the episode played" is the solo's score position; the memory features
    (``memory``) and a ``+rehearsal``/``+timing`` base read ``rehearsals`` (earlier takes of
    the solo part; none: the features say "no earlier takes" and the base plays plain).
    """
    memory = bool(env_kwargs.get("memory", False))
    history, lookahead = int(env_kwargs.get("history", 6)), int(env_kwargs.get("lookahead", 4))
    curves = list(rehearsals or [])
    residual_on = env_kwargs.get("residual_on")
    timing = bool(env_kwargs.get("timing", False))
    base = None if residual_on is None else build_tempo_model(residual_on, curves)

    def observe(accompanist: LiveAccompanist) -> np.ndarray:
        a = accompanist
        first, last = a.solo_score_beat[0], a.solo_score_beat[-1]
        return observation(
            a.heard_episode(), len(a.report_beat) - 1, a.position_beat, a.beat_period_s,
            count_in_s=a.beat_periods_s[0],
            progress=(a.report_beat[-1] - first) / max(last - first, 1e-9),
            history=history, lookahead=lookahead, memory=memory,
            curves=curves if memory else [],
            timing_of=a if timing else None,
        )

    return AgentController(base, scale=float(env_kwargs.get("residual_scale", 0.1)),
                           policy=policy, observe=observe)


def performance_messages(performed: np.ndarray) -> list[tuple[float, int, int]]:
    """A performance's notes as ``(time_s, pitch, velocity)`` messages, note-offs at velocity 0,
    in time order (a note-off before a note-on at the same time)."""
    ons = [(float(n["onset_sec"]), int(n["pitch"]), max(int(n["velocity"]), 1))
           for n in performed]
    offs = [(float(n["onset_sec"] + max(np.nan_to_num(n["duration_sec"]), 0.01)),
             int(n["pitch"]), 0) for n in performed]
    return sorted(ons + offs, key=lambda m: (m[0], m[2] > 0))


def replay(
    performed: np.ndarray, accompanist: LiveAccompanist, *, speed: float = 0.0
) -> list[NoteEvent]:
    """Play a recorded performance to the accompanist, frame by frame, as a live input would.

    Parameters
    ----------
    performed : numpy.ndarray
        The soloist's notes (``onset_sec``, ``duration_sec``, ``pitch``, ``velocity``).
    accompanist : LiveAccompanist
    speed : float, keyword-only
        1 plays in real time, 2 twice as fast, 0 as fast as the machine can (no waiting).

    Returns
    -------
    list of NoteEvent
        The accompaniment, in performance time (seconds), note-offs included.
    """
    if speed < 0 or not np.isfinite(speed):
        raise AccompanyConfigError(f"speed must be >= 0 (0: no waiting), got {speed!r}")
    frames = FrameBuilder()
    messages = performance_messages(performed)
    end_s = messages[-1][0] + 1.0 if messages else 0.0
    events: list[NoteEvent] = []
    wall_start, i = time.perf_counter(), 0
    for n in range(1, int(np.ceil(end_s / accompanist.frame_s)) + 1):
        now = n * accompanist.frame_s
        while i < len(messages) and messages[i][0] < now:
            _, pitch, velocity = messages[i]
            frames.note_on(pitch) if velocity else frames.note_off(pitch)
            i += 1
        if speed > 0:
            time.sleep(max(wall_start + now / speed - time.perf_counter(), 0.0))
        events += accompanist.feed(frames.next_frame(), now)
    return events + accompanist.finish()
