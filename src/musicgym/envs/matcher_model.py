"""A trained sound matcher without torch: features of a sound -> normalised synth settings.

A matcher is an MLP that inverts a patch: it reads the time-pooled log-mel image of a clip and
proposes the agent's action (each chosen hole in [-1, 1], as the sound-matching envs' action
space has it) in one forward pass. It is trained by :mod:`musicgym.train.matcher` (torch); this
module runs it in NumPy so that envs, compose and the CLI can use a shipped matcher.

A matcher is two files beside each other: ``NAME.npz`` (the weights, plain arrays, read with
``allow_pickle=False``) and ``NAME.json`` (the feature settings, the patch, its action space,
the command and seed that trained it, its validation error). The built-in ones live in
``musicgym/data/matchers/<preset>.npz``. A sidecar may name a critic
(``"critic": "NAME.critic.npz"``, :mod:`musicgym.envs.matcher_critic`) that chooses which
candidates :meth:`Matcher.guesses` renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from musicgym.audio.features import log_mel, pool_frames
from musicgym.errors import ConfigError

FEATURE_LOW, FEATURE_HIGH = -5.0, 8.0  # log10 mel power, clipped as the envs' observations
DEFAULT_FEATURES = {"n_fft": 1024, "hop": 512, "n_mels": 32, "n_frames": 16}
FEATURE_ROWS = 256  # clips whose features are computed at once (bounded memory)
BUILTIN_DIR = Path(__file__).resolve().parents[1] / "data" / "matchers"
# a target out of the patch's distribution gets the median settings of its nearest
# ``ood_neighbours`` codebook sounds (a sidecar key; without it, the nearest sound's, as
# matchers were trained and searched with). The built-in Snare-v0 sets 8: chosen on the
# one-shots' training half (mean MR-STFT of the single guess 2.358 with the nearest sound
# alone, 2.216 with 8) and 200 SoundFont one-shots (seeds 3 and 4: 2.258 -> 2.253), confirmed
# on 100 fresh ones (seed 5: 2.282 -> 2.276); docs/matching.md
OOD_NEIGHBOURS = 1


def matcher_features(clips: np.ndarray, *, sr: int, n_fft: int, hop: int, n_mels: int,
                     n_frames: int, pitch: tuple[float, float, int] | None = None
                     ) -> np.ndarray:
    """(B, n_frames * n_mels [+ pitch bins]) float32 features of (B, n) clips: log-mel,
    pooled in time; with ``pitch = (lowest MIDI note, highest, bins a semitone)``, then
    :func:`pitch_salience` on that grid.

    Clips of any length give the same size (equal time slices), clipped to
    [``FEATURE_LOW``, ``FEATURE_HIGH``] with NaN read as silence. Computed
    :data:`FEATURE_ROWS` clips at a time (the spectra of a large batch at once would take
    gigabytes)."""
    clips = np.atleast_2d(clips)
    if len(clips) > FEATURE_ROWS:
        return np.concatenate([
            matcher_features(clips[i:i + FEATURE_ROWS], sr=sr, n_fft=n_fft, hop=hop,
                             n_mels=n_mels, n_frames=n_frames, pitch=pitch)
            for i in range(0, len(clips), FEATURE_ROWS)])
    mel = log_mel(clips, sr=sr, n_fft=n_fft, hop=hop, n_mels=n_mels)
    pooled = pool_frames(mel, n_frames).reshape(mel.shape[0], -1)
    out = np.clip(np.nan_to_num(pooled, nan=FEATURE_LOW), FEATURE_LOW, FEATURE_HIGH)
    if pitch is None:
        return out
    lo, hi, per_semitone = pitch
    return np.concatenate([out, pitch_salience(clips, sr=sr, lo=float(lo), hi=float(hi),
                                               per_semitone=int(per_semitone))], axis=1)


def pitch_salience(clips: np.ndarray, *, sr: int, lo: float, hi: float,
                   per_semitone: int) -> np.ndarray:
    """(B, bins) float32 in [-1, 1]: how periodic each clip is at each pitch of a grid from
    MIDI ``lo`` to ``hi``, ``per_semitone`` bins a semitone: one minus YIN's cumulative mean
    normalised difference (de Cheveigné & Kawahara 2002) over the whole clip, read at each
    pitch's period (linear between lags). A period of the sound gives a value near 1 whatever
    its timbre; a silent or non-finite clip gives 0. What a matcher needs to name a note
    whose timbre it never heard (the log-mel image alone did not generalise: docs/matching.md)."""
    x = np.nan_to_num(np.atleast_2d(np.asarray(clips, np.float64)))
    grid = np.arange(int(round((hi - lo) * per_semitone)) + 1) / per_semitone + lo
    lags = sr / (440.0 * 2.0 ** ((grid - 69.0) / 12.0))
    tau_max = int(np.ceil(lags.max())) + 2
    if x.shape[1] < 2 * tau_max:
        x = np.pad(x, ((0, 0), (0, 2 * tau_max - x.shape[1])))
    normalised = yin_difference(x, tau_max)
    low = np.floor(lags).astype(int)
    frac = lags - low
    value = normalised[:, low] * (1.0 - frac) + normalised[:, low + 1] * frac
    out = 1.0 - np.clip(value, 0.0, 2.0)
    out[(x * x).sum(axis=1) <= 1e-12] = 0.0
    return out.astype(np.float32)


def yin_difference(x: np.ndarray, tau_max: int) -> np.ndarray:
    """(B, tau_max + 1) YIN's cumulative mean normalised difference of (B, n) float64 rows
    (n > ``tau_max``), lags 0 to ``tau_max``: the squared difference of each row's first
    ``n - tau_max`` samples and the same span ``tau`` later, over its mean for lags 1 to
    ``tau``; 1 at lag 0 (de Cheveigné & Kawahara 2002). One FFT correlation per row."""
    n = x.shape[1]
    w = n - tau_max
    size = 1 << int(np.ceil(np.log2(n + w)))
    # r[tau] = sum_{t < w} x[t] x[t + tau]; the energies of both windows by cumulative sums
    r = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(x[:, :w], size)),
                     size)[:, :tau_max + 1]
    cs = np.concatenate([np.zeros((len(x), 1)), np.cumsum(x * x, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    d = np.maximum(cs[:, [w]] + (cs[:, taus + w] - cs[:, taus]) - 2.0 * r, 0.0)
    d[:, 0] = 0.0
    running = np.cumsum(d[:, 1:], axis=1)
    out = np.ones_like(d)
    out[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(running, 1e-12)
    return out


def _dense_layers(weights: Mapping[str, np.ndarray], w: str, b: str
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(w0, b0), (w1, b1), ...]`` as float32 from keys ``{w}0, {b}0, ...`` (until one is
    missing).

    Raises
    ------
    ConfigError
        A weight matrix without its bias."""
    layers = []
    while f"{w}{len(layers)}" in weights:
        i = len(layers)
        if f"{b}{i}" not in weights:
            raise ConfigError(f"matcher weights: {w}{i} has no bias {b}{i}")
        layers.append((np.asarray(weights[f"{w}{i}"], np.float32),
                       np.asarray(weights[f"{b}{i}"], np.float32)))
    return layers


