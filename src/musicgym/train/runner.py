"""Train any registered env with Stable-Baselines3: one run, one folder, resumable.

``train(config)`` writes ``runs/<timestamp>-<ALGO>/``:

* ``config.yaml``: the resolved configuration, with the step budget actually trained (what
  ``--resume`` and ``musicgym evaluate`` read back);
* ``tensorboard/`` and ``progress.csv``: SB3's logs (``rollout/ep_rew_mean``,
  ``eval/mean_reward``...), appended to on resume; at each evaluation TensorBoard also gets
  one episode's sounds and pictures (``eval/audio/*``, ``eval/image/*``:
  :func:`log_evaluation_media`);
* ``evaluations.json``: periodic evaluations (steps, mean and std of the episode return);
* ``checkpoint.zip`` and ``checkpoint_prev.zip`` (+ ``replay_buffer-<steps>.npz`` for
  off-policy algorithms): every ``checkpoint_every`` steps (a tenth of the budget by default)
  and at each evaluation, atomically (see :mod:`musicgym.train.runfiles`), so a kill at any
  moment leaves the last good one;
* ``model.zip``: the final model.

Every env of musicgym trains here; the family defaults (``train/defaults/*.yaml``) choose the
algorithm: PPO on the sound-matching and improvisation envs' native vector envs (all parallel
envs in one engine call), MaskablePPO on the composition envs (their action masks), RecurrentPPO
on the accompaniment. Envs without a native vector env run in Gymnasium's ``SyncVectorEnv``;
either way SB3 sees them through :class:`~musicgym.train.sb3.SB3VecEnv` (Gymnasium's public
vector contract: same-step autoreset, episode statistics, action masks).

Before anything is written, the run is checked: an algorithm that does not fit the env's spaces
(or needs masks the env lacks) is refused with a :class:`~musicgym.errors.UsageError`.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

from musicgym.errors import ConfigError, UsageError
from musicgym.train.config import LEARNERS, ON_POLICY, TrainConfig, learner, plan_budget
from musicgym.train.runfiles import (
    last_good_checkpoint,
    load_model,
    new_run_dir,
    read_run_config,
    save_checkpoint,
    write_atomically,
)

ALGO_CLASSES = {
    "ppo": ("stable_baselines3", "PPO"), "a2c": ("stable_baselines3", "A2C"),
    "sac": ("stable_baselines3", "SAC"), "td3": ("stable_baselines3", "TD3"),
    "dqn": ("stable_baselines3", "DQN"), "maskable_ppo": ("sb3_contrib", "MaskablePPO"),
    "recurrent_ppo": ("sb3_contrib", "RecurrentPPO"),
}
# the action spaces each algorithm can act in (SB3's own support table)
_ANY = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
ACTION_SPACES = {"ppo": _ANY, "a2c": _ANY, "recurrent_ppo": _ANY,
                 "sac": (gym.spaces.Box,), "td3": (gym.spaces.Box,), "dqn": (gym.spaces.Discrete,),
                 "maskable_ppo": (gym.spaces.Discrete, gym.spaces.MultiDiscrete,
                                  gym.spaces.MultiBinary)}


def algo_class(name: str):
    module, cls = ALGO_CLASSES[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise ConfigError(f"algo {name!r} needs the {module} package: install musicgym's "
                          "'train' extra (make setup does)") from exc


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id`` (:class:`UsageError` naming musicgym's ids if none)."""
    import musicgym  # noqa: F401  (registers the ids)

    try:
        return gym.spec(env_id)
    except gym.error.Error:
        ids = sorted(k for k in gym.registry if k.startswith("musicgym/"))
        raise UsageError(f"env_id: {env_id!r} is not registered; musicgym's envs: "
                         f"{', '.join(ids)}") from None


def has_action_masks(env_id: str) -> bool:
    """Whether the env of ``env_id`` offers ``action_masks()`` (MaskablePPO's contract)."""
    from gymnasium.envs.registration import load_env_creator

    entry = env_spec(env_id).entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    return callable(getattr(creator, "action_masks", None))


