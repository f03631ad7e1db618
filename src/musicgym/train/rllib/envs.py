"""The envs as RLlib's env runners build them: masks in the observation, scalar infos only.

RLlib's env runners (separate processes, on other machines with a cluster) call
:func:`make_env` through ``ray.tune.registry.register_env``; it imports musicgym there before
``gymnasium.make``. Two wrappers adapt the envs to what RLlib's PPO reads:

* :class:`MaskInObservation`, for envs with an ``action_masks()`` method (Counterpoint,
  Melody): RLlib's RLModules see only the observation, so the mask travels in it, as a Dict
  ``{"action_mask": Box(0, 1, (n,)), "observations": <the env's space>}`` that
  :class:`~musicgym.train.rllib.module.MaskedPPOTorchModule` splits again;
* :class:`ScalarInfo`: RLlib stacks the infos of the envs of a runner with Gymnasium's
  vector env, which fails on arrays whose length changes between envs or steps (Accompany's
  ``asynchrony_ms``); PPO reads no info, so only the scalar ones are kept.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MASK_KEY, OBS_KEY = "action_mask", "observations"


class MaskInObservation(gym.Wrapper):
    """Put ``env.action_masks()`` (as float32 0/1) next to the observation in a Dict."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        n = int(env.action_space.n)
        self.observation_space = spaces.Dict({
            MASK_KEY: spaces.Box(0.0, 1.0, (n,), dtype=np.float32),
            OBS_KEY: env.observation_space})

    def _with_mask(self, obs) -> dict:
        return {MASK_KEY: np.asarray(self.env.unwrapped.action_masks(), dtype=np.float32),
                OBS_KEY: obs}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._with_mask(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._with_mask(obs), reward, terminated, truncated, info


class ScalarInfo(gym.Wrapper):
    """Keep the infos that are numbers or booleans (what a vector env can always stack)."""

    @staticmethod
    def _scalars(info: dict) -> dict:
        return {k: v for k, v in info.items()
                if isinstance(v, (bool, int, float, np.bool_, np.number))}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, self._scalars(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._scalars(info)


def has_action_masks(env: gym.Env) -> bool:
    """Whether the env gives its allowed actions through ``action_masks()`` (sb3-contrib's API)."""
    return callable(getattr(env.unwrapped, "action_masks", None)) \
        and isinstance(env.action_space, spaces.Discrete)


def make_env(env_config: dict[str, Any], *, env_id: str, masked: bool = False) -> gym.Env:
    """The env creator RLlib calls in each env runner (and the driver, to evaluate).

    Parameters
    ----------
    env_config : dict
        The env's keyword arguments (``TrainConfig.env_kwargs``).
    env_id : str, keyword-only
        A musicgym id; musicgym is imported first, which registers it in this process.
    masked : bool, keyword-only
        Wrap in :class:`MaskInObservation` (the env must have ``action_masks()``).
    """
    import musicgym  # noqa: F401  (registers the ids in the env runner's process)

    env = ScalarInfo(gym.make(env_id, **dict(env_config)))
    return MaskInObservation(env) if masked else env
