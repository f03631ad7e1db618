"""Wrappers for musicgym's envs: :class:`RecordAudio` writes each episode's sound to WAV.

Every musicgym env has ``episode_audio()`` -> (audio, sample rate): the rendered clip (sound
matching), the piece through musicgym's engine (composition), the synth's output
(improvisation) or both parts' onsets (accompaniment). ``RecordAudio`` is to that sound what
Gymnasium's ``RecordVideo`` is to ``render()``'s frames::

    import gymnasium as gym
    import musicgym
    from musicgym.envs.wrappers import RecordAudio

    env = RecordAudio(gym.make("musicgym/Melody-v0"), "runs/audio",
                      episode_trigger=lambda episode: episode % 10 == 0)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.utils.save_video import capped_cubic_video_schedule

from musicgym.errors import ConfigError


class RecordAudio(gym.Wrapper):
    """Write the sound of every triggered episode to ``folder`` as a WAV file when it ends.

    Parameters
    ----------
    env : gymnasium.Env
        A musicgym env (``env.unwrapped.episode_audio()`` must exist).
    folder : path-like
        Where the files go (created if missing): ``{name_prefix}-episode-{k}.wav``, ``k``
        counting the resets from 0, as ``RecordVideo`` names its videos.
    episode_trigger : callable or None
        ``episode_trigger(k)`` is True for the episodes to record; default Gymnasium's
        ``capped_cubic_video_schedule`` (episodes 0, 1, 8, 27, ..., then every 1000th), as
        ``RecordVideo``.
    name_prefix : str
        The files' name prefix.

    Notes
    -----
    An episode is written when it terminates or is truncated, by the env or a wrapper inside
    this one, and on ``close()`` if it is still running (with what it has so far). The files
    are 32-bit float WAVs at the env's sample rate (``musicgym.audio.io.write_wav``);
    ``paths`` lists those written.

    Raises
    ------
    ConfigError
        The env has no ``episode_audio()``.
    """

    def __init__(self, env: gym.Env, folder: str | os.PathLike,
                 episode_trigger: Callable[[int], bool] | None = None,
                 name_prefix: str = "episode") -> None:
        super().__init__(env)
        if not callable(getattr(env.unwrapped, "episode_audio", None)):
            raise ConfigError(f"RecordAudio needs an env with episode_audio(); "
                              f"{type(env.unwrapped).__name__} has none")
        self.folder = Path(folder)
        self.episode_trigger = episode_trigger or capped_cubic_video_schedule
        self.name_prefix = name_prefix
        self.episode_id = -1
        self.recording = False
        self.paths: list[Path] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self.episode_id += 1
        self.recording = bool(self.episode_trigger(self.episode_id))
        return obs, info

    def step(self, action) -> tuple[Any, Any, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        if self.recording and (terminated or truncated):
            self._write()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        if self.recording:
            self._write()
        super().close()

    def _write(self) -> None:
        from musicgym.audio.io import write_wav

        audio, sr = self.env.unwrapped.episode_audio()
        path = self.folder / f"{self.name_prefix}-episode-{self.episode_id}.wav"
        self.paths.append(write_wav(path, audio, sr))
        self.recording = False
