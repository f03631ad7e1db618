"""The native vector version of ``musicgym/SynthMatch-v0``: B envs rendered in one engine call.

``gymnasium.make_vec("musicgym/SynthMatch-v0", num_envs=B, ...)`` returns this class (it is the
registered ``vector_entry_point``; the presets ``Kick-v0``... too). Semantics are Gymnasium's:
batched spaces, and the autoreset mode of the ``autoreset_mode`` argument, declared in
``metadata["autoreset_mode"]``:

* ``NEXT_STEP`` (default, Gymnasium's): the step after an env ends resets it, returning its
  first observation with reward 0 (that row's action is ignored).
* ``SAME_STEP``: an env that ends is reset in the same step; its last observation is
  ``info["final_obs"][i]`` (where ``info["_final_obs"][i]``), the other infos are those of
  the step that ended it. What ``musicgym.train.sb3.SB3VecEnv`` (Stable-Baselines3) wants.
* ``DISABLED``: ended envs wait for ``reset(options={"reset_mask": mask})``.

``reset(options={"reset_mask": mask})`` restarts only the masked rows in any mode.
``render_mode`` (``"rgb_array"`` or ``"ansi"``, as the single env's): ``render()`` returns a
tuple with one picture or line per env, as Gymnasium's ``SyncVectorEnv`` does.
``gymnasium.wrappers.vector.RecordEpisodeStatistics`` gives the episode returns and lengths.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from musicgym.envs.matching import MatchCore
from musicgym.envs.rendering import check_render_mode
from musicgym.envs.vector import autoreset_mode_of, check_batch, reset_mask_of
from musicgym.errors import ActionSpaceError, InvalidActionError, TargetError


class SynthMatchVectorEnv(VectorEnv):
    """B sound-matching envs in lockstep; see :class:`~musicgym.envs.synth_match.SynthMatchEnv`
    for the task, spaces and rewards. Extra arguments: ``num_envs``, ``autoreset_mode`` (see
    this module), ``threads`` (threads per step; default ``MUSICGYM_NUM_THREADS``, else 1:
    each takes a block of rows and renders, rewards and featurises it, with the bits of one
    thread; see :mod:`musicgym.threads`)."""

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4,
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, code: str, target, total_step: int = 1, step_len: float | None = None,
                 action_space: Sequence = (), *, num_envs: int = 1,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 render_mode: str | None = None, **options) -> None:
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"],
                                             "SynthMatchVectorEnv")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) \
                or num_envs < 1:
            raise TargetError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.autoreset_mode = autoreset_mode_of(autoreset_mode, tuple(AutoresetMode),
                                                TargetError)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        # options: SynthMatchEnv's keyword arguments (reward/criteria, observation, backend...)
        self.core = MatchCore(code, target, total_step, step_len, action_space, **options)
        self.num_envs = int(num_envs)
        self.single_action_space = self.core.action_space
        self.single_observation_space = self.core.observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._clips = np.zeros((self.num_envs, self.core.clip_len), dtype=np.float32)
        self._zero_clips = False  # every row was reset and its clip not zeroed yet
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.targets = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self.running = self.core.new_running(self.num_envs)  # running clip distance state
        self._last: list[dict] = [{} for _ in range(self.num_envs)]  # for the text render

    @property
    def clips(self) -> np.ndarray:
        """(B, clip samples) float32: each row's clip so far (zeros after a reset)."""
        if self._zero_clips:
            self._clips.fill(0.0)
            self._zero_clips = False
        return self._clips

    def _reset_rows(self, rows: np.ndarray) -> None:
        if len(rows) == self.num_envs:
            # every row (one-step episodes): zeroed when next read (the clips property), so
            # not at all when the next step overwrites every sample first (0.2 ms at B = 64)
            self._zero_clips = True
        else:
            self.clips[rows] = 0.0
        self.steps[rows] = 0
        for row in rows:
            self._last[row] = {}
        n_targets = len(self.core.targets)
        self.targets[rows] = self.np_random.integers(n_targets, size=len(rows)) \
            if n_targets > 1 else 0
        self._needs_reset[rows] = False

    def _obs(self, cache: dict | None = None) -> np.ndarray:
        return self.core.observe(self.clips, self.steps, self.targets, cache)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset every row, or only those of ``options["reset_mask"]``."""
        super().reset(seed=seed)
        mask = reset_mask_of(options, self.num_envs, TargetError)
        self._reset_rows(np.flatnonzero(mask))
        return self._obs(), {"target_index": self.targets.copy(), "_target_index": mask}

    def _rows_of(self, actions, rows: np.ndarray):
        if isinstance(actions, dict):
            return {k: np.asarray(v)[rows] for k, v in actions.items()}
        return np.asarray(actions)[rows]

    def step(self, actions):
        check_batch(actions, self.num_envs, ActionSpaceError)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        clip_distance = np.full(self.num_envs, np.nan, dtype=np.float32)
        resetting = np.flatnonzero(self._needs_reset)
        active = np.flatnonzero(~self._needs_reset)
        if resetting.size:
            if self.autoreset_mode == AutoresetMode.DISABLED:
                raise InvalidActionError(
                    f"envs {resetting.tolist()} have ended and autoreset_mode is DISABLED: "
                    "reset them first with reset(options={'reset_mask': mask})")
            self._reset_rows(resetting)
        cache = None
        # rows in lockstep share a step index; group them in case they ever differ
        groups = np.unique(self.steps[active])
        for k in groups:
            rows = active[self.steps[active] == k]
            if self._zero_clips and self.core.steps_in_blocks(self._clips, self.targets, rows):
                self._zero_clips = False  # this step writes every sample of every clip
            out = self.core.step(self.clips, self.steps, self.targets,
                                 self._rows_of(actions, rows), rows, self.running)
            rewards[rows] = out["reward"]
            clip_distance[rows] = out["clip_distance"]
            if self.render_mode == "ansi":
                for row, values, distance in zip(rows, out["params"], out["clip_distance"],
                                                 strict=True):
                    self._last[row] = {"params": dict(zip(self.core.patch.params,
                                                          values.tolist(), strict=True)),
                                       "clip_distance": float(distance)}
            if len(rows) == self.num_envs:
                cache = out["stft_cache"]  # the STFTs of every clip: the observation reuses them
        terminated = np.zeros(self.num_envs, dtype=bool)
        terminated[active] = self.steps[active] >= self.core.total_step
        self._needs_reset = terminated.copy()
        info = {"clip_distance": clip_distance, "_clip_distance": ~np.isnan(clip_distance),
                "target_index": self.targets.copy(),
                "_target_index": np.ones(self.num_envs, dtype=bool)}
        if active.size == 0:  # every row was just reset (one-step episodes): clips silent
            obs = self.core.first_observation(self.targets)
        else:
            obs = self._obs(cache)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and terminated.any():
            obs = self._reset_same_step(obs, terminated, info)
        return obs, rewards, terminated, np.zeros(self.num_envs, dtype=bool), info

    def render(self) -> tuple | None:
        """One picture (``"rgb_array"``) or line (``"ansi"``) per env, of its clip so far."""
        if self.render_mode == "rgb_array":
            return tuple(self.core.picture(self.clips[i], int(self.targets[i]),
                                           int(self.steps[i])) for i in range(self.num_envs))
        if self.render_mode == "ansi":
            return tuple(self.core.line(int(self.steps[i]), int(self.targets[i]),
                                        self._last[i]) for i in range(self.num_envs))
        return None

    def episode_audio(self) -> tuple[np.ndarray, int]:
        """(every env's clip so far, (num_envs, n) float32; the sample rate)."""
        return self.clips.copy(), self.core.sr

    def _reset_same_step(self, obs: np.ndarray, ended: np.ndarray, info: dict) -> np.ndarray:
        """Keep the ended rows' last observations in ``info["final_obs"]``, reset those rows
        and return the observations with their first ones."""
        rows = np.flatnonzero(ended)
        final = np.full(self.num_envs, None, dtype=object)
        for i in rows:
            final[i] = obs[i]
        info["final_obs"], info["_final_obs"] = final, ended.copy()
        self._reset_rows(rows)
        obs = obs.copy()
        obs[rows] = self.core.observe(self.clips[rows], self.steps[rows], self.targets[rows])
        return obs
