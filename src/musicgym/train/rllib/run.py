"""Build RLlib's PPO for a :class:`TrainConfig`, size it to the budget, train, resume, evaluate."""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from musicgym.errors import ConfigError
from musicgym.train.config import TrainConfig, family_defaults
from musicgym.train.rllib.envs import has_action_masks, make_env
from musicgym.train.rllib.ray_setup import (
    check_address,
    check_num_env_runners,
    cluster_nodes,
    connect,
    env_runner_nodes,
    resolve_address,
)
from musicgym.train.runfiles import write_atomically
from musicgym.train.runner import new_run_dir

ALGOS = ("ppo", "maskable_ppo", "recurrent_ppo")
RLLIB_DEFAULT_BATCH = 4000   # PPOConfig's train_batch_size_per_learner
RLLIB_DEFAULT_MINIBATCH = 128


@dataclass(frozen=True)
class Policy:
    """What the RLModule needs: masks in the observation, an LSTM."""

    masked: bool
    lstm: bool


@dataclass(frozen=True)
class Budget:
    """How ``steps`` env steps are sampled: ``iterations`` of ``batch`` steps each."""

    iterations: int
    batch: int
    minibatch: int

    @property
    def env_steps(self) -> int:
        return self.iterations * self.batch


def choose_policy(config: TrainConfig, env: gym.Env) -> Policy:
    """Masks whenever the env has ``action_masks()``; an LSTM for recurrent_ppo and for the
    envs whose family defaults train with it (Accompany-v0's, ``train/defaults/*.yaml``).

    Raise :class:`ConfigError` for an algorithm RLlib's PPO does not stand in for here, or
    ``maskable_ppo`` on an env without masks.
    """
    if config.algo not in ALGOS:
        raise ConfigError(f"algo: --backend rllib trains PPO only (with masks or an LSTM: "
                          f"{', '.join(ALGOS)}), got {config.algo!r}")
    masked = has_action_masks(env)
    if config.algo == "maskable_ppo" and not masked:
        raise ConfigError(f"algo: maskable_ppo needs an env with action masks; "
                          f"{config.env_id} has none (use ppo)")
    memory = family_defaults(config.env_id)[1].get("algo") == "recurrent_ppo"
    return Policy(masked=masked, lstm=config.algo == "recurrent_ppo" or memory)


def plan_budget(steps: int, num_env_runners: int, envs_per_runner: int,
                algo_kwargs: dict) -> Budget:
    """Split ``steps`` env steps into PPO iterations.

    Without ``train_batch_size_per_learner`` in ``algo_kwargs``: as few iterations as RLlib's
    default batch (4,000) allows, of equal size, ``ceil(steps / iterations)`` each (so the
    total exceeds ``steps`` by less than one step per iteration). With it: that batch, for
    ``ceil(steps / batch)`` iterations. A batch is at least one step per env of the runners
    (RLlib samples at least one from each); the minibatch is RLlib's 128 or the batch if
    smaller, unless ``minibatch_size`` is given.
    """
    per_round = max(1, num_env_runners) * envs_per_runner
    batch = algo_kwargs.get("train_batch_size_per_learner")
    if batch is None:
        iterations = math.ceil(steps / RLLIB_DEFAULT_BATCH)
        batch = max(per_round, math.ceil(steps / iterations))
    elif not isinstance(batch, int) or isinstance(batch, bool) or batch < per_round:
        raise ConfigError(f"algo_kwargs: train_batch_size_per_learner must be an integer >= "
                          f"{per_round} (one step per env of the runners), got {batch!r}")
    iterations = max(1, math.ceil(steps / batch))
    minibatch = algo_kwargs.get("minibatch_size", min(RLLIB_DEFAULT_MINIBATCH, batch))
    return Budget(iterations=iterations, batch=batch, minibatch=minibatch)


def _env_name(env_id: str, masked: bool) -> str:
    """The name the env creator is registered under with RLlib."""
    return f"{env_id}+mask" if masked else env_id


def _register(env_id: str, masked: bool) -> None:
    """Register the env creator with RLlib (once Ray is connected: through Ray Client, a
    registration made before ``ray.init`` never reaches the cluster)."""
    from ray.tune.registry import register_env

    register_env(_env_name(env_id, masked),
                 functools.partial(make_env, env_id=env_id, masked=masked))


