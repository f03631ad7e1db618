"""A learned composing policy for ``musicgym/Counterpoint-v0``: features, NumPy inference,
one-pass composition, and the policy as the guided search's prior.

The policy is a small MLP (features -> 2 x 256 ReLU -> 60 logits) trained by expert iteration
(:mod:`musicgym.compose.policy_train`): the guided beam search writes pieces on many generated
exercises of every species, and the policy learns to imitate its notes. One policy serves all
five species: the species, the cantus firmus around the current bar and the env's rule mask
are inputs, so what is shared (where consonances lie, how a line turns after a skip, how the
climax and the cadence are reached) is learned once.

Inference needs NumPy only: the weights ship as ``.npz`` with a ``.json`` beside it (the command
and seed that made them). Decoding always applies the env's mask (hard rules plus the dead-end
lookahead), so every piece has zero hard-rule violations and always finishes.

* :func:`compose_policy` writes a piece in one pass (greedy, or a small beam of the policy's
  log-probabilities whose finished pieces are scored exactly).
* :func:`policy_guided_search` runs :func:`~musicgym.compose.search.guided_beam_search`
  with the policy as its prior: each partial piece is extended only by the ``top_k`` notes the
  policy finds likeliest, so far fewer states are judged.
"""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np

from musicgym.compose import mlp
from musicgym.errors import ConfigError
from musicgym.music.rules import score_piece
from musicgym.music.rules.species import (
    ACTION_DURATIONS,
    ACTION_MOVES,
    EIGHTHS_PER_BAR,
    N_ACTIONS,
    CounterpointState,
)

FEATURE_VERSION = 2
_MOVES, _DURATIONS = ACTION_MOVES.tolist(), ACTION_DURATIONS.tolist()
_DURATION_INDEX = {1: 0, 2: 1, 4: 2, 8: 3}
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "data" / "composers"
BUILTIN_COUNTERPOINT = BUILTIN_DIR / "counterpoint.npz"


def n_features() -> int:
    """Length of the vector :func:`features` returns."""
    return 5 + 8 + 2 + 4 + 45 + 3 + 7 + 4 + 14 + 1 + 8 + 3 + 15 + 8 + 3 + 60 + 2


