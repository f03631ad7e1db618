"""A learned critic for a matcher's guesses: it ranks candidate settings without rendering them.

A :class:`musicgym.envs.matcher_model.Matcher` has many plausible answers for a sound unlike
its patch's: its net's, each setting's median over the k nearest codebook sounds, the settings
of each of the nearest codebook sounds. The nearest by features is often not the best by the
distance every benchmark scores (MR-STFT). The critic ``Q(target, settings)`` predicts that
distance for a one-step episode (the value of an action), trained on rendered candidates of
targets in no evaluation set (:mod:`musicgym.train.matcher_critic`). The built-in Snare-v0
matcher uses it to choose the guesses of ``policy@k`` and ``policy+nm``
(:meth:`Matcher.guesses`: the proposal and the k - 1 candidates ranked first; only they are
rendered). As the single guess (:meth:`Critic.choose`) one net failed its rule on the real
training half (one catastrophic pick in five sounds); an ensemble of nets with a margin gate
(``members``, ``margin``; helper "critic2") keeps the proposal unless the pick is clearly
better, and ``single_guess`` makes it :meth:`Matcher.propose`'s answer (docs/matching.md).

NumPy only (like the matcher): a small MLP stored as ``NAME.critic.npz`` beside the matcher
(read with ``allow_pickle=False``) and its settings ``NAME.critic.json``, named by the matcher's
JSON under ``"critic"``; an ensemble's other nets are further ``.npz`` files the critic's JSON
lists under ``"members"``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from musicgym.errors import ConfigError

# the pool the critic chooses from: the proposal, the net's answer, each setting's median over
# the k nearest codebook sounds for these k, and the settings of the POOL_NEAREST nearest
POOL_MEDIANS = (3, 5, 8, 16, 32)
POOL_NEAREST = 256
# kinds of candidate (one-hot in the critic's input)
KIND_PROPOSAL, KIND_NET, KIND_MEDIAN, KIND_NEAREST = range(4)
N_KINDS = 4
DZ_CLIP = 20.0  # a candidate's sound minus the target's, on the codebook's axes, clipped


def candidate_pool(matcher, features: np.ndarray, *, nearest: int = POOL_NEAREST,
                   medians=POOL_MEDIANS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The critic's candidates for one target, and what it reads about each.

    Parameters
    ----------
    matcher : Matcher
        A matcher with a codebook.
    features : numpy.ndarray
        (n_features,) or (1, n_features): the target's :meth:`Matcher.features`.
    nearest, medians
        How many nearest codebook sounds, and the k of the k-nearest medians.

    Returns
    -------
    actions : numpy.ndarray
        (n, d) float32 candidate settings in [-1, 1]: the proposal first, then the net's
        answer, the medians, the nearest codebook sounds' settings (nearest first).
    z : numpy.ndarray
        (n_pca,) float32: the target's standardised features on the codebook's axes.
    extra : numpy.ndarray
        (n, N_KINDS + 3 + n_pca) float32 per candidate: its kind (one-hot), its rank among
        the nearest (log(1 + rank) / log(1 + nearest), 0 for the others), the codebook
        distance of that sound (log; the k-th nearest's for a median, the nearest's
        otherwise), whether the target is out of the patch's distribution (the proposal is
        a median), and the candidate's codebook sound minus the target on the codebook's
        axes (the mean of the k nearest for a median; 0 for the net's answer).
    """
    if matcher.codebook is None:
        raise ConfigError("a critic needs a matcher with a codebook (the built-in ones have "
                          "one); retrain the matcher with a codebook")
    f = np.atleast_2d(np.asarray(features, np.float32))[:1]
    h = (f - matcher.mean) / matcher.std
    z = ((h - matcher.pca_mean) @ matcher.pca)[0].astype(np.float32)
    actions, extra = pool_from_projection(matcher, z, matcher.forward(f)[0], nearest=nearest,
                                          medians=medians)
    return actions, z, extra


