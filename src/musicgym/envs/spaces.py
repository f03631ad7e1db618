"""RaveForce-style parameter mappings: what the agent outputs -> values for the patch's holes.

A spec is a list with one entry per hole of the patch, in order:

* ``("lin", lo, hi)``: linear, the agent's ``u`` in [-1, 1] maps to ``lo + (u + 1) / 2 (hi - lo)``;
* ``("exp", lo, hi)``: exponential (``lo > 0``), equal steps in ``log`` (frequencies, times);
* ``("rel", index, fn)``: not chosen by the agent: ``fn(value of hole index)``, an earlier hole;
  ``fn`` is a callable or a string expression in ``x`` (e.g. ``"0.5 - x"``). A string is data,
  never Python: it may use only ``x``, numbers, ``+ - * / **``, unary minus, parentheses, the
  constants ``pi`` and ``e`` and the functions exp, log, log2, log10, sqrt, sin, cos, floor,
  ceil, abs, round, min, max; it is evaluated on NumPy arrays, and a value with no finite result
  (``x / 0``, ``log`` of a negative) raises ``ActionSpaceError``;
* ``("choose", [v1, v2, ...])``: one of the values (a ``Discrete`` choice).

The agent sees ``Box(-1, 1)`` for the continuous holes and ``Discrete``/``MultiDiscrete`` for the
choices (a ``Dict`` with both when there are both), or, with ``flat=True``, one ``Box(-1, 1)``
with one coordinate per chosen hole in hole order, a choice being the bucket of its coordinate.
Mapping lives here, apart from the DSP.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from musicgym.errors import ActionSpaceError


@dataclass(frozen=True)
class Mapping:
    """One hole's mapping (see the module docstring)."""

    kind: str
    lo: float = 0.0
    hi: float = 1.0
    index: int = -1
    fn: Callable[[np.ndarray], np.ndarray] | None = None
    choices: tuple[float, ...] = ()


# Expressions are data (they come from YAML configs and are saved in run folders), so they are
# parsed into a tree of arithmetic and evaluated here, on NumPy arrays: no Python code is run.
_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "exp": np.exp, "log": np.log, "log2": np.log2, "log10": np.log10, "sqrt": np.sqrt,
    "sin": np.sin, "cos": np.cos, "floor": np.floor, "ceil": np.ceil, "abs": np.abs,
    "round": np.round, "min": np.minimum, "max": np.maximum,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_ARITY = {name: (2, None) if name in ("min", "max") else (1, 1) for name in _FUNCTIONS}
_BINARY: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide,
    ast.Pow: np.power,
}
_MAX_EXPRESSION_CHARS = 500
_MAX_EXPRESSION_NODES = 200
# an expression that fails at all of these is wrong whatever its hole's range
_PROBES = (-100.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0, 440.0)
_ALLOWED = f"x, numbers, + - * / **, parentheses, {sorted(_CONSTANTS)} and the functions " \
           f"{sorted(_FUNCTIONS)}"


