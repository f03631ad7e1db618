"""The improvising agent as it plays live: one decision each time it hears the musician.

:class:`Improviser` holds what one ``musicgym/Improvise-v0`` env holds (the synth, the
descriptors it keeps and their normalisation, the synth's parameters and what they sound like)
and, each time it is given the musician's descriptors, moves the parameters through a
controller and listens to its new state exactly as the env does (rendered, or read from the
lookup table). Controllers:

- :class:`PolicyController`: a trained SB3 policy seeing the env's observation;
- :class:`NearestNeighbour`: jumps to the lookup-table state whose descriptors are nearest the
  musician's (the live baseline when no model is given, and the evaluation's oracle);
- :class:`HoldStill` and :class:`RandomMoves`: the evaluation's other baselines.

It knows nothing of OSC (``musicgym.live.improvise`` does) nor of corpora
(``musicgym.train.evaluate_improvise`` drives it from held-out tracks).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

from musicgym.envs.improvise_core import Improvisers, settings_to_kwargs
from musicgym.envs.improvise_data import analyze_window, build_lookup
from musicgym.errors import ImproviseConfigError

PHASE_PERIOD_S = 1.0   # render_history: each hop is rendered at its time modulo this period


class Controller(Protocol):
    """Chooses the synth's next parameters (N,) in [0, 1]."""

    def __call__(self, obs: np.ndarray, target_z: np.ndarray, known: np.ndarray,
                 params: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


class PolicyController:
    """A trained SB3 model (any algorithm, recurrent ones included) moving the parameters as
    it learned to in ``musicgym/Improvise-v0``: one action per decision, deterministic.

    Raises
    ------
    ImproviseConfigError
        The model's observation or action space is not the one ``core`` defines (a model
        trained on another synth, another descriptor set or another action type).
    """

    def __init__(self, model, core: Improvisers) -> None:
        action_space, obs_space = core.spaces()
        if tuple(model.observation_space.shape) != obs_space.shape:
            raise ImproviseConfigError(
                f"the model observes {tuple(model.observation_space.shape)} values but this "
                f"improviser's observation has {obs_space.shape} ({len(core.features)} "
                f"descriptors twice and {core.n_params} parameters of {core.synth.name!r}): "
                "use the synth and features_keep the model was trained with")
        if model.action_space != action_space:
            raise ImproviseConfigError(f"the model acts in {model.action_space} but action_type "
                                       f"{core.action_type!r} means {action_space}")
        self.model, self.core = model, core
        self.reset()

    def reset(self) -> None:
        self._state, self._start = None, np.ones((1,), dtype=bool)

    def __call__(self, obs, target_z, known, params) -> np.ndarray:
        action, self._state = self.model.predict(obs, state=self._state,
                                                 episode_start=self._start, deterministic=True)
        self._start = np.zeros((1,), dtype=bool)
        return params + self.core.deltas(action)[0]


class NearestNeighbour:
    """Jump to the grid state whose normalised descriptors are nearest the musician's.

    Distance: the squared differences weighted as the reward weighs them, over the descriptors
    the musician's message carried (all carried ones if it carried none the reward uses).
    """

    def __init__(self, grid: np.ndarray, table_z: np.ndarray, weights: np.ndarray) -> None:
        self.grid, self.table_z, self.weights = grid, table_z, weights

    @classmethod
    def from_core(cls, core: Improvisers, *, subdiv: int = 11) -> NearestNeighbour:
        """From the core's lookup table, or a table built at ``subdiv`` points per parameter."""
        table = core.table if core.table is not None else build_lookup(
            core.synth, subdiv=subdiv, features=core.features, sr=core.sr,
            frame_length=core.frame_length)
        return cls(table.grid, core.normalise(table.values), core.weights)

    def reset(self) -> None:
        """Nothing to forget: the choice depends on the current frame only."""

    def __call__(self, obs, target_z, known, params) -> np.ndarray:
        w = self.weights * known
        if not w.any():
            w = known.astype(np.float64)
        dist = (self.table_z - target_z) ** 2 @ w
        return self.grid[int(np.argmin(dist))].copy()


class HoldStill:
    """Never move (the parameters stay where the episode started)."""

    def reset(self) -> None:
        """Nothing to forget."""

    def __call__(self, obs, target_z, known, params) -> np.ndarray:
        return params


class RandomMoves:
    """Each parameter moves up, stays or moves down by ``step_size``, uniformly at random."""

    def __init__(self, step_size: float, seed: int = 0) -> None:
        self.step_size, self.seed = float(step_size), seed
        self.reset()

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, obs, target_z, known, params) -> np.ndarray:
        return params + (self.rng.integers(0, 3, len(params)) - 1) * self.step_size


def make_core(env_kwargs: dict[str, Any], *, listen: str | None = None) -> Improvisers:
    """The one-env core an improviser or an evaluation uses, from ``gym.make``'s keywords.

    ``settings`` (RL-impro's file) is expanded as the env does; ``listen`` ("render" or
    "lookup") overrides ``mode``.
    """
    kwargs = dict(env_kwargs)
    settings = kwargs.pop("settings", None)
    if settings is not None:
        kwargs = {**settings_to_kwargs(settings), **kwargs}
    if listen is not None:
        kwargs["mode"] = listen
    return Improvisers(1, **kwargs)