def features(state: CounterpointState, mask: np.ndarray) -> np.ndarray:
    """The policy's input for ``state`` (float32, shape ``(n_features(),)``).

    In order: species (one-hot 5); eighth within the bar (one-hot 8); progress through the
    piece and bars left (/16); the last note's duration (one-hot 4); the last three moves
    (one-hot 15 each); the line's place in its range, against the end note and the top; the
    current note's degree (one-hot 7); the cantus firmus of this bar and the next three minus the
    current note (scale steps / 14); the interval class to the cantus of this bar and the next
    (one-hot 7 each); whether the counterpoint lies above; skips so far (one-hot 0..7); the peak
    against the current note and the top, and its repeats; how often each note -7..+7 steps
    from the current one has sounded (share of the notes); the last 8 notes before the
    current one, against it; the span of the last 5, 7 and 9 notes (/7); the env's mask (60);
    whether the last note was consonant and whether it was tied.
    """
    setup = state.setup
    out = np.zeros(n_features(), dtype=np.float32)
    i = 0
    out[i + setup.species - 1] = 1.0
    i += 5
    time = state.time
    out[i + time % EIGHTHS_PER_BAR] = 1.0
    i += 8
    out[i] = time / setup.total_eighths
    out[i + 1] = (setup.total_eighths - time) / (EIGHTHS_PER_BAR * 16)
    i += 2
    out[i + _DURATION_INDEX.get(state.durations[-1], 2)] = 1.0
    i += 4
    for k, move in enumerate(state.moves[-3:][::-1]):
        out[i + 15 * k + move + 7] = 1.0
    i += 45
    pos = state.positions[-1]
    low, high = setup.lowest_position, setup.highest_position
    out[i] = (pos - low) / max(1, high - low)
    out[i + 1] = (pos - setup.end_position) / 14.0
    out[i + 2] = (high - pos) / 14.0
    i += 3
    out[i + setup.scale.degree(pos) - 1] = 1.0
    i += 7
    bar = min(time // EIGHTHS_PER_BAR, setup.n_bars - 1)
    cf = setup.cantus_positions
    for k in range(4):
        out[i + k] = (int(cf[min(bar + k, setup.n_bars - 1)]) - pos) / 14.0
    i += 4
    for k in range(2):
        out[i + 7 * k + (pos - int(cf[min(bar + k, setup.n_bars - 1)])) % 7] = 1.0
    i += 14
    out[i] = float(setup.counterpoint_above)
    i += 1
    moves = state.moves
    skips = sum(1 for m in moves if m > 1 or m < -1)
    out[i + min(skips, 7)] = 1.0
    i += 8
    positions = state.positions
    peak = max(positions)
    out[i] = (peak - pos) / 14.0
    out[i + 1] = (high - peak) / 14.0
    out[i + 2] = min(positions.count(peak) - 1, 3) / 3.0
    i += 3
    n = len(positions)
    for p in positions:
        if -7 <= p - pos <= 7:
            out[i + p - pos + 7] += 1.0 / n
    i += 15
    # recent notes and the span of the last 5, 7, 9: without them a greedy line circles in a
    # narrow range (RL-Musician's narrow_ranges penalty) it cannot see
    recent = positions[-9:]
    for k, p in enumerate(recent[-9:-1][::-1]):
        out[i + k] = (p - pos) / 7.0
    i += 8
    for k, size in enumerate((5, 7, 9)):
        window = recent[-size:]
        out[i + k] = (max(window) - min(window)) / 7.0
    i += 3
    out[i:i + N_ACTIONS] = mask
    i += N_ACTIONS
    out[i] = float(state.last_consonant)
    out[i + 1] = float(state.durations[-1] == EIGHTHS_PER_BAR)
    return out


_SHARES = np.zeros((1, 1), dtype=np.float32)
_DURATION_COLUMN = np.full(EIGHTHS_PER_BAR + 1, 2)  # _DURATION_INDEX (default 2) as an array
for _duration, _index in _DURATION_INDEX.items():
    _DURATION_COLUMN[_duration] = _index
_MOVE_COLUMNS = 19 + 15 * np.arange(3) + 7  # one-hot blocks of the last three moves
_CLASS_COLUMNS = 78 + 7 * np.arange(2)  # of the interval classes to this bar's cantus, next's


def _shares(n_max: int) -> np.ndarray:
    """Row ``n``, column ``k``: ``k`` notes' share of ``n`` as :func:`features` sums it
    (``1 / n`` added ``k`` times in float32, so rounded step by step), for every n <= n_max:
    the batched features read it here so that their values are the same to the bit."""
    global _SHARES
    if len(_SHARES) <= n_max:
        size = max(n_max + 1, 2 * len(_SHARES))
        table = np.zeros((size, size), dtype=np.float32)
        for n in range(1, size):
            table[n, 1:n + 1] = np.cumsum(np.full(n, 1.0 / n, dtype=np.float32),
                                          dtype=np.float32)
        _SHARES = table
    return _SHARES


def features_batch(states: list[CounterpointState], masks: list[np.ndarray] | np.ndarray
                   ) -> np.ndarray:
    """:func:`features` of many states at once (float32, shape ``(len(states),
    n_features())``), the same values to the bit: one pass of array operations over the
    batch instead of one Python call a state, which was most of what the policy cost inside
    a search. ``masks``: one per state (a list, or stacked). A batch whose states belong to
    different exercises is made one state at a time."""
    n_states = len(states)
    out = np.zeros((n_states, n_features()), dtype=np.float32)
    if not n_states:
        return out
    setup = states[0].setup
    if any(state.setup is not setup for state in states):
        for j, state in enumerate(states):
            out[j] = features(state, masks[j])
        return out
    # one row of plain numbers a state; the whole line's notes in one flat list
    rows = []
    flat: list[int] = []
    for state in states:
        moves, positions, durations = state.moves, state.positions, state.durations
        n_moves = len(moves)
        peak = max(positions)
        rows.append((state.time, durations[-1], len(positions),
                     moves[-1] if n_moves else 99, moves[-2] if n_moves > 1 else 99,
                     moves[-3] if n_moves > 2 else 99,
                     n_moves - moves.count(0) - moves.count(1) - moves.count(-1),
                     peak, positions.count(peak), state.last_consonant))
        flat += positions
    table = np.array(rows, dtype=np.int64)
    time, last_duration, n_notes = table[:, 0], table[:, 1], table[:, 2]
    ends = np.cumsum(n_notes)
    notes = np.array(flat, dtype=np.int64)
    pos = notes[ends - 1]
    column = pos[:, None]
    rows_index = np.arange(n_states)
    low, high, total = setup.lowest_position, setup.highest_position, setup.total_eighths
    n_bars = setup.n_bars
    out[:, setup.species - 1] = 1.0
    out[rows_index, 5 + time % EIGHTHS_PER_BAR] = 1.0
    out[:, 13] = time / total
    out[:, 14] = (total - time) / (EIGHTHS_PER_BAR * 16)
    out[rows_index, 15 + _DURATION_COLUMN[last_duration]] = 1.0
    moves = table[:, 3:6]  # the last three moves, the latest first (99: none)
    some = moves != 99
    out[np.broadcast_to(rows_index[:, None], moves.shape)[some],
        (_MOVE_COLUMNS + moves)[some]] = 1.0
    out[:, 64] = (pos - low) / max(1, high - low)
    out[:, 65] = (pos - setup.end_position) / 14.0
    out[:, 66] = (high - pos) / 14.0
    out[rows_index, 67 + pos % 7] = 1.0
    bar = np.minimum(time // EIGHTHS_PER_BAR, n_bars - 1)
    cf = np.asarray(setup.cantus_positions, dtype=np.int64)[
        np.minimum(bar[:, None] + np.arange(4), n_bars - 1)]
    out[:, 74:78] = (cf - column) / 14.0
    out[rows_index[:, None], _CLASS_COLUMNS + (column - cf[:, :2]) % 7] = 1.0
    out[:, 92] = float(setup.counterpoint_above)
    out[rows_index, 93 + np.minimum(table[:, 6], 7)] = 1.0
    peak = table[:, 7]
    out[:, 101] = (peak - pos) / 14.0
    out[:, 102] = (high - peak) / 14.0
    out[:, 103] = np.minimum(table[:, 8] - 1, 3) / 3.0
    # how often each note -7..+7 steps from the current one has sounded
    owner = np.repeat(rows_index, n_notes)
    step = notes - pos[owner]
    near = np.abs(step) <= 7
    counts = np.bincount(owner[near] * 15 + step[near] + 7, minlength=15 * n_states
                         ).reshape(n_states, 15)
    out[:, 104:119] = _shares(int(n_notes.max()))[n_notes[:, None], counts]
    # the last 9 notes, the current one first (the current one again where there are fewer)
    back = np.arange(9)
    written = back < n_notes[:, None]
    recent = np.where(written, notes[np.maximum(ends[:, None] - 1 - back, 0)], column)
    out[:, 119:127] = np.where(written[:, 1:], (recent[:, 1:] - column) / 7.0, 0.0)
    spans = (np.maximum.accumulate(recent, axis=1) - np.minimum.accumulate(recent, axis=1))
    out[:, 127:130] = spans[:, [4, 6, 8]] / 7.0
    out[:, 130:130 + N_ACTIONS] = np.asarray(masks)
    out[:, 190] = table[:, 9]
    out[:, 191] = last_duration == EIGHTHS_PER_BAR
    return out


class ComposerPolicy:
    """A trained composing policy (NumPy weights of an MLP with ReLU hidden layers).

    Parameters
    ----------
    weights : list of (W, b) pairs
        Layer weights, ``W`` of shape (inputs, outputs); the last layer gives 60 logits.
    meta : dict
        What made it (command, seed, data, scores); stored in the JSON beside the weights.
    """

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]], meta: dict | None = None):
        self.weights = [(np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32))
                        for w, b in weights]
        self.meta = dict(meta or {})
        if self.weights[0][0].shape[0] != n_features() or \
                self.weights[-1][0].shape[1] != N_ACTIONS:
            raise ConfigError(
                f"policy weights take {self.weights[0][0].shape[0]} features and give "
                f"{self.weights[-1][0].shape[1]} actions; this musicgym needs {n_features()} "
                f"and {N_ACTIONS} (feature version {FEATURE_VERSION}): retrain it with "
                "python -m musicgym.compose.policy_train")

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Raw logits for a feature vector (n,) or batch (b, n)."""
        return mlp.forward(x, self.weights)

    def log_probs(self, state: CounterpointState, mask: np.ndarray) -> np.ndarray:
        """Log-probabilities of the 60 actions in ``state``, masked (-inf where not allowed)."""
        z = self.logits(features(state, mask)).astype(np.float64)
        z = np.where(mask, z, -np.inf)
        top = z.max()
        return z - top - math.log(np.exp(z - top).sum())

    def log_probs_batch(self, states: list[CounterpointState], masks: list[np.ndarray]
                        ) -> np.ndarray:
        """:meth:`log_probs` of many states at once (shape ``(len(states), 60)``): one
        forward pass for all, which is what makes the policy cheap inside a search."""
        if not states:
            return np.zeros((0, N_ACTIONS))
        m = np.stack(masks)
        z = self.logits(features_batch(states, m)).astype(np.float64)
        z = np.where(m, z, -np.inf)
        top = z.max(axis=1, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)  # a state with nothing allowed
        return z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npz) and its .json (``meta``); returns the .npz path."""
        return mlp.save(path, self.weights, {
            **self.meta, "feature_version": FEATURE_VERSION, "n_features": n_features(),
            "layers": [list(w.shape) for w, _ in self.weights]})

    @classmethod
    def load(cls, path: str | Path = "builtin") -> ComposerPolicy:
        """Load a policy: ``"builtin"`` (the one shipped in the package), a ``.npz`` file, or
        a folder holding ``counterpoint.npz`` (as the trainer writes it).

        Raises
        ------
        ConfigError
            If there is no such file, or it is not a policy of this feature version.
        """
        weights, meta, path = mlp.load(path, builtin=BUILTIN_COUNTERPOINT,
                                       filename="counterpoint.npz", what="composing policy",
                                       trainer="musicgym.compose.policy_train")
        if meta.get("feature_version", FEATURE_VERSION) != FEATURE_VERSION:
            raise ConfigError(f"{path} has feature version {meta['feature_version']}; this "
                              f"musicgym reads {FEATURE_VERSION}: retrain it")
        return cls(weights, meta)


