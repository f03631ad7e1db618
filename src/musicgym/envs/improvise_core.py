"""The dynamics of ``musicgym/Improvise-v0`` for B envs at once (the env classes are in
``improvise.py``): settings, normalisation, actions, targets, reward."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from musicgym.audio.descriptors import feature_names
from musicgym.envs.improvise_data import (
    LookupTable,
    analyze_synth,
    analyze_window,
    build_lookup,
    load_corpus,
    lookup_from_columns,
    read_table,
    split_tracks,
)
from musicgym.envs.synths import make_synth
from musicgym.errors import ImproviseConfigError, InvalidActionError, UnsupportedNodeError
from musicgym.safeio import load_mapping

ACTION_TYPES = ("ternary", "multidiscrete", "continuous")
MODES = ("render", "lookup")
REWARD_TYPES = ("cubic", "linear", "cubic+prize", "prize", "cubic_unbounded")
TRAINING_MODES = ("corpus", "static_random", "dynamic_random", "mixed_random",
                  "mixed_random+corpus")
CLIP = 10.0   # normalised descriptors are clipped to [-CLIP, CLIP]
# RL-impro's environment_settings.json keys that only concern its Pd/OSC set-up or its noise
SETTINGS_IGNORED = ("corpus_name", "reward_noise", "ip_send", "port_send", "port_send_optimal",
                    "verbose", "live", "seed")
# corpus= this names ``musicgym corpus build``'s default corpus (built once, then cached)
BUILTIN_CORPUS = "builtin:default"
SYNTH_NAMES = {"sin": "sine", "sine": "sine", "fm": "fm", "FM3": "fm", "subtractive":
               "subtractive", "sampler": "sampler", "granular": "granular"}


def resolve_corpus(corpus):
    """``corpus`` itself, or for ``"builtin:default"`` the folder of ``musicgym corpus
    build``'s default corpus (built on first use, then cached), so a config can name it."""
    if isinstance(corpus, str) and corpus == BUILTIN_CORPUS:
        from musicgym.envs.improvise_corpus import build_corpus

        return str(build_corpus())
    return corpus


def settings_to_kwargs(settings: str | os.PathLike | dict) -> dict[str, Any]:
    """Env arguments from RL-impro's ``environment_settings.json`` (a path or its dict).

    ``instrument_name`` ``sin``/``FM3`` become the ``sine``/``fm`` synths (``FM3`` as it was
    meant to be wired), ``max_episode_duration`` becomes ``max_episode_steps``,
    ``reward_type`` is honoured (RL-impro never passed it on); its Pd/OSC keys, ``seed`` and
    ``reward_noise`` (a random feature added to both vectors) are accepted and ignored.

    Raises
    ------
    ImproviseConfigError
        Naming the key: an unknown key, an instrument musicgym has no synth for, or
        ``N_synth_params`` different from the synth's.
    """
    if not isinstance(settings, dict):
        settings = load_mapping(Path(settings), kind="json", error=ImproviseConfigError)
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "instrument_name":
            if value not in SYNTH_NAMES:
                raise ImproviseConfigError(f"settings: instrument_name {value!r} has no musicgym "
                                           f"synth; use one of {sorted(SYNTH_NAMES)}")
            out["synth"] = SYNTH_NAMES[value]
        elif key in ("features_keep", "features_reward", "training_mode", "reward_type",
                     "step_size"):
            out[key] = value
        elif key == "max_episode_duration":
            out["max_episode_steps"] = int(value)
        elif key != "N_synth_params" and key not in SETTINGS_IGNORED:
            raise ImproviseConfigError(f"settings: unknown key {key!r}")
    n = settings.get("N_synth_params")
    if n is not None and "synth" in out and int(n) != make_synth(out["synth"]).n_params:
        raise ImproviseConfigError(f"settings: N_synth_params is {n} but musicgym's "
                                   f"{out['synth']!r} synth has "
                                   f"{make_synth(out['synth']).n_params} parameters")
    return out


