"""Polishing a finished counterpoint piece by local search, judged exactly as the env judges it.

A beam search commits to its opening notes long before the piece's whole-piece scores (the
pitch entropy, the climax) are known, and estimates them as it goes. :func:`polish_piece`
starts from a finished piece and hill-climbs: it tries small changes to the whole piece, judges
each changed piece exactly (every note allowed by the env's mask, hard rules and dead-end
lookahead included; the soft-rule penalties summed; the env's score of the finished piece
added) and keeps a change only when the return gets strictly higher.

The changes (the neighbourhood): an action is a (move, duration) pair and a move is relative to
the previous note, so shifting notes ``i .. i + span - 1`` by ``d`` scale steps while every
other note keeps its pitch changes two moves: ``move[i] += d`` and ``move[i + span] -= d`` (the
latter only if the shifted run does not end the piece's actions: the end note is the
exercise's and is written by the env). ``span`` 1 changes one note's pitch. Durations are kept
(``swap=True`` also tries swapping the durations of two adjacent notes of different length,
which keeps every later onset).
"""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np

from musicgym.compose.search import _gc_paused, score_bound_terms, whole_number
from musicgym.errors import ConfigError
from musicgym.music.rules import score_piece
from musicgym.music.rules.species import (
    ACTION_DURATIONS,
    ACTION_MOVES,
    DURATIONS_EIGHTHS,
    MAX_MOVE,
    N_ACTIONS,
    N_MOVES,
    CounterpointState,
)

_MOVES, _DURATIONS = ACTION_MOVES.tolist(), ACTION_DURATIONS.tolist()
_DURATIONS_ARRAY = ACTION_DURATIONS
_STRATEGIES = ("first", "best")


