"""Train a recurrent accompanist on ``musicgym/Accompany-v0`` with RecurrentPPO (an LSTM policy).

Reads top to bottom like a CleanRL script: every hyperparameter is a visible default of
:class:`TrainConfig`; :func:`train` builds the training envs (simulated performances and the
training takes, followed by the chosen follower), trains sb3-contrib's ``RecurrentPPO``, logs
to TensorBoard and saves the run; :func:`load_agent` and :func:`agent_runs` bring a saved run
back and let it accompany held-out takes. A run folder holds::

    model.zip     the policy (RecurrentPPO.save)
    config.json   the TrainConfig it was trained with (env settings included)
    tb/           TensorBoard logs (rollout/ep_rew_mean, train/loss, ...)

Needs the ``train`` extra (torch, stable-baselines3, sb3-contrib; tensorboard for the logs).
The training issue's ``musicgym train`` wraps :func:`train`; nothing here parses a command line.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from musicgym.errors import AccompanyConfigError
from musicgym.follow.accompanist import AccompanistRun
from musicgym.follow.evaluate import tempo_model_action
from musicgym.follow.tempo import RehearsedTempo, RehearsedTiming, make_tempo_model

ENV_ID = "musicgym/Accompany-v0"


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved beside the model as ``config.json``)."""

    total_timesteps: int = 20_000  # env steps (one step = one solo onset); ~4 min on 2 cores
    seed: int = 0
    torch_threads: int = 1  # small networks: more threads only contend for the cores
    n_envs: int = 4  # envs stepped in turn (DummyVecEnv): more episodes per rollout
    # RecurrentPPO (sb3-contrib); passed as is
    learning_rate: float = 3e-4
    n_steps: int = 256  # steps per env per rollout
    batch_size: int = 256  # steps per minibatch (whole sequences are kept together)
    n_epochs: int = 4
    gamma: float = 0.95  # asynchrony is paid within a few onsets of the action causing it
    gae_lambda: float = 0.9
    clip_range: float = 0.2
    ent_coef: float = 0.0
    log_std_init: float = -1.5  # start close to the mean action: exploration costs asynchrony
    lstm_hidden_size: int = 64
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    # residual control: the agent corrects a tempo model's action (None: it acts alone);
    # "+rehearsal" bends the model by the earlier takes' tempo curves, "+timing" plays to the
    # next solo onset as the earlier takes time it (both need memory below)
    residual_on: str | None = "kalman+timing"
    residual_scale: float = 0.1  # the agent's action in [-1, 1] moves the model's by this
    zero_init: bool = True  # the policy's mean action starts at exactly 0 (plays as the model)
    # the env (see AccompanyEnv); the same settings are used to evaluate
    env_kwargs: dict[str, Any] = field(
        default_factory=lambda: {
            "follower": "oltw", "episode_reports": 64, "p_real": 0.5, "memory": True,
        }
    )

    def __post_init__(self) -> None:
        if self.total_timesteps < 1 or self.n_envs < 1 or self.n_steps < 2:
            raise AccompanyConfigError(
                "TrainConfig needs total_timesteps >= 1, n_envs >= 1 and n_steps >= 2, got "
                f"{self.total_timesteps}, {self.n_envs}, {self.n_steps}"
            )
        if "split" in self.env_kwargs:
            raise AccompanyConfigError(
                "TrainConfig.env_kwargs must not set 'split': training uses the train split and "
                "evaluation the test split"
            )


