"""RaveForce-style parameter mappings: what the agent outputs -> values for the patch's holes.

A spec is a list with one entry per hole of the patch, in order:

* ``("lin", lo, hi)``: linear, the agent's ``u`` in [-1, 1] maps to ``lo + (u + 1) / 2 (hi - lo)``;
* ``("exp", lo, hi)``: exponential (``lo > 0``), equal steps in ``log`` (frequencies, times);
* ``("rel", index, fn)``: not chosen by the agent: ``fn(value of hole index)``, an earlier hole;
  ``fn`` is a callable or a string expression in ``x`` (e.g. ``"0.5 - x"``);
* ``("choose", [v1, v2, ...])``: one of the values (a ``Discrete`` choice).

The agent sees ``Box(-1, 1)`` for the continuous holes and ``Discrete``/``MultiDiscrete`` for the
choices (a ``Dict`` with both when there are both), or, with ``flat=True``, one ``Box(-1, 1)``
with one coordinate per chosen hole in hole order, a choice being the bucket of its coordinate.
Mapping lives here, apart from the DSP.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from musicgym.errors import ActionSpaceError

_SAFE = {name: getattr(math, name) for name in ("exp", "log", "log2", "log10", "sqrt", "sin",
                                                "cos", "pi", "e", "floor", "ceil")}
_SAFE.update(abs=abs, min=min, max=max, round=round)


@dataclass(frozen=True)
class Mapping:
    """One hole's mapping (see the module docstring)."""

    kind: str
    lo: float = 0.0
    hi: float = 1.0
    index: int = -1
    fn: Callable[[np.ndarray], np.ndarray] | None = None
    choices: tuple[float, ...] = ()


def _expression(text: str, where: str) -> Callable:
    try:
        code = compile(text, f"<{where}>", "eval")
    except SyntaxError as exc:
        raise ActionSpaceError(f"{where}: cannot parse the expression {text!r}: {exc.msg}") \
            from exc
    unknown = set(code.co_names) - set(_SAFE) - {"x"}
    if unknown:
        raise ActionSpaceError(f"{where}: the expression {text!r} uses {sorted(unknown)}; only "
                               f"x and {sorted(_SAFE)} are allowed")

    def fn(x):
        return np.vectorize(lambda v: eval(code, {"__builtins__": {}}, {**_SAFE, "x": v}),
                            otypes=[float])(x)

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
