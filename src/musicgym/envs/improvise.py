"""``musicgym/Improvise-v0``: play a synth so that it sounds like a musician, frame by frame."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from musicgym.envs.improvise_core import Improvisers, settings_to_kwargs
from musicgym.envs.options import reset_options
from musicgym.envs.rendering import check_render_mode
from musicgym.envs.vector import autoreset_mode_of, check_batch, reset_mask_of
from musicgym.errors import ImproviseConfigError, InvalidActionError

RENDER_STEPS = 256  # steps of the episode the picture shows (the most recent)


def _config(settings, kwargs: dict[str, Any]) -> dict[str, Any]:
    """RL-impro's settings first, explicit arguments over them."""
    return {**settings_to_kwargs(settings), **kwargs} if settings is not None else kwargs


def _check_track(track, core: Improvisers) -> int | None:
    if track is None:
        return None
    names = [t.name for t in core.tracks]
    if isinstance(track, str):
        if track not in names:
            raise ImproviseConfigError(f"reset option track={track!r} is not a track of this "
                                       f"split; tracks: {names}")
        return names.index(track)
    if not isinstance(track, (int, np.integer)) or not 0 <= track < len(names):
        raise ImproviseConfigError(f"reset option track must be a name or an index in "
                                   f"[0, {len(names)}), got {track!r}")
    return int(track)