def check_fits(config: TrainConfig, action_space: gym.Space) -> None:
    """Raise :class:`UsageError` if ``config.algo`` cannot act in ``action_space``."""
    fits = [a for a, kinds in ACTION_SPACES.items() if isinstance(action_space, kinds)]
    masks = has_action_masks(config.env_id)
    if not masks and "maskable_ppo" in fits:
        fits.remove("maskable_ppo")
    if config.algo not in fits:
        why = "it has no action masks" if config.algo == "maskable_ppo" and \
            isinstance(action_space, ACTION_SPACES["maskable_ppo"]) else \
            f"its action space is {action_space}"
        raise UsageError(f"algo {config.algo} does not fit {config.env_id}: {why}; choose one "
                         f"of {', '.join(fits)}")


def make_train_env(config: TrainConfig):
    """The SB3 VecEnv for a config (:func:`~musicgym.train.sb3.make_sb3_vec_env`): the native
    vector env when the id has one (Gymnasium's SyncVectorEnv for MaskablePPO, whose masks
    come from the single envs), with episode statistics."""
    from musicgym.train.sb3 import make_sb3_vec_env

    env_spec(config.env_id)  # an unknown id: a usage error naming musicgym's ids
    mode = "sync" if config.algo == "maskable_ppo" else None
    return make_sb3_vec_env(config.env_id, config.n_envs, seed=config.seed,
                            env_kwargs=config.env_kwargs, vectorization_mode=mode)


def evaluate_policy_returns(model, config: TrainConfig, episodes: int,
                            seed: int) -> dict[str, float]:
    """Mean and std of deterministic episode returns on a fresh evaluation env."""
    from musicgym.train.evaluate import run_episodes

    records = run_episodes(model, config, episodes, seed=seed, keep_audio=False)
    returns = [r["return"] for r in records]
    out = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}
    if "clip_distance" in records[0]:
        out["mean_clip_distance"] = float(np.mean([r["clip_distance"] for r in records]))
    return out


def _callbacks(config: TrainConfig, run_dir: Path, progress: bool, start: int):
    from stable_baselines3.common.callbacks import BaseCallback

    class RunCallback(BaseCallback):
        """Progress bar, periodic evaluations and atomic checkpoints.

        Evaluations and checkpoints happen when a rollout starts: the policy has just learnt
        from the previous one, so a checkpoint's step count is the steps its policy learnt
        from, and a resumed on-policy run still ends on a whole rollout.
        """

        def __init__(self) -> None:
            super().__init__()
            self.bar = None
            self.last_eval = self.last_ckpt = start
            # a kill after an evaluation and before its checkpoint leaves a later entry
            self.evaluations = [e for e in _read_evaluations(run_dir) if e["steps"] <= start]

        def _on_training_start(self) -> None:
            if progress:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=config.steps, initial=self.model.num_timesteps,
                                desc=f"train {config.algo} {config.env_id}", unit="step",
                                unit_scale=True, dynamic_ncols=True)

        def _on_step(self) -> bool:
            if self.bar is not None:
                self.bar.update(self.model.num_timesteps - self.bar.n)
            return True

        def _on_rollout_start(self) -> None:
            n = self.model.num_timesteps
            if config.eval_every and n - self.last_eval >= config.eval_every:
                self.evaluate()
            elif config.checkpoint_every and n - self.last_ckpt >= config.checkpoint_every:
                self.checkpoint()

        def checkpoint(self) -> None:
            save_checkpoint(self.model, run_dir, config)
            self.last_ckpt = self.model.num_timesteps

        def evaluate(self) -> None:
            n = self.model.num_timesteps
            result = evaluate_policy_returns(self.model, config, config.eval_episodes,
                                             seed=10_000 + config.seed)
            result["steps"] = int(n)
            self.evaluations.append(result)
            write_atomically(run_dir / "evaluations.json", json.dumps(self.evaluations, indent=2))
            self.logger.record("eval/mean_reward", result["mean_return"])
            if "mean_clip_distance" in result:
                self.logger.record("eval/clip_distance", result["mean_clip_distance"])
            self.last_eval = n
            if self.bar is not None:
                self.bar.set_postfix(eval=f"{result['mean_return']:.3f}")
            self.log_media()
            self.checkpoint()

        def log_media(self) -> None:
            """One evaluation episode's sounds and pictures in TensorBoard (see
            :func:`log_evaluation_media`)."""
            writer = _tensorboard_writer(self.logger)
            if writer is not None:
                log_evaluation_media(writer, self.model, config, int(self.model.num_timesteps))

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.update(self.model.num_timesteps - self.bar.n)
                self.bar.close()

    return RunCallback()


