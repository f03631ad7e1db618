"""Trained improvisers that play without SB3 or torch: small MLPs stored as NumPy ``.npz``.

An :class:`InverseAgent` is a goal-conditioned policy that jumps: it reads the musician's
descriptors and answers the synth parameters that sound like them, in one forward pass (an
amortised nearest-neighbour search; :mod:`musicgym.train.improvise_agents` trains it). It is a
:class:`~musicgym.envs.improvise_play.Controller` once bound to an improviser's core
(:meth:`InverseAgent.controller`), so the evaluation, the live server and ``--model builtin:fm``
use it as they use any other.

It keeps its own normalisation (the one it was trained with), so it plays the same whatever
corpus the core around it was normalised on. The built-in agents live in
``musicgym/data/improvisers``: ``NAME.npz`` (weights) and ``NAME.json`` (synth, descriptors,
the exact training command and seed, and the held-out figures it reached).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from musicgym.errors import ImproviseConfigError

BUILTIN_PREFIX = "builtin:"


def _builtin_dir() -> Path:
    return Path(str(resources.files("musicgym") / "data" / "improvisers"))


def builtin_names() -> list[str]:
    """Names of the shipped agents (``musicgym live improvise --model builtin:NAME``)."""
    return sorted(p.stem for p in _builtin_dir().glob("*.npz"))


@dataclass
class InverseAgent:
    """descriptors -> synth parameters: an MLP with tanh hidden layers and a sigmoid output.

    Attributes
    ----------
    synth : str
        The synth it plays (its parameters are the output, in [0, 1]).
    features : list of str
        The descriptors it reads, in order (``Improvisers.features`` of its env).
    env_kwargs : dict
        ``gym.make`` keywords of the env it was trained for (synth, features_keep,
        features_reward); a live server or evaluation rebuilds its core from them.
    mean, std : numpy.ndarray, shape (F,)
        Its own normalisation of raw descriptors.
    layers : list of (W, b)
        Weights, ``W`` (in, out) float32.
    meta : dict
        How it was made (command, seed, time) and what it reached.
    table : numpy.ndarray, shape (subdiv**N, F), optional
        The synth's descriptor table on a C-order grid of ``meta["subdiv"]`` points per
        parameter, in the agent's normalisation (float32). When present the agent refines
        the net's answer by a short local search through it, interpolated (it listens to
        what its answer would sound like and nudges each parameter while that sounds closer):
        the net picks the basin, the search settles in it. With ``meta["search_grid"]`` the
        search reads the table's grid points only (no interpolation) and answers one: between
        grid points that sound far apart (a silent row beside a quiet one) the interpolated
        table describes blends no setting plays, and an interpolating search settles in them.
    """

    synth: str
    features: list[str]
    env_kwargs: dict[str, Any]
    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    meta: dict = field(default_factory=dict)
    table: np.ndarray | None = None

    def __call__(self, target_raw: np.ndarray, known: np.ndarray | None = None,
                 current: np.ndarray | None = None) -> np.ndarray:
        """Parameters (B, N) for raw descriptors (B, F) (unknown ones read as the mean).

        The search weighs each descriptor's squared error by ``meta["search_weights"]`` (F,)
        where given (equal weights otherwise, as the reward weighs them).

        ``current`` (B, N), the parameters playing now, matters only to an agent with a table
        and ``meta["stay_margin"]`` m > 0: it stays where it is unless its answer sounds
        closer to the target, in the table, by more than a fraction m of the current error.
        """
        z = (np.asarray(target_raw, dtype=np.float64) - self.mean) / self.std
        if known is not None:
            z = np.where(known, z, 0.0)
        z = np.clip(np.nan_to_num(z), -10.0, 10.0)
        x = z.astype(np.float32)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            x = np.tanh(x) if i < len(self.layers) - 1 else 1.0 / (1.0 + np.exp(-x))
        u = x.astype(np.float64)
        if self.table is None:
            return u
        weights = np.ones_like(z) if known is None else np.asarray(known, dtype=np.float64)
        if self.meta.get("search_weights") is not None:
            weights = weights * np.asarray(self.meta["search_weights"], dtype=np.float64)
        grid = bool(self.meta.get("search_grid"))
        search = self._search_grid if grid else self._search
        u = search(u, z, weights)
        if current is None:
            return u
        current = np.clip(np.asarray(current, dtype=np.float64).reshape(u.shape), 0.0, 1.0)
        if self.meta.get("search_from_current"):   # a second start: where it plays now
            other = search(current, z, weights)
            err_u, err_other = (((self._heard(v, grid) - z) ** 2 * weights).sum(axis=1)
                                for v in (u, other))
            u = np.where((err_other < err_u)[:, None], other, u)
        margin = float(self.meta.get("stay_margin", 0.0))
        if margin <= 0.0:
            return u
        err_new, err_now = (((self._heard(v, grid) - z) ** 2 * weights).sum(axis=1)
                            for v in (u, current))
        move = err_new < (1.0 - margin) * err_now
        return np.where(move[:, None], u, current)

    def _heard(self, u: np.ndarray, grid: bool) -> np.ndarray:
        """The table's descriptors at u: its nearest grid point's, or interpolated."""
        if not grid:
            return self._interpolate(u)
        k = int(self.meta["subdiv"])
        idx = np.rint(np.clip(u, 0.0, 1.0) * (k - 1)).astype(np.int64)
        return self.table[idx @ (k ** np.arange(u.shape[1] - 1, -1, -1))]

    def _interpolate(self, u: np.ndarray) -> np.ndarray:
        """The table's descriptors (B, F) at u (B, N), multilinear between grid points."""
        k, n = int(self.meta["subdiv"]), u.shape[1]
        pos = np.clip(u, 0.0, 1.0) * (k - 1)
        cell = np.minimum(pos.astype(np.int64), k - 2)
        frac = pos - cell
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n - 1, -1, -1)) & 1
        w = np.where(bits, frac[:, None, :], 1.0 - frac[:, None, :]).prod(axis=2)
        rows = (cell[:, None, :] + bits) @ (k ** np.arange(n - 1, -1, -1))
        return np.einsum("bc,bcf->bf", w, self.table[rows])

    def _search(self, u: np.ndarray, z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Pattern search from u: each round tries every parameter one step up and down and
        keeps the best move while it sounds closer to z; the step halves from half a cell."""
        b, n = u.shape
        step = 0.5 / (int(self.meta["subdiv"]) - 1)
        moves = np.concatenate([np.eye(n), -np.eye(n)])          # (2N, N)

        def error(v, rows):
            return ((self._interpolate(v) - z[rows]) ** 2 * weights[rows]).sum(axis=1)

        rows = np.arange(b)
        best = error(u, rows)
        for _ in range(int(self.meta.get("search_rounds", 12))):
            cand = np.clip(u[:, None, :] + step * moves[None], 0.0, 1.0).reshape(-1, n)
            err = error(cand, np.repeat(rows, 2 * n)).reshape(b, 2 * n)
            pick = np.argmin(err, axis=1)
            better = err[rows, pick] < best
            u = np.where(better[:, None], cand.reshape(b, 2 * n, n)[rows, pick], u)
            best = np.where(better, err[rows, pick], best)
            if not better.any():
                step /= 2.0
        return u

    def _search_grid(self, u: np.ndarray, z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Pattern search over the table's grid points from the one nearest u: each round tries
        every parameter ``step`` points up and down and keeps the best move while it sounds
        closer to z; a row's step halves (from an eighth of the grid) when none does, and it
        stops at one point. Every error read is a row the synth was analysed at."""
        b, n = u.shape
        k = int(self.meta["subdiv"])
        strides = k ** np.arange(n - 1, -1, -1)
        moves = np.concatenate([np.eye(n, dtype=np.int64), -np.eye(n, dtype=np.int64)])
        rows = np.arange(b)

        def error(idx, which):
            return ((self.table[idx @ strides] - z[which]) ** 2 * weights[which]).sum(axis=1)

        idx = np.rint(np.clip(u, 0.0, 1.0) * (k - 1)).astype(np.int64)
        best = error(idx, rows)
        step = np.full(b, max(1, (k - 1) // 8), dtype=np.int64)
        active = np.ones(b, dtype=bool)
        for _ in range(int(self.meta.get("search_rounds", 12)) * 4):
            if not active.any():
                break
            cand = np.clip(idx[:, None, :] + step[:, None, None] * moves[None], 0, k - 1)
            err = error(cand.reshape(-1, n), np.repeat(rows, 2 * n)).reshape(b, 2 * n)
            pick = np.argmin(err, axis=1)
            better = active & (err[rows, pick] < best)
            idx = np.where(better[:, None], cand[rows, pick], idx)
            best = np.where(better, err[rows, pick], best)
            stuck = active & ~better
            active &= ~(stuck & (step == 1))
            step = np.where(stuck, np.maximum(step // 2, 1), step)
        return idx / (k - 1)

    def controller(self, core) -> AgentController:
        """This agent as a Controller of an improviser whose core is ``core``."""
        if core.synth.name != self.synth:
            raise ImproviseConfigError(f"the agent plays {self.synth!r}, the improviser "
                                       f"{core.synth.name!r}: use the agent's synth")
        missing = sorted(set(self.features) - set(core.features))
        if missing:
            raise ImproviseConfigError(f"the agent reads {missing}, which the improviser does "
                                       "not analyse: use the agent's env_kwargs")
        return AgentController(self, core)

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (.npz, the weights) and the same name .json (everything else)."""
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"mean": self.mean, "std": self.std}
        if self.table is not None:
            arrays["table"] = self.table.astype(np.float32)
        for i, (w, b) in enumerate(self.layers):
            arrays[f"w{i}"], arrays[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
        tmp = path.with_name(".partial-" + path.name)
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        tmp.replace(path)
        info = {"synth": self.synth, "features": self.features, "env_kwargs": self.env_kwargs,
                "layers": len(self.layers), **self.meta}
        path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> InverseAgent:
        """An agent from ``NAME.npz`` + ``NAME.json``, or ``builtin:NAME``.

        Raises
        ------
        ImproviseConfigError
            No such builtin or file, or files that are not an agent's.
        """
        text = str(path)
        if text.startswith(BUILTIN_PREFIX):
            name = text[len(BUILTIN_PREFIX):]
            if name not in builtin_names():
                raise ImproviseConfigError(f"no built-in improviser {name!r}: choose one of "
                                           f"{builtin_names()}")
            path = _builtin_dir() / f"{name}.npz"
        path = Path(path).with_suffix(".npz")
        if not path.is_file() or not path.with_suffix(".json").is_file():
            raise ImproviseConfigError(f"no improviser at {str(path)!r} (needs the .npz and its "
                                       ".json)")
        try:
            info = json.loads(path.with_suffix(".json").read_text())
            with np.load(path) as data:
                layers = [(data[f"w{i}"], data[f"b{i}"]) for i in range(int(info["layers"]))]
                mean, std = data["mean"], data["std"]
                table = data["table"] if "table" in data.files else None
            meta = {k: v for k, v in info.items()
                    if k not in ("synth", "features", "env_kwargs", "layers")}
            agent = cls(info["synth"], list(info["features"]), dict(info["env_kwargs"]), mean,
                        std, layers, meta, table)
            if table is not None and table.shape != (int(meta["subdiv"]) ** layers[-1][0]
                                                     .shape[1], len(mean)):
                raise ValueError(f"its table is {table.shape}, not subdiv**N by F")
        except (KeyError, ValueError, OSError) as exc:
            raise ImproviseConfigError(f"{str(path)!r} is not an improviser's file ({exc})"
                                       ) from None
        if layers[0][0].shape[0] != len(agent.features) or len(mean) != len(agent.features):
            raise ImproviseConfigError(f"{str(path)!r}: its weights read "
                                       f"{layers[0][0].shape[0]} descriptors but it names "
                                       f"{len(agent.features)}")
        return agent


def is_agent_file(model: str) -> bool:
    """Whether ``--model`` names an agent of this module (``builtin:NAME`` or an ``.npz``)."""
    return str(model).startswith(BUILTIN_PREFIX) or str(model).endswith(".npz")


class AgentController:
    """An :class:`InverseAgent` bound to a core: the musician's normalised frame -> a jump."""

    def __init__(self, agent: InverseAgent, core) -> None:
        self.agent, self.core = agent, core
        self.cols = np.array([list(core.features).index(f) for f in agent.features])

    def reset(self) -> None:
        """Nothing to forget: the choice depends on the current frame only."""

    def __call__(self, obs, target_z, known, params) -> np.ndarray:
        raw = np.asarray(target_z)[self.cols] * self.core.std[self.cols] + \
            self.core.mean[self.cols]
        return self.agent(raw[None], np.asarray(known)[self.cols][None],
                          np.asarray(params)[None])[0]
