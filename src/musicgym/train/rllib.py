"""Train any registered env with Ray RLlib's PPO: the same envs, on one machine or a cluster.

``train_rllib(config, num_env_runners=K, address=...)`` writes ``runs/<timestamp>-RLLIB-PPO/``:

* ``config.yaml``: the resolved :class:`~musicgym.train.config.TrainConfig`;
* ``rllib.json``: how it ran (env runners, envs per runner, Ray address, Ray version);
* ``metrics.json``: one row per training iteration (env steps so far, mean episode return of
  the episodes that ended in it, seconds);
* ``evaluations.json``: deterministic evaluations on a fresh env in the driver, in the same
  layout as the Stable-Baselines3 runs (``steps``, ``mean_return``, ``std_return``,
  ``mean_clip_distance`` for sound tasks);
* ``checkpoint/``: RLlib's checkpoint of the whole algorithm (``Algorithm.from_checkpoint``
  restores it), written to a temporary folder first and then renamed into place.

How the :class:`TrainConfig` fields map onto RLlib: ``steps`` is the number of env steps to
sample (training stops after the first iteration that reaches it); ``n_envs`` is spread over the
env runners (``ceil(n_envs / K)`` envs each); ``algo_kwargs`` go to ``PPOConfig.training()``
under RLlib's names (``train_batch_size_per_learner``, ``minibatch_size``, ``num_epochs``,
``lr``...); ``seed``, ``eval_every``, ``eval_episodes`` and ``checkpoint_every`` mean what they
mean for SB3. Only ``algo: ppo`` on the CPU is supported here.

Env runners are separate processes (on other machines, with a cluster), so the env is
registered with RLlib through :func:`make_env`, which imports musicgym there before calling
``gymnasium.make``. This module is not the Stable-Baselines3 path (``musicgym.train.runner``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from musicgym.errors import ConfigError
from musicgym.train.config import TrainConfig
from musicgym.train.runner import new_run_dir

_ADDRESS = re.compile(r"^(ray://)?[A-Za-z0-9._-]+:(\d{1,5})$")


def make_env(env_config: dict, *, env_id: str) -> gym.Env:
    """The env creator RLlib calls in each env runner: import musicgym (registers its ids)."""
    import musicgym  # noqa: F401

    return gym.make(env_id, **dict(env_config))


def check_address(address: str | None) -> None:
    """Raise :class:`ConfigError` unless ``address`` is one ``ray.init`` understands.

    Accepted: ``None`` (start a local Ray, or use ``RAY_ADDRESS``), ``auto``, ``local``,
    ``HOST:PORT`` (a cluster's GCS, from a machine of the cluster) and ``ray://HOST:PORT``
    (Ray Client, from anywhere; the head node listens on 10001 by default).
    """
    if address is None or address in ("auto", "local"):
        return
    match = _ADDRESS.match(address) if isinstance(address, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise ConfigError(f"--address {address!r}: expected ray://HOST:PORT (Ray Client, e.g. "
                          "ray://head-node:10001), HOST:PORT (a cluster's GCS), 'auto' or "
                          "'local'")


def check_num_env_runners(num_env_runners: int) -> None:
    if not isinstance(num_env_runners, int) or isinstance(num_env_runners, bool) \
            or num_env_runners < 0:
        raise ConfigError(f"--num-env-runners: must be an integer >= 0 (0 samples in the driver "
                          f"process), got {num_env_runners!r}")


def _connect(address: str | None, num_env_runners: int) -> bool:
    """Connect to (or start) Ray unless it already is; return whether we must shut it down."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_address(address)
    try:
        if address is None:
            # a local instance: one CPU per env runner even if that oversubscribes the machine
            ray.init(num_cpus=max(os.cpu_count() or 1, num_env_runners),
                     include_dashboard=False)
        else:
            ray.init(address=address)
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc} (is it running, "
                          "and is this the head node's address?)") from exc
    return True


def _register(env_id: str) -> None:
    from ray.tune.registry import register_env

    register_env(env_id, functools.partial(make_env, env_id=env_id))


def _ppo_config(config: TrainConfig, num_env_runners: int):
    from ray.rllib.algorithms.ppo import PPOConfig

    _register(config.env_id)
    envs_per_runner = max(1, math.ceil(config.n_envs / max(1, num_env_runners)))
    ppo = (PPOConfig()
           .environment(config.env_id, env_config=dict(config.env_kwargs))
           .env_runners(num_env_runners=num_env_runners,
                        num_envs_per_env_runner=envs_per_runner)
           .debugging(seed=config.seed))
    try:
        return ppo.training(**config.algo_kwargs)
    except TypeError as exc:
        raise ConfigError(f"algo_kwargs: {exc} (with --backend rllib they are the arguments of "
                          "RLlib's PPOConfig.training(): train_batch_size_per_learner, "
                          "minibatch_size, num_epochs, lr...)") from exc


def load_rllib_run(run_dir: str | Path):
    """Restore a run's ``checkpoint/`` as an RLlib ``Algorithm`` (its env registered first).

    Ray starts locally if no Ray is initialised; call ``algo.stop()`` when done.
    """
    from ray.rllib.algorithms.algorithm import Algorithm

    run_dir = Path(run_dir)
    checkpoint = run_dir / "checkpoint"
    if not checkpoint.is_dir():
        raise ConfigError(f"{run_dir}: no checkpoint/ there (was it written by "
                          "musicgym train --backend rllib?)")
    _register(TrainConfig.load(run_dir / "config.yaml").env_id)
    return Algorithm.from_checkpoint(str(checkpoint.resolve()))


