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
(``musicgym.train.evaluate_improvise`` drives it from held-out tracks). It lives with the env,
below both, so that live play and the evaluations share it (train and live never import each
other).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

from musicgym.envs.improvise_core import Improvisers, settings_to_kwargs
from musicgym.envs.improvise_data import analyze_window, build_lookup
from musicgym.envs.synths import Synth
from musicgym.errors import ImproviseConfigError


class Controller(Protocol):
    """Chooses the synth's next parameters (N,) in [0, 1]."""

    def __call__(self, obs: np.ndarray, target_z: np.ndarray, known: np.ndarray,
                 params: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


class NumpyPolicy:
    """The deterministic action of an SB3 actor-critic MLP policy, as a NumPy forward pass.

    ``model.predict`` spends most of a live decision in torch's and SB3's per-call overhead
    (mode switches, tensor conversions, a distribution object) for a 64x64 MLP; this runs the
    same layers from the same weights (copied once, float32 as in torch) and takes the same
    deterministic action: the arg-max of each categorical (``Discrete``, ``MultiDiscrete``) or
    the Gaussian's mean clipped to the ``Box``. :meth:`from_sb3` returns None for any policy it
    cannot reproduce exactly (recurrent, masked, gSDE, a feature extractor other than flatten,
    an activation other than tanh or ReLU); the caller then keeps ``model.predict``.
    """

    ACTIVATIONS = {"Tanh": np.tanh, "ReLU": lambda x: np.maximum(x, 0.0, out=x)}

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray, Any]],
                 head: tuple[np.ndarray, np.ndarray], action_space) -> None:
        from gymnasium import spaces

        self.layers, self.head, self.action_space = layers, head, action_space
        if isinstance(action_space, spaces.Discrete):
            self.kind = "discrete"
        elif isinstance(action_space, spaces.MultiDiscrete):
            self.kind = "multidiscrete"
            self.splits = np.cumsum(np.asarray(action_space.nvec).ravel())[:-1]
        elif isinstance(action_space, spaces.Box):
            self.kind = "box"
            self.low = np.asarray(action_space.low, dtype=np.float32)
            self.high = np.asarray(action_space.high, dtype=np.float32)
        else:
            raise ImproviseConfigError(f"no NumPy policy for action space {action_space}")

    @classmethod
    def from_sb3(cls, model) -> NumpyPolicy | None:
        """The NumPy copy of ``model.policy``, or None where it would not act exactly alike."""
        try:
            import torch
            from gymnasium import spaces
            from stable_baselines3.common.policies import ActorCriticPolicy
            from stable_baselines3.common.torch_layers import FlattenExtractor
        except ImportError:
            return None
        policy = getattr(model, "policy", None)
        if type(policy) is not ActorCriticPolicy or getattr(policy, "use_sde", False) \
                or getattr(policy, "squash_output", False) \
                or not isinstance(policy.pi_features_extractor, FlattenExtractor) \
                or not isinstance(policy.observation_space, spaces.Box) \
                or len(policy.observation_space.shape) != 1 \
                or not isinstance(policy.action_space, (spaces.Discrete, spaces.MultiDiscrete,
                                                        spaces.Box)):
            return None

        def weights(linear) -> tuple[np.ndarray, np.ndarray]:
            with torch.no_grad():
                return (np.ascontiguousarray(linear.weight.detach().cpu().numpy().T,
                                             dtype=np.float32),
                        linear.bias.detach().cpu().numpy().astype(np.float32))

        layers = []
        for module in policy.mlp_extractor.policy_net:
            if isinstance(module, torch.nn.Linear):
                layers.append((*weights(module), None))
            elif type(module).__name__ in cls.ACTIVATIONS and layers \
                    and layers[-1][2] is None:
                w, b, _ = layers[-1]
                layers[-1] = (w, b, cls.ACTIVATIONS[type(module).__name__])
            else:
                return None
        if not isinstance(policy.action_net, torch.nn.Linear):
            return None
        return cls(layers, weights(policy.action_net), policy.action_space)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """The action ``model.predict(obs, deterministic=True)`` takes for one observation."""
        x = np.asarray(obs, dtype=np.float32).reshape(-1)
        for w, b, activation in self.layers:
            x = x @ w
            x += b
            if activation is not None:
                x = activation(x)
        out = x @ self.head[0]
        out += self.head[1]
        if self.kind == "discrete":
            return np.asarray(np.argmax(out), dtype=np.int64)
        if self.kind == "multidiscrete":
            return np.array([np.argmax(part) for part in np.split(out, self.splits)],
                            dtype=np.int64)
        return np.clip(out, self.low, self.high)


class PolicyController:
    """A trained SB3 model (any algorithm, recurrent ones included) moving the parameters as
    it learned to in ``musicgym/Improvise-v0``: one action per decision, deterministic.

    A feed-forward actor-critic MLP (PPO's and A2C's ``MlpPolicy``) runs as a
    :class:`NumpyPolicy` (``self.numpy`` is not None), which acts as ``model.predict`` does at a
    fraction of its cost; any other policy, or ``numpy=False``, goes through
    ``model.predict``.

    Raises
    ------
    ImproviseConfigError
        The model's observation or action space is not the one ``core`` defines (a model
        trained on another synth, another descriptor set or another action type).
    """

    def __init__(self, model, core: Improvisers, *, numpy: bool = True) -> None:
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
        self.numpy = NumpyPolicy.from_sb3(model) if numpy else None
        self.reset()

    def reset(self) -> None:
        self._state, self._start = None, np.ones((1,), dtype=bool)

    def __call__(self, obs, target_z, known, params) -> np.ndarray:
        if self.numpy is not None:
            return params + self.core.deltas(self.numpy(obs))[0]
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
        # the (rows, F) differences are written here: a fresh array of that size per decision
        # would be a large allocation (mmap, page faults) every message
        self._diff = np.empty_like(table_z, dtype=np.float64)

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
        diff = np.subtract(self.table_z, target_z, out=self._diff)
        dist = np.square(diff, out=diff) @ w
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


