"""RL Tuner's nine music-theory rewards (Jaques et al. 2017) for a monophonic melody, in any key.

A melody is a sequence of events, one per step (an eighth note by default): ``HOLD`` (keep
the previous note sounding), ``REST`` or a MIDI key. The action ``a`` of the melody task is
``0`` for HOLD, ``1`` for REST and ``2 + k`` for the key ``lowest_midi + k``, as in RL Tuner
(which used C3..B5 and C major only). Each rule returns a float reward per candidate action.

Differences from RL Tuner's code, on purpose: the key, tonic, third and fifth come from any
:class:`~musicgym.music.scales.Scale` instead of C major constants; a tonic counts in any octave;
its leap detector does not mistake the ``IN_KEY_THIRD`` code for a leap.
"""

from __future__ import annotations

import numpy as np

from musicgym.music.rules.registry import register_rule
from musicgym.music.scales import Scale

HOLD, REST = -2, -1
_TUNER = {"task": "melody", "source": "rl-tuner"}


class MelodyState:
    """A melody in progress: events so far and RL Tuner's leap tracker."""

    def __init__(self, scale: Scale, *, lowest_midi: int = 48, n_pitches: int = 36,
                 n_steps: int = 32, steps_per_bar: int = 8) -> None:
        self.scale = scale
        self.lowest_midi = lowest_midi
        self.n_steps = n_steps
        self.steps_per_bar = steps_per_bar
        self.events: list[int] = []
        self.leap_direction = 0
        self.leapt_from = 0
        self.steps_since_leap = 0
        self.action_events = np.concatenate([[HOLD, REST], lowest_midi + np.arange(n_pitches)])
        self.in_key = np.concatenate([[True, True], scale.contains_midi(self.action_events[2:])])
        pcs = scale.pitch_classes
        self.tonic_pc, self.third_pc, self.fifth_pc = int(pcs[0]), int(pcs[2]), int(pcs[4])

    @property
    def step(self) -> int:
        return len(self.events)

    def last_note(self) -> int | None:
        """The last event that is a note, or None."""
        for event in reversed(self.events):
            if event >= 0:
                return event
        return None

    def add(self, action: int) -> None:
        """Append the event of ``action`` and update the leap tracker."""
        event = int(self.action_events[action])
        previous = self.last_note()
        if event >= 0 and previous is not None:
            interval = event - previous
            if abs(interval) >= 7:
                direction = int(np.sign(interval))
                if self.leap_direction == 0:
                    self.leap_direction, self.leapt_from = direction, previous
                elif self.leap_direction != direction:
                    self.leap_direction = 0
                self.steps_since_leap = 0
            elif self.leap_direction and (event - self.leapt_from) * self.leap_direction <= 0:
                self.leap_direction = 0
        self.steps_since_leap += 1
        self.events.append(event)


def _codes(state: MelodyState, events: np.ndarray) -> np.ndarray:
    """RL Tuner's event codes (0 hold, 1 rest, 2 + key offset) used for autocorrelation."""
    return np.where(events == HOLD, 0, np.where(events == REST, 1, 2 + events - state.lowest_midi))


@register_rule("rl_tuner_key", **_TUNER, penalty=-1.0)
def key(state: MelodyState, cand: np.ndarray, penalty: float = -1.0) -> np.ndarray:
    """``penalty`` for a note outside the key."""
    return np.where(state.in_key, 0.0, penalty)


@register_rule("rl_tuner_tonic", **_TUNER, reward=3.0)
def tonic(state: MelodyState, cand: np.ndarray, reward: float = 3.0) -> np.ndarray:
    """``reward`` for the tonic on the first step and at the start of the final bar."""
    if state.step not in (0, state.n_steps - state.steps_per_bar):
        return np.zeros(len(cand))
    return np.where((cand >= 0) & (cand % 12 == state.tonic_pc), reward, 0.0)


@register_rule("rl_tuner_repeating", **_TUNER, penalty=-100.0)
def repeating(state: MelodyState, cand: np.ndarray, penalty: float = -100.0) -> np.ndarray:
    """``penalty`` for a note repeated more than 4 times in a row (6 with holds or rests)."""
    out = np.zeros(len(cand))
    for i in np.flatnonzero(cand >= 0):
        repeats, gaps = 0, False
        for event in reversed(state.events):
            if event == cand[i]:
                repeats += 1
            elif event in (HOLD, REST):
                gaps = True
            else:
                break
        if repeats > (6 if gaps else 4):
            out[i] = penalty
    return out


@register_rule("rl_tuner_autocorrelation", **_TUNER, penalty_weight=3.0, threshold=0.15)
def autocorrelation(state: MelodyState, cand: np.ndarray, penalty_weight: float = 3.0,
                    threshold: float = 0.15) -> np.ndarray:
    """``-penalty_weight * |r|`` for each lag 1..3 whose autocorrelation ``|r| > threshold``."""
    history = _codes(state, np.asarray(state.events, dtype=int))
    series = np.concatenate([np.broadcast_to(history, (len(cand), len(history))),
                             _codes(state, cand)[:, None]], axis=1).astype(float)
    out = np.zeros(len(cand))
    for lag in (1, 2, 3):
        if series.shape[1] <= lag + 1:
            continue
        x = series[:, :-lag] - series[:, :-lag].mean(axis=1, keepdims=True)
        y = series[:, lag:] - series[:, lag:].mean(axis=1, keepdims=True)
        denominator = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(denominator > 0, (x * y).sum(axis=1) / denominator, 0.0)
        out -= np.where(np.abs(r) > threshold, penalty_weight * np.abs(r), 0.0)
    return out