def _env(env: gym.Env):
    return env.unwrapped


def compose_policy(env: gym.Env, policy: ComposerPolicy, *, beam: int = 1,
                   stats: dict | None = None) -> tuple[float, list[int]]:
    """Write one piece with ``policy`` in one pass: (return, actions).

    ``beam=1`` takes the likeliest allowed note at every step (greedy). ``beam=k`` keeps the
    ``k`` partial pieces of highest total log-probability, in time order (the same eighth
    compared with the same eighth), and returns the best-scoring finished piece among them.
    Either way only allowed notes are taken (the env's mask, with its dead-end lookahead).

    Parameters
    ----------
    env : CounterpointEnv or a wrapper of one
    policy : ComposerPolicy
    beam : int, keyword-only
    stats : dict or None, keyword-only
        If given, filled with ``expanded`` (states the policy was run on), ``children`` (notes
        kept as candidates) and ``evaluations`` (finished pieces scored).

    Raises
    ------
    ConfigError
        If ``beam`` is not a whole number of at least 1.
    """
    if isinstance(beam, bool) or not isinstance(beam, int | np.integer) or beam < 1:
        raise ConfigError(f"beam must be a whole number of at least 1, got {beam!r}")
    env = _env(env)
    counters = {"expanded": 0, "children": 0, "evaluations": 0}
    # a beam entry: (log-probability so far, reward so far, state, actions)
    groups: dict[int, list] = {}
    root = CounterpointState(env.setup)
    groups[root.time] = [(0.0, 0.0, root, [])]
    best: tuple[float, list[int]] = (-np.inf, [])
    while groups:
        entries = sorted(groups.pop(min(groups)), key=lambda e: -e[0])[:beam]
        for logp, reward, state, actions in entries:
            mask = env.oracle.mask(state)
            if not mask.any():
                continue
            counters["expanded"] += 1
            lp = policy.log_probs(state, mask)
            step_rewards = env.oracle.step_rewards(state)
            order = np.argsort(-lp)[:beam]
            for action in order.tolist():
                if not mask[action]:
                    continue
                counters["children"] += 1
                child = state.copy()
                child.add(_MOVES[action], _DURATIONS[action])
                r = reward + float(step_rewards[action])
                if child.finished:
                    counters["evaluations"] += 1
                    total = r + score_piece(child, coefs=env.scoring_coefs,
                                            params=env.scoring_fn_params)["total"]
                    if total > best[0]:
                        best = (total, [*actions, action])
                    continue
                groups.setdefault(child.time, []).append(
                    (logp + float(lp[action]), r, child, [*actions, action]))
    if stats is not None:
        stats.update(counters)
    return best