def render_states(synth: Synth, u: np.ndarray, *, sr: int = 44100, hop_length: int = 512,
                  batch_size: int = 32) -> np.ndarray:
    """The synth playing parameter states one after another, one per ``hop_length`` samples.

    One stream (:meth:`musicgym.synth.Patch.stream`): state k sets the synth's parameters at
    sample ``k * hop`` and the synth plays on, its phases, envelopes, filters and delays
    carrying over (a knob turned, no restart, no click). The synth's ``preroll_s`` is played
    first and cut.

    Parameters
    ----------
    synth : Synth
    u : array_like, shape (K, N)
        The states, in [0, 1].
    sr, hop_length : int
        Sample rate, and samples between two states.
    batch_size : int
        Unused (kept for callers of the former windowed render).

    Returns
    -------
    numpy.ndarray
        Mono float32, ``(K + 1) * hop_length`` samples (the last state held one more hop).
    """
    hop = int(hop_length)
    u = synth.check_params(u)
    holes = synth.hole_matrix(u, sr)
    stream = synth.patch(sr).stream(holes[:1])
    preroll = int(round(synth.preroll_s * sr))
    if preroll:
        stream.render(preroll)
    out = np.empty((len(u) + 1) * hop, dtype=np.float32)
    for k in range(len(u)):
        stream.set_params(holes[k:k + 1])
        out[k * hop:(k + 1) * hop] = stream.render(hop).mean(axis=1)[0]
    out[len(u) * hop:] = stream.render(hop).mean(axis=1)[0]
    return out


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
        Synth, descriptors, normalisation and listening (``make_core``); in rendering mode
        its row 0 is this improviser's synth stream (``Improvisers.hear``), else only read.
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
        f = len(self.features)
        self._obs = np.zeros(2 * f + core.n_params, dtype=np.float32)   # reused per decision
        self._slices = slice(0, f), slice(f, 2 * f), slice(2 * f, None)
        self._all_known = np.ones(f, dtype=bool)
        self.reset(params)

    def reset(self, params=None) -> None:
        """Start again: parameters at ``params`` (default 0.5 each), silence heard, no history."""
        start = np.full(self.core.n_params, 0.5) if params is None else params
        self.params = self.synth.check_params(start)[0].copy()
        self._listen(restart=True)
        self._audio = np.zeros(2 * self.core.frame_length)
        self.history: list[np.ndarray] = []
        self.controller.reset()

    def _listen(self, *, restart: bool = False) -> None:
        core = self.core
        if core.table is None:   # rendering mode: the synth plays on as a stream (core.hear)
            core.params[0] = self.params
            self.agent_raw = core.hear(np.zeros(1, dtype=np.int64), restart=restart)[0]
        else:
            self.agent_raw = core.analyze(self.params[None])[0]
        self.agent_z = self.core.normalise(self.agent_raw)

    def hear_audio(self, samples: np.ndarray) -> np.ndarray:
        """The musician's raw descriptors (F,) after these new samples (at ``sr``, mono).

        The improviser keeps the last two windows; the descriptors are those of the latest
        ``frame_length`` samples, analysed as a synth state and a corpus frame are.
        """
        samples = np.asarray(samples, dtype=np.float64).ravel()[-len(self._audio):]
        n = len(samples)
        if n:   # shift in place: the buffer is allocated once
            self._audio[:len(self._audio) - n] = self._audio[n:]
            self._audio[len(self._audio) - n:] = samples
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
            known = self._all_known
        obs, (agent, target, params) = self._obs, self._slices
        obs[agent], obs[target], obs[params] = self.agent_z, target_z, self.params
        self.params = np.clip(self.controller(obs, target_z, known, self.params), 0.0, 1.0)
        self._listen()
        self.history.append(self.params.copy())
        return self.params.copy()

    def controls(self) -> dict[str, float]:
        """The synth's physical controls (Hz, gains...) at the current parameters."""
        return {c.name: float(c.to_physical(float(u)))
                for c, u in zip(self.synth.controls, self.params, strict=True)}

    def render_history(self, *, batch_size: int = 32) -> np.ndarray:
        """The synth playing every decision so far, one per ``hop_length`` samples (mono):
        :func:`render_states` of the decisions' parameters."""
        if not self.history:
            raise ImproviseConfigError("nothing to render: the improviser has made no decision")
        return render_states(self.synth, np.stack(self.history), sr=self.sr,
                             hop_length=self.hop_length, batch_size=batch_size)

    def write_wav(self, path: str | os.PathLike):
        """Write :meth:`render_history` to a WAV file (float, mono, at ``sr``)."""
        from musicgym.audio.io import write_wav

        return write_wav(path, self.render_history(), self.sr)