def _build(text: str, where: str) -> Callable[[np.ndarray], np.ndarray]:
    """Check the tree of ``text`` and return its evaluator, a closure over NumPy ufuncs."""
    if len(text) > _MAX_EXPRESSION_CHARS:
        raise ActionSpaceError(f"{where}: the expression is {len(text)} characters long; at "
                               f"most {_MAX_EXPRESSION_CHARS} are allowed")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = getattr(exc, "msg", None) or type(exc).__name__
        raise ActionSpaceError(f"{where}: cannot parse the expression {text!r}: {reason}") \
            from None
    n_nodes = sum(1 for _ in ast.walk(tree))
    if n_nodes > _MAX_EXPRESSION_NODES:
        raise ActionSpaceError(f"{where}: the expression {text!r} has {n_nodes} parts; at most "
                               f"{_MAX_EXPRESSION_NODES} are allowed")

    def refuse(what: str) -> ActionSpaceError:
        return ActionSpaceError(f"{where}: the expression {text!r} uses {what}; only "
                                f"{_ALLOWED} are allowed")

    def node(n: ast.AST) -> Callable[[np.ndarray], np.ndarray]:
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            value = float(n.value)
            if not math.isfinite(value):
                raise ActionSpaceError(f"{where}: the number {ast.unparse(n)} in {text!r} is not "
                                       "finite")
            return lambda x: np.full_like(x, value)
        if isinstance(n, ast.Name):
            if n.id == "x":
                return lambda x: x
            if n.id in _CONSTANTS:
                value = _CONSTANTS[n.id]
                return lambda x: np.full_like(x, value)
            raise refuse(repr([n.id]))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            inner = node(n.operand)
            return (lambda x: -inner(x)) if isinstance(n.op, ast.USub) else inner
        if isinstance(n, ast.BinOp) and type(n.op) in _BINARY:
            op, left, right = _BINARY[type(n.op)], node(n.left), node(n.right)
            return lambda x: op(left(x), right(x))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and not n.keywords:
            name = n.func.id
            if name not in _FUNCTIONS:
                raise refuse(repr([name]))
            least, most = _ARITY[name]
            if len(n.args) < least or (most is not None and len(n.args) > most):
                raise ActionSpaceError(f"{where}: {name}() in {text!r} takes "
                                       f"{least if most == least else f'{least} or more'} "
                                       f"argument(s), got {len(n.args)}")
            fn, args = _FUNCTIONS[name], [node(a) for a in n.args]
            if len(args) == 1:
                return lambda x: fn(args[0](x))
            return lambda x: functools.reduce(fn, (a(x) for a in args))
        raise refuse(f"{type(n).__name__!r} ({ast.unparse(n)[:40]})")

    return node(tree.body)


def _expression(text: str, where: str) -> Callable[[np.ndarray], np.ndarray]:
    """A ``rel`` expression in ``x`` as a vectorised function; bad values raise ActionSpaceError.

    An expression with no finite value at any of a few probe values of ``x`` (``x / 0``,
    ``log(-1)``) is refused here, when the space is made, rather than at the first step.
    """
    evaluate = _build(text, where)

    def fn(x) -> np.ndarray:
        values = np.asarray(x, dtype=np.float64)
        # underflow to 0 is harmless; a division by zero, an overflow or a domain error is not
        with np.errstate(all="raise", under="ignore"):
            try:
                out = evaluate(values)
            except FloatingPointError as exc:
                bad = values.ravel()[:3].tolist()
                raise ActionSpaceError(f"{where}: the expression {text!r} has no finite value "
                                       f"for x = {bad} ({exc}); write one defined on the whole "
                                       "range of the hole it reads") from None
        return out

    failures = 0
    for probe in _PROBES:
        try:
            fn(np.array([probe]))
        except ActionSpaceError as exc:
            failures, last = failures + 1, exc
    if failures == len(_PROBES):
        raise last
    return fn


