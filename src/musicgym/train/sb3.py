"""Stable-Baselines3 on any Gymnasium vector env, through Gymnasium's public vector contract.

SB3's ``VecEnv`` resets an env as soon as it ends, reports its last observation in
``infos[i]["terminal_observation"]`` and wants one info dict per env; a Gymnasium
``VectorEnv`` declares how it resets in ``metadata["autoreset_mode"]`` and returns one dict of
batched infos (each key ``k`` with its mask ``_k``). :class:`SB3VecEnv` turns the second into
the first, for musicgym's native vector envs (one engine call for all envs) as for Gymnasium's
``SyncVectorEnv`` and ``AsyncVectorEnv``::

    from stable_baselines3 import PPO
    from musicgym.train.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("musicgym/Kick-v0", 16, seed=0)
    PPO("MlpPolicy", venv, n_steps=64).learn(2048)

or, from a vector env made by hand (it must reset ended envs in the same step, or on request)::

    import gymnasium as gym
    from gymnasium.vector import AutoresetMode
    from musicgym.train.sb3 import SB3VecEnv

    venv = SB3VecEnv(gym.make_vec("musicgym/Kick-v0", num_envs=16,
                                  autoreset_mode=AutoresetMode.SAME_STEP))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from musicgym.errors import ConfigError

# infos of a SAME_STEP vector env that are not news of one env's step
_FINAL_KEYS = ("final_obs", "final_info")


def make_sb3_vec_env(env_id: str, n_envs: int = 1, *, seed: int | None = None,
                     env_kwargs: Mapping[str, Any] | None = None,
                     vectorization_mode: str | None = None) -> SB3VecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` copies of a registered env, with episode statistics.

    The env's native vector env when it has one (``vector_entry_point``), else Gymnasium's
    ``SyncVectorEnv`` (or ``vectorization_mode="async"``: one process per env), asked to
    reset ended envs in the same step (``AutoresetMode.SAME_STEP``), wrapped in
    ``RecordEpisodeStatistics`` (SB3 then logs ``rollout/ep_rew_mean``).

    Parameters
    ----------
    env_id : str
        A registered id, e.g. ``"musicgym/Kick-v0"``.
    n_envs : int
        Number of envs stepped together.
    seed : int, optional
        Seed of the first reset (env ``i`` gets ``seed + i`` where envs are separate).
    env_kwargs : mapping, optional
        Keyword arguments of the env.
    vectorization_mode : {"vector_entry_point", "sync", "async"}, optional
        Default: ``"vector_entry_point"`` where the id has one, else ``"sync"``.

    Raises
    ------
    ConfigError
        An unknown id or vectorization mode.
    """
    import musicgym.envs  # noqa: F401  (registers the ids)

    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise ConfigError(f"env_id: {exc}") from exc
    native = spec.vector_entry_point is not None
    mode = vectorization_mode or ("vector_entry_point" if native else "sync")
    kwargs = dict(env_kwargs or {})
    if mode == "vector_entry_point" and native:
        venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode,
                            **{"autoreset_mode": AutoresetMode.SAME_STEP, **kwargs})
    elif mode in ("sync", "async"):
        venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode,
                            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs)
    else:
        raise ConfigError(f"vectorization_mode must be 'sync', 'async' or (for an id with a "
                          f"native vector env) 'vector_entry_point', got {mode!r}")
    env = SB3VecEnv(RecordEpisodeStatistics(venv))
    if seed is not None:
        env.seed(seed)
    return env