class ImproviseEnv(gym.Env):
    """Improvisation: move a synth's N parameters so that its sound follows a musician's.

    ## Description
    After RL-impro (Madaghiele & Fasciani, AIMC 2024), done as a closed loop. A musician's
    sound is described frame by frame by FluCoMa-style descriptors (loudness, spectral shape,
    MFCC, chroma, pitch: ``musicgym.audio.descriptors``). The agent plays a synth (a Glicol
    patch with N parameters in [0, 1]: ``sine``, ``fm``, ``subtractive``, ``sampler`` or any
    ``Synth``) and hears itself: by default every step really renders the window of
    ``frame_length`` samples the synth plays at its new parameters (after a pre-roll) and
    analyses it exactly as the musician's frames are analysed; ``mode="lookup"`` reads the same
    descriptors from a table rendered on a grid, interpolated multilinearly (fast mode).

    ## Action Space
    ``action_type="ternary"`` (default, RL-impro's): ``Discrete(3**N)``; the base-3 digits of the
    action, most significant first, move parameter i up (0), not (1) or down (2) by
    ``step_size`` (0.05), so action 0 moves every parameter up. ``"multidiscrete"``:
    ``MultiDiscrete([3] * N)``, parameter i moves by ``(a_i - 1) * step_size``.
    ``"continuous"``: ``Box(-1, 1, (N,))``, parameter i moves by ``a_i * step_size``.
    Parameters are clipped to [0, 1].

    ## Observation Space
    ``Box((2F + N,), float32)``, F = the number of ``features_keep``:

    | index | observation | min | max |
    |---|---|---|---|
    | 0 .. F-1 | the agent's descriptors, normalised | -10 | 10 |
    | F .. 2F-1 | the musician's (target) descriptors, normalised | -10 | 10 |
    | 2F .. 2F+N-1 | the synth's parameters | 0 | 1 |

    Each descriptor is standardised with a mean and std pooled half from the synth (the lookup
    table, or 256 fixed random states) and half from the training tracks, then clipped.

    ## Rewards
    ``rmse = sqrt(sum_i w_i (target_i - agent_i)^2 / sum_i w_i)`` over normalised descriptors,
    ``w_i = 1`` for ``features_reward``, else 0; the score is against the musician's *next*
    frame (what a live player faces). ``reward_type``: ``"cubic"`` (default, RL-impro's shape
    made bounded) ``8 (0.5 - min(rmse, 1))^3`` in [-1, 1]; ``"linear"`` ``1 - min(rmse, 2)`` in
    [-1, 1]; ``"cubic+prize"`` half cubic plus 0.5 when ``rmse <= 0.1``, in [-0.5, 1];
    ``"prize"`` +1 when ``rmse <= 0.1`` else -1; ``"cubic_unbounded"`` RL-impro's own
    ``8 (0.5 - rmse)^3``, unclipped (at most 1, unbounded below).

    ## Starting State
    Parameters uniform in [0, 1]. The episode's target (``training_mode``, RL-impro's):
    ``"corpus"`` a track of the split (``reset(options={"track": name or index})`` picks one),
    from its first frame; ``"static_random"`` the sound of the synth at uniform random
    parameters; ``"dynamic_random"`` the same, redrawn with probability ``change_probability``
    each step; ``"mixed_random"`` (default) static or dynamic, 50/50; ``"mixed_random+corpus"``
    corpus half the time.

    ## Episode End
    Terminated at the last frame of a corpus track. Truncated after ``max_episode_steps``
    (500) steps. One step is one hop (``hop_length``, 512 samples, 11.6 ms at 44.1 kHz).

    ## Arguments
    ``synth`` ("fm"), ``sample`` (the sampler's source file), ``features_keep``
    (["loudness-dB", "specshape", "mfcc", "chroma"]: F = 33), ``features_reward``
    (["loudness-dB", "specshape-centroid"]), ``reward_type``, ``training_mode``, ``corpus``
    (a folder, a list of files, a dict name -> mono array, or ``"builtin:default"``: the
    corpus ``musicgym corpus build`` makes, split by its manifest), ``split`` ("train"; "test" = the
    held-out tracks), ``holdout`` (0.2), ``action_type``, ``step_size``, ``mode`` ("render" or
    "lookup"), ``lookup`` (a ``LookupTable`` or a table file from ``musicgym lookup``; built
    at ``subdiv`` points per parameter when absent), ``sr``, ``frame_length``, ``hop_length``,
    ``max_episode_steps``, ``change_probability``, and ``settings`` (RL-impro's
    ``environment_settings.json``, a path or a dict; explicit arguments win)::

        env = gymnasium.make("musicgym/Improvise-v0", synth="fm", corpus="my_takes/",
                             training_mode="corpus", split="test")
        envs = gymnasium.make_vec("musicgym/Improvise-v0", num_envs=64, mode="lookup")

    ``render_mode`` (single env only): None (default), ``"rgb_array"`` (``render()`` returns a
    uint8 picture, 512 wide: for each rewarded descriptor (at most 4) a panel of the
    musician's (target, blue) and the agent's (orange) normalised values over the last
    ``RENDER_STEPS`` (256) steps of the episode on a [-3, 3] axis, then the reward's rmse in
    red on [0, 2]) or ``"ansi"`` (a line: frame, episode mode, rmse, parameters); another
    raises :class:`~musicgym.errors.RenderModeError`. :meth:`episode_audio` renders the
    synth playing the episode's parameter states, one per hop (``render_states``).

    ## Version History

    * v0: initial version; ``render_mode`` (``"rgb_array"``, ``"ansi"``) and
      :meth:`episode_audio` added within v0.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 30}

    def __init__(self, *, settings=None, render_mode: str | None = None,
                 **kwargs: Any) -> None:
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"],
                                             "Improvise-v0")
        config = _config(settings, kwargs)
        self._core = Improvisers(1, **config)
        self._hop = int(config.get("hop_length", 512))
        self.action_space, self.observation_space = self._core.spaces()
        self.features = self._core.features
        # the episode so far, for render() and episode_audio(): one row per step
        self._params: list[np.ndarray] = []
        self._agent: list[np.ndarray] = []
        self._target: list[np.ndarray] = []
        self._rmse: list[float] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        track = _check_track(reset_options(options, ImproviseConfigError).get("track"),
                             self._core)
        self._core.reset(np.ones(1, dtype=bool), self.np_random, track)
        self._params, self._agent, self._target, self._rmse = [], [], [], []
        self._record(float(self._core.reward()[1][0]))
        return self._get_obs(), self._core.info(0)

    def step(self, action):
        rewards, rmse, terminated, truncated = self._core.step([action], self.np_random)
        info = {**self._core.info(0), "rmse": float(rmse[0])}
        self._record(float(rmse[0]))
        return self._get_obs(), float(rewards[0]), bool(terminated[0]), bool(truncated[0]), info

    def _get_obs(self) -> np.ndarray:
        return self._core.observations()[0]

    def _record(self, rmse: float) -> None:
        core = self._core
        self._params.append(core.params[0].copy())  # for episode_audio(), in every mode
        self._rmse.append(rmse)
        if self.render_mode == "rgb_array":  # the traces only when they can be drawn
            self._agent.append(core.agent[0].copy())
            self._target.append(core.target[0].copy())

    def render(self) -> np.ndarray | str | None:
        """The descriptor traces (``"rgb_array"``) or a line (``"ansi"``) of the episode so
        far; see Arguments."""
        core = self._core
        if self.render_mode == "ansi":
            params = " ".join(f"{v:.3f}" for v in core.params[0])
            return (f"frame {int(core.frame[0])} {core.episode_mode[0]} rmse "
                    f"{self._rmse[-1] if self._rmse else float('nan'):.3f} params [{params}]")
        if self.render_mode != "rgb_array":
            return None
        from musicgym.envs import rendering

        agent = np.array(self._agent[-RENDER_STEPS:]).reshape(-1, len(self.features))
        target = np.array(self._target[-RENDER_STEPS:]).reshape(-1, len(self.features))
        panels = [rendering.traces([(target[:, i], rendering.BLUE),
                                    (agent[:, i], rendering.ORANGE)],
                                   lo=-3.0, hi=3.0, length=RENDER_STEPS, height=72)
                  for i in np.flatnonzero(core.weights)[:4]]
        panels.append(rendering.traces([(self._rmse[-RENDER_STEPS:], rendering.RED)],
                                       lo=0.0, hi=2.0, length=RENDER_STEPS, height=48))
        return rendering.stack(panels)

    def episode_audio(self) -> tuple[np.ndarray, int]:
        """The synth playing the episode's parameter states so far, one per hop (mono
        float32, ``(steps + 2) * hop_length`` samples), and its sample rate."""
        from musicgym.envs.improvise_play import render_states

        if not self._params:
            return np.zeros(self._hop, dtype=np.float32), self._core.sr
        return render_states(self._core.synth, np.array(self._params), sr=self._core.sr,
                             hop_length=self._hop), self._core.sr


class ImproviseVectorEnv(VectorEnv):
    """B improvisation envs stepped together: one engine call renders (or one table lookup
    reads) every env's sound. Same arguments as :class:`ImproviseEnv`, plus ``num_envs`` and
    ``autoreset_mode``, declared in ``metadata["autoreset_mode"]``:

    * ``SAME_STEP`` (default): ended envs reset in the same step; their last observation is
      ``infos["final_obs"][i]`` (where ``infos["_final_obs"][i]``) and the other infos are
      those of the step that ended them, as Stable-Baselines3's ``VecEnv`` expects (through
      ``musicgym.train.sb3.SB3VecEnv``).
    * ``DISABLED``: ended envs wait for ``reset(options={"reset_mask": mask})``.

    ``reset(options={"reset_mask": mask})`` restarts only the masked envs in either mode.
    Every info key ``k`` comes with its mask ``_k``, as Gymnasium's vector envs give them;
    ``gymnasium.wrappers.vector.RecordEpisodeStatistics`` gives the episode returns and
    lengths.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, *, settings=None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
                 **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) \
                or num_envs < 1:
            raise ImproviseConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.autoreset_mode = autoreset_mode_of(
            autoreset_mode, (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED),
            ImproviseConfigError)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self._core = Improvisers(int(num_envs), **_config(settings, kwargs))
        self.num_envs = int(num_envs)
        self.single_action_space, self.single_observation_space = self._core.spaces()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.features = self._core.features
        self._ended = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset every env, or those of ``options["reset_mask"]``; ``options["track"]`` picks
        the corpus track as in :class:`ImproviseEnv`."""
        if seed is not None or self._np_random is None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        mask = reset_mask_of(options, self.num_envs, ImproviseConfigError)
        track = _check_track(reset_options(options, ImproviseConfigError).get("track"),
                             self._core)
        self._core.reset(mask, self._np_random, track)
        self._ended[mask] = False
        return self._core.observations(), self._infos(mask)

    def step(self, actions):
        check_batch(actions, self.num_envs, InvalidActionError)
        if self._ended.any():
            raise InvalidActionError(
                f"envs {np.flatnonzero(self._ended).tolist()} have ended and autoreset_mode is "
                "DISABLED: reset them first with reset(options={'reset_mask': mask})")
        rewards, rmse, terminated, truncated = self._core.step(actions, self._np_random)
        every = np.ones(self.num_envs, dtype=bool)
        infos = self._infos(every)
        infos["rmse"], infos["_rmse"] = rmse, every
        done = terminated | truncated
        if done.any() and self.autoreset_mode == AutoresetMode.SAME_STEP:
            final = np.empty(self.num_envs, dtype=object)
            for i, obs in zip(np.flatnonzero(done), self._core.observations()[done], strict=True):
                final[i] = obs
            infos["final_obs"], infos["_final_obs"] = final, done
            self._core.reset(done, self._np_random, None)
        elif done.any():
            self._ended |= done
        return (self._core.observations(), rewards.astype(np.float64), terminated, truncated,
                infos)

    def _infos(self, rows: np.ndarray) -> dict[str, Any]:
        """The infos of every env, each key masked by ``rows`` (the envs they are news of)."""
        core = self._core
        values = {"params": core.params.copy(), "target_params": core.target_params.copy(),
                  "episode_mode": core.episode_mode.copy(), "frame": core.frame.copy()}
        masks = {f"_{key}": rows.copy() for key in values}
        return {**values, **masks}