def _tensorboard_writer(logger):
    """The SummaryWriter of an SB3 logger's TensorBoard output, or None if it has none."""
    from stable_baselines3.common.logger import TensorBoardOutputFormat

    for output in getattr(logger, "output_formats", []):
        if isinstance(output, TensorBoardOutputFormat):
            return output.writer
    return None


MEDIA_SECONDS = 30.0  # longer sounds are cut in TensorBoard


def log_evaluation_media(writer, model, config: TrainConfig, step: int) -> None:
    """Play one evaluation episode and log what the family makes of it at ``step``.

    The files are those ``musicgym evaluate`` writes
    (:func:`musicgym.train.evaluate.evaluate_model` with one episode, in a temporary folder):
    every WAV as ``eval/audio/<name>`` (mono, at most :data:`MEDIA_SECONDS`), every PNG as
    ``eval/image/<name>``: for sound matching the target, the agent's clip and the spectrogram
    comparison; for composition the piece rendered and its piano roll; for improvisation the
    agent's take, its target and the descriptor traces; for accompaniment the duet and the
    asynchrony plot.
    """
    import tempfile

    import matplotlib.image

    from musicgym.audio.io import read_audio
    from musicgym.train.evaluate import evaluate_model

    with tempfile.TemporaryDirectory(prefix="musicgym-media-") as tmp:
        folder = Path(tmp)
        evaluate_model(model, config, 1, folder, plots=True)
        for path in sorted(folder.rglob("*.wav")):
            audio, sr = read_audio(path)
            mono = np.clip(audio.mean(axis=0)[:int(MEDIA_SECONDS * sr)], -1.0, 1.0)
            tag = path.relative_to(folder).with_suffix("").as_posix()
            writer.add_audio(f"eval/audio/{tag}", mono, step, sample_rate=sr)
        for path in sorted(folder.rglob("*.png")):
            image = matplotlib.image.imread(path)[..., :3]
            tag = path.relative_to(folder).with_suffix("").as_posix()
            writer.add_image(f"eval/image/{tag}", image, step, dataformats="HWC")
    writer.flush()


def _read_evaluations(run_dir: Path) -> list:
    path = run_dir / "evaluations.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else []
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON: {exc}") from None
    return [e for e in data if isinstance(e, dict) and isinstance(e.get("steps"), int)]


