"""Masks that know the future: counterpoint masks cached by state, with dead-end lookahead.

RL-Musician offers every note its rules allow, and a random policy then walks into a dead end
(a state where no note is allowed) in about 99 % of episodes. :class:`CounterpointOracle`
removes those notes too: a note is offered only if some way to finish the piece exists after
it. It finds out by a depth-first search over the piece's states, memoised by
:meth:`~musicgym.music.rules.species.CounterpointState.signature`, so each state is judged once
per exercise and later episodes mostly read a dictionary. A search larger than ``node_budget``
states gives up and keeps the note (the environment then truncates the rare dead end).

Caching is only sound for rules that read nothing beyond the signature; the built-in ones do
(with their parameters looking back at most 2 moves). Rule sets with user functions or longer
look-backs are evaluated afresh at every step, without lookahead.
"""

from __future__ import annotations

import numpy as np

from musicgym.music.rules.registry import RULES
from musicgym.music.rules.ruleset import RuleSet
from musicgym.music.rules.species import ACTION_DURATIONS, ACTION_MOVES, CounterpointState

_LOOKBACK_PARAMS = {"max_n_repetitions": 3, "max_n_skips": 2}
# actions in the order the dead-end search tries them (smallest moves first), and plain-int
# look-ups of each action's move and duration
_SMALL_MOVES_FIRST = np.argsort(np.abs(ACTION_MOVES), kind="stable")
_MOVES, _DURATIONS = ACTION_MOVES.tolist(), ACTION_DURATIONS.tolist()


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
    """

    def __init__(self, ruleset: RuleSet, *, lookahead: bool = True, node_budget: int = 20_000,
                 max_cache_size: int = 2_000_000) -> None:
        self.ruleset = ruleset
        self.cached = cacheable(ruleset)
        self.lookahead = lookahead and self.cached
        self.node_budget = node_budget
        self.max_cache_size = max_cache_size
        self._verdicts: dict[tuple, tuple] = {}
        self._feasible: dict[tuple, bool] = {}
        self._safe: dict[tuple, np.ndarray] = {}
        self._statics: dict[tuple, tuple] = {}
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
            verdict = self.ruleset.check(state, *self._static(state))
            self._verdicts[key] = verdict
        return verdict

    def _static(self, state: CounterpointState) -> tuple:
        """The state's candidates, frame mask and static rules' verdicts, and the cache of
        keyed rules' verdicts, shared by every state with the same last note and time (see
        :meth:`RuleSet.check_static` and :meth:`RuleSet.check`)."""
        key = (state.positions[-1], state.time)
        entry = self._statics.get(key)
        if entry is None:
            cand, base = state.candidates(), state.frame_mask()
            entry = (cand, base, self.ruleset.check_static(state, cand, base), {})
            self._statics[key] = entry
        return entry

    def mask(self, state: CounterpointState) -> np.ndarray:
        """Candidates allowed by the rules and, with lookahead, not leading to a dead end."""
        rule_mask = self.check(state)[0]
        if not self.lookahead:
            return rule_mask
        key = state.signature()
        safe = self._safe.get(key)
        if safe is None:
            if len(self._safe) > self.max_cache_size:
                self._safe.clear()
                self._feasible.clear()
            safe = rule_mask.copy()
            for action in np.flatnonzero(rule_mask).tolist():
                safe[action] = self._query(self._child(state, action))
            self._safe[key] = safe
        return safe

    @staticmethod
    def _child(state: CounterpointState, action: int) -> CounterpointState:
        child = state.copy()
        child.add(_MOVES[action], _DURATIONS[action])
        return child

    def _query(self, state: CounterpointState) -> bool:
        self._nodes = 0
        try:
            return self._can_finish(state)
        except _BudgetExceeded:
            return True

    def _can_finish(self, state: CounterpointState) -> bool:
        if state.finished:
            return True
        key = state.signature()
        known = self._feasible.get(key)
        if known is not None:
            return known
        self._nodes += 1
        if self._nodes > self.node_budget:
            raise _BudgetExceeded
        rule_mask = self.check(state)[0]
        # small moves first: they finish pieces most often, so feasible states resolve fast
        result = False
        for action in _SMALL_MOVES_FIRST[rule_mask[_SMALL_MOVES_FIRST]].tolist():
            if self._can_finish(self._child(state, action)):
                result = True
                break
        self._feasible[key] = result
        return result