class Improvisers:
    """The state and dynamics of B improvisation envs, stepped together."""

    def __init__(self, num_envs: int, *, synth="fm", sample=None,
                 features_keep=("loudness-dB", "specshape", "mfcc", "chroma"),
                 features_reward=("loudness-dB", "specshape-centroid"),
                 reward_type: str = "cubic", training_mode: str = "mixed_random",
                 corpus=None, split: str = "train", holdout: float = 0.2,
                 action_type: str = "ternary", step_size: float = 0.05, mode: str = "render",
                 lookup: LookupTable | str | os.PathLike | None = None, subdiv: int = 11,
                 sr: int = 44100, frame_length: int = 1024, hop_length: int = 512,
                 max_episode_steps: int = 500, change_probability: float = 0.005) -> None:
        _choice("action_type", action_type, ACTION_TYPES)
        _choice("mode", mode, MODES)
        _choice("reward_type", reward_type, REWARD_TYPES)
        _choice("training_mode", training_mode, TRAINING_MODES)
        _choice("split", split, ("train", "test"))
        if not 0.0 < float(step_size) <= 1.0:
            raise ImproviseConfigError(f"step_size must be in (0, 1], got {step_size!r}")
        if not isinstance(max_episode_steps, (int, np.integer)) or max_episode_steps < 1:
            raise ImproviseConfigError(f"max_episode_steps must be a positive integer, got "
                                       f"{max_episode_steps!r}")
        self.num_envs, self.sr, self.frame_length = int(num_envs), int(sr), int(frame_length)
        self.hop_length = int(hop_length)
        # rendering mode: the agents' synths play on as one stream (see hear)
        self._stream = None
        self._heard = np.zeros((self.num_envs, 2 * self.frame_length), dtype=np.float32)
        self.synth = make_synth(synth, sample=sample)
        if mode == "render" and not hasattr(self.synth, "patch"):
            raise ImproviseConfigError(f"synth {self.synth.name!r} is a Pd synth: it has no "
                                       "rendering mode (a Pd run per step); use mode='lookup'")
        self.n_params = self.synth.n_params
        self.features = feature_names(list(features_keep))
        reward = feature_names(list(features_reward))
        outside = sorted(set(reward) - set(self.features))
        if outside:
            raise ImproviseConfigError(f"features_reward names {outside}, which features_keep "
                                       "leaves out: keep every feature the reward compares")
        self.weights = np.array([f in reward for f in self.features], dtype=np.float64)
        self.reward_type, self.training_mode = reward_type, training_mode
        self.action_type, self.step_size, self.mode = action_type, float(step_size), mode
        self.max_episode_steps, self.change_probability = int(max_episode_steps), \
            float(change_probability)
        self.table = self._table(lookup, subdiv) if mode == "lookup" else None
        self.tracks = []
        if corpus is not None:
            train, test = self._split_corpus(corpus, holdout, frame_length, hop_length)
            self.tracks = test if split == "test" else train
            if not self.tracks:
                raise ImproviseConfigError(f"the corpus has no {split} track (holdout="
                                           f"{holdout}): add tracks or change holdout")
        elif "corpus" in training_mode:
            raise ImproviseConfigError(f"training_mode {training_mode!r} needs corpus= (a folder "
                                       "of audio files, a list of files, or name -> array)")
        self.mean, self.std = self._normalisation(train if corpus is not None else [])
        self.tracks_z = [self.normalise(t.features) for t in self.tracks]
        self._init_state()

    # -- set-up ------------------------------------------------------------------------------
    def _split_corpus(self, corpus, holdout: float, frame_length: int, hop_length: int):
        """Train and held-out tracks: by the manifest of a built corpus (``musicgym corpus
        build``: split by piece and instrument), else by name order (``holdout``)."""
        from musicgym.envs.improvise_corpus import manifest_split

        kw = dict(features=self.features, sr=self.sr, frame_length=frame_length,
                  hop_length=hop_length)
        corpus = resolve_corpus(corpus)
        built = manifest_split(corpus) if isinstance(corpus, (str, os.PathLike)) else None
        if built is None:
            return split_tracks(load_corpus(corpus, **kw), holdout=holdout)
        train, test = built
        return (load_corpus(train, **kw) if train else [],
                load_corpus(test, **kw) if test else [])

    def _table(self, lookup, subdiv: int) -> LookupTable:
        if lookup is None:
            return build_lookup(self.synth, subdiv=subdiv, features=self.features, sr=self.sr,
                                frame_length=self.frame_length)
        if not isinstance(lookup, LookupTable):
            lookup = lookup_from_columns(read_table(lookup), synth=self.synth, sr=self.sr,
                                         frame_length=self.frame_length)
        missing = sorted(set(self.features) - set(lookup.features))
        if missing:
            raise ImproviseConfigError(f"the lookup table lacks features {missing}: rebuild it "
                                       "with those features")
        cols = [lookup.features.index(f) for f in self.features]
        return LookupTable(lookup.synth, lookup.param_names, self.features, lookup.subdiv,
                           lookup.values[:, cols], lookup.sr, lookup.frame_length)

    def _normalisation(self, train_tracks) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std pooled half from the synth's sound, half from the training corpus."""
        if self.table is not None:
            synth_values = self.table.values
        else:   # a fixed random sample of synth states, the same for every seed
            u = np.random.default_rng(0).random((256, self.n_params))
            synth_values = self.analyze(u)
        mean, var = synth_values.mean(axis=0), synth_values.var(axis=0)
        if train_tracks:
            frames = np.concatenate([t.features for t in train_tracks])
            m2, v2 = frames.mean(axis=0), frames.var(axis=0)
            mean, var = 0.5 * (mean + m2), 0.5 * (var + v2) + 0.25 * (mean - m2) ** 2
        std = np.sqrt(var)
        return mean, np.where(std > 1e-9 * (1.0 + np.abs(mean)), std, 1.0)

    def _init_state(self) -> None:
        b, n, f = self.num_envs, self.n_params, len(self.features)
        self.params = np.zeros((b, n))
        self.agent = np.zeros((b, f))
        self.target = np.zeros((b, f))
        self.target_params = np.full((b, n), np.nan)
        self.episode_mode = np.array(["static_random"] * b, dtype=object)
        self.track = np.full(b, -1)
        self.frame = np.zeros(b, dtype=np.int64)
        self.steps = np.zeros(b, dtype=np.int64)

    # -- listening ------------------------------------------------------------------------
    def normalise(self, values: np.ndarray) -> np.ndarray:
        return np.clip((values - self.mean) / self.std, -CLIP, CLIP)

    def analyze(self, u: np.ndarray) -> np.ndarray:
        """Raw descriptors (B, F) of the synth at parameters u: rendered, or from the table."""
        if self.table is not None:
            return self.table.interpolate(u)
        return analyze_synth(self.synth, u, features=self.features, sr=self.sr,
                             frame_length=self.frame_length)

    def hear(self, rows: np.ndarray, *, restart: bool = False) -> np.ndarray:
        """Raw descriptors (len(rows), F) of the agents' synths, which play on (rendering mode).

        The B synths are one :class:`~musicgym.synth.PatchStream`: a step sets every row's
        parameters and renders the next ``frame_length`` samples, the phases, envelopes,
        filters and delays carrying on (a knob turned, not a note restarted), and analyses
        that window, all of it played at the step's parameters (as the window rendered from
        silence was before; the window before settles the loudness filters). ``restart`` (a
        reset) restarts ``rows`` on the stream's clock with the same pre-roll a rendered window
        has; restarting every row starts the stream afresh (so a seeded reset sounds the same
        every time).
        """
        fl = self.frame_length
        preroll = max(int(round(self.synth.preroll_s * self.sr)), fl) + fl
        holes = self.synth.hole_matrix(self.params, self.sr)
        if self._stream is None or (restart and len(rows) == self.num_envs):
            self._stream = self.synth.patch(self.sr).stream(holes)
            self._heard[:] = self._stream.render(preroll).mean(axis=1)[:, -2 * fl:]
        elif restart:
            self._stream.set_params(holes)
            try:
                audio = self._stream.reset(rows, preroll=preroll).mean(axis=1)
            except UnsupportedNodeError:   # a node shared by all rows: a window from silence
                audio = self.synth.render(self.params[rows], n_samples=fl, sr=self.sr,
                                          preroll=preroll - fl)
            self._heard[rows] = audio[:, -2 * fl:]
        else:
            self._stream.set_params(holes)
            new = self._stream.render(fl).mean(axis=1)
            k = new.shape[1]
            self._heard[:, :2 * fl - k] = self._heard[:, k:]
            self._heard[:, 2 * fl - k:] = new
        return analyze_window(self._heard[rows], features=self.features, sr=self.sr,
                              frame_length=fl)

    # -- dynamics ---------------------------------------------------------------------------
    def reset(self, which: np.ndarray, rng: np.random.Generator, track: int | None) -> None:
        """Start new episodes in the envs where ``which`` is True."""
        idx = np.flatnonzero(which)
        self.params[idx] = rng.random((len(idx), self.n_params))
        self.steps[idx] = 0
        self.frame[idx] = 0
        modes = []
        for _ in idx:
            mode = self.training_mode
            if mode == "mixed_random+corpus":
                mode = "corpus" if rng.random() < 0.5 else "mixed_random"
            if mode == "mixed_random":
                mode = "static_random" if rng.random() < 0.5 else "dynamic_random"
            modes.append(mode)
        self.episode_mode[idx] = modes
        corpus = idx[np.array(modes) == "corpus"]
        randoms = idx[np.array(modes) != "corpus"]
        for b in corpus:
            self.track[b] = rng.integers(len(self.tracks)) if track is None else track
            self.target[b] = self.tracks_z[self.track[b]][0]
            self.target_params[b] = np.nan
        self.track[randoms] = -1
        self.target_params[randoms] = rng.random((len(randoms), self.n_params))
        self._listen(idx, randoms, restart=True)

    def _listen(self, agents: np.ndarray, targets: np.ndarray, *, restart: bool = False
                ) -> None:
        """Analyse the agents' states and the new synthetic targets: in rendering mode the
        agents' synths stream on (:meth:`hear`), each target is a window rendered afresh; in
        lookup mode all of them in one table lookup."""
        if self.table is None:
            if len(agents):
                self.agent[agents] = self.normalise(self.hear(agents, restart=restart))
            if len(targets):
                self.target[targets] = self.normalise(self.analyze(self.target_params[targets]))
            return
        rows = np.concatenate([self.params[agents], self.target_params[targets]])
        if len(rows) == 0:
            return
        values = self.normalise(self.analyze(rows))
        self.agent[agents] = values[:len(agents)]
        self.target[targets] = values[len(agents):]

    def deltas(self, actions) -> np.ndarray:
        """Parameter moves (B, N) from a batch of actions (see the env's Action Space)."""
        b, n, step = self.num_envs, self.n_params, self.step_size
        a = np.asarray(actions)
        if self.action_type == "continuous":
            a = a.astype(np.float64).reshape(b, -1) if a.size == b * n else a
            if a.shape != (b, n) or not np.isfinite(a).all():
                raise InvalidActionError(f"continuous actions must be {b} finite vectors of "
                                         f"{n} values in [-1, 1], got {np.shape(actions)}")
            return np.clip(a, -1.0, 1.0) * step
        if not np.issubdtype(a.dtype, np.integer):
            raise InvalidActionError(f"{self.action_type} actions must be integers, got dtype "
                                     f"{a.dtype}")
        if self.action_type == "ternary":
            if a.size != b:
                raise InvalidActionError(f"ternary actions must be {b} integers, one per env, "
                                         f"got shape {a.shape}")
            a = a.reshape(b)
            if (a < 0).any() or (a >= 3 ** n).any():
                raise InvalidActionError(f"ternary actions must be in [0, {3 ** n}), got {a}")
            digits = (a[:, None] // 3 ** np.arange(n - 1, -1, -1)) % 3
            return (1 - digits) * step   # RL-impro's order: digit 0 up, 1 stay, 2 down
        a = a.reshape(b, n) if a.size == b * n else a
        if a.shape != (b, n) or (a < 0).any() or (a > 2).any():
            raise InvalidActionError(f"multidiscrete actions must be {b} vectors of {n} values "
                                     f"in {{0, 1, 2}}, got {a.tolist()}")
        return (a - 1) * step

    def step(self, actions, rng: np.random.Generator):
        """Move, listen, score: (rewards, rmse, terminated, truncated), each (B,)."""
        self.params = np.clip(self.params + self.deltas(actions), 0.0, 1.0)
        self.steps += 1
        self.frame += 1
        changed = np.flatnonzero((self.episode_mode == "dynamic_random")
                                 & (rng.random(self.num_envs) < self.change_probability))
        self.target_params[changed] = rng.random((len(changed), self.n_params))
        self._listen(np.arange(self.num_envs), changed)
        terminated = np.zeros(self.num_envs, dtype=bool)
        for b in np.flatnonzero(self.episode_mode == "corpus"):
            frames = self.tracks_z[self.track[b]]
            self.target[b] = frames[min(self.frame[b], len(frames) - 1)]
            terminated[b] = self.frame[b] >= len(frames) - 1
        truncated = (self.steps >= self.max_episode_steps) & ~terminated
        rewards, rmse = self.reward()
        return rewards, rmse, terminated, truncated

    def reward(self) -> tuple[np.ndarray, np.ndarray]:
        """Rewards in [-1, 1] and the weighted RMSE between agent and target descriptors."""
        err = (self.target - self.agent) ** 2 @ self.weights / self.weights.sum()
        rmse = np.sqrt(err)
        hit = rmse <= 0.1
        cubic = 8.0 * (0.5 - np.minimum(rmse, 1.0)) ** 3
        if self.reward_type == "cubic":
            return cubic, rmse
        if self.reward_type == "cubic_unbounded":   # RL-impro's exact reward, unclipped
            return 8.0 * (0.5 - rmse) ** 3, rmse
        if self.reward_type == "linear":
            return 1.0 - np.minimum(rmse, 2.0), rmse
        if self.reward_type == "cubic+prize":
            return 0.5 * cubic + 0.5 * hit, rmse
        return np.where(hit, 1.0, -1.0), rmse

    def observations(self) -> np.ndarray:
        return np.concatenate([self.agent, self.target, self.params], axis=1).astype(np.float32)

    def spaces(self) -> tuple[spaces.Space, spaces.Box]:
        f, n = len(self.features), self.n_params
        low = np.concatenate([np.full(2 * f, -CLIP), np.zeros(n)]).astype(np.float32)
        high = np.concatenate([np.full(2 * f, CLIP), np.ones(n)]).astype(np.float32)
        if self.action_type == "ternary":
            action = spaces.Discrete(3 ** n)
        elif self.action_type == "multidiscrete":
            action = spaces.MultiDiscrete(np.full(n, 3, dtype=np.int64))
        else:
            action = spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
        return action, spaces.Box(low, high, dtype=np.float32)

    def info(self, b: int) -> dict[str, Any]:
        track = int(self.track[b])
        return {"episode_mode": self.episode_mode[b], "params": self.params[b].copy(),
                "target_params": self.target_params[b].copy(), "frame": int(self.frame[b]),
                "track": self.tracks[track].name if track >= 0 else None}


def _choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ImproviseConfigError(f"{name} must be one of {allowed}, got {value!r}")
