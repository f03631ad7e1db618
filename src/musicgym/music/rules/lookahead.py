"""Masks that know the future: counterpoint masks cached by state, with dead-end lookahead.

RL-Musician offers every note its rules allow, and a random policy then walks into a dead end
(a state where no note is allowed) in about 99 % of episodes. :class:`CounterpointOracle`
removes those notes too: a note is offered only if some way to finish the piece exists after
it. It finds out by a depth-first search over the piece's states, memoised by
:meth:`~musicgym.music.rules.species.CounterpointState.future_key` (everything the rules can
read from a state and the states after it), so each state is judged once per exercise and later
episodes mostly read a dictionary. The search walks forward and back on one copy of the state
(``push``/``pop``), and judges the states it visits by their rule mask alone. A search larger
than ``node_budget`` states gives up and keeps the note (the environment then truncates the
rare dead end).

On a fresh exercise most of the time goes to states never judged before. Three things keep
that cheap: the static rules' verdicts for every (last note, time) of the exercise are computed
at once, vectorised, when the first state is judged (:class:`StaticTable`); rules registered
``key_only`` are cached by their key alone, across last notes and times; and the keyed rules'
verdicts are shared by every state with the same last note, time and key.

From a process's second exercise on, :meth:`CounterpointOracle.mask` runs all of this as
compiled code (:mod:`musicgym.music.rules.fastmask`: the same masks, bit for bit) where it
covers the rules; this module's Python path stays the reference and serves the rest.

Caching is only sound for rules that read nothing beyond the signature; the built-in ones do
(with their parameters looking back at most 2 moves). Rule sets with user functions or longer
look-backs are evaluated afresh at every step, without lookahead.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from musicgym.music.rules.registry import RULES
from musicgym.music.rules.ruleset import RuleSet, _allowed, _cached
from musicgym.music.rules.species import (
    ACTION_DURATIONS,
    ACTION_MOVES,
    EIGHTHS_PER_BAR,
    Candidates,
    CounterpointSetup,
    CounterpointState,
)

_LOOKBACK_PARAMS = {"max_n_repetitions": 3, "max_n_skips": 2}
# actions in the order the dead-end search tries them (the longest notes first, which leave
# the fewest notes to write, then the smallest moves, which finish pieces most often; the
# answer does not depend on the order, only the search's length), and plain-int look-ups of
# each action's move and duration
_SEARCH_ORDER = np.lexsort((np.abs(ACTION_MOVES), -ACTION_DURATIONS))
_MOVES, _DURATIONS = ACTION_MOVES.tolist(), ACTION_DURATIONS.tolist()
# the dead-end search's rule masks are Python ints, bit i standing for the action tried i-th
# (_SEARCH_ORDER[i]): ANDing a state's rule verdicts and listing its actions in search order
# then cost a few integer operations instead of NumPy calls on 60-element arrays
_ORDER_LIST = _SEARCH_ORDER.tolist()
_ALL_BITS = (1 << len(_ORDER_LIST)) - 1


def _bits(mask: np.ndarray | None) -> int:
    """A bool mask over the actions (None: all allowed) as search-order bits."""
    if mask is None:
        return _ALL_BITS
    return int.from_bytes(np.packbits(mask[_SEARCH_ORDER], bitorder="little").tobytes(),
                          "little")


def _bits_order(bits: int) -> list[int]:
    """The actions of search-order ``bits``, in search order."""
    order = []
    while bits:
        low = bits & -bits
        order.append(_ORDER_LIST[low.bit_length() - 1])
        bits ^= low
    return order


_NO_PENALTIES = np.zeros(len(ACTION_MOVES))  # every candidate's reward without penalty rules
_NO_PENALTIES.flags.writeable = False

_FAST_MASKS_SIZE = 200_000  # compiled masks kept by future key (then the memo answers)

_EXERCISES_STARTED = 0  # oracles that chose their path (see CounterpointOracle's compiled)


class _BudgetExceeded(Exception):
    pass


def cacheable(ruleset: RuleSet) -> bool:
    """Whether every rule of ``ruleset`` is a built-in one that reads only the signature."""
    for rule, params in ruleset.rules.values():
        if rule.source == "user" or RULES.get(rule.name) is not rule:
            return False
        if any((params.get(k) or 0) > limit for k, limit in _LOOKBACK_PARAMS.items()):
            return False
    return True


class CounterpointOracle:
    """Rule verdicts for the states of one exercise, cached, with optional dead-end lookahead.

    Parameters
    ----------
    ruleset : RuleSet
        The rules (masks and penalties) in force.
    lookahead : bool
        Remove notes after which the piece cannot be finished.
    node_budget : int
        Largest number of new states one lookahead query may visit.
    max_cache_size : int
        The caches are emptied when they grow past this many states.
    compiled : bool or None
        True: give :meth:`mask` by the compiled rules and search of
        :mod:`musicgym.music.rules.fastmask` where they cover the rules (the strict rules or
        a subset, all masks, default parameters): the same masks, without the Python path's
        cost on a fresh exercise (about 10x less), for a one-off cost per process of loading
        the compiled code (about 0.5 s of CPU; compiling it, on a first run, takes seconds).
        False: the Python path (the reference). None (default): the compiled path from the
        second exercise a process judges on, so that a process working on one exercise never
        pays for loading it, and one working through many does once.
    """

    def __init__(self, ruleset: RuleSet, *, lookahead: bool = True, node_budget: int = 20_000,
                 max_cache_size: int = 2_000_000, compiled: bool | None = None) -> None:
        self.ruleset = ruleset
        self.compiled = compiled
        self._fast: list | None = None  # the compiled path's exercise arrays and memos
        self._fast_masks: dict[tuple, np.ndarray] = {}  # its masks, by future key
        self.cached = cacheable(ruleset)
        self.lookahead = lookahead and self.cached
        self.node_budget = node_budget
        self.max_cache_size = max_cache_size
        self._verdicts: dict[tuple, tuple] = {}
        self._feasible: dict[tuple, bool] = {}
        self._safe: dict[tuple, np.ndarray] = {}
        self._statics: dict[tuple, tuple] = {}
        self._masks: dict[tuple, tuple[np.ndarray, list[int]]] = {}
        # the dead-end search's: allowed actions in search order by signature, and the
        # search-order bits of the static verdicts by (last note, time) and of the keyed
        # rules' by their cache keys
        self._orders: dict[tuple, list[int]] = {}
        self._static_bits: dict[tuple, int] = {}
        self._rule_bits: dict[tuple, int] = {}
        self._shared: dict[tuple, tuple] = {}  # verdicts of key_only rules, by key
        self._table: StaticTable | bool | None = None  # built at the first state judged
        self._nodes = 0

    def check(self, state: CounterpointState) -> tuple[np.ndarray, np.ndarray, dict]:
        """Rule mask, penalty reward and raw rule outputs for all 60 candidates (as
        :meth:`RuleSet.check`), before lookahead."""
        if not self.cached:
            return self.ruleset.check(state, *self._static(state)[:3])
        key = state.signature()
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) > self.max_cache_size:
                self._verdicts.clear()
                self._statics.clear()
            verdict = self.ruleset.check(state, *self._static(state), self._shared)
            self._verdicts[key] = verdict
        return verdict

    def step_rewards(self, state: CounterpointState) -> np.ndarray:
        """The penalty reward of each of the 60 candidates (the second part of :meth:`check`,
        the same values), without judging the state where no rule is a penalty (the env's
        default: every rule a mask), for a search that needs only the rewards. Read only."""
        if not self.ruleset.penalty_rules:
            return _NO_PENALTIES
        return self.check(state)[1]

    def _static(self, state: CounterpointState) -> tuple:
        """The state's candidates, frame mask and static rules' verdicts, and the cache of
        keyed rules' verdicts, shared by every state with the same last note and time (see
        :meth:`RuleSet.check_static` and :meth:`RuleSet.check`). With cached rules, the
        static verdicts of every (last note, time) of the exercise are computed at the first
        call, all at once (:class:`StaticTable`)."""
        key = (state.positions[-1], state.time)
        entry = self._statics.get(key)
        if entry is None:
            if self._table is None:
                self._table = (StaticTable(self.ruleset, state.setup)
                               if self.cached and StaticTable.supports(self.ruleset) else False)
            entry = self._table.entry(*key) if self._table else None
            if entry is None:
                cand, base = state.candidates(), state.frame_mask()
                entry = (cand, base, self.ruleset.check_static(state, cand, base), {})
            self._statics[key] = entry
        return entry

    def rule_mask(self, state: CounterpointState) -> np.ndarray:
        """The rule mask of :meth:`check` alone (cheaper: no rewards or outputs are built)."""
        return self._rule_mask(state)[0]

    def _rule_mask(self, state: CounterpointState) -> tuple[np.ndarray, list[int]]:
        """The rule mask and the allowed actions in search order, cached by signature."""
        if not self.cached:
            mask = self.check(state)[0]
            return mask, _SEARCH_ORDER[mask[_SEARCH_ORDER]].tolist()
        key = state.signature()
        found = self._masks.get(key)
        if found is None:
            if len(self._masks) > self.max_cache_size:
                self._masks.clear()
                self._statics.clear()
            verdict = self._verdicts.get(key)
            if verdict is not None:
                mask = verdict[0]
            else:
                cand, _, static, keyed = self._static(state)
                mask = self.ruleset.check_mask(state, cand, static[0], keyed, self._shared)
            found = self._masks[key] = (
                mask, _SEARCH_ORDER[mask[_SEARCH_ORDER]].tolist())
        return found

    def _search_actions(self, state: CounterpointState) -> list[int]:
        """The actions the rules allow in ``state``, in search order (those of
        :meth:`_rule_mask`), cached by signature; the rule verdicts are ANDed as search-order
        bits (the same verdicts, from the same caches as :meth:`RuleSet.check_mask`)."""
        key = state.signature()
        order = self._orders.get(key)
        if order is not None:
            return order
        if not self.cached:
            return self._rule_mask(state)[1]
        if len(self._orders) > self.max_cache_size:
            self._orders.clear()
            self._static_bits.clear()
            self._rule_bits.clear()
        found = self._masks.get(key)
        if found is not None:
            order = self._orders[key] = found[1]
            return order
        where = (state.positions[-1], state.time)
        bits = self._static_bits.get(where)
        cand = keyed = None
        if bits is None:
            cand, _, static, keyed = self._static(state)
            bits = self._static_bits[where] = _bits(static[0])
        rule_bits, shared = self._rule_bits, self._shared
        for name, fn, rule_key, key_only in self.ruleset.dynamic_mask_rules:
            if rule_key is None:
                if cand is None:
                    cand, _, _, keyed = self._static(state)
                bits &= _bits(_allowed(fn(state, cand)))
                continue
            value = rule_key(state)
            cache_key = (name, value) if key_only else (name, value, where)
            found_bits = rule_bits.get(cache_key)
            if found_bits is None:
                if cand is None:
                    cand, _, _, keyed = self._static(state)
                allowed = _cached(shared if key_only else keyed, name, rule_key, fn, state,
                                  cand, _allowed)[1]
                found_bits = rule_bits[cache_key] = _bits(allowed)
            bits &= found_bits
        order = self._orders[key] = _bits_order(bits)
        return order

    def mask(self, state: CounterpointState) -> np.ndarray:
        """Candidates allowed by the rules and, with lookahead, not leading to a dead end."""
        if self.compiled is None:  # the first mask: choose the path for this exercise
            global _EXERCISES_STARTED
            _EXERCISES_STARTED += 1
            self.compiled = _EXERCISES_STARTED > 1
        if self.compiled and not state.finished:
            fast = self._fast or self._start_compiled(state.setup)
            if fast:
                # the compiled memo's answer by future key, read here without the call
                # (which costs microseconds even when it only reads its memo)
                key = state.future_key()
                mask = self._fast_masks.get(key)
                if mask is not None:
                    return mask.copy()
                exercise = fast[0]
                n_safe = exercise[self._n_safe]
                mask, fast[1], fast[2] = self._state_mask(
                    exercise, fast[1], fast[2],
                    self._state_array(state, self.node_budget, self.lookahead,
                                      self.max_cache_size), state.midi_at_eighth)
                if exercise[self._n_safe] < n_safe or len(self._fast_masks) > _FAST_MASKS_SIZE:
                    # the memo was emptied (its later answers may differ where a search ran
                    # out of budget): keep only answers it holds now
                    self._fast_masks.clear()
                self._fast_masks[key] = mask.copy()
                return mask
        if not self.lookahead:
            return self._rule_mask(state)[0]
        key = state.future_key()
        safe = self._safe.get(key)
        if safe is None:
            if len(self._safe) > self.max_cache_size:
                self._safe.clear()
                self._feasible.clear()
            feasible = []
            work = state.copy()  # the search walks forward and back on this one copy
            # the rule mask's actions in action order, each kept if the piece can be finished
            for action in sorted(self._search_actions(state)):
                record = work.push(_MOVES[action], _DURATIONS[action])
                if self._query(work):
                    feasible.append(action)
                work.pop(record)
            safe = np.zeros(len(_MOVES), dtype=bool)
            safe[feasible] = True
            self._safe[key] = safe
        return safe

    def _start_compiled(self, setup: CounterpointSetup) -> list | bool:
        """The compiled path's arguments for this exercise (its arrays and two empty memos),
        or False (kept) where it does not cover the rules or the exercise."""
        from musicgym.music.rules import fastmask

        if not (self.cached and fastmask.supports(self.ruleset)
                and setup.total_eighths < fastmask.MAX_EIGHTHS
                and setup.position_midi[setup.highest_position] <= fastmask.MAX_MIDI):
            self.compiled = False
            return False
        self._state_mask, self._state_array = fastmask.state_mask, fastmask.state_array
        self._n_safe = fastmask.SAFE_MEMO_SIZE
        self._fast = [fastmask.exercise_array(setup, self.ruleset), fastmask.new_memo(),
                      fastmask.new_memo()]
        return self._fast

    def _query(self, state: CounterpointState) -> bool:
        self._nodes = 0
        try:
            return self._can_finish(state)
        except _BudgetExceeded:
            return True

    def _can_finish(self, state: CounterpointState) -> bool:
        """Whether the piece can be finished from ``state`` (left as it was found)."""
        if state.finished:
            return True
        key = state.future_key()
        known = self._feasible.get(key)
        if known is not None:
            return known
        self._nodes += 1
        if self._nodes > self.node_budget:
            raise _BudgetExceeded
        result = False
        for action in self._search_actions(state):
            record = state.push(_MOVES[action], _DURATIONS[action])
            try:
                found = self._can_finish(state)
            finally:
                state.pop(record)
            if found:
                result = True
                break
        self._feasible[key] = result
        return result


class _Rows:
    """Stands for a batch of states in :class:`StaticTable`: the last note of each row, as an
    (n, 1) column (all that static rules read of a state besides the exercise)."""

    def __init__(self, setup: CounterpointSetup, positions: np.ndarray) -> None:
        self.setup = setup
        self.positions = [positions]
        self.midis = [setup.position_midi[positions]]


class StaticTable:
    """The verdicts of the static rules (and the frame mask) for every (last note, time) of
    one exercise, computed at once: the rule functions run on candidates of shape (n, 60),
    one row per last note in the range and eighth from the second bar to the last, so each
    rule costs a few NumPy operations for the whole exercise instead of one call per
    (last note, time) met.

    Only the built-in counterpoint rules are judged this way (they are written branch-free
    for it); :meth:`supports` says whether a rule set's static rules all are.
    """

    def __init__(self, ruleset: RuleSet, setup: CounterpointSetup) -> None:
        low, high = setup.lowest_position, setup.highest_position
        times = np.arange(EIGHTHS_PER_BAR, setup.final_bar_eighth)
        positions, starts = (a.reshape(-1, 1) for a in np.meshgrid(
            np.arange(low, high + 1), times, indexing="ij"))
        self.setup, self._low, self._times = setup, low, len(times)
        cand = object.__new__(Candidates)
        cand.move, cand.duration = ACTION_MOVES, ACTION_DURATIONS
        cand.position = positions + ACTION_MOVES
        cand.midi = setup.position_midi[np.clip(cand.position, 0, len(setup.position_midi) - 1)]
        cand.start = starts
        cand.end = starts + ACTION_DURATIONS
        cand.cf_start_midi = setup.cantus_midi[starts // EIGHTHS_PER_BAR]
        last_bar = np.minimum((cand.end - 1) // EIGHTHS_PER_BAR, setup.n_bars - 1)
        cand.cf_end_midi = setup.cantus_midi[last_bar]
        base = ((cand.position >= low) & (cand.position <= high)
                & (np.abs(cand.move) <= setup.max_skip_degrees)
                & (cand.end <= setup.final_bar_eighth))
        self._cand, self._base = cand, base
        self._mask, self._outputs, self._terms = ruleset.check_static(
            _Rows(setup, positions), cand, base)

    @staticmethod
    def supports(ruleset: RuleSet) -> bool:
        """Whether every static rule of ``ruleset`` is a built-in counterpoint rule."""
        return all(rule.fn.__module__ == __name__.rsplit(".", 1)[0] + ".counterpoint"
                   for rule, _ in ruleset.rules.values() if rule.static)

    def entry(self, position: int, time: int) -> tuple | None:
        """What :meth:`CounterpointOracle._static` keeps for one (last note, time), or None
        outside the table."""
        row = (position - self._low) * self._times + time - EIGHTHS_PER_BAR
        if not (0 <= position - self._low and 0 <= time - EIGHTHS_PER_BAR < self._times
                and row < len(self._base)):
            return None
        full, setup = self._cand, self.setup
        cand = object.__new__(Candidates)
        cand.move, cand.duration = full.move, full.duration
        cand.position, cand.midi = full.position[row], full.midi[row]
        cand.start, cand.end = time, full.end[row]
        cand.cf_start_midi = int(setup.cantus_midi[time // EIGHTHS_PER_BAR])
        cand.cf_end_midi = full.cf_end_midi[row]
        return (cand, self._base[row],
                (self._mask[row], _RowView(self._outputs, row), _RowView(self._terms, row)), {})


class _RowView(Mapping):
    """One row of :class:`StaticTable`'s outputs (or penalty terms) by rule name, read only
    when asked for (a search that needs only the mask never builds it)."""

    __slots__ = ("_table", "_row")

    def __init__(self, table: dict, row: int) -> None:
        self._table, self._row = table, row

    def __getitem__(self, name: str):
        value = self._table[name]
        return value[self._row] if np.ndim(value) == 2 else value  # scalar: true of every row

    def __iter__(self):
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)