class SB3VecEnv(VecEnv):
    """A Gymnasium ``VectorEnv`` as a Stable-Baselines3 ``VecEnv``.

    Only the vector env's public contract is used: ``metadata["autoreset_mode"]``,
    ``step``/``reset`` (``options={"reset_mask": mask}`` for ``DISABLED``), its info dict,
    and, for Gymnasium's ``SyncVectorEnv``/``AsyncVectorEnv``, ``call``/``get_attr``/
    ``set_attr`` on the sub-envs. A native vector env (one object for all its envs) answers
    ``get_attr``/``env_method`` itself, once for all rows; its ``action_masks()`` returns one
    row per env.

    Parameters
    ----------
    venv : gymnasium.vector.VectorEnv
        Resetting ended envs in the same step (``SAME_STEP``: their last observation in
        ``info["final_obs"]``) or on request (``DISABLED``, musicgym's native vector envs
        only: Gymnasium's lose the episode statistics on a partial reset). ``NEXT_STEP`` is
        refused: its reset comes a step late, after SB3 has already acted on the stale
        observation.
        Wrapped in ``RecordEpisodeStatistics`` unless it already is, so SB3 gets
        ``info["episode"] = {"r", "l", "t"}`` at each episode's end.

    Raises
    ------
    ConfigError
        A vector env in ``NEXT_STEP`` mode, one that declares no autoreset mode, or a
        Gymnasium Sync/AsyncVectorEnv in ``DISABLED`` mode.
    """

    def __init__(self, venv: VectorEnv) -> None:
        mode = venv.metadata.get("autoreset_mode")
        if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED):
            raise ConfigError(
                f"SB3VecEnv needs a vector env that resets ended envs in the same step "
                f"(AutoresetMode.SAME_STEP) or on request (DISABLED); this one declares "
                f"{mode!r}. Build it with musicgym.train.sb3.make_sb3_vec_env(env_id, n_envs), "
                "or pass autoreset_mode=AutoresetMode.SAME_STEP to gym.make_vec (musicgym's "
                "native vector envs) or vector_kwargs={'autoreset_mode': "
                "AutoresetMode.SAME_STEP} (vectorization_mode 'sync' or 'async')")
        base = venv.unwrapped
        # Gymnasium's Sync/Async vector envs reach their sub-envs through call/get_attr
        self._per_env = callable(getattr(base, "call", None))
        if mode == AutoresetMode.DISABLED and self._per_env:
            # Gymnasium 1.4's Sync/AsyncVectorEnv take reset_mask out of the options, so
            # RecordEpisodeStatistics above them restarts every env's counts at each partial
            # reset: the episode returns SB3 logs would be wrong
            raise ConfigError(f"{type(base).__name__} in AutoresetMode.DISABLED loses the "
                              "episode statistics at each partial reset: make it with "
                              "vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP}")
        if not _records_episodes(venv):
            venv = RecordEpisodeStatistics(venv)
        self.venv = venv
        self.autoreset_mode = mode
        self._base = base
        self._actions = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    # -- stepping ----------------------------------------------------------------------------
    def reset(self):
        seed = self._seeds[0]
        obs, info = self.venv.reset(seed=seed, options=self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = split_infos(info, self.num_envs)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        infos = split_infos(info, self.num_envs)
        ended = np.flatnonzero(dones)
        if ended.size and self.autoreset_mode == AutoresetMode.SAME_STEP:
            self._same_step_finals(info, infos, ended)
        elif ended.size:
            for i in ended:
                infos[i]["terminal_observation"] = _row(obs, i)
            obs, reset_info = self.venv.reset(options={"reset_mask": dones.copy()})
            reset_infos = split_infos(reset_info, self.num_envs)
            for i in ended:
                self.reset_infos[i] = reset_infos[i]
        for i in ended:
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def _same_step_finals(self, info: dict, infos: list[dict], ended: np.ndarray) -> None:
        """Each ended env's info: its last step's (``final_info`` where the vector env keeps
        the reset's at the top level, as Gymnasium's do), its episode statistics and its last
        observation."""
        given = info.get("_final_obs", np.ones(self.num_envs, dtype=bool))
        if "final_obs" not in info or not np.all(given[ended]):
            raise ConfigError("a SAME_STEP vector env must give info['final_obs'] for every "
                              f"env that ended; envs {ended.tolist()} ended without one")
        finals = split_infos(info["final_info"], self.num_envs) if "final_info" in info else None
        for i in ended:
            if finals is not None and info["_final_info"][i]:
                episode = infos[i].pop("episode", None)
                self.reset_infos[i] = infos[i]
                infos[i] = finals[i] if episode is None else {**finals[i], "episode": episode}
            infos[i]["terminal_observation"] = info["final_obs"][i]

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> list:
        frames = self.venv.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    # -- the sub-envs ------------------------------------------------------------------------
    def get_attr(self, attr_name: str, indices=None) -> list:
        rows = self._get_indices(indices)
        if self._per_env:
            values = self._base.get_attr(attr_name)
            return [values[i] for i in rows]
        value = getattr(self._base, attr_name)
        return [value for _ in rows]

    def has_attr(self, attr_name: str) -> bool:
        if self._per_env:
            return super().has_attr(attr_name)
        return hasattr(self._base, attr_name)

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        rows = list(self._get_indices(indices))
        every = sorted(rows) == list(range(self.num_envs))
        if not self._per_env:
            if not every:
                raise ConfigError(f"{type(self._base).__name__} is one object for all its "
                                  f"envs: set_attr({attr_name!r}) applies to all of them, "
                                  f"not to envs {rows}")
            setattr(self._base, attr_name, value)
        elif every:
            self._base.set_attr(attr_name, value)
        else:
            values = list(self._base.get_attr(attr_name))
            for i in rows:
                values[i] = value
            self._base.set_attr(attr_name, values)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        rows = list(self._get_indices(indices))
        if not self._per_env:
            result = getattr(self._base, method_name)(*method_args, **method_kwargs)
            if method_name == "action_masks":  # one row per env
                return [np.asarray(result)[i] for i in rows]
            return [result for _ in rows]
        envs = getattr(self._base, "envs", None)
        if envs is not None:  # SyncVectorEnv: call only the envs asked for
            return [envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs)
                    for i in rows]
        # AsyncVectorEnv's call reaches every sub-env: the others' results are dropped
        results = self._base.call(method_name, *method_args, **method_kwargs)
        return [results[i] for i in rows]

    def action_masks(self) -> np.ndarray:
        """(num_envs, n_actions) bool: the allowed actions of each env (MaskablePPO's API)."""
        return np.stack(self.env_method("action_masks")).astype(bool)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        rows = self._get_indices(indices)
        envs = getattr(self._base, "envs", None)
        if envs is None:  # a native vector env, or sub-envs in other processes
            return [False for _ in rows]
        return [_is_wrapped(envs[i], wrapper_class) for i in rows]