class ResidualOnTempoModel(gym.Wrapper):
    """Let the agent correct a tempo model instead of acting from scratch.

    The env's action becomes ``clip(base + scale * a, -1, 1)``, where ``base`` is the action
    with which the tempo model would play this step (:func:`tempo_model_action`) and ``a`` the
    agent's; ``base`` is appended to the observation. An agent that outputs 0 plays exactly as
    the tempo model does, so training starts from the baseline and can only learn what it adds.

    Parameters
    ----------
    env : gymnasium.Env
        A ``musicgym/Accompany-v0`` env.
    tempo_model : str
        A name :func:`make_tempo_model` knows, or that name with ``+rehearsal`` (the model
        bent by the earlier takes' tempo curves, :class:`RehearsedTempo`) or ``+timing``
        (the next solo onset predicted from the earlier takes' timing,
        :class:`RehearsedTiming`); a suffix needs the env's ``memory`` option, and the model
        plays plain where an episode has no earlier takes.
    scale : float
        Largest correction, in units of the env's action.
    """

    def __init__(self, env: gym.Env, tempo_model: str, scale: float) -> None:
        super().__init__(env)
        self.base_name, _, extra = tempo_model.partition("+")
        self.memory_model = {"rehearsal": RehearsedTempo, "timing": RehearsedTiming,
                             "": None}.get(extra, False)
        make_tempo_model(self.base_name)  # fail now on an unknown name
        if self.memory_model is False or (self.memory_model and not env.unwrapped.memory):
            raise AccompanyConfigError(
                f"residual_on {tempo_model!r}: the suffixes are '+rehearsal' and '+timing', and "
                "a suffix needs env_kwargs={'memory': True} (the earlier takes the model uses)"
            )
        if not scale > 0:
            raise AccompanyConfigError(f"residual_scale must be > 0, got {scale!r}")
        self.scale = scale
        low, high = env.observation_space.low, env.observation_space.high
        self.observation_space = gym.spaces.Box(
            np.append(low, -1.0).astype(np.float32), np.append(high, 1.0).astype(np.float32)
        )
        self._base = np.zeros(1, dtype=np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        run = self.env.unwrapped.run
        self.model = make_tempo_model(self.base_name)
        curves = self.env.unwrapped.memory_curves if self.memory_model else []
        if curves:
            self.model = self.memory_model(self.model, curves)
        self.model.reset(time_s=float(run.episode.report_onset_sec[run.k]),
                         solo_beat=run.position_beat,
                         beat_period_s=run.beat_period_s)
        self._base = tempo_model_action(self.model, run)
        return np.append(obs, self._base).astype(np.float32), info

    def step(self, action):
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        combined = np.clip(self._base + self.scale * np.clip(action, -1.0, 1.0), -1.0, 1.0)
        obs, reward, terminated, truncated, info = self.env.step(combined)
        run = self.env.unwrapped.run
        done = terminated or truncated
        self._base = np.zeros(1, np.float32) if done else tempo_model_action(self.model, run)
        return np.append(obs, self._base).astype(np.float32), reward, terminated, truncated, info


def make_agent_env(config: TrainConfig, split: str, **overrides) -> gym.Env:
    """An Accompany-v0 env as the agent of ``config`` sees it (residual wrapper included).

    ``overrides`` replace entries of ``config.env_kwargs`` (e.g. the follower, for
    evaluation).
    """
    import musicgym.envs  # noqa: F401  (registers the ids)

    env = gym.make(ENV_ID, split=split, **{**config.env_kwargs, **overrides})
    if config.residual_on is not None:
        env = ResidualOnTempoModel(env, config.residual_on, config.residual_scale)
    return env


def _recurrent_ppo():
    try:
        from sb3_contrib import RecurrentPPO
    except ImportError as exc:
        raise AccompanyConfigError(
            "training the accompanist needs sb3-contrib and torch: install the 'train' extra "
            "(pip install -e '.[train]')"
        ) from exc
    return RecurrentPPO


def make_train_env(config: TrainConfig):
    """The vectorised training envs (train split, one seed each, episode statistics logged)."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    def make_one():
        return Monitor(make_agent_env(config, "train"))

    venv = DummyVecEnv([make_one] * config.n_envs)
    venv.seed(config.seed)
    return venv


def build_model(config: TrainConfig, venv, *, tensorboard_log: str | None = None):
    """The untrained RecurrentPPO of ``config`` on ``venv``; with ``zero_init`` its action
    head is zeroed, so that its mean action is exactly 0: a residual agent starts by playing
    as its tempo model."""
    RecurrentPPO = _recurrent_ppo()
    import torch

    model = RecurrentPPO(
        "MlpLstmPolicy",
        venv,
        learning_rate=config.learning_rate,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=config.ent_coef,
        policy_kwargs={
            "lstm_hidden_size": config.lstm_hidden_size,
            "net_arch": list(config.net_arch),
            "log_std_init": config.log_std_init,
        },
        tensorboard_log=tensorboard_log,
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    if config.zero_init:
        with torch.no_grad():
            model.policy.action_net.weight.zero_()
            model.policy.action_net.bias.zero_()
    return model


def train(config: TrainConfig, run_dir: str | Path, *, progress: bool = False) -> Path:
    """Train RecurrentPPO on Accompany-v0 and save the run in ``run_dir``.

    Parameters
    ----------
    config : TrainConfig
        Hyperparameters and env settings.
    run_dir : str or pathlib.Path
        Folder for ``model.zip`` and ``config.json`` (created; replaced) and ``tb/`` (each run
        adds a numbered log folder).
    progress : bool, keyword-only
        Show SB3's progress bar.

    Returns
    -------
    pathlib.Path
        ``run_dir``.
    """
    _recurrent_ppo()  # fail early without the 'train' extra
    import torch

    torch.set_num_threads(config.torch_threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    venv = make_train_env(config)
    try:
        import tensorboard  # noqa: F401

        tensorboard_log = str(run_dir / "tb")
    except ImportError:  # logs are optional; the model is not
        tensorboard_log = None
    model = build_model(config, venv, tensorboard_log=tensorboard_log)
    start = time.perf_counter()
    model.learn(total_timesteps=config.total_timesteps, tb_log_name="recurrent_ppo",
                progress_bar=progress)
    model.save(run_dir / "model.zip")
    record = {**asdict(config), "train_seconds": time.perf_counter() - start}
    (run_dir / "config.json").write_text(json.dumps(record, indent=2))
    venv.close()
    return run_dir


def load_agent(run_dir: str | Path):
    """A saved run: ``(model, config)``.

    Raises
    ------
    AccompanyConfigError
        When ``run_dir`` lacks ``model.zip`` or ``config.json``.
    """
    run_dir = Path(run_dir)
    missing = [n for n in ("model.zip", "config.json") if not (run_dir / n).is_file()]
    if missing:
        raise AccompanyConfigError(
            f"{str(run_dir)!r} is not a trained accompanist run: it lacks {missing}; train one "
            "with musicgym.follow.train.train(TrainConfig(), RUN_DIR)"
        )
    record = json.loads((run_dir / "config.json").read_text())
    record.pop("train_seconds", None)
    config = TrainConfig(**record)
    model = _recurrent_ppo().load(run_dir / "model.zip", device="cpu")
    return model, config


class AgentPolicy:
    """A trained agent as a step-by-step accompanist: keeps its LSTM state between calls."""

    def __init__(self, model) -> None:
        self.model = model
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next call starts a new performance."""
        self._state = None
        self._start = np.ones((1,), dtype=bool)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action (shape (1,), float32) for one observation."""
        action, self._state = self.model.predict(
            obs[None, :], state=self._state, episode_start=self._start, deterministic=True
        )
        self._start = np.zeros((1,), dtype=bool)
        return np.asarray(action, dtype=np.float32).reshape(1)


def agent_runs(
    model, config: TrainConfig, takes: tuple[int, ...], *, follower: str
) -> list[AccompanistRun]:
    """Let a trained agent accompany whole held-out takes (test split) with a given follower.

    Returns
    -------
    list of AccompanistRun
        One played-through run per take (feed them to
        :func:`musicgym.follow.evaluate.pool_runs`).
    """
    env = make_agent_env(config, "test", follower=follower, sources=("real",))
    policy = AgentPolicy(model)
    runs = []
    for take in takes:
        obs, _ = env.reset(seed=0, options={"take": take, "start": 0, "whole": True})
        policy.reset()
        done = False
        while not done:
            obs, _, done, _, _ = env.step(policy.act(obs))
        runs.append(env.unwrapped.run)
    return runs