def pool_from_projection(matcher, z: np.ndarray, net: np.ndarray, *,
                         nearest: int = POOL_NEAREST,
                         medians=POOL_MEDIANS) -> tuple[np.ndarray, np.ndarray]:
    """:func:`candidate_pool`'s ``(actions, extra)`` from the target's projection ``z`` and
    the net's answer ``net`` (the pool depends on nothing else)."""
    book = matcher.codebook
    d = np.maximum((z * z).sum() - 2.0 * book @ z + matcher.codebook_sq, 0.0) / book.shape[1]
    n_near = max(1, min(int(nearest), len(d)))
    k_ood = max(1, int(matcher.meta.get("ood_neighbours", 1)))
    ranked = np.argsort(d, kind="stable")
    order = ranked[:n_near]
    far = float(d[order[0]]) > float(matcher.meta.get("ood_threshold", np.inf))
    # the proposal as Matcher.propose makes it (its own k nearest, whatever ``nearest`` is)
    proposal = (np.median(matcher.codebook_actions[ranked[:k_ood]], axis=0) if k_ood > 1 else
                matcher.codebook_actions[order[0]]) if far else net
    # the sound each candidate stands for, on the codebook's axes: the target itself for the
    # net's answer (it aims at it), the mean of the k nearest for a median
    rows = [proposal, net]
    kinds = [KIND_PROPOSAL, KIND_NET]
    dists = [float(d[order[0]]), float(d[order[0]])]
    ranks = [0.0, 0.0]
    sounds = [book[ranked[:k_ood]].mean(0) if far else z, z]
    for k in medians:
        k = min(int(k), n_near)
        rows.append(np.median(matcher.codebook_actions[order[:k]], axis=0))
        kinds.append(KIND_MEDIAN)
        dists.append(float(d[order[k - 1]]))
        ranks.append(np.log1p(k) / np.log1p(n_near))
        sounds.append(book[order[:k]].mean(0))
    for r, i in enumerate(order):
        rows.append(matcher.codebook_actions[i])
        kinds.append(KIND_NEAREST)
        dists.append(float(d[i]))
        ranks.append(np.log1p(r) / np.log1p(n_near))
        sounds.append(book[i])
    n = len(rows)
    extra = np.zeros((n, N_KINDS + 3 + z.size), np.float32)
    extra[np.arange(n), kinds] = 1.0
    extra[:, N_KINDS] = ranks
    extra[:, N_KINDS + 1] = np.log(np.asarray(dists) + 1e-3)
    extra[:, N_KINDS + 2] = float(far)
    extra[:, N_KINDS + 3:] = np.clip(np.asarray(sounds, np.float32) - z, -DZ_CLIP, DZ_CLIP)
    return np.asarray(rows, np.float32), extra


def critic_inputs(z: np.ndarray, actions: np.ndarray, extra: np.ndarray,
                  z_clip: float = 20.0) -> np.ndarray:
    """(n, n_pca + d + N_KINDS + 3) float32 rows: the target's projection (clipped to
    +-``z_clip``: sounds unlike the patch's lie far out), the candidate's settings, ``extra``."""
    n = len(actions)
    zt = np.clip(np.asarray(z, np.float32), -z_clip, z_clip)
    return np.concatenate([np.repeat(zt[None], n, 0), np.asarray(actions, np.float32),
                           np.asarray(extra, np.float32)], axis=1)