def _last_bar_notes(state: MelodyState, cand: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    bar = state.events[len(state.events) - state.steps_per_bar + 1:]
    bars = [[*bar, int(c)] for c in cand]
    unique = np.array([len({e for e in b if e >= 0}) for b in bars])
    return bars, unique


@register_rule("rl_tuner_motif", **_TUNER, reward=3.0)
def motif(state: MelodyState, cand: np.ndarray, reward: float = 3.0) -> np.ndarray:
    """``reward + 0.3 * (n - 3)`` when the last bar holds ``n >= 3`` distinct notes."""
    if state.step + 1 < state.steps_per_bar:
        return np.zeros(len(cand))
    _, unique = _last_bar_notes(state, cand)
    return np.where(unique >= 3, reward + 0.3 * (unique - 3), 0.0)


@register_rule("rl_tuner_repeated_motif", **_TUNER, reward=4.0)
def repeated_motif(state: MelodyState, cand: np.ndarray, reward: float = 4.0) -> np.ndarray:
    """``reward + (n - 3)`` when the last bar (``n >= 3`` distinct notes) repeats earlier music."""
    length = state.steps_per_bar
    if state.step + 1 < 2 * length:
        return np.zeros(len(cand))
    bars, unique = _last_bar_notes(state, cand)
    earlier = {tuple(state.events[i:i + length]) for i in range(state.step + 1 - 2 * length + 1)}
    repeated = np.array([tuple(b) in earlier for b in bars])
    return np.where(repeated & (unique >= 3), reward + (unique - 3), 0.0)


@register_rule("rl_tuner_preferred_intervals", **_TUNER, scaler=5.0)
def preferred_intervals(state: MelodyState, cand: np.ndarray, scaler: float = 5.0) -> np.ndarray:
    """RL Tuner's interval table times ``scaler``: second .08, major third .09 (.15 from the
    tonic or third), fourth .07, fifth .02 (.1 from the tonic or fifth), major sixth .05,
    major seventh -.3, beyond an octave -1; a rest .05 (.15 after the tonic or fifth), a hold
    .075 (.3 after the tonic or fifth); other intervals 0."""
    previous = state.last_note()
    out = np.zeros(len(cand))
    if previous is None:
        return out
    stable = previous % 12 in (state.tonic_pc, state.fifth_pc)
    out[cand == REST] = 0.15 if stable else 0.05
    out[cand == HOLD] = 0.3 if stable else 0.075
    interval = np.abs(cand - previous)
    notes = cand >= 0
    table = {2: 0.08, 3: 0.0, 4: 0.09, 5: 0.07, 7: 0.02, 9: 0.05, 11: -0.3}
    for semitones, value in table.items():
        out[notes & (interval == semitones)] = value
    out[notes & (interval > 12)] = -1.0
    if previous % 12 in (state.tonic_pc, state.third_pc):
        out[notes & (interval == 4)] = 0.15
    if previous % 12 in (state.tonic_pc, state.fifth_pc):
        out[notes & (interval == 7)] = 0.1
    return out * scaler


@register_rule("rl_tuner_leap_up_back", **_TUNER, resolved=5.0, doubled=-5.0,
               steps_between_leaps=6)
def leap_up_back(state: MelodyState, cand: np.ndarray, resolved: float = 5.0,
                 doubled: float = -5.0, steps_between_leaps: int = 6) -> np.ndarray:
    """``resolved`` when a leap of a fifth or more is answered by a leap back or a return
    past its start; ``doubled`` for a second leap the same way. A leap left unresolved for
    more than ``steps_between_leaps`` steps is forgotten."""
    out = np.zeros(len(cand))
    previous = state.last_note()
    if previous is None or state.leap_direction == 0:
        return out
    if state.steps_since_leap > steps_between_leaps:
        return out
    notes = cand >= 0
    interval = cand - previous
    leap = notes & (np.abs(interval) >= 7)
    out[leap & (np.sign(interval) == state.leap_direction)] = doubled
    out[leap & (np.sign(interval) == -state.leap_direction)] = resolved
    back = notes & ~leap & ((cand - state.leapt_from) * state.leap_direction <= 0)
    out[back] = resolved
    return out


@register_rule("rl_tuner_high_low_unique", **_TUNER, reward=3.0)
def high_low_unique(state: MelodyState, cand: np.ndarray, reward: float = 3.0) -> np.ndarray:
    """On the last step, ``reward`` each if the highest and the lowest note occur only once."""
    out = np.zeros(len(cand))
    if state.step != state.n_steps - 1:
        return out
    for i, event in enumerate(cand):
        notes = [e for e in (*state.events, int(event)) if e >= 0]
        if notes:
            out[i] = reward * ((notes.count(max(notes)) == 1) + (notes.count(min(notes)) == 1))
    return out


RL_TUNER_RULES = ("rl_tuner_key", "rl_tuner_tonic", "rl_tuner_repeating",
                  "rl_tuner_autocorrelation", "rl_tuner_motif", "rl_tuner_repeated_motif",
                  "rl_tuner_preferred_intervals", "rl_tuner_leap_up_back",
                  "rl_tuner_high_low_unique")