def check_polish_settings(*, max_step: int = 2, max_span: int = 1, swap: bool = False,
                          window: int = 0, window_rhythm: bool = False,
                          window_eighths: int = 8, strategy: str = "first",
                          max_passes: int = 8) -> tuple[int, int, int, int, int]:
    """:func:`polish_piece`'s settings checked (the same names and defaults): its whole
    numbers (``max_step``, ``max_span``, ``window``, ``window_eighths``, ``max_passes``) as
    ints.

    Raises
    ------
    ConfigError
        If a setting is out of range or of the wrong type.
    """
    if strategy not in _STRATEGIES:
        raise ConfigError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")
    for name, flag in (("swap", swap), ("window_rhythm", window_rhythm)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{name} must be True or False, got {flag!r}")
    return (whole_number("max_step", max_step, 1), whole_number("max_span", max_span, 1),
            whole_number("window", window, 0), whole_number("window_eighths", window_eighths, 1),
            whole_number("max_passes", max_passes, 1))


def _action(move: int, duration_eighths: int) -> int:
    return DURATIONS_EIGHTHS.index(duration_eighths) * N_MOVES + move + MAX_MOVE


class _Piece:
    """A finished piece's actions with the states before each action and the penalties
    taken before each (``states[i]``, ``rewards[i]``), so that a change at ``i`` is judged by
    replaying from ``states[i]`` only."""

    def __init__(self, env, actions: list[int], states: list, rewards: list[float],
                 total: float, final: CounterpointState) -> None:
        self.env, self.actions, self.states, self.rewards = env, actions, states, rewards
        self.total, self.final = total, final
        self.bound_terms = self._bound_terms(env)

    @staticmethod
    def _bound_terms(env) -> list:
        """(weight, bound score function) of every score but the two that are never above
        0 with their default parameters (``looped_fragments``, ``narrow_ranges``): with
        those two weighted 0 or more, these terms' sum is an upper bound on the score that
        costs a fraction of it (the two cost the most). Empty where that does not hold
        (:func:`~musicgym.compose.search.score_bound_terms`)."""
        return score_bound_terms(env)

    @classmethod
    def replay(cls, env, actions: list[int]) -> _Piece | None:
        """The piece ``actions`` write, or None where a note is not allowed or the actions
        do not finish the piece exactly at their last one."""
        return cls._replay_from(env, CounterpointState(env.setup), 0.0, actions, 0, [], [])

    @classmethod
    def _replay_from(cls, env, state, reward, actions, start, states, rewards, keep=True):
        oracle, n = env.oracle, len(actions)
        for j in range(start, n):
            action = actions[j]
            if keep:
                states.append(state.copy())
                rewards.append(reward)
            if state.finished or not oracle.mask(state)[action]:
                return None
            reward += float(oracle.step_rewards(state)[action])
            state.add(_MOVES[action], _DURATIONS[action])
        if not state.finished:
            return None
        total = reward + score_piece(state, coefs=env.scoring_coefs,
                                     params=env.scoring_fn_params)["total"]
        return cls(env, actions, states, rewards, total, state) if keep else total

    def total_of(self, actions: list[int], start: int) -> float | None:
        """The exact return of ``actions`` (equal to this piece's before ``start``), or None
        where it is not a piece the env allows."""
        return self._replay_from(self.env, self.states[start].copy(), self.rewards[start],
                                 actions, start, None, None, keep=False)

    def changed(self, actions: list[int], start: int) -> _Piece:
        """The piece ``actions`` write (allowed: checked by :meth:`total_of`)."""
        states, rewards = self.states[:start], self.rewards[:start]
        piece = self._replay_from(self.env, self.states[start].copy(), self.rewards[start],
                                  actions, start, states, rewards)
        assert piece is not None  # noqa: S101 - judged allowed just before
        return piece


def _changes(actions: list[int], position: int, max_step: int, max_span: int, swap: bool):
    """The changed action lists that first differ at ``position``, in a fixed order."""
    n = len(actions)
    move_i, dur_i = _MOVES[actions[position]], _DURATIONS[actions[position]]
    for span in range(1, max_span + 1):
        after = position + span  # the first note after the shifted run
        if after > n:
            break
        for step in range(1, max_step + 1):
            for d in (step, -step):
                first = move_i + d
                if abs(first) > MAX_MOVE:
                    continue
                new = actions[:]
                new[position] = _action(first, dur_i)
                if after < n:
                    move_a = _MOVES[actions[after]] - d
                    if abs(move_a) > MAX_MOVE:
                        continue
                    new[after] = _action(move_a, _DURATIONS[actions[after]])
                yield new
    if swap and position + 1 < n:
        dur_j = _DURATIONS[actions[position + 1]]
        if dur_j != dur_i:
            new = actions[:]
            new[position] = _action(move_i, dur_j)
            new[position + 1] = _action(_MOVES[actions[position + 1]], dur_i)
            yield new


def _spliced_score(piece: _Piece, work: CounterpointState, position: int, end: int,
                   bar: float) -> float:
    """The env's score of ``piece`` with its notes ``position .. end - 1`` replaced by those
    ``work`` wrote from ``piece.states[position]`` (ending at the same eighth on the same
    pitch, or finishing the piece), reckoned from the notes alone: the score functions read
    only the pitches, moves and piano roll. Where it cannot pass ``bar`` an upper bound on
    it, at most ``bar``, may be returned instead (see :meth:`_Piece.bound_terms`)."""
    final, n = piece.final, len(piece.actions)
    spliced = final.copy()
    t0 = piece.states[position].time
    if end < n:
        t1 = piece.states[end].time
        spliced.positions = [*final.positions[:position + 1], *work.positions[position + 1:],
                             *final.positions[end + 1:]]
        spliced.midis = [*final.midis[:position + 1], *work.midis[position + 1:],
                         *final.midis[end + 1:]]
        spliced.moves = [*final.moves[:position], *work.moves[position:], *final.moves[end:]]
    else:
        t1 = final.setup.total_eighths
        spliced.positions = [*final.positions[:position + 1], *work.positions[position + 1:]]
        spliced.midis = [*final.midis[:position + 1], *work.midis[position + 1:]]
        spliced.moves = [*final.moves[:position], *work.moves[position:]]
    spliced.midi_at_eighth[t0:t1] = work.midi_at_eighth[t0:t1]
    if piece.bound_terms:
        partial = sum(weight * score(spliced) for weight, score in piece.bound_terms)
        if partial <= bar:
            return partial
    env = piece.env
    return score_piece(spliced, coefs=env.scoring_coefs, params=env.scoring_fn_params)["total"]


def _rewrites(piece: _Piece, position: int, window: int, rhythm: bool, max_eighths: int,
              bar: list[float]):
    """Every other way (the env's mask allowing each note) to write the notes from
    ``position`` up to, not including, note ``k`` (k = ``position`` + 1 .. + ``window``) that
    ends at note ``k``'s onset on the pitch before it, so that the rest of the piece is kept
    (or that finishes the piece, for k = the end): (changed action list, its score or None),
    in a fixed order (depth first, actions in index order). With ``rhythm`` the durations
    may change too, over at most ``max_eighths`` eighths; without, each note keeps its own.
    One depth-first walk from the state before ``position`` finds them all."""
    actions, states, oracle = piece.actions, piece.states, piece.env.oracle
    n = len(actions)
    # with no penalty rule (the env's default) a piece's return is its score, so a rewrite
    # whose score (reckoned from the spliced notes alone) is not higher need not be replayed
    screen = not oracle.ruleset.penalty_rules
    start_time = states[position].time
    last = min(position + window, n)
    if rhythm:
        final_eighth = piece.final.setup.final_bar_eighth
        while last > position and (states[last].time if last < n else final_eighth) \
                - start_time > max_eighths:
            last -= 1  # the longest window within max_eighths
        if last == position:
            return
    # the onsets where a rewrite may rejoin the piece: eighth -> (note, pitch before it)
    joins = {states[k].time: (k, states[k].positions[-1]) for k in range(position + 1, last + 1)
             if k < n}
    limit = states[last].time if last < n else None  # None: up to the piece's end
    last_pitch = states[last].positions[-1] if last < n else None
    work = states[position].copy()
    segment: list[int] = []

    def candidate(k: int):
        if segment == actions[position:k]:
            return None
        return ([*actions[:position], *segment, *actions[k:]],
                _spliced_score(piece, work, position, k, bar[0]) if screen else None)

    dead: set[tuple] = set()  # states from which no rewrite rejoins the piece

    def walk():
        """Yield the rewrites through the current path; return whether any path from here
        rejoins the piece (the original's included), so that a state that cannot, met again
        by another path (the same future key: the same masks, onsets and pitches from
        here), is not walked twice."""
        if work.finished:  # only reached where the window takes in the piece's end
            found = candidate(n)
            if found:
                yield found
            return True
        time = work.time
        rejoins = False
        if segment and time in joins:
            k, pitch = joins[time]
            if work.positions[-1] == pitch:
                rejoins = True
                found = candidate(k)
                if found:
                    yield found
        if limit is not None and time >= limit:
            return rejoins
        key = work.future_key()
        if key in dead:
            return rejoins
        allowed = oracle.mask(work)
        if not rhythm:  # the original's duration at this note
            allowed &= _DURATIONS_ARRAY == _DURATIONS[actions[position + len(segment)]]
        for action in np.flatnonzero(allowed).tolist():
            if limit is not None:
                arrival = time + _DURATIONS[action]
                if arrival > limit or (arrival == limit and work.positions[-1]
                                       + _MOVES[action] != last_pitch):
                    continue  # past the window, or at its end on another pitch
            record = work.push(_MOVES[action], _DURATIONS[action])
            if work.finished and last < n:
                work.pop(record)
                continue
            segment.append(action)
            if (yield from walk()):
                rejoins = True
            segment.pop()
            work.pop(record)
        if not rejoins:
            dead.add(key)
        return rejoins

    yield from walk()


@_gc_paused
def polish_piece(env: gym.Env, actions: list[int], *, max_step: int = 2, max_span: int = 1,
                 swap: bool = False, window: int = 0, window_rhythm: bool = False,
                 window_eighths: int = 8, strategy: str = "first", max_passes: int = 8,
                 stats: dict | None = None) -> tuple[float, list[int]]:
    """Improve a finished piece by local search: (return, actions), never worse.

    Each pass goes through the piece's notes in order and, at each, tries every change of the
    neighbourhood (below) that first differs there. A change is judged exactly as the env
    judges the piece: replayed from the state before it, every note must be allowed by the
    env's mask (hard rules and the dead-end lookahead), the soft-rule penalties are summed and
    the env's score of the finished piece is added (as the searches of
    :mod:`musicgym.compose` judge their pieces). ``strategy="first"`` keeps the first change
    that raises the return and goes on from the same note; ``"best"`` judges the whole
    neighbourhood and keeps its best change, once a pass. Passes stop when one finds nothing
    better, or after ``max_passes``. Deterministic.

    Parameters
    ----------
    env : CounterpointEnv or a wrapper of one
        The exercise (its oracle's caches are used and grow).
    actions : list of int
        A finished piece the env allows (e.g. a search's).
    max_step : int, keyword-only
        The largest shift tried, in scale steps (each of +-1 .. +-``max_step``).
    max_span : int, keyword-only
        The longest run of consecutive notes shifted together (1: one note's pitch).
    swap : bool, keyword-only
        Also try swapping the durations of two adjacent notes of different length.
    window : int, keyword-only
        Also try every other way (pitches and rhythm) to write the next 1 .. ``window`` notes
        that ends at the same eighth on the same pitch (0: not tried).
    strategy : {"first", "best"}, keyword-only
    max_passes : int, keyword-only
        At most this many passes.
    stats : dict or None, keyword-only
        If given, filled with ``passes``, ``evaluations`` (changed pieces judged),
        ``accepted`` (changes kept), ``before`` and ``after`` (the returns).

    Returns
    -------
    (float, list of int)
        The polished piece's exact return and actions (``actions`` itself, copied, where
        nothing improved it).

    Raises
    ------
    ConfigError
        If a setting is out of range, or ``actions`` is not a finished piece the env's rules
        allow.
    """
    max_step, max_span, window, window_eighths, max_passes = check_polish_settings(
        max_step=max_step, max_span=max_span, swap=swap, window=window,
        window_rhythm=window_rhythm, window_eighths=window_eighths, strategy=strategy,
        max_passes=max_passes)
    try:
        actions = [int(a) for a in actions]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"actions must be a list of whole numbers, got {actions!r}") from err
    if not actions or not all(0 <= a < N_ACTIONS for a in actions):
        raise ConfigError(f"actions must be a non-empty list of actions 0..{N_ACTIONS - 1}, "
                          f"got {actions!r}")
    env = env.unwrapped
    piece = _Piece.replay(env, actions)
    if piece is None:
        raise ConfigError("actions do not write a finished piece the env's rules allow: "
                          "give the actions of a piece the env (or a search on it) wrote")
    counters = {"passes": 0, "evaluations": 0, "screened": 0, "accepted": 0, "before": piece.total}
    improved = True
    while improved and counters["passes"] < max_passes:
        counters["passes"] += 1
        improved = False
        best: tuple[float, list[int], int] | None = None
        position = 0
        while position < len(piece.actions):
            accepted = False
            bar = [best[0] if best else piece.total]  # what a change must beat
            changes = ((new, None) for new in
                       _changes(piece.actions, position, max_step, max_span, swap))
            if window:
                changes = itertools.chain(changes, _rewrites(piece, position, window,
                                                                 window_rhythm, window_eighths,
                                                                 bar))
            for new, score in changes:
                if score is not None and score <= bar[0]:
                    counters["screened"] += 1
                    continue
                counters["evaluations"] += 1
                total = piece.total_of(new, position)
                if total is None:
                    continue
                if strategy == "first":
                    if total > piece.total:
                        piece = piece.changed(new, position)
                        counters["accepted"] += 1
                        improved = accepted = True
                        break
                elif total > bar[0]:
                    best = (total, new, position)
                    bar[0] = total
            if not accepted:
                position += 1
        if best is not None:
            piece = piece.changed(best[1], best[2])
            counters["accepted"] += 1
            improved = True
    counters["after"] = piece.total
    if stats is not None:
        stats.update(counters)
    return piece.total, list(piece.actions)