def evaluate_rllib_returns(algo, config: TrainConfig, episodes: int,
                           seed: int) -> dict[str, float]:
    """Mean and std of deterministic episode returns of the learner's module on a fresh env."""
    import torch
    from ray.rllib.core.columns import Columns
    from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action

    module = algo.get_module()
    dist_cls = module.get_inference_action_dist_cls()
    env = make_env(config.env_kwargs, env_id=config.env_id)
    returns, clip_distances = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            with torch.no_grad():
                out = module.forward_inference({Columns.OBS: torch.as_tensor(obs[None])})
            dist = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])
            action = dist.to_deterministic().sample()[0].numpy()
            # what RLlib's module-to-env connector does to the actions it sends to the env
            if algo.config.normalize_actions:
                action = unsquash_action(action, env.action_space)
            elif algo.config.clip_actions:
                action = clip_action(action, env.action_space)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        if "clip_distance" in info:
            clip_distances.append(float(info["clip_distance"]))
    env.close()
    out = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}
    if clip_distances:
        out["mean_clip_distance"] = float(np.mean(clip_distances))
    return out


def _save_checkpoint(algo, run_dir: Path) -> None:
    """Write ``run_dir/checkpoint/`` through a temporary folder, so a kill leaves a whole one."""
    tmp, final, old = (run_dir / name for name in (".checkpoint.tmp", "checkpoint",
                                                    ".checkpoint.old"))
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp.resolve()))
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _iteration_row(result: dict, seconds: float) -> dict:
    runners = result.get("env_runners", {})
    episode_return = runners.get("episode_return_mean")
    return {"iteration": int(result["training_iteration"]),
            "steps": int(result.get("num_env_steps_sampled_lifetime", 0)),
            "episode_return_mean": None if episode_return is None or np.isnan(episode_return)
            else float(episode_return),
            "episodes": int(runners.get("num_episodes", 0)),
            "seconds": round(seconds, 3)}


def train_rllib(config: TrainConfig, *, num_env_runners: int, address: str | None = None,
                runs_root: str | Path = "runs", progress: bool = True) -> Path:
    """Train ``config.env_id`` with RLlib's PPO; return the run folder.

    Parameters
    ----------
    config : TrainConfig
        What to train; ``algo`` must be ``ppo`` and ``device`` ``cpu`` (see the module
        docstring for how the fields map onto RLlib).
    num_env_runners : int, keyword-only
        Sampling processes (Ray actors, one CPU each); 0 samples in the driver.
    address : str or None, keyword-only
        ``ray://HOST:10001`` to use an existing cluster through Ray Client, ``HOST:PORT`` or
        ``auto`` from one of its machines; None: ``RAY_ADDRESS`` if set, else a local Ray
        instance. A Ray already initialised in this process is used as it is (and left running).
    runs_root : path, keyword-only
        Where new run folders go (default ``runs``).
    progress : bool, keyword-only
        Show a progress bar (steps, speed, latest mean episode return).
    """
    import yaml

    check_num_env_runners(num_env_runners)
    check_address(address)
    if config.algo != "ppo":
        raise ConfigError(f"algo: --backend rllib trains PPO only, got {config.algo!r}")
    if config.device != "cpu":
        raise ConfigError(f"device: --backend rllib runs on the CPU only here, got "
                          f"{config.device!r}")
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--backend rllib needs Ray: install musicgym's 'rllib' extra "
                          "(pip install -e '.[rllib]')") from exc
    try:
        gym.spec(config.env_id)
    except gym.error.Error as exc:
        raise ConfigError(f"env_id: {exc}") from exc
    ppo = _ppo_config(config, num_env_runners)

    run_dir = new_run_dir(runs_root, "rllib-ppo")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    started = _connect(address, num_env_runners)
    algo = None
    try:
        _write_json(run_dir / "rllib.json", {
            "num_env_runners": num_env_runners,
            "num_envs_per_env_runner": ppo.num_envs_per_env_runner,
            "address": address or os.environ.get("RAY_ADDRESS"), "ray_version": ray.__version__,
            "cluster_cpus": ray.cluster_resources().get("CPU", 0)})
        algo = ppo.build_algo()
        _train_loop(algo, config, run_dir, progress)
    finally:
        if algo is not None:
            algo.stop()
        if started:
            ray.shutdown()
    return run_dir


def _train_loop(algo, config: TrainConfig, run_dir: Path, progress: bool) -> None:
    """Iterate until ``config.steps`` env steps; log, evaluate and checkpoint on the way."""
    metrics, evaluations = [], []
    steps = last_eval = last_ckpt = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc=f"train rllib-ppo {config.env_id}", unit="step",
                   unit_scale=True, dynamic_ncols=True)
    start = time.perf_counter()

    def evaluate() -> None:
        result = evaluate_rllib_returns(algo, config, config.eval_episodes,
                                        seed=10_000 + config.seed)
        evaluations.append({**result, "steps": steps})
        _write_json(run_dir / "evaluations.json", evaluations)

    while steps < config.steps:
        row = _iteration_row(algo.train(), time.perf_counter() - start)
        steps = row["steps"]
        metrics.append(row)
        _write_json(run_dir / "metrics.json", metrics)
        if bar is not None:
            bar.update(min(steps, config.steps) - bar.n)
            if row["episode_return_mean"] is not None:
                bar.set_postfix(ep_return=f"{row['episode_return_mean']:.3f}")
        if config.eval_every and steps - last_eval >= config.eval_every and steps < config.steps:
            evaluate()
            last_eval = steps
        if config.checkpoint_every and steps - last_ckpt >= config.checkpoint_every \
                and steps < config.steps:
            _save_checkpoint(algo, run_dir)
            last_ckpt = steps
    if bar is not None:
        bar.close()
    evaluate()
    _save_checkpoint(algo, run_dir)
