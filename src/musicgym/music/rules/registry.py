"""The rule registry: every composition rule and score by name, with its default parameters.

A *rule* judges the next note before it is written. It is one function

    rule(state, cand, **params) -> bool array (True = allowed) or float array (a reward)

over all candidate next notes at once (``cand`` holds their pitches, durations and moves, see
``musicgym.music.rules.species.Candidates`` and ``musicgym.music.rules.melody``). The same
function serves as a hard mask (candidates it rejects are never offered) or as a soft penalty
(``weight`` per violation), as the environment's user chooses. A *score* judges a finished piece
and returns a float.

Adding a rule is writing one function::

    @register_rule("no_high_b", task="counterpoint")
    def no_high_b(state, cand):
        return cand.midi != 83

or passing the bare function to an environment (``rules={"no_high_b": fn}``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from musicgym.errors import RuleError


@dataclass(frozen=True)
class Rule:
    """A registered rule or score: its name, function, task and default parameters."""

    name: str
    fn: Callable[..., Any]
    task: str
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    static: bool = False
    key: Callable[[Any], Any] | None = None
    key_only: bool = False

    def bind(self, params: dict[str, Any] | None = None) -> Callable[..., Any]:
        """The function with its parameters fixed (defaults updated by ``params``).

        Raises
        ------
        RuleError
            If ``params`` names a parameter the function does not take.
        """
        params = dict(params or {})
        try:
            accepted = _parameters(self.fn)
        except TypeError:  # an unhashable callable object
            accepted = _parameters.__wrapped__(self.fn)
        unknown = set(params) - accepted
        if unknown:
            raise RuleError(
                f"rule {self.name!r} has no parameter {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(sorted(accepted)) or 'none'}"
            )
        merged = {**self.defaults, **params}
        fn = self.fn
        if not merged:
            return fn

        def bound(*args: Any) -> Any:
            return fn(*args, **merged)

        return bound


@lru_cache(maxsize=1024)
def _parameters(fn: Callable[..., Any]) -> frozenset[str]:
    """The parameters a rule or score function takes besides what it judges (read once per
    function: ``inspect.signature`` costs tens of microseconds, and every env binds ~20)."""
    return frozenset(inspect.signature(fn).parameters) - {"state", "cand", "piece"}


RULES: dict[str, Rule] = {}
SCORES: dict[str, Rule] = {}


def register_rule(name: str, *, task: str, source: str = "", static: bool = False,
                  key: Callable[[Any], Any] | None = None, key_only: bool = False,
                  **defaults: Any):
    """Decorator that registers a rule function under ``name`` for ``task``.

    ``task`` is ``"counterpoint"`` or ``"melody"``; ``source`` says where the rule comes from
    (``"rl-musician"``, ``"rl-tuner"``, ``"musicgym"``); keyword arguments are the defaults.
    ``static=True`` promises that the rule reads nothing of the state but the exercise, the
    time and the last note (all in ``cand``), so its verdicts can be reused across states.
    ``key=f`` promises that it reads, beyond those, only ``f(state)`` (a hashable value), for
    any parameters the env's caches accept: its verdicts are then reused across states with the
    same last note, time and ``f(state)``. ``key_only=True`` (with ``key``) promises more: the
    rule reads nothing but ``f(state)``, the exercise and the candidates' moves and durations
    (not the last note nor the time), so its verdicts are shared by every state with the same
    ``f(state)``.
    """
    if static and key is not None:
        raise RuleError(f"rule {name!r}: give static=True or key=..., not both")
    if key_only and key is None:
        raise RuleError(f"rule {name!r}: key_only=True needs a key=...")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        RULES[name] = Rule(name, fn, task, dict(defaults), source, static, key, key_only)
        return fn

    return decorate


def register_score(name: str, *, task: str = "counterpoint", source: str = "", **defaults: Any):
    """Decorator that registers a whole-piece score function ``fn(piece, **params) -> float``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        SCORES[name] = Rule(name, fn, task, dict(defaults), source)
        return fn

    return decorate


def get_rule(name: str | Callable[..., Any], *, task: str) -> Rule:
    """The registered rule ``name`` for ``task``, or a user's function wrapped as a rule.

    Raises
    ------
    RuleError
        If no rule of that name exists for the task (the message lists the known ones).
    """
    if callable(name):
        return Rule(getattr(name, "__name__", "user_rule"), name, task, {}, "user")
    rule = RULES.get(name)
    if rule is None or rule.task != task:
        known = ", ".join(sorted(r.name for r in RULES.values() if r.task == task))
        raise RuleError(f"unknown {task} rule {name!r}; known rules: {known}")
    return rule


def get_score(name: str) -> Rule:
    """The registered score ``name``.

    Raises
    ------
    RuleError
        If there is none (the message lists the known ones).
    """
    if name not in SCORES:
        raise RuleError(f"unknown score {name!r}; known scores: {', '.join(sorted(SCORES))}")
    return SCORES[name]