def ppo_config(config: TrainConfig, policy: Policy, budget: Budget, num_env_runners: int,
               envs_per_runner: int):
    """RLlib's ``PPOConfig`` for the run (new API stack, CPU, one learner in the driver)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    ppo = (PPOConfig()
           .environment(_env_name(config.env_id, policy.masked),
                        env_config=dict(config.env_kwargs))
           .env_runners(num_env_runners=num_env_runners,
                        num_envs_per_env_runner=envs_per_runner)
           .debugging(seed=config.seed))
    model = DefaultModelConfig(use_lstm=policy.lstm)
    if policy.masked:
        from musicgym.train.rllib.module import MaskedPPOTorchModule

        ppo = ppo.rl_module(rl_module_spec=RLModuleSpec(module_class=MaskedPPOTorchModule,
                                                        model_config=model))
    else:
        ppo = ppo.rl_module(model_config=model)
    kwargs = {**config.algo_kwargs, "train_batch_size_per_learner": budget.batch,
              "minibatch_size": budget.minibatch}
    try:
        return ppo.training(**kwargs)
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
    config = TrainConfig.load(run_dir / "config.yaml")
    setup_file = run_dir / "rllib.json"
    setup = json.loads(setup_file.read_text()) if setup_file.is_file() else {}
    _register(config.env_id, setup.get("policy", {}).get("masked", False))
    return Algorithm.from_checkpoint(str(checkpoint.resolve()))


def _batched(tree, torch):
    """numpy obs (or a dict of them) -> tensors with a batch dim of 1."""
    if isinstance(tree, dict):
        return {k: _batched(v, torch) for k, v in tree.items()}
    return torch.as_tensor(np.asarray(tree))[None]


def evaluate_rllib_returns(algo, config: TrainConfig, episodes: int,
                           seed: int) -> dict[str, float]:
    """Mean and std of deterministic episode returns of the learner's module on a fresh env.

    Works for the three policies: plain, masked (the observation carries the mask) and
    LSTM (the state is carried from step to step, from the module's initial state).
    """
    import torch
    from ray.rllib.core.columns import Columns
    from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action

    module = algo.get_module()
    dist_cls = module.get_inference_action_dist_cls()
    masked = isinstance(module.observation_space, gym.spaces.Dict)
    stateful = module.is_stateful()
    # evaluation on the family's evaluation settings (e.g. the accompaniment's held-out split)
    env = make_env(config.eval_kwargs, env_id=config.env_id, masked=masked)
    returns, clip_distances = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        state = _batched(module.get_initial_state(), torch) if stateful else None
        done, total, info = False, 0.0, {}
        while not done:
            batch = {Columns.OBS: _batched(obs, torch)}
            if stateful:  # the LSTM wants (batch, time, ...): one step of one episode
                batch = {Columns.OBS: _batched(batch[Columns.OBS], torch),
                         Columns.STATE_IN: state}
            with torch.no_grad():
                out = module.forward_inference(batch)
            logits = out[Columns.ACTION_DIST_INPUTS]
            if stateful:
                logits, state = logits[:, 0], out[Columns.STATE_OUT]
            action = dist_cls.from_logits(logits).to_deterministic().sample()[0].numpy()
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


def _save_checkpoint(algo, run_dir: Path, steps: int) -> None:
    """Write ``run_dir/checkpoint/`` through a temporary folder, so a kill leaves a whole one,
    then ``checkpoint.json`` with the env steps it holds (what ``--resume`` continues from)."""
    tmp, final, old = (run_dir / name for name in (".checkpoint.tmp", "checkpoint",
                                                    ".checkpoint.old"))
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp.resolve()))
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    _write_json(run_dir / "checkpoint.json", {"num_timesteps": steps, "time": time.time()})


def _read_json(path: Path) -> list:
    return json.loads(path.read_text()) if path.is_file() else []


def _write_json(path: Path, data) -> None:
    write_atomically(path, json.dumps(data, indent=2))


def _iteration_row(result: dict, seconds: float) -> dict:
    runners = result.get("env_runners", {})
    episode_return = runners.get("episode_return_mean")
    return {"iteration": int(result["training_iteration"]),
            "steps": int(result.get("num_env_steps_sampled_lifetime", 0)),
            "episode_return_mean": None if episode_return is None or np.isnan(episode_return)
            else float(episode_return),
            "episodes": int(runners.get("num_episodes", 0)),
            "seconds": round(seconds, 3)}


def _steps_done(run_dir: Path) -> int:
    """The env steps in the run's checkpoint; the logs lose what came after it (a run killed
    between two checkpoints resumes from the last one, and its logs say the same)."""
    info = run_dir / "checkpoint.json"
    if info.is_file():
        done = int(json.loads(info.read_text())["num_timesteps"])
    else:  # a run written before checkpoint.json: its checkpoint was its last act
        metrics = _read_json(run_dir / "metrics.json")
        done = int(metrics[-1]["steps"]) if metrics else 0
    for name in ("metrics.json", "evaluations.json"):
        rows = _read_json(run_dir / name)
        if any(row["steps"] > done for row in rows):
            _write_json(run_dir / name, [row for row in rows if row["steps"] <= done])
    return done


def _prepare(config: TrainConfig | None,
             resume: str | Path | None) -> tuple[TrainConfig, Path | None, int]:
    """The config to train (the run's own when resuming), the run to resume, steps done."""
    if resume is None:
        if config is None:
            raise ConfigError("give a TrainConfig or a run folder to resume")
        return config, None, 0
    run_dir = Path(resume)
    if not (run_dir / "checkpoint").is_dir() or not (run_dir / "rllib.json").is_file():
        raise ConfigError(f"--resume {run_dir}: no checkpoint/ and rllib.json there (was the "
                          "run made by musicgym train --backend rllib?)")
    saved = TrainConfig.load(run_dir / "config.yaml")
    if config is not None:
        saved.steps = max(saved.steps, config.steps)
    return saved, run_dir, _steps_done(run_dir)


def _build(ppo):
    """``ppo.build_algo()``; env runners that cannot start are reported in one line."""
    from ray.exceptions import RayActorError

    try:
        return ppo.build_algo()
    # RLlib reports env runners that died in their constructor as an IndexError (no spaces)
    except (RayActorError, IndexError) as exc:
        raise ConfigError(f"the env runners could not start ({type(exc).__name__}: {exc}); on "
                          "a cluster, is the same musicgym installed on every node? Ray's "
                          "log above says why") from exc


def train_rllib(config: TrainConfig | None, *, num_env_runners: int,
                address: str | None = None, runs_root: str | Path = "runs",
                progress: bool = True, resume: str | Path | None = None) -> Path:
    """Train ``config.env_id`` with RLlib's PPO (or resume a run); return the run folder.

    Parameters
    ----------
    config : TrainConfig or None
        What to train; ``algo`` one of ``ppo``, ``maskable_ppo``, ``recurrent_ppo`` and
        ``device`` ``cpu`` (see the package docstring for how the fields map onto RLlib).
        When resuming, only its ``steps`` is read (the new total, if larger than the run's);
        None keeps the run's.
    num_env_runners : int, keyword-only
        Sampling processes (Ray actors, one CPU each); 0 samples in the driver.
    address : str or None, keyword-only
        ``HOST:PORT`` (a cluster's GCS, from one of its machines) or ``auto``;
        ``ray://HOST:10001`` through Ray Client (from outside the cluster); None: ``RAY_ADDRESS``
        if set, else a local Ray instance. A Ray already initialised in this process is used
        as it is (and left running).
    runs_root : path, keyword-only
        Where new run folders go (default ``runs``).
    progress : bool, keyword-only
        Show a progress bar over the env steps the run will really sample.
    resume : path or None, keyword-only
        A run folder written by this function: restore its ``checkpoint/`` (weights, optimiser,
        step counters) and train on to ``steps``, appending to its ``metrics.json`` and
        ``evaluations.json``.
    """
    check_num_env_runners(num_env_runners)
    check_address(address)
    config, run_dir, done = _prepare(config, resume)
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
    try:
        probe = make_env(config.env_kwargs, env_id=config.env_id)
    except TypeError as exc:  # a missing or unknown keyword argument of the env
        raise ConfigError(f"env_kwargs for {config.env_id}: {exc}") from exc
    policy = choose_policy(config, probe)
    probe.close()
    envs_per_runner = max(1, math.ceil(config.n_envs / max(1, num_env_runners)))
    budget = plan_budget(max(1, config.steps - done), num_env_runners, envs_per_runner,
                         config.algo_kwargs)
    if config.steps <= done:  # a resumed run already there: evaluate and checkpoint only
        budget = Budget(iterations=0, batch=budget.batch, minibatch=budget.minibatch)
    ppo = ppo_config(config, policy, budget, num_env_runners, envs_per_runner)
    address = resolve_address(address)
    if budget.iterations and done + budget.env_steps != config.steps:
        print(f"rllib: {budget.iterations} PPO iteration(s) of {budget.batch} env steps: "
              f"{done + budget.env_steps} env steps in all for --steps {config.steps}")
    started = connect(address, num_env_runners)
    algo = None
    try:
        _register(config.env_id, policy.masked)
        algo = _build(ppo)
        if run_dir is None:
            import yaml

            run_dir = new_run_dir(runs_root, "rllib-ppo")
            (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(),
                                                                sort_keys=False))
        else:
            algo.restore_from_path(str((run_dir / "checkpoint").resolve()))
        setup = json.loads((run_dir / "rllib.json").read_text()) if resume else {}
        sessions = setup.get("sessions", [])
        sessions.append({
            "num_env_runners": num_env_runners, "num_envs_per_env_runner": envs_per_runner,
            "address": address, "cluster_nodes": cluster_nodes(),
            "cluster_cpus": ray.cluster_resources().get("CPU", 0),
            "env_runner_nodes": env_runner_nodes(algo), "steps_before": done,
            "iterations": budget.iterations, "train_batch_size_per_learner": budget.batch,
            "minibatch_size": budget.minibatch})
        _write_json(run_dir / "rllib.json", {
            **sessions[-1], "ray_version": ray.__version__,
            "policy": {"masked": policy.masked, "lstm": policy.lstm}, "sessions": sessions})
        _train_loop(algo, config, run_dir, budget, done, progress)
    finally:
        if algo is not None:
            algo.stop()
        if started:
            ray.shutdown()
    return run_dir


