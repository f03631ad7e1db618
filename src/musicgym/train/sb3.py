"""Stable-Baselines3 adapter for musicgym's native vector envs.

SB3 resets an env as soon as it ends and reports the last observation in
``infos[i]["terminal_observation"]``; Gymnasium's native vector envs reset on the next step.
:class:`SB3VecEnv` turns the second into the first, so a native vector env (one engine call for
all B envs) trains with any SB3 algorithm::

    import gymnasium as gym
    from stable_baselines3 import PPO
    from musicgym.train.sb3 import SB3VecEnv

    venv = SB3VecEnv(gym.make_vec("musicgym/Kick-v0", num_envs=16))
    PPO("MlpPolicy", venv, n_steps=64).learn(2048)
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class SB3VecEnv(VecEnv):
    """Wrap a musicgym native vector env (``_reset_rows``/``_obs`` protocol) as an SB3 VecEnv."""

    def __init__(self, venv) -> None:
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions = None

    def reset(self):
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        obs, _ = self.venv.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions) -> None:
        self._actions = actions

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos = [{"TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
                 for i in range(self.num_envs)]
        for key in ("clip_distance", "target_index"):
            if key in info:
                for i in np.nonzero(info[f"_{key}"])[0]:
                    infos[i][key] = info[key][i].item()
        rows = np.nonzero(dones)[0]
        if rows.size:
            for i in rows:
                infos[i]["terminal_observation"] = obs[i].copy()
            self.venv._reset_rows(rows)
            obs = self.venv._obs()
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name, indices=None):
        return [getattr(self.venv, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name, value, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name, *args, indices=None, **kwargs):
        method = getattr(self.venv, method_name)
        return [method(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False for _ in self._get_indices(indices)]
