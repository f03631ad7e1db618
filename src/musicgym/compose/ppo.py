"""Masked PPO on ``musicgym/Counterpoint-v0``: train sb3-contrib's ``MaskablePPO``, then compose.

The env's ``action_masks()`` hides every note the hard rules forbid (and, with lookahead, every
note that leads to a dead end), so the policy only ever samples valid notes and every piece it
writes has zero hard-rule violations; what it learns is which valid notes score well.

Needs the ``train`` extra (torch, stable-baselines3, sb3-contrib).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from musicgym.errors import ConfigError

# PPO settings for this env; every one is visible here and passed to MaskablePPO as is
PPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 512,  # one rollout: about 16 pieces
    "batch_size": 128,
    "n_epochs": 4,
    "learning_rate": 3e-4,
    "gamma": 1.0,  # the score comes at the end of a short episode: no discount
    "ent_coef": 0.01,
    "policy_kwargs": {"net_arch": [128, 128]},
}


def _maskable_ppo():
    try:
        from sb3_contrib import MaskablePPO
    except ImportError as exc:
        raise ConfigError("method 'ppo' needs sb3-contrib and torch: install the 'train' extra "
                          "(pip install -e '.[train]')") from exc
    return MaskablePPO


def train_ppo(env: gym.Env, *, timesteps: int, seed: int = 0, progress: bool = False,
              **ppo_kwargs: Any):
    """Train a ``MaskablePPO`` policy on ``env`` for ``timesteps`` env steps.

    Parameters
    ----------
    env : gym.Env
        A ``musicgym/Counterpoint-v0`` env (it provides ``action_masks()``).
    timesteps : int
        Training budget in env steps (PPO rounds it up to whole rollouts of ``n_steps``).
    seed : int, keyword-only
    progress : bool, keyword-only
        Show SB3's progress bar.
    **ppo_kwargs
        Override :data:`PPO_DEFAULTS` (any ``MaskablePPO`` argument).

    Returns
    -------
    sb3_contrib.MaskablePPO
    """
    if timesteps < 1:
        raise ConfigError(f"ppo timesteps must be at least 1, got {timesteps}")
    settings = {**PPO_DEFAULTS, **ppo_kwargs}
    settings["n_steps"] = min(settings["n_steps"], max(64, int(timesteps)))
    settings["batch_size"] = min(settings["batch_size"], settings["n_steps"])
    model = _maskable_ppo()("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **settings)
    model.learn(total_timesteps=int(timesteps), progress_bar=progress)
    return model


def compose_with_policy(model, env: gym.Env, *, seed: int = 0,
                        deterministic: bool = False) -> tuple[float, list[int]]:
    """Write one piece with a trained policy: (return, actions).

    ``deterministic=False`` samples from the policy (seeded), so pieces differ from seed to
    seed; ``True`` takes the most likely allowed note every time.
    """
    import torch

    torch.manual_seed(seed)
    obs, info = env.reset(seed=seed)
    total, actions = 0.0, []
    while True:
        mask = np.asarray(info["action_mask"], dtype=bool)
        action, _ = model.predict(obs, action_masks=mask, deterministic=deterministic)
        action = int(action)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            return total, actions