def parse_spec(spec: Sequence, n_holes: int | None = None) -> list[Mapping]:
    """Validate a RaveForce action-space list into mappings.

    Raises
    ------
    ActionSpaceError
        Which entry is wrong and how to write it: lo >= hi, exp with lo <= 0, rel pointing at
        itself, forward or out of range, empty choose, unknown kind, or a count different from
        the patch's holes.
    """
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence):
        raise ActionSpaceError("action_space must be a list such as [('lin', 0.0, 1.0), "
                               "('exp', 20.0, 2000.0)], one entry per hole")
    if n_holes is not None and len(spec) != n_holes:
        raise ActionSpaceError(f"action_space has {len(spec)} entries but the code has "
                               f"{n_holes} holes: give one entry per hole, in order")
    out = []
    for i, entry in enumerate(spec):
        where = f"action_space[{i}]"
        if not isinstance(entry, (tuple, list)) or not entry:
            raise ActionSpaceError(f"{where} must be a tuple like ('lin', lo, hi), got {entry!r}")
        kind = entry[0]
        if kind in ("lin", "exp"):
            if len(entry) != 3:
                raise ActionSpaceError(f"{where}: write ({kind!r}, lo, hi), got {entry!r}")
            try:
                lo, hi = float(entry[1]), float(entry[2])
            except (TypeError, ValueError) as exc:
                raise ActionSpaceError(f"{where}: lo and hi must be numbers, got {entry!r}") \
                    from exc
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo >= hi:
                raise ActionSpaceError(f"{where}: needs finite lo < hi, got lo={lo}, hi={hi}")
            if kind == "exp" and lo <= 0:
                raise ActionSpaceError(f"{where}: an 'exp' range needs lo > 0 (it is mapped in "
                                       f"log space), got lo={lo}; use 'lin' for ranges with 0")
            out.append(Mapping(kind, lo, hi))
        elif kind == "rel":
            if len(entry) != 3 or not isinstance(entry[1], (int, np.integer)):
                raise ActionSpaceError(f"{where}: write ('rel', index, fn), got {entry!r}")
            index = int(entry[1])
            if not 0 <= index < i:
                raise ActionSpaceError(f"{where}: 'rel' must point at an earlier hole "
                                       f"(0..{i - 1}), got index {index}")
            fn = entry[2]
            if isinstance(fn, str):
                fn = _expression(fn, where)
            elif not callable(fn):
                raise ActionSpaceError(f"{where}: the third item must be a function or an "
                                       f"expression in x, got {fn!r}")
            out.append(Mapping("rel", index=index, fn=fn))
        elif kind == "choose":
            if len(entry) != 2 or not isinstance(entry[1], (list, tuple)) or not entry[1]:
                raise ActionSpaceError(f"{where}: write ('choose', [v1, v2, ...]) with at least "
                                       f"one value, got {entry!r}")
            try:
                choices = tuple(float(v) for v in entry[1])
            except (TypeError, ValueError) as exc:
                raise ActionSpaceError(f"{where}: choices must be numbers") from exc
            if not all(np.isfinite(choices)):
                raise ActionSpaceError(f"{where}: choices must be finite numbers")
            out.append(Mapping("choose", choices=choices))
        else:
            raise ActionSpaceError(f"{where}: unknown kind {kind!r}; use 'lin', 'exp', 'rel' "
                                   "or 'choose'")
    return out