def _dense_pass(h: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``layers`` applied to ``h``, ReLU between them; the last layer's output as it is."""
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


class Matcher:
    """A trained matcher: :meth:`propose` maps clips to actions in [-1, 1].

    Parameters
    ----------
    weights : mapping of str to numpy.ndarray
        ``mean``, ``std`` (feature standardisation) and ``W0, b0, W1, b1, ...`` (dense layers,
        ReLU between them, ``tanh`` on the last); optionally a codebook of training sounds:
        ``pca_mean``, ``pca`` (principal axes of the standardised features), ``codebook``
        (their projections) and ``codebook_actions`` (their settings).
    meta : mapping
        The JSON sidecar: ``features`` (keyword arguments of :func:`matcher_features`), ``sr``,
        ``clip_samples`` (the clip length trained on), ``code`` and ``action_space`` (the
        patch), ``val_rmse`` (validation RMSE of the actions, the proposal's spread), with a
        codebook ``ood_threshold`` and optionally ``ood_neighbours`` (:meth:`propose`),
        and optionally ``input_clip`` (the net reads standardised
        features clipped to +-that: sounds unlike the patch's lie hundreds of deviations out
        in bands where its own sounds are always silent).
    """

    def __init__(self, weights: Mapping[str, np.ndarray], meta: Mapping) -> None:
        self.meta = dict(meta)
        self.mean = np.asarray(weights["mean"], np.float32)
        self.std = np.asarray(weights["std"], np.float32)
        self.layers = _dense_layers(weights, "W", "b")
        if not self.layers or self.layers[0][0].shape[0] != self.mean.size:
            raise ConfigError("matcher weights: no layers, or the first layer does not take "
                              f"the {self.mean.size} features")
        # optional: a note head, a classifier that names a ``choose`` hole's value (its
        # logits' argmax replaces that action coordinate: Matcher.forward)
        self.note_layers = _dense_layers(weights, "C", "c")
        if self.note_layers:
            column = self.meta.get("note_column")
            if isinstance(column, bool) or not isinstance(column, int) \
                    or not 0 <= column < self.layers[-1][1].size \
                    or self.note_layers[0][0].shape[0] != self.mean.size:
                raise ConfigError("matcher weights: a note head needs 'note_column' in the "
                                  "sidecar (an action coordinate, 0 to "
                                  f"{self.layers[-1][1].size - 1}) and a first layer that "
                                  f"takes the {self.mean.size} features; got {column!r}")
        # optional: a codebook of training sounds for targets unlike the patch's (propose)
        self.codebook = None
        if "codebook" in weights:
            self.pca_mean = np.asarray(weights["pca_mean"], np.float32)
            self.pca = np.asarray(weights["pca"], np.float32)
            self.codebook = np.asarray(weights["codebook"], np.float32)
            self.codebook_sq = (self.codebook ** 2).sum(1)
            self.codebook_actions = np.asarray(weights["codebook_actions"], np.float32)
        # optional: a critic that ranks many candidates without rendering them (guesses)
        self.critic = None
        self.use_critic = True
        self.features_kwargs, self.sr, self.clip_samples = _checked_features(self.meta)

    @property
    def action_dim(self) -> int:
        """Number of action coordinates proposed."""
        return int(self.layers[-1][1].size)

    @property
    def spread(self) -> float:
        """Validation RMSE of the proposed actions (a step size for a search seeded by it)."""
        return float(self.meta.get("val_rmse", 0.3))

    @classmethod
    def load(cls, path: str | Path) -> Matcher:
        """Read ``path`` (``NAME``, ``NAME.npz`` or ``NAME.json``: both files are read).

        Raises
        ------
        ConfigError
            A file is missing or is not a matcher (no pickles are ever read)."""
        from musicgym.safeio import load_mapping

        base = Path(path)
        if base.suffix in (".npz", ".json"):
            base = base.with_suffix("")
        npz, sidecar = base.with_suffix(".npz"), base.with_suffix(".json")
        for f in (npz, sidecar):
            if not f.is_file():
                raise ConfigError(f"{f}: no such matcher file (a matcher is NAME.npz + NAME.json,"
                                  " as `python -m musicgym.train.matcher` writes them)")
        meta = load_mapping(sidecar)
        try:
            with np.load(npz, allow_pickle=False) as data:
                weights = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{npz}: not a matcher's weights ({exc})") from None
        for key in ("features", "sr", "clip_samples", "code", "action_space"):
            if key not in meta:
                raise ConfigError(f"{sidecar}: the matcher's sidecar lacks {key!r}")
        matcher = cls(weights, meta)
        if meta.get("critic"):
            matcher.attach_critic(base.parent / str(meta["critic"]))
        return matcher

    def attach_critic(self, path: str | Path) -> None:
        """Read a critic (``NAME.critic.npz`` + ``NAME.critic.json``) that :meth:`guesses`
        uses to choose the guesses of ``policy@k`` and ``policy+nm``
        (:mod:`musicgym.envs.matcher_critic`); set ``use_critic = False`` to guess without it.

        Raises
        ------
        ConfigError
            The files are missing or are not a critic, or the matcher has no codebook."""
        from musicgym.envs.matcher_critic import Critic
        from musicgym.safeio import load_mapping

        path = Path(path)
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise ConfigError(f"{sidecar}: no such critic sidecar (a critic is NAME.critic.npz "
                              "+ NAME.critic.json, as python -m musicgym.train.matcher_critic "
                              "writes them)")
        if self.codebook is None:
            raise ConfigError(f"{path}: a critic needs a matcher with a codebook")
        self.critic = Critic.load(path, load_mapping(sidecar))

    @classmethod
    def builtin(cls, preset: str) -> Matcher:
        """The matcher shipped for a sound-matching preset (``Kick-v0``...).

        Raises
        ------
        ConfigError
            No built-in matcher for that preset (the message lists those there are)."""
        name = preset.removeprefix("musicgym/")
        if not (BUILTIN_DIR / f"{name}.npz").is_file():
            raise ConfigError(f"no built-in matcher for {preset!r}; there are: "
                              f"{', '.join(builtin_presets()) or 'none'}")
        return cls.load(BUILTIN_DIR / name)

    def nearest(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(actions (B, d), distances (B,)) of each row's nearest sound in the codebook.

        The codebook holds training sounds of the patch, their standardised features
        projected on principal axes; the distance is the mean squared difference there.
        Without a codebook (an older matcher) the distances are 0 and the actions the net's."""
        if self.codebook is None:
            return self.forward(features), np.zeros(len(np.atleast_2d(features)), np.float32)
        h = (np.atleast_2d(np.asarray(features, np.float32)) - self.mean) / self.std
        z = (h - self.pca_mean) @ self.pca
        book = self.codebook
        # |z - c|^2 = |z|^2 - 2 z.c + |c|^2, one matrix product for the whole batch
        d = (z * z).sum(1)[:, None] - 2.0 * z @ book.T + self.codebook_sq[None]
        best = np.argmin(d, axis=1)
        dist = np.maximum(d[np.arange(len(z)), best], 0.0) / book.shape[1]
        return self.codebook_actions[best], dist.astype(np.float32)

    def neighbours_median(self, features: np.ndarray, k: int) -> np.ndarray:
        """(B, d): per setting, the median over each row's ``k`` nearest codebook sounds.

        A sound the patch cannot make lies between several of its sounds; the settings they
        agree on are a safer guess than the nearest one's (a median, not a mean: neighbours
        from two basins would average to settings neither has)."""
        if self.codebook is None:
            return self.forward(features)
        h = (np.atleast_2d(np.asarray(features, np.float32)) - self.mean) / self.std
        z = (h - self.pca_mean) @ self.pca
        d = (z * z).sum(1)[:, None] - 2.0 * z @ self.codebook.T + self.codebook_sq[None]
        k = max(1, min(int(k), self.codebook.shape[0]))
        near = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else \
            np.argsort(d, axis=1)
        return np.median(self.codebook_actions[near], axis=1).astype(np.float32)

    def candidates(self, clip: np.ndarray, k: int) -> np.ndarray:
        """Up to ``k`` distinct guesses (rows of actions) for one clip, best first.

        :meth:`propose`'s answer, then the net's own answer where the proposal was a codebook
        sound's, then the settings of the nearest codebook sounds, without repeats (so each
        costs a render worth making). Without a codebook: the proposal alone. Evaluating them
        all and keeping the best is ``policy@k``."""
        features = self.features(np.atleast_2d(clip)[:1])
        net = self.forward(features)
        first = self._propose_features(features)
        if self.codebook is None or k <= 1:
            return first
        h = (features - self.mean) / self.std
        z = (h - self.pca_mean) @ self.pca
        d = (z * z).sum(1)[:, None] - 2.0 * z @ self.codebook.T + self.codebook_sq[None]
        rows = [first[0], net[0], *self.codebook_actions[np.argsort(d[0])[:k]]]
        out: list[np.ndarray] = []
        for row in rows:
            if len(out) < k and not any(np.array_equal(row, o) for o in out):
                out.append(row)
        return np.asarray(out, np.float32)

    def guesses(self, clip: np.ndarray, k: int) -> np.ndarray:
        """Up to ``k`` distinct guesses for one clip, to be rendered (``policy@k``, the start
        of ``policy+nm``): with a critic attached (and ``use_critic``), the proposal and the
        ``k - 1`` candidates it predicts closest among :func:`candidate_pool`'s 263 (263
        critic evaluations, no render); without one, :meth:`candidates`."""
        if self.critic is None or not self.use_critic or k <= 1:
            return self.candidates(clip, k)
        return self.critic.guesses(self, self.features(np.atleast_2d(clip)[:1]), k)

    def features(self, clips: np.ndarray) -> np.ndarray:
        """Features of (B, n) clips, cut or padded to the clip length it was trained on."""
        clips = np.atleast_2d(np.asarray(clips, np.float32))
        fixed = np.zeros((clips.shape[0], self.clip_samples), np.float32)
        n = min(self.clip_samples, clips.shape[1])
        fixed[:, :n] = clips[:, :n]
        return matcher_features(fixed, sr=self.sr, **self.features_kwargs)

    def forward(self, features: np.ndarray) -> np.ndarray:
        """(B, action_dim) actions in [-1, 1] from (B, n_features) features.

        With a note head (weights ``C0, c0, ...``, sidecar ``note_column``), the coordinate
        ``note_column`` is the centre of the bucket the head's logits name instead of the
        regression's value (a classifier names a note; a regression averages between two
        candidates, e.g. an octave apart, and lands on neither)."""
        standard = (np.asarray(features, np.float32) - self.mean) / self.std
        h = standard
        if "input_clip" in self.meta:  # a fine-tuned net reads standardised features clipped
            h = np.clip(h, -float(self.meta["input_clip"]), float(self.meta["input_clip"]))
        h = np.tanh(_dense_pass(h, self.layers))
        if self.note_layers:
            limit = float(self.meta.get("note_input_clip", np.inf))
            logits = _dense_pass(np.clip(standard, -limit, limit), self.note_layers)
            h[:, int(self.meta["note_column"])] = \
                2.0 * (np.argmax(logits, axis=1) + 0.5) / logits.shape[1] - 1.0
        return h

    def propose(self, clips: np.ndarray) -> np.ndarray:
        """(B, action_dim) actions for (B, n) clips at the matcher's sample rate.

        The net's answer, unless the sound lies outside the patch's own sounds (its nearest
        codebook sound farther than ``ood_threshold``, the 90th percentile of held-out
        synthetic sounds): a net regressing settings extrapolates badly there, and the
        settings of the nearest sound (or each setting's median over the nearest
        ``ood_neighbours``, a sidecar key) are the better guess (measured on the one-shots'
        training half: docs/matching.md). With a critic attached whose JSON sets
        ``single_guess`` (and ``use_critic``), each clip's answer is :meth:`Critic.choose`'s
        instead (the proposal unless the critic's pick clears its margin)."""
        features = self.features(clips)
        if self.critic is not None and self.use_critic and self.critic.single_guess:
            return np.stack([self.critic.choose(self, f[None])[0] for f in features])
        return self._propose_features(features)

    def _propose_features(self, features: np.ndarray) -> np.ndarray:
        """:meth:`propose` without the critic, from features."""
        actions = self.forward(features)
        if self.codebook is not None:
            _, dist = self.nearest(features)
            far = dist > float(self.meta["ood_threshold"])
            if far.any():
                k = int(self.meta.get("ood_neighbours", OOD_NEIGHBOURS))
                actions[far] = self.neighbours_median(features[far], k)
        return actions


# what a sidecar may ask of the features: (smallest, largest) whole number of each setting
FEATURE_LIMITS = {"n_fft": (64, 16384), "hop": (16, 16384), "n_mels": (1, 256),
                  "n_frames": (1, 256)}
MAX_CLIP_SECONDS = 60.0


def _checked_features(meta: Mapping) -> tuple[dict, int, int]:
    """(feature settings, sample rate, clip samples) of a sidecar, checked: a sidecar from
    elsewhere must not ask for unknown settings or for spectra that exhaust memory.

    Raises
    ------
    ConfigError
        An unknown or out-of-range setting (named, with its allowed range)."""
    def whole(value, lo, hi, what):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or value != int(value) or not lo <= value <= hi:
            raise ConfigError(f"matcher sidecar: {what} must be a whole number in "
                              f"[{lo}, {hi}], got {value!r}")
        return int(value)

    features = meta["features"]
    if not isinstance(features, Mapping):
        raise ConfigError(f"matcher sidecar: 'features' must be a mapping, got {features!r}")
    unknown = sorted(set(features) - set(FEATURE_LIMITS) - {"pitch"})
    missing = sorted(set(FEATURE_LIMITS) - set(features))
    if unknown or missing:
        raise ConfigError(f"matcher sidecar: 'features' has unknown {unknown} or lacks "
                          f"{missing}; it takes {sorted(FEATURE_LIMITS)} and 'pitch'")
    out = {k: whole(features[k], *FEATURE_LIMITS[k], f"features.{k}") for k in FEATURE_LIMITS}
    if "pitch" in features:
        pitch = features["pitch"]
        if not isinstance(pitch, (list, tuple)) or len(pitch) != 3:
            raise ConfigError("matcher sidecar: features.pitch must be [lowest MIDI note, "
                              f"highest, bins a semitone], got {pitch!r}")
        lo, hi = whole(pitch[0], 0, 126, "features.pitch[0]"), \
            whole(pitch[1], 1, 127, "features.pitch[1]")
        if hi <= lo:
            raise ConfigError(f"matcher sidecar: features.pitch spans {lo}..{hi}: the "
                              "highest note must be above the lowest")
        out["pitch"] = (lo, hi, whole(pitch[2], 1, 16, "features.pitch[2]"))
    sr = whole(meta["sr"], 8000, 192000, "sr")
    clip = whole(meta["clip_samples"], 1, int(MAX_CLIP_SECONDS * sr), "clip_samples")
    return out, sr, clip


def builtin_presets() -> list[str]:
    """Presets with a built-in matcher."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.npz") if ".critic" not in p.stem)