def _resume_steps(config: TrainConfig, done: int, wanted: int | None) -> str | None:
    """Extend a resumed run's budget to ``wanted`` in whole rollouts of its own size."""
    if wanted is None or wanted <= config.steps:
        return None
    chunk = config.n_envs * (config.algo_kwargs.get("n_steps", 1)
                             if config.algo in ON_POLICY else 1)
    real = done + -(-(wanted - done) // chunk) * chunk
    config.steps = real
    return None if real == wanted else f"steps {wanted} -> {real}: whole rollouts of {chunk}"


def train(config: TrainConfig | None, *, runs_root: str | Path = "runs", progress: bool = True,
          resume: str | Path | None = None) -> Path:
    """Train (or resume) a run; return its folder.

    Parameters
    ----------
    config : TrainConfig or None
        What to train, as is (:func:`musicgym.train.config.resolve` adds the env family's
        defaults); its rollouts are sized to ``steps`` (:func:`~musicgym.train.config.plan_budget`,
        which prints one line if the budget changes). When resuming, only its ``steps`` is
        read: a larger budget than the run's extends it.
    runs_root : path, keyword-only
        Where new run folders go (default ``runs``).
    progress : bool, keyword-only
        Show a progress bar (steps, speed, latest evaluation).
    resume : path, keyword-only
        A run folder: continue from its last good checkpoint with its step count, optimiser
        state and (off-policy) replay buffer.

    Raises
    ------
    UsageError
        The algorithm does not fit the env, or a field is out of range: nothing is written.
    ConfigError
        Other bad settings (unknown algorithm keywords...), or a run folder that cannot be
        resumed.

    Notes
    -----
    A learner of :data:`~musicgym.train.config.LEARNERS` (``algo: inverse``) trains its own
    run, in the same folder layout (see :mod:`musicgym.train.inverse`).
    """
    import torch
    import yaml

    saved = read_run_config(Path(resume)) if resume is not None else None
    algo = (saved or config).algo
    if algo in LEARNERS:
        return learner(algo).train(saved or config, runs_root=runs_root, progress=progress,
                                   resume=resume)
    # one torch thread: SB3's advice for CPU training, and the envs need the other core
    torch.set_num_threads(1)
    if resume is not None:
        run_dir = Path(resume)
        found = last_good_checkpoint(run_dir, saved.algo)
        if found is None:
            raise ConfigError(f"--resume {run_dir}: no checkpoint there reads back whole (was "
                              "the run started by musicgym train?)")
        note = _resume_steps(saved, found[1]["num_timesteps"],
                             config.steps if config is not None else None)
        config = saved
    else:
        config = TrainConfig.from_dict(config.to_dict())
        note = plan_budget(config)
    if note:
        print(note)
    env = make_train_env(config)
    try:
        check_fits(config, env.action_space)
        if resume is not None:
            model = load_model(found[0], config, env, meta=found[1])
        else:
            try:
                model = algo_class(config.algo)(config.policy, env, seed=config.seed,
                                                device=config.device, verbose=0,
                                                **config.algo_kwargs)
            except (TypeError, ValueError, AssertionError) as exc:
                raise ConfigError(f"algo_kwargs: {exc}") from exc
            run_dir = new_run_dir(runs_root, config.algo)
        write_atomically(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(),
                                                                 sort_keys=False))
        model.set_logger(_logger(run_dir))
        start = int(model.num_timesteps)
        callback = _callbacks(config, run_dir, progress, start)
        if config.steps > start:
            model.learn(total_timesteps=config.steps - start, callback=callback,
                        reset_num_timesteps=resume is None)
        else:
            callback.init_callback(model)
        callback.evaluate()
        save_checkpoint(model, run_dir, config, "model")
    finally:
        env.close()
    return run_dir


def _logger(run_dir: Path):
    """TensorBoard and ``progress.csv``, the CSV appended to (a resumed run keeps its rows)."""
    from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

    class AppendingCSV(CSVOutputFormat):
        """SB3's CSV log, continued where an earlier process left it."""

        def __init__(self, filename: Path) -> None:
            if not filename.is_file() or filename.stat().st_size == 0:
                super().__init__(str(filename))
                return
            self.file = open(filename, "r+")  # noqa: SIM115  (the logger closes it)
            lines = self.file.read().splitlines(keepends=True)
            if not lines[-1].endswith("\n"):  # a row cut by a kill
                lines.pop()
                self.file.seek(0)
                self.file.writelines(lines)
                self.file.truncate()
            self.keys = lines[0].rstrip("\n").split(",") if lines else []
            self.separator, self.quotechar = ",", '"'
            self.file.seek(0, 2)

    folder = run_dir / "tensorboard"
    folder.mkdir(exist_ok=True)
    return Logger(str(folder), [TensorBoardOutputFormat(str(folder)),
                                AppendingCSV(folder / "progress.csv")])