def policy_guided_search(env: gym.Env, policy: ComposerPolicy, *, top_k: int = 3,
                         beam_width: int = 100, seed: int = 0, noise: float = 0.02,
                         logp_weight: float = 0.0, stats: dict | None = None,
                         n_pieces: int = 1, entropy_estimate: str = "so_far",
                         entropy_weight: float = 1.0) -> tuple[float, list[int]]:
    """The guided beam search with the policy as its prior: (return, actions).

    The search (:func:`~musicgym.compose.search.guided_beam_search`, its score estimate and
    pruning unchanged) extends each partial piece only by the ``top_k`` allowed notes the
    policy finds likeliest, and with ``logp_weight`` > 0 ranks partial pieces by its score
    estimate + ``logp_weight`` x the line's log-probability under the policy. Each kept note
    is still allowed by the env's mask (with its dead-end lookahead), so the piece breaks no
    hard rule and always finishes; the return is the env's. With ``stats``, the ``n_pieces``
    best distinct finished pieces go there as ``pieces`` (see the guided search).
    ``entropy_estimate`` and ``entropy_weight`` set the estimate's entropy term (see the
    guided search).

    Raises
    ------
    ConfigError
        If ``top_k`` is not a whole number of at least 1, ``logp_weight`` is negative (and as
        the guided search does).
    """
    from musicgym.compose.search import guided_beam_search

    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ConfigError(f"top_k must be a whole number of at least 1, got {top_k!r}")
    return guided_beam_search(_env(env), seed=seed, beam_width=beam_width, noise=noise,
                              stats=stats, prior=policy.log_probs_batch, prior_top_k=int(top_k),
                              prior_weight=logp_weight, n_pieces=n_pieces,
                              entropy_estimate=entropy_estimate,
                              entropy_weight=entropy_weight)