def _train_loop(algo, config: TrainConfig, run_dir: Path, budget: Budget, done: int,
                progress: bool) -> None:
    """Run the budget's iterations; log, evaluate and checkpoint on the way."""
    metrics = _read_json(run_dir / "metrics.json")
    evaluations = _read_json(run_dir / "evaluations.json")
    steps = last_eval = last_ckpt = done
    iterations = budget.iterations
    bar = None
    if progress and iterations:
        from tqdm.auto import tqdm

        bar = tqdm(total=done + budget.env_steps, initial=done, unit="step", unit_scale=True,
                   desc=f"train rllib-ppo {config.env_id}", dynamic_ncols=True)
    start = time.perf_counter() - (metrics[-1]["seconds"] if metrics else 0.0)

    def evaluate() -> None:
        result = evaluate_rllib_returns(algo, config, config.eval_episodes,
                                        seed=10_000 + config.seed)
        evaluations.append({**result, "steps": steps})
        _write_json(run_dir / "evaluations.json", evaluations)

    for iteration in range(iterations):
        row = _iteration_row(algo.train(), time.perf_counter() - start)
        steps = row["steps"]
        metrics.append(row)
        _write_json(run_dir / "metrics.json", metrics)
        if bar is not None:
            bar.total = max(bar.total, steps)  # if RLlib sampled more than planned, say so
            bar.update(steps - bar.n)
            if row["episode_return_mean"] is not None:
                bar.set_postfix(ep_return=f"{row['episode_return_mean']:.3f}")
        last = iteration == iterations - 1
        if config.eval_every and steps - last_eval >= config.eval_every and not last:
            evaluate()
            last_eval = steps
        if config.checkpoint_every and steps - last_ckpt >= config.checkpoint_every \
                and not last:
            _save_checkpoint(algo, run_dir, steps)
            last_ckpt = steps
    if bar is not None:
        bar.close()
    evaluate()
    _save_checkpoint(algo, run_dir, steps)
