"""``musicgym/SynthMatch-v0``: set the holes of a Glicol patch, step by step, to match a sound."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np

from musicgym.envs.matching import MatchCore
from musicgym.envs.options import reset_options
from musicgym.envs.rendering import check_render_mode
from musicgym.errors import InvalidActionError, TargetError


class SynthMatchEnv(gym.Env):
    """Match a target sound by filling the ``{}`` holes of a Glicol patch (RaveForce, done right).

    ## Description

    A musician writes a task in Glicol with holes (``{}`` or ``{name}``); each step the agent
    fills them, musicgym's engine renders ``step_len`` seconds with those values, and the reward
    compares the new segment with the same span of the target. Step ``k`` writes segment ``k``
    of the clip (a sequencer): over ``total_step`` steps the agent builds the whole clip. Each
    segment is rendered from a fresh engine state (the patch restarts at every step). The clip
    is the patch's left channel, as in RaveForce.

    ## Action Space

    From RaveForce's ``action_space`` list, one entry per hole:

    | entry | the agent sends | the hole gets |
    |---|---|---|
    | ``("lin", lo, hi)`` | ``u`` in [-1, 1] (a Box coordinate) | ``lo + (u + 1)/2 (hi - lo)`` |
    | ``("exp", lo, hi)`` | ``u`` in [-1, 1] | ``exp(log lo + (u + 1)/2 log(hi/lo))`` |
    | ``("rel", i, fn)`` | nothing | ``fn(value of hole i)`` (i earlier) |
    | ``("choose", [v...])`` | an index (Discrete/MultiDiscrete) | ``v[index]`` |

    Continuous only: ``Box(-1, 1, (n,), float32)``; choices only: ``Discrete``/``MultiDiscrete``;
    both: ``Dict(continuous=Box, discrete=MultiDiscrete)``, or with ``flat_actions=True`` one
    ``Box(-1, 1)`` in which each choice is the bucket of its coordinate. An action outside the
    space raises ``ActionSpaceError`` (``clip_actions=True`` clips it instead).

    ## Observation Space

    ``observation="features"`` (default): the clip so far (silence where not yet rendered) as a
    log-mel spectrogram (``obs_mels`` bands, FFT 1024, hop 512, log10 power), averaged into
    ``obs_frames`` time slices and flattened, then the episode progress ``k / total_step``:
    ``Box(-5, 8, (obs_frames * obs_mels + 1,), float32)``. ``"goal"``: the same for the clip and
    for the target, side by side, then progress. ``"audio"``: RaveForce's observation, the clip
    padded to the target's length (clipped to +-10), then progress.

    ## Rewards

    ``reward = -distance(new segment, same span of the target)``, float32, in ``[-bound, 0]``
    (``musicgym.audio.distances``): ``"mrstft"`` (default; multi-resolution log-STFT + spectral
    convergence, bound 50), ``"mse"`` (RaveForce's, bound 100), ``"logmel"`` (bound 20),
    ``"mfcc"`` (spiegelib's 13-MFCC mean absolute error, bound 1000), or weights such as
    ``{"mrstft": 1.0, "mfcc": 0.01}``. ``info["clip_distance"]`` is the running distance of the
    whole clip so far to the whole target (with ``"mrstft"``, kept as per-frame sums: a step
    recomputes only the frames its segment touches; equal to scoring the clip from scratch).
    NaN or inf never reach a reward or an observation.

    ## Starting State

    An empty (silent) clip; the target is drawn with the env's seed when several are given,
    or chosen with ``reset(options={"target": index or name})``.

    ## Episode End

    Terminated after ``total_step`` steps; never truncated by the env itself. A step after the
    end raises ``InvalidActionError`` (call ``reset``).

    ## Arguments

    ```python
    import gymnasium as gym
    import musicgym

    env = gym.make("musicgym/SynthMatch-v0",
                   code="~env: imp 0.1 >> envperc {} {}\\nkick: sin {} >> mul ~env",
                   target="kick.wav", total_step=1, step_len=0.5,
                   action_space=[("exp", 0.0005, 0.05), ("exp", 0.05, 0.5), ("exp", 30, 300)])
    ```

    ``code``, ``target`` (file, folder, array, or list of those: one drawn per episode),
    ``total_step``, ``step_len`` (seconds; default: target length / total_step),
    ``action_space``, ``reward`` (alias ``criteria``), ``observation``, ``backend``
    (``"numpy"`` or ``"glicol"``), ``sr``, ``bpm``, ``samples``, ``flat_actions``,
    ``clip_actions``, ``obs_frames``, ``obs_mels``, ``max_target_seconds``,
    ``render_mode``: None (default), ``"rgb_array"`` (``render()`` returns a uint8 picture
    (288, 512, 3): the target's log-mel spectrogram on top, the clip so far in the middle with
    a line where the next segment starts, their difference (clip minus target, red: louder,
    blue: softer) at the bottom) or ``"ansi"`` (a line: step, parameters, clip distance);
    another raises :class:`~musicgym.errors.RenderModeError`. :meth:`episode_audio` gives
    the clip and its sample rate (``musicgym.envs.wrappers.RecordAudio`` writes it per episode).
    The native vector env takes ``render_mode`` too and renders one picture or line per env.
    ``gym.make_vec(...)`` builds the native ``SynthMatchVectorEnv`` (one engine call for all
    envs), which also takes ``num_envs`` and ``autoreset_mode`` (Gymnasium's NEXT_STEP by
    default; see ``musicgym.envs.synth_match_vector``).

    ## Version History

    * v0: first version; ``render_mode`` (``"rgb_array"``, ``"ansi"``) and
      :meth:`episode_audio` added within v0.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

    def __init__(self, code: str, target, total_step: int = 1, step_len: float | None = None,
                 action_space: Sequence = (), *, reward="mrstft", criteria=None,
                 observation: str = "features", backend: str = "numpy", sr: int = 44100,
                 bpm: float = 120.0, samples: Mapping | None = None, flat_actions: bool = False,
                 clip_actions: bool = False, obs_frames: int = 32, obs_mels: int = 32,
                 max_target_seconds: float = 60.0, render_mode: str | None = None) -> None:
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"],
                                             "SynthMatch-v0")
        self.core = MatchCore(code, target, total_step, step_len, action_space, reward=reward,
                              criteria=criteria, observation=observation, backend=backend,
                              sr=sr, bpm=bpm,
                              samples=samples, flat_actions=flat_actions,
                              clip_actions=clip_actions, obs_frames=obs_frames,
                              obs_mels=obs_mels, max_target_seconds=max_target_seconds)
        self.action_space = self.core.action_space
        self.observation_space = self.core.observation_space
        self.clip = np.zeros((1, self.core.clip_len), dtype=np.float32)
        self.steps = np.zeros(1, dtype=np.int64)
        self.target = np.zeros(1, dtype=np.int64)
        self.running = self.core.new_running(1)  # per-frame sums of the running clip distance
        self._last: dict = {}  # the last step's info, for the text render

    def _get_obs(self, cache: dict | None = None) -> np.ndarray:
        return self.core.observe(self.clip, self.steps, self.target, cache)[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.clip[:] = 0.0
        self.steps[:] = 0
        self._last = {}
        n_targets = len(self.core.targets)
        wanted = reset_options(options, TargetError).get("target")
        self.target[0] = self._target_index(wanted) if wanted is not None else \
            int(self.np_random.integers(n_targets)) if n_targets > 1 else 0
        return self._get_obs(), {"target": self.core.targets[self.target[0]][0],
                                 "target_index": int(self.target[0])}

    def _target_index(self, wanted) -> int:
        """The index of reset option ``target``: an index or a target's name."""
        names = [name for name, _ in self.core.targets]
        if isinstance(wanted, str) and wanted in names:
            return names.index(wanted)
        if isinstance(wanted, (int, np.integer)) and not isinstance(wanted, bool) \
                and 0 <= wanted < len(names):
            return int(wanted)
        raise TargetError(f"reset option target={wanted!r} is neither an index in "
                          f"[0, {len(names)}) nor a target name; targets: {names}")

    def step(self, action):
        if self.steps[0] >= self.core.total_step:
            raise InvalidActionError("the episode has ended: call reset() before step()")
        batched = {k: np.asarray(v)[None] for k, v in action.items()} \
            if isinstance(action, dict) else np.asarray(action)[None]
        out = self.core.step(self.clip, self.steps, self.target, batched, np.array([0]),
                             self.running)
        terminated = bool(self.steps[0] >= self.core.total_step)
        info = {"clip_distance": float(out["clip_distance"][0]),
                "params": dict(zip(self.core.patch.params, out["params"][0].tolist(),
                                   strict=True)),
                "step": int(self.steps[0])}
        self._last = info
        return self._get_obs(out["stft_cache"]), float(out["reward"][0]), terminated, False, info

    @property
    def clip_audio(self) -> np.ndarray:
        """The clip rendered so far (mono float32), e.g. to write with ``audio.io.write_wav``."""
        return self.clip[0].copy()

    def episode_audio(self) -> tuple[np.ndarray, int]:
        """(the clip rendered so far, mono float32; its sample rate): the episode's sound."""
        return self.clip_audio, self.core.sr

    def render(self) -> np.ndarray | str | None:
        """The picture (``"rgb_array"``) or line (``"ansi"``) of the episode so far; see
        Arguments."""
        if self.render_mode == "ansi":
            return self.core.line(int(self.steps[0]), int(self.target[0]), self._last)
        if self.render_mode == "rgb_array":
            return self.core.picture(self.clip[0], int(self.target[0]), int(self.steps[0]))
        return None


def make_synth_match(code: str, target, total_step: int = 1, step_len: float | None = None,
                     action_space: Sequence = (), **kwargs) -> SynthMatchEnv:
    """RaveForce's ``make``, returning a Gymnasium env (see :class:`SynthMatchEnv`).

    A RaveForce script ports by changing ``raveforce.make(...)`` to
    ``musicgym.make_synth_match(...)`` and unpacking five values from ``step``.
    """
    return SynthMatchEnv(code, target, total_step, step_len, action_space, **kwargs)
