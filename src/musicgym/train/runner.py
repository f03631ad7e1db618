"""Train any registered env with Stable-Baselines3: one run, one folder, resumable.

``train(config)`` writes ``runs/<timestamp>-<ALGO>/``:

* ``config.yaml``: the resolved configuration (what ``--resume`` reads back);
* ``tensorboard/``: SB3's logs (``rollout/ep_rew_mean``, ``eval/mean_reward``...);
* ``evaluations.json``: periodic evaluations (steps, mean and std of the episode return);
* ``checkpoint.zip`` (+ ``replay_buffer.pkl`` for off-policy algorithms): written atomically
  (a temporary file renamed over the old one), so a kill at any moment leaves the last good one;
* ``model.zip``: the final model.

Native vector envs (musicgym's, registered with a ``vector_entry_point``) go through
:class:`~musicgym.train.sb3.SB3VecEnv`: all parallel envs render in one engine call. Other envs
go through SB3's own ``DummyVecEnv``.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path

import numpy as np

from musicgym.errors import ConfigError
from musicgym.train.config import TrainConfig

ALGO_CLASSES = {
    "ppo": ("stable_baselines3", "PPO"), "a2c": ("stable_baselines3", "A2C"),
    "sac": ("stable_baselines3", "SAC"), "td3": ("stable_baselines3", "TD3"),
    "dqn": ("stable_baselines3", "DQN"), "maskable_ppo": ("sb3_contrib", "MaskablePPO"),
    "recurrent_ppo": ("sb3_contrib", "RecurrentPPO"),
}
OFF_POLICY = ("sac", "td3", "dqn")


def algo_class(name: str):
    module, cls = ALGO_CLASSES[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise ConfigError(f"algo {name!r} needs the {module} package: install musicgym's "
                          "'train' extra (make setup does)") from exc


def make_train_env(config: TrainConfig):
    """The SB3 VecEnv for a config (:func:`~musicgym.train.sb3.make_sb3_vec_env`): the native
    vector env when the id has one (Gymnasium's SyncVectorEnv for MaskablePPO, whose masks
    come from the single envs), with episode statistics."""
    from musicgym.train.sb3 import make_sb3_vec_env

    mode = "sync" if config.algo == "maskable_ppo" else None
    return make_sb3_vec_env(config.env_id, config.n_envs, seed=config.seed,
                            env_kwargs=config.env_kwargs, vectorization_mode=mode)


def new_run_dir(root: str | Path, algo: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{stamp}-{algo.upper()}"
    k = 1
    while path.exists():
        k += 1
        path = Path(root) / f"{stamp}-{algo.upper()}-{k}"
    path.mkdir(parents=True)
    return path


def save_atomically(model, run_dir: Path, name: str = "checkpoint") -> Path:
    """Save ``model`` to ``run_dir/name.zip`` through a temporary file and a rename."""
    final = run_dir / f"{name}.zip"
    tmp = run_dir / f".{name}.tmp.zip"
    model.save(tmp)
    os.replace(tmp, final)
    if hasattr(model, "save_replay_buffer") and getattr(model, "replay_buffer", None) is not None:
        tmp_rb = run_dir / f".{name}_replay_buffer.tmp.pkl"
        model.save_replay_buffer(tmp_rb)
        os.replace(tmp_rb, run_dir / f"{name}_replay_buffer.pkl")
    meta = {"num_timesteps": int(model.num_timesteps), "time": time.time()}
    tmp_meta = run_dir / f".{name}.tmp.json"
    tmp_meta.write_text(json.dumps(meta))
    os.replace(tmp_meta, run_dir / f"{name}.json")
    return final


def evaluate_policy_returns(model, config: TrainConfig, episodes: int,
                            seed: int) -> dict[str, float]:
    """Mean and std of deterministic episode returns on a fresh single env."""
    from musicgym.train.evaluate import run_episodes

    records = run_episodes(model, config, episodes, seed=seed, keep_audio=False)
    returns = [r["return"] for r in records]
    out = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}
    if "clip_distance" in records[0]:
        out["mean_clip_distance"] = float(np.mean([r["clip_distance"] for r in records]))
    return out


def _callbacks(config: TrainConfig, run_dir: Path, progress: bool):
    from stable_baselines3.common.callbacks import BaseCallback

    class RunCallback(BaseCallback):
        """Progress bar, periodic evaluations and atomic checkpoints."""

        def __init__(self) -> None:
            super().__init__()
            self.bar = None
            self.last_eval = self.last_ckpt = 0
            self.latest = None
            self.evaluations = _read_evaluations(run_dir)

        def _on_training_start(self) -> None:
            self.last_eval = self.last_ckpt = self.model.num_timesteps
            if progress:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=config.steps, initial=self.model.num_timesteps,
                                desc=f"train {config.algo} {config.env_id}", unit="step",
                                unit_scale=True, dynamic_ncols=True)

        def _on_step(self) -> bool:
            n = self.model.num_timesteps
            if self.bar is not None:
                self.bar.update(n - self.bar.n)
            if config.eval_every and n - self.last_eval >= config.eval_every:
                self.evaluate()
            if config.checkpoint_every and n - self.last_ckpt >= config.checkpoint_every:
                save_atomically(self.model, run_dir)
                self.last_ckpt = n
            return True

        def evaluate(self) -> None:
            n = self.model.num_timesteps
            result = evaluate_policy_returns(self.model, config, config.eval_episodes,
                                             seed=10_000 + config.seed)
            result["steps"] = int(n)
            self.evaluations.append(result)
            _write_json(run_dir / "evaluations.json", self.evaluations)
            self.logger.record("eval/mean_reward", result["mean_return"])
            if "mean_clip_distance" in result:
                self.logger.record("eval/clip_distance", result["mean_clip_distance"])
            self.latest = result["mean_return"]
            self.last_eval = n
            if self.bar is not None:
                self.bar.set_postfix(eval=f"{self.latest:.3f}")

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    return RunCallback()


def _read_evaluations(run_dir: Path) -> list:
    path = run_dir / "evaluations.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def train(config: TrainConfig, *, runs_root: str | Path = "runs", progress: bool = True,
          resume: str | Path | None = None) -> Path:
    """Train (or resume) a run; return its folder.

    Parameters
    ----------
    config : TrainConfig
        What to train (ignored when resuming: the run's own config.yaml is used, with its
        ``steps`` replaced by ``config.steps`` if larger).
    runs_root : path, keyword-only
        Where new run folders go (default ``runs``).
    progress : bool, keyword-only
        Show a progress bar (steps, speed, latest evaluation).
    resume : path, keyword-only
        A run folder with a ``checkpoint.zip``: continue it with its step count, optimiser
        state and (off-policy) replay buffer.
    """
    import torch
    import yaml

    # one torch thread: SB3's advice for CPU training, and the envs need the other core
    torch.set_num_threads(1)
    if resume is not None:
        run_dir = Path(resume)
        ckpt = run_dir / "checkpoint.zip"
        if not ckpt.is_file():
            raise ConfigError(f"--resume {run_dir}: no checkpoint.zip there (was the run started "
                              "by musicgym train?)")
        saved = TrainConfig.load(run_dir / "config.yaml")
        saved.steps = max(saved.steps, config.steps) if config is not None else saved.steps
        config = saved
    else:
        run_dir = new_run_dir(runs_root, config.algo)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    env = make_train_env(config)
    cls = algo_class(config.algo)
    if resume is not None:
        model = cls.load(run_dir / "checkpoint.zip", env=env, device=config.device)
        rb = run_dir / "checkpoint_replay_buffer.pkl"
        if config.algo in OFF_POLICY and rb.is_file():
            model.load_replay_buffer(rb)
        model.set_logger(_logger(run_dir))
    else:
        try:
            model = cls(config.policy, env, seed=config.seed, device=config.device, verbose=0,
                        **config.algo_kwargs)
        except TypeError as exc:
            raise ConfigError(f"algo_kwargs: {exc}") from exc
        model.set_logger(_logger(run_dir))
    callback = _callbacks(config, run_dir, progress)
    remaining = config.steps - model.num_timesteps
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=callback,
                    reset_num_timesteps=resume is None)
    else:
        callback.init_callback(model)
    callback.evaluate()
    save_atomically(model, run_dir)
    save_atomically(model, run_dir, "model")
    env.close()
    return run_dir


def _logger(run_dir: Path):
    from stable_baselines3.common.logger import configure

    return configure(str(run_dir / "tensorboard"), ["tensorboard", "csv"])