def _member(weights: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list]:
    """One net's ``(in_mean, in_std, layers)`` from its weights, checked."""
    try:
        in_mean = np.asarray(weights["in_mean"], np.float32)
        in_std = np.asarray(weights["in_std"], np.float32)
    except KeyError as exc:
        raise ConfigError(f"critic weights lack {exc}: not a critic file (write one with "
                          "python -m musicgym.train.matcher_critic)") from None
    layers = []
    i = 0
    while f"W{i}" in weights:
        if f"b{i}" not in weights:
            raise ConfigError(f"critic weights lack 'b{i}': not a critic file")
        layers.append((np.asarray(weights[f"W{i}"], np.float32),
                       np.asarray(weights[f"b{i}"], np.float32)))
        i += 1
    if (not layers or layers[0][0].ndim != 2 or layers[0][0].shape[0] != in_mean.size
            or layers[-1][0].shape[1] != 1 or in_std.shape != in_mean.shape
            or not np.all(np.isfinite(in_std)) or np.any(in_std <= 0)):
        raise ConfigError("critic weights: no layers, a first layer that does not take "
                          f"the {in_mean.size} inputs, more than one output, or a bad "
                          "input scaling; write the file with "
                          "python -m musicgym.train.matcher_critic")
    return in_mean, in_std, layers


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """A critic file's arrays (no pickles).

    Raises
    ------
    ConfigError
        The file is missing or is not an ``.npz`` of plain arrays."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such critic file (the matcher's JSON names it under "
                          "'critic', an ensemble's other nets under the critic JSON's "
                          "'members'; remove the key to match without it)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: not a critic's weights ({exc})") from None


class Critic:
    """``Q(target, settings)``: the predicted MR-STFT distance of each candidate (NumPy MLPs).

    One net, or an ensemble of nets trained alike with different seeds whose predictions are
    averaged (as a bootstrapped ensemble's: members that agree are more often right, and a
    pick one member alone favours is damped).

    Parameters
    ----------
    weights : mapping of str to numpy.ndarray, or a sequence of them
        Per net: ``in_mean``, ``in_std`` (input scaling) and ``W0, b0, W1, b1, ...`` (dense
        layers, ReLU between them, linear out, one output). Several: an ensemble, the first
        net first; all must read the same inputs.
    meta : mapping
        ``nearest`` and ``medians`` (the pool, :func:`candidate_pool`), ``z_clip``; optional
        ``margin`` (:meth:`choose`'s gate), ``guess_members`` (how many of the first nets rank
        :meth:`guesses`; default all) and ``single_guess`` (``Matcher.propose`` answers with
        :meth:`choose`; default off).

    Raises
    ------
    ConfigError
        A net's weights are not a critic's, the nets read different inputs, or a setting in
        ``meta`` is out of range.
    """

    def __init__(self, weights: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
                 meta: Mapping) -> None:
        self.meta = dict(meta)
        members = [weights] if isinstance(weights, Mapping) else list(weights)
        if not members:
            raise ConfigError("a critic needs at least one net's weights")
        self.members = [_member(w) for w in members]
        self.in_mean, self.in_std, self.layers = self.members[0]
        if any(m[0].size != self.in_mean.size for m in self.members):
            raise ConfigError("critic ensemble: its nets read different numbers of inputs "
                              f"({[m[0].size for m in self.members]}); train them alike")
        self.nearest = int(self.meta.get("nearest", POOL_NEAREST))
        self.medians = tuple(int(k) for k in self.meta.get("medians", POOL_MEDIANS))
        self.z_clip = float(self.meta.get("z_clip", 20.0))
        margin = self.meta.get("margin")
        if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))
                                   or not np.isfinite(margin) or margin < 0):
            raise ConfigError(f"critic 'margin': a number >= 0 or null, got {margin!r}")
        self.margin = None if margin is None else float(margin)
        g = self.meta.get("guess_members", len(self.members))
        if isinstance(g, bool) or not isinstance(g, int) or not 1 <= g <= len(self.members):
            raise ConfigError(f"critic 'guess_members': a whole number from 1 to "
                              f"{len(self.members)} (its nets), got {g!r}")
        self.guess_members = g
        self.single_guess = bool(self.meta.get("single_guess", False))

    @classmethod
    def load(cls, path: str | Path, meta: Mapping) -> Critic:
        """Read a ``.critic.npz`` (no pickles) with its settings ``meta``; an ensemble's other
        nets are the files ``meta["members"]`` names, beside ``path``.

        Raises
        ------
        ConfigError
            A file is missing or is not a critic, or ``members`` is not a list of file
            names."""
        path = Path(path)
        weights = [read_weights(path)]
        names = meta.get("members", [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip()
                                                  for n in names):
            raise ConfigError(f"{path.with_suffix('.json')}: 'members' must be a list of the "
                              f"ensemble's other weight files (names beside {path.name}), got "
                              f"{names!r}")
        weights += [read_weights(path.parent / n) for n in names]
        return cls(weights, meta)

    def predict_members(self, x: np.ndarray, members: int | None = None) -> np.ndarray:
        """(n_members, n) each net's predicted distances of (n, n_inputs)
        :func:`critic_inputs` rows (the first ``members`` nets; default all)."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_mean.size:
            raise ConfigError(f"critic inputs: expected (n, {self.in_mean.size}), got "
                              f"{x.shape}; build them with critic_inputs")
        out = []
        for in_mean, in_std, layers in self.members[:members]:
            h = (x - in_mean) / in_std
            for i, (w, b) in enumerate(layers):
                h = h @ w + b
                if i < len(layers) - 1:
                    h = np.maximum(h, 0.0)
            out.append(h[:, 0])
        return np.asarray(out)

    def predict(self, x: np.ndarray, members: int | None = None) -> np.ndarray:
        """(n,) predicted distances of (n, n_inputs) :func:`critic_inputs` rows: the mean over
        the first ``members`` nets (default all)."""
        p = self.predict_members(x, members)
        return p[0] if len(p) == 1 else p.mean(0)

    def ranked(self, matcher, features: np.ndarray,
               members: int | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """(the pool's settings (n, d) sorted by predicted distance, lowest first, the
        predictions (n,), whether the target is out of the patch's distribution) for one
        target's features: ``n`` critic evaluations per net, no render."""
        actions, z, extra = candidate_pool(matcher, features, nearest=self.nearest,
                                           medians=self.medians)
        q = self.predict(critic_inputs(z, actions, extra, self.z_clip), members)
        order = np.argsort(q, kind="stable")
        return actions[order], q[order], bool(extra[0, N_KINDS + 2])

    def choose(self, matcher, features: np.ndarray) -> tuple[np.ndarray, int]:
        """(settings (d,), pool size): the single guess for one target's features (no render).

        The candidate with the lowest predicted distance (all nets averaged), except where the
        matcher's proposal (the pool's first candidate) should stay:

        * with ``margin`` set, unless that candidate's prediction beats the proposal's by
          ``margin`` times the standard deviation of the pool's predictions (a conservative
          pick: a learnt value is trusted only where it is clearly better than the default,
          as pessimistic offline RL keeps near the behaviour policy);
        * with ``only_out_of_distribution``, for a target inside the patch's distribution."""
        actions, z, extra = candidate_pool(matcher, features, nearest=self.nearest,
                                           medians=self.medians)
        far = bool(extra[0, N_KINDS + 2])
        if self.meta.get("only_out_of_distribution") and not far:
            return matcher._propose_features(np.atleast_2d(features)[:1])[0], len(actions)
        q = self.predict(critic_inputs(z, actions, extra, self.z_clip))
        pick = int(np.argmin(q)) if self.margin is None else int(gated_pick(q, self.margin))
        return actions[pick], len(actions)

    def guesses(self, matcher, features: np.ndarray, k: int) -> np.ndarray:
        """(k, d): the matcher's proposal without the critic, then the ``k - 1`` distinct
        candidates the critic (its first ``guess_members`` nets) predicts closest
        (``policy@k`` with the critic choosing)."""
        actions, _, _ = self.ranked(matcher, features, self.guess_members)
        first = matcher._propose_features(np.atleast_2d(features)[:1])[0]
        out, seen = [first], {first.tobytes()}
        for row in actions:
            if len(out) >= k:
                break
            if row.tobytes() not in seen:
                seen.add(row.tobytes())
                out.append(row)
        return np.asarray(out, np.float32)


def gated_pick(q: np.ndarray, margin: float) -> int:
    """Index into a pool (the proposal at 0) of the margin-gated pick: the lowest prediction
    where it beats the proposal's by ``margin`` x the standard deviation of the pool's
    predictions, else 0 (the proposal). Works on (n,) or, row by row, (T, n) predictions."""
    q = np.asarray(q, np.float64)
    best = np.argmin(q, axis=-1)
    gain = q[..., 0] - np.take_along_axis(q, best[..., None], -1)[..., 0]
    return np.where(gain > margin * q.std(axis=-1), best, 0)
