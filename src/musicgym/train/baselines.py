"""Search baselines for sound matching: random search and CMA-ES, at a budget of episodes.

A candidate is a whole episode's actions (``total_step`` x the action dimension, each in
[-1, 1]); its cost is the final clip distance to the target. Candidates are rendered in batches
through the native vector env (one engine call per batch), so a budget of N candidates costs
N synthesiser renders of the clip, the same unit as an agent's training episodes.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from musicgym.errors import ConfigError, UsageError


def _vector_env(env_id: str, batch: int, env_kwargs: dict, budget: int = 1):
    from musicgym.train.config import family_defaults
    from musicgym.train.runner import env_spec

    if not isinstance(budget, int) or budget < 1:
        raise UsageError(f"budget: must be a positive integer, got {budget!r}")
    family, _ = family_defaults(env_id)
    if family != "sound" or env_spec(env_id).vector_entry_point is None:
        sound = family_defaults("musicgym/Kick-v0")[1]["env_ids"]
        raise UsageError(f"baselines search the synth parameters of a sound-matching env; "
                         f"{env_id} is not one: choose one of {', '.join(sound)}")
    venv = gym.make_vec(env_id, num_envs=batch, vectorization_mode="vector_entry_point",
                        **env_kwargs)
    if not hasattr(venv, "core") or not isinstance(venv.single_action_space, gym.spaces.Box):
        raise ConfigError(f"{env_id}: search baselines need a sound-matching env with a Box "
                          "action space (pass flat_actions=True for patches with choices)")
    return venv


def evaluate_candidates(venv, candidates: np.ndarray, target: int = 0) -> np.ndarray:
    """Final clip distances of candidates (N, total_step, dim), rendered batch by batch."""
    core = venv.core
    n, batch = candidates.shape[0], venv.num_envs
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, batch):
        chunk = candidates[start:start + batch]
        rows = np.arange(chunk.shape[0])
        clips = np.zeros((len(rows), core.clip_len), dtype=np.float32)
        steps = np.zeros(len(rows), dtype=np.int64)
        targets = np.full(len(rows), target, dtype=np.int64)
        for k in range(core.total_step):
            result = core.step(clips, steps, targets, chunk[:, k].astype(np.float32), rows)
        out[start:start + len(rows)] = result["clip_distance"]
    return out


def random_search(env_id: str, budget: int, *, seed: int = 0, env_kwargs: dict | None = None,
                  batch: int = 64, target: int = 0) -> dict:
    """Best of ``budget`` uniformly random candidates."""
    venv = _vector_env(env_id, batch, env_kwargs or {}, budget)
    core = venv.core
    dim = venv.single_action_space.shape[0]
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    candidates = rng.uniform(-1, 1, size=(budget, core.total_step, dim))
    costs = evaluate_candidates(venv, candidates, target)
    best = int(np.argmin(costs))
    return _result("random", costs, candidates[best], core, time.perf_counter() - t0)


def cmaes(env_id: str, budget: int, *, seed: int = 0, env_kwargs: dict | None = None,
          batch: int = 64, popsize: int = 16, sigma0: float = 0.5, target: int = 0,
          x0: np.ndarray | None = None) -> dict:
    """CMA-ES (the ``cma`` package) in [-1, 1]^(total_step x dim) for ``budget`` evaluations.

    ``x0``: the initial mean (total_step x dim actions, e.g. a matcher's proposal; default
    the centre), evaluated first so the result is never worse than it; ``sigma0``: the initial
    step size."""
    import cma

    venv = _vector_env(env_id, max(batch, popsize), env_kwargs or {}, budget)
    core = venv.core
    dim = venv.single_action_space.shape[0]
    shape = (core.total_step, dim)
    mean = np.zeros(int(np.prod(shape))) if x0 is None else \
        np.clip(np.asarray(x0, dtype=np.float64).reshape(-1), -1.0, 1.0)
    if mean.size != int(np.prod(shape)):
        raise UsageError(f"x0: expected {int(np.prod(shape))} actions, got {mean.size}")
    # the mean strictly inside the bounds: cma maps a mean on a bound poorly
    es = cma.CMAEvolutionStrategy(np.clip(mean, -0.99, 0.99), sigma0,
                                  {"bounds": [-1, 1], "popsize": popsize, "seed": seed + 1,
                                   "verbose": -9})
    t0 = time.perf_counter()
    history, best_x, best_cost = [], None, np.inf
    if x0 is not None:  # the seed itself is a candidate
        history = evaluate_candidates(venv, mean.reshape(1, *shape), target).tolist()
        best_cost, best_x = history[0], mean
    while len(history) < budget:
        xs = es.ask()[:budget - len(history)]
        costs = evaluate_candidates(venv, np.asarray(xs).reshape(-1, *shape), target)
        if len(xs) == popsize:
            es.tell(xs, costs.tolist())
        history.extend(costs.tolist())
        if costs.min() < best_cost:
            best_cost, best_x = float(costs.min()), np.asarray(xs[int(np.argmin(costs))])
    return _result("cmaes", np.asarray(history), best_x.reshape(shape), core,
                   time.perf_counter() - t0)


def _result(method: str, costs: np.ndarray, best: np.ndarray, core, seconds: float) -> dict:
    params = [core.pmap.params(best[k][None])[0].tolist() for k in range(core.total_step)]
    return {"method": method, "evaluations": int(costs.size),
            "best_distance": float(np.min(costs)), "best_actions": best.tolist(),
            "best_params": params, "curve": np.minimum.accumulate(costs).tolist(),
            "seconds": seconds}


def render_actions(env_id: str, actions: np.ndarray, *, env_kwargs: dict | None = None,
                   target: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(clip, target clip, sample rate) of one candidate's episode."""
    venv = _vector_env(env_id, 1, env_kwargs or {})
    core = venv.core
    clips = np.zeros((1, core.clip_len), dtype=np.float32)
    steps = np.zeros(1, dtype=np.int64)
    for k in range(core.total_step):
        core.step(clips, steps, np.array([target]), np.asarray(actions)[k][None].astype(np.float32),
                  np.array([0]))
    return clips[0], core.target_clips[target], core.sr