class Improviser:
    """One agent playing one synth, one decision per musician's frame.

    Parameters
    ----------
    core : Improvisers
        Synth, descriptors, normalisation and listening (``make_core``); only read.
    controller : Controller
        What moves the parameters.
    params : array_like, shape (N,), optional
        Where the parameters start (default: 0.5 each).
    hop_length : int
        Samples between two decisions in :meth:`render_history` (default 512, the env's hop).
    """

    def __init__(self, core: Improvisers, controller: Controller, *, params=None,
                 hop_length: int = 512) -> None:
        if not isinstance(hop_length, (int, np.integer)) or hop_length < 1:
            raise ImproviseConfigError(f"hop_length must be a positive integer, got "
                                       f"{hop_length!r}")
        self.core, self.controller, self.hop_length = core, controller, int(hop_length)
        self.features, self.synth, self.sr = core.features, core.synth, core.sr
        self.reset(params)

    def reset(self, params=None) -> None:
        """Start again: parameters at ``params`` (default 0.5 each), silence heard, no history."""
        start = np.full(self.core.n_params, 0.5) if params is None else params
        self.params = self.synth.check_params(start)[0].copy()
        self._listen()
        self._audio = np.zeros(2 * self.core.frame_length)
        self.history: list[np.ndarray] = []
        self.controller.reset()

    def _listen(self) -> None:
        self.agent_raw = self.core.analyze(self.params[None])[0]
        self.agent_z = self.core.normalise(self.agent_raw)

    def hear_audio(self, samples: np.ndarray) -> np.ndarray:
        """The musician's raw descriptors (F,) after these new samples (at ``sr``, mono).

        The improviser keeps the last two windows; the descriptors are those of the latest
        ``frame_length`` samples, analysed as a synth state and a corpus frame are.
        """
        samples = np.asarray(samples, dtype=np.float64).ravel()[-len(self._audio):]
        self._audio = np.concatenate([self._audio[len(samples):], samples])
        return analyze_window(self._audio[None], features=self.features, sr=self.sr,
                              frame_length=self.core.frame_length)[0]

    def decide(self, target_raw: np.ndarray) -> np.ndarray:
        """Move the parameters towards the musician's raw descriptors (F,); NaN = not heard.

        A descriptor the musician's message did not carry counts as the normalisation's mean
        in the observation and is left out of the nearest-neighbour distance.
        """
        target_raw = np.asarray(target_raw, dtype=np.float64)
        known = np.isfinite(target_raw)
        target_z = np.where(known, self.core.normalise(np.where(known, target_raw,
                                                                self.core.mean)), 0.0)
        return self.decide_normalised(target_z, known)

    def decide_normalised(self, target_z: np.ndarray, known: np.ndarray | None = None
                          ) -> np.ndarray:
        """:meth:`decide` for descriptors already normalised (a corpus track's ``tracks_z``)."""
        if known is None:
            known = np.ones(len(target_z), dtype=bool)
        obs = np.concatenate([self.agent_z, target_z, self.params]).astype(np.float32)
        self.params = np.clip(self.controller(obs, target_z, known, self.params), 0.0, 1.0)
        self._listen()
        self.history.append(self.params.copy())
        return self.params.copy()

    def controls(self) -> dict[str, float]:
        """The synth's physical controls (Hz, gains...) at the current parameters."""
        return {k: float(v[0]) for k, v in self.synth.get_controls(self.params[None]).items()}

    def render_history(self, *, batch_size: int = 64) -> np.ndarray:
        """The synth playing every decision so far, one per ``hop_length`` samples (mono).

        Decision k sounds from sample ``k * hop`` for two hops under a Hann window (50%
        overlap-add, so a held state plays at full level). Each is rendered at its own time
        modulo ``PHASE_PERIOD_S``, so a held state continues its phase from hop to hop; the
        synth restarts once per period (a one-hop crossfade).
        """
        if not self.history:
            raise ImproviseConfigError("nothing to render: the improviser has made no decision")
        hop, period = self.hop_length, max(1, int(round(PHASE_PERIOD_S * self.sr)))
        u = np.stack(self.history)
        starts = (np.arange(len(u)) * hop) % period
        window = np.hanning(2 * hop + 1)[:-1]   # periodic Hann: overlapping pairs sum to 1
        out = np.zeros((len(u) + 1) * hop)
        for first in range(0, len(u), batch_size):
            rows = slice(first, first + batch_size)
            offset = starts[rows]
            audio = self.synth.render(u[rows], n_samples=int(offset.max()) + 2 * hop,
                                      sr=self.sr, preroll=int(round(self.synth.preroll_s
                                                                    * self.sr)))
            audio = audio[:, audio.shape[1] - int(offset.max()) - 2 * hop:]
            for i, k in enumerate(range(first, first + len(offset))):
                out[k * hop:(k + 2) * hop] += audio[i, offset[i]:offset[i] + 2 * hop] * window
        return out.astype(np.float32)

    def write_wav(self, path: str | os.PathLike):
        """Write :meth:`render_history` to a WAV file (float, mono, at ``sr``)."""
        from musicgym.audio.io import write_wav

        return write_wav(path, self.render_history(), self.sr)
