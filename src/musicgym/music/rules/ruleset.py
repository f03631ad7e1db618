"""A chosen set of rules, each used as a hard mask or as a soft penalty, checked all at once.

A rule's output for a candidate is *allowed* (a bool) or a *reward* (a float, negative when the
rule dislikes the candidate). As a mask, a rule removes the candidates it does not allow (or
rewards below zero); as a penalty, it adds ``weight`` times its reward (``-weight`` per
violation for bool rules) to the step's reward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from musicgym.errors import RuleError
from musicgym.music.rules.registry import Rule, get_rule

RuleSpec = str | Callable[..., Any]


class RuleSet:
    """Rules bound to their parameters and modes.

    Parameters
    ----------
    task : {"counterpoint", "melody"}
        Which registry section names refer to.
    masks : iterable of str or callable
        Rules used as hard masks.
    penalties : mapping of str or callable to float
        Rules used as soft penalties, with their weights.
    params : mapping of str to dict, optional
        Parameters per rule name, overriding its defaults.

    Raises
    ------
    RuleError
        For an unknown rule, a rule both masked and penalised, a bad parameter or weight.
    """

    def __init__(
        self,
        task: str,
        masks: Iterable[RuleSpec] = (),
        penalties: Mapping[RuleSpec, float] | None = None,
        params: Mapping[str, dict] | None = None,
    ) -> None:
        params = dict(params or {})
        penalties = dict(penalties or {})
        self.task = task
        self.mask_rules: dict[str, Callable[..., Any]] = {}
        self.penalty_rules: dict[str, tuple[Callable[..., Any], float]] = {}
        # name -> (Rule, parameters in force), for introspection and caching decisions
        self.rules: dict[str, tuple[Rule, dict[str, Any]]] = {}
        for spec in masks:
            rule = get_rule(spec, task=task)
            self.rules[rule.name] = (rule, {**rule.defaults, **params.get(rule.name, {})})
            self.mask_rules[rule.name] = rule.bind(params.pop(rule.name, None))
        for spec, weight in penalties.items():
            rule = get_rule(spec, task=task)
            if rule.name in self.mask_rules:
                raise RuleError(f"rule {rule.name!r} is both a mask and a penalty; choose one")
            if not np.isfinite(weight):
                raise RuleError(f"penalty weight of {rule.name!r} must be finite, got {weight!r}")
            self.rules[rule.name] = (rule, {**rule.defaults, **params.get(rule.name, {})})
            self.penalty_rules[rule.name] = (rule.bind(params.pop(rule.name, None)), float(weight))
        # (mask rules, penalty rules) registered static (True) and the others (False), each
        # with its registered key function (or None) and whether the key alone decides
        key = {n: (self.rules[n][0].key, self.rules[n][0].key_only) for n in self.rules}
        self._split = {static: (
            [(n, fn, *key[n]) for n, fn in self.mask_rules.items()
             if self.rules[n][0].static == static],
            [(n, fn, w, *key[n]) for n, (fn, w) in self.penalty_rules.items()
             if self.rules[n][0].static == static]) for static in (True, False)}
        if params:
            raise RuleError(
                f"parameters given for rules that are not in use: {', '.join(sorted(params))}"
            )

    @property
    def names(self) -> list[str]:
        """Names of all rules in use, masks first."""
        return [*self.mask_rules, *self.penalty_rules]

    def check(self, state: Any, cand: Any, base_mask: np.ndarray,
              static: tuple | None = None, keyed: dict | None = None,
              shared: dict | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Judge all candidates.

        ``static``, if given, is :meth:`check_static`'s result for the same candidates and
        ``base_mask``, reused instead of running the static rules again. ``keyed``, if given,
        is a cache, shared by the states with the same candidates (last note and time), of the
        outputs of the rules registered with a ``key``: a rule's output is looked up there by
        (name, ``key(state)``) and stored on a miss. Give it only for built-in rules whose
        keys cover their parameters (see ``musicgym.music.rules.lookahead.cacheable``).
        ``shared``, if given, is the same kind of cache for the rules registered
        ``key_only``, shared by every state of the exercise (``keyed`` serves if it is not
        given).

        Returns
        -------
        mask : ndarray of bool, shape (n,)
            ``base_mask`` and every mask rule.
        reward : ndarray of float, shape (n,)
            Sum of the weighted penalty rules' rewards, in the order the rules were given.
        outputs : dict of str to (ndarray or bool)
            Each rule's raw output; :func:`rule_reward` reads one candidate's reward from it.
        """
        if static is None:
            static = self.check_static(state, cand, base_mask)
        mask, static_outputs, static_terms = static
        mask = mask.copy()
        outputs = dict(static_outputs)
        terms = dict(static_terms)
        self._judge(False, state, cand, mask, outputs, terms, keyed,
                    keyed if shared is None else shared)
        reward = np.zeros(len(base_mask))
        for name in self.penalty_rules:
            reward += terms[name]
        return mask, reward, {name: outputs[name] for name in self.names}

    def check_mask(self, state: Any, cand: Any, static_mask: np.ndarray,
                   keyed: dict, shared: dict) -> np.ndarray:
        """Only the mask of :meth:`check` (no rewards, no outputs), for a caller that needs
        nothing else, such as a dead-end search. ``static_mask`` is :meth:`check_static`'s
        mask, ``keyed`` and ``shared`` the caches of keyed rules' outputs given to
        :meth:`check`."""
        mask = static_mask.copy()
        for name, fn, key, key_only in self._split[False][0]:
            if key is not None:
                allowed = _cached(shared if key_only else keyed, name, key, fn, state, cand,
                                  _allowed)[1]
            else:
                allowed = _allowed(fn(state, cand))
            if allowed is not None:
                mask &= allowed
        return mask

    @property
    def dynamic_mask_rules(self) -> list[tuple[str, Callable[..., Any], Any, bool]]:
        """The mask rules not registered ``static``, as :meth:`check_mask` judges them: (name,
        bound function, registered key function or None, whether the key alone decides)."""
        return self._split[False][0]

    def check_static(self, state: Any, cand: Any, base_mask: np.ndarray) -> tuple[
            np.ndarray, dict[str, Any], dict[str, np.ndarray]]:
        """The part of :meth:`check` done by the rules registered ``static``: ``base_mask``
        and their masks, their raw outputs, and their weighted penalty terms. It depends only
        on the candidates, so a caller may reuse it for every state with the same last note
        and time."""
        mask = base_mask.copy()
        outputs: dict[str, Any] = {}
        terms: dict[str, np.ndarray] = {}
        self._judge(True, state, cand, mask, outputs, terms)
        return mask, outputs, terms

    def _judge(self, static: bool, state: Any, cand: Any, mask: np.ndarray,
               outputs: dict[str, Any], terms: dict[str, np.ndarray],
               keyed: dict | None = None, shared: dict | None = None) -> None:
        masks, penalties = self._split[static]
        for name, fn, key, key_only in masks:
            if keyed is not None and key is not None:
                allowed = _cached(shared if key_only else keyed, name, key, fn, state, cand,
                                  _allowed)
                outputs[name] = allowed[0]
                if allowed[1] is not None:
                    mask &= allowed[1]
                continue
            out = fn(state, cand)
            outputs[name] = out
            allowed = _allowed(out)
            if allowed is not None:
                mask &= allowed
        for name, fn, weight, key, key_only in penalties:
            if keyed is not None and key is not None:
                outputs[name], terms[name] = _cached(shared if key_only else keyed, name, key,
                                                     fn, state, cand, _term, weight)
                continue
            out = fn(state, cand)
            outputs[name] = out
            terms[name] = _term(out, weight)