class ParameterMap:
    """Maps agent actions to a (B, P) parameter matrix for a patch.

    Parameters
    ----------
    spec : list
        RaveForce-style spec, one entry per hole.
    flat : bool
        One ``Box(-1, 1)`` for everything (choices bucketed) instead of Box/Discrete/Dict.
    clip : bool
        Clip out-of-range continuous actions instead of raising.
    """

    def __init__(self, spec: Sequence, *, n_holes: int | None = None, flat: bool = False,
                 clip: bool = False) -> None:
        self.mappings = parse_spec(spec, n_holes)
        self.flat = flat
        self.clip = clip
        self.continuous = [i for i, m in enumerate(self.mappings) if m.kind in ("lin", "exp")]
        self.discrete = [i for i, m in enumerate(self.mappings) if m.kind == "choose"]
        self.space = self._space()

    def _space(self) -> spaces.Space:
        n_c, sizes = len(self.continuous), [len(self.mappings[i].choices) for i in self.discrete]
        if self.flat or (n_c and not sizes):
            n = n_c + (len(sizes) if self.flat else 0)
            if n == 0:
                raise ActionSpaceError("the action space has no dimension the agent chooses")
            return spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
        if not n_c:
            if not sizes:
                raise ActionSpaceError("the action space has no dimension the agent chooses")
            return spaces.Discrete(sizes[0]) if len(sizes) == 1 else \
                spaces.MultiDiscrete(np.array(sizes, dtype=np.int64))
        return spaces.Dict({"continuous": spaces.Box(-1.0, 1.0, shape=(n_c,), dtype=np.float32),
                            "discrete": spaces.MultiDiscrete(np.array(sizes, dtype=np.int64))})

    # -- actions -> parameters -------------------------------------------------------------
    def split(self, actions, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(continuous (B, n_c) in [-1, 1], choice indices (B, n_d)) from a batch of actions."""
        try:
            return self._split(actions, batch)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            if isinstance(exc, ActionSpaceError):
                raise
            raise ActionSpaceError(f"an action must be a sample of {self.space}, got "
                                   f"{str(actions)[:80]!r} ({exc})") from None

    def _split(self, actions, batch: int) -> tuple[np.ndarray, np.ndarray]:
        n_c, n_d = len(self.continuous), len(self.discrete)
        if isinstance(self.space, spaces.Dict):
            cont = np.asarray(actions["continuous"], dtype=np.float64).reshape(batch, n_c)
            idx = np.asarray(actions["discrete"]).reshape(batch, n_d)
        elif isinstance(self.space, spaces.Box):
            flat = np.asarray(actions, dtype=np.float64).reshape(batch, -1)
            if flat.shape[1] != self.space.shape[0]:
                raise ActionSpaceError(f"expected actions of shape ({self.space.shape[0]},), "
                                       f"got {np.shape(actions)}")
            flat = self._check_box(flat)
            if not self.flat:
                return flat, np.zeros((batch, 0), dtype=np.int64)
            # flat: one coordinate per chosen hole, in hole order; a choice is its bucket
            agent = [i for i, m in enumerate(self.mappings) if m.kind != "rel"]
            cont = flat[:, [agent.index(i) for i in self.continuous]]
            u = (flat[:, [agent.index(i) for i in self.discrete]] + 1.0) / 2.0
            sizes = np.array([len(self.mappings[i].choices) for i in self.discrete])
            idx = np.minimum((u * sizes).astype(np.int64), sizes - 1)
        else:
            cont = np.zeros((batch, 0))
            idx = np.asarray(actions).reshape(batch, n_d)
        cont = self._check_box(cont)
        sizes = np.array([len(self.mappings[i].choices) for i in self.discrete], dtype=np.int64)
        if idx.size and (not np.issubdtype(idx.dtype, np.integer) or (idx < 0).any()
                         or (idx >= sizes).any()):
            raise ActionSpaceError(f"choice actions must be integers in [0, {list(sizes)}), "
                                   f"got {idx.tolist()}")
        return cont, idx.astype(np.int64)

    def _check_box(self, cont: np.ndarray) -> np.ndarray:
        if not np.isfinite(cont).all():
            raise ActionSpaceError("actions must be finite numbers (got NaN or inf)")
        if self.clip:
            return np.clip(cont, -1.0, 1.0)
        if (np.abs(cont) > 1.0 + 1e-6).any():
            raise ActionSpaceError(f"continuous actions must lie in [-1, 1], got "
                                   f"{cont.min():.4g}..{cont.max():.4g}; pass clip_actions=True "
                                   "to clip them instead")
        return np.clip(cont, -1.0, 1.0)

    def params(self, actions, batch: int = 1) -> np.ndarray:
        """The (B, P) parameter matrix for a batch of B actions."""
        cont, idx = self.split(actions, batch)
        out = np.zeros((batch, len(self.mappings)))
        for j, i in enumerate(self.continuous):
            m = self.mappings[i]
            u = (cont[:, j] + 1.0) / 2.0
            if m.kind == "lin":
                out[:, i] = m.lo + u * (m.hi - m.lo)
            else:
                out[:, i] = np.exp(np.log(m.lo) + u * (np.log(m.hi) - np.log(m.lo)))
        for j, i in enumerate(self.discrete):
            out[:, i] = np.asarray(self.mappings[i].choices)[idx[:, j]]
        for i, m in enumerate(self.mappings):
            if m.kind == "rel":
                out[:, i] = np.asarray(m.fn(out[:, m.index]), dtype=np.float64).reshape(batch)
        return out