def split_infos(info: Mapping[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's batched infos (``info[k][i]`` counts where ``info["_k"][i]``) as one dict
    per env, SB3's form; nested dicts (``episode``, ``final_info``...) are split the same way.
    The top-level ``final_obs``/``final_info`` of a SAME_STEP env are left out."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in info.items():
        if key in _FINAL_KEYS or (key.startswith("_") and key[1:] in info):
            continue
        mask = info.get(f"_{key}")
        rows = range(num_envs) if mask is None else np.flatnonzero(mask)
        if isinstance(value, Mapping):
            parts = split_infos(value, num_envs)
            for i in rows:
                out[i][key] = parts[i]
        else:
            for i in rows:
                out[i][key] = _scalar(value[i])
    return out


def _scalar(value: Any) -> Any:
    """NumPy scalars as Python numbers; arrays and objects as they are."""
    return value.item() if isinstance(value, np.generic) else value


def _row(obs: Any, i: int) -> Any:
    """Env ``i``'s observation in a batch (an array, or a dict of arrays)."""
    if isinstance(obs, Mapping):
        return {k: _row(v, i) for k, v in obs.items()}
    return np.array(obs[i])


def _records_episodes(venv: VectorEnv) -> bool:
    while isinstance(venv, VectorWrapper):
        if isinstance(venv, RecordEpisodeStatistics):
            return True
        venv = venv.env
    return False


def _is_wrapped(env: gym.Env, wrapper_class: type[gym.Wrapper]) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, wrapper_class):
            return True
        env = env.env
    return False