def _cached(cache: dict, name: str, key: Any, fn: Any, state: Any, cand: Any, derive: Any,
            *derive_args: Any) -> tuple[Any, Any]:
    """A keyed rule's (raw output, ``derive(output, *derive_args)``), from ``cache`` under
    ``(name, key(state))``, computed and stored there the first time."""
    cache_key = (name, key(state))
    found = cache.get(cache_key)
    if found is None:
        out = fn(state, cand)
        found = cache[cache_key] = (out, derive(out, *derive_args))
    return found


def _allowed(out: Any) -> np.ndarray | None:
    """A mask rule's output as a bool array (None: every candidate allowed)."""
    if out is True:
        return None
    out = np.asarray(out)
    return out if out.dtype == bool else out >= 0


def _term(out: Any, weight: float) -> np.ndarray:
    """A penalty rule's weighted reward per candidate."""
    out = np.asarray(out)
    return weight * (np.where(out, 0.0, -1.0) if out.dtype == bool else out)


def rule_reward(output: Any, index: int) -> float:
    """Reward of candidate ``index`` in a rule's raw output: 0 or -1 for a bool rule (allowed,
    violated), the value itself for a float rule."""
    value = np.asarray(output)
    value = value[index] if value.ndim else value
    if value.dtype == bool:
        return 0.0 if value else -1.0
    return float(value)
