"""A learned value for ``musicgym/Counterpoint-v0``: the score a partial piece is heading for,
and a one-pass decoder that ranks partial pieces by the policy and this value alone.

The value is a small MLP (features -> 2 x 128 ReLU -> 1) trained by regression
(:mod:`musicgym.compose.value_train`): from every prefix of many finished pieces (the guided
search's pieces, and the policy's own rollouts, sampled and decoded) it predicts the return
still to come, i.e. the piece's final env return (RL-Musician's score plus the soft-rule
penalties) minus the penalties already taken. Its inputs are the policy's features
(:func:`musicgym.compose.policy.features`, with the mask part left at zero, so that a child
state can be valued without running the env's rule lookahead on it) and a few running facts of
the line so far, all raw counts (:func:`value_features`): pitch entropy so far, the narrow
windows so far, the number of notes, skips and peak repeats. How these weigh against each
other, and what they imply for the rest of the piece, is learned: no hand-made estimate of the
final score is used (unlike :func:`~musicgym.compose.search.guided_beam_search`).

:func:`compose_value_beam` is the decoder: a time-synchronous beam of ``beam`` partial pieces;
each is extended by the policy's ``top_k`` likeliest allowed notes (the env's mask, with its
dead-end lookahead, so every piece breaks no hard rule); children are ranked by penalties so far
+ the learned value + ``logp_weight`` x the policy's log-probability of the line; finished
pieces are scored exactly by the env's score and the best is returned.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import gymnasium as gym
import numpy as np

from musicgym.compose import mlp
from musicgym.compose.policy import ComposerPolicy, features, n_features
from musicgym.compose.polish import check_polish_settings, polish_piece
from musicgym.compose.search import _gc_paused, check_entropy_settings, whole_number
from musicgym.errors import ConfigError
from musicgym.music.rules import score_piece
from musicgym.music.rules.species import (
    ACTION_DURATIONS,
    ACTION_MOVES,
    N_ACTIONS,
    CounterpointState,
)

VALUE_FEATURE_VERSION = 1
N_EXTRA = 8
_MOVES, _DURATIONS = ACTION_MOVES.tolist(), ACTION_DURATIONS.tolist()
BUILTIN_VALUE = Path(__file__).resolve().parent.parent / "data" / "composers" / \
    "counterpoint_value.npz"
_NO_MASK = np.zeros(N_ACTIONS, dtype=bool)
_NARROW_SIZE = 9  # RL-Musician's narrow_ranges window (notes)
# compose_value_and_search's defaults per species, chosen on the validation split
# (docs/compose.md): the best settings there whose pieces stay under 1 s of CPU on a loaded
# 2-core machine. The policy-guided search's width (species 3 and 5 write 4 notes a bar, so
# their searches cost twice as much; species 5: the widest at 0.6 s mean CPU on validation
# once the search got 2.1x cheaper per state) and the value beam's (left out in species 5)
DEFAULT_SEARCH_WIDTH = {1: 200, 2: 200, 3: 200, 4: 200, 5: 300}
DEFAULT_VALUE_BEAM = {1: 16, 2: 16, 3: 16, 4: 16, 5: 0}
# the policy-guided search's log-probability weight: 0.3 in species 5 since the policy imitates
# the stronger expert (docs/compose.md, "A stronger expert": on the validation splits the best
# of 0.05-0.7 on split A, also higher on split B; species 3 and 4 were lower with 0.3)
DEFAULT_SEARCH_LOGP = {1: 0.1, 2: 0.1, 3: 0.1, 4: 0.1, 5: 0.3}
# the better piece polished by local search (compose.polish.polish_piece) with these settings,
# chosen on the validation splits (docs/compose.md, "Polishing the finished piece"): one-note
# shifts of up to 3 steps, runs of up to 8 notes shifted together, adjacent durations swapped,
# and every other way to write up to 4 eighths (pitches and rhythm) that rejoins the piece
DEFAULT_POLISH = {"max_step": 3, "max_span": 8, "swap": True, "window": 4, "window_rhythm": True,
                  "window_eighths": 4}
# how many of the finished pieces are polished (the best polished one kept): 1, the better
# piece only; polishing the search's 2-8 best pieces gained +0.0005-0.0011 on validation for
# 0.07-0.5 s more CPU a piece (docs/compose.md, "Polishing several finished pieces")
DEFAULT_POLISH_PIECES = 1
# the policy-guided search's entropy estimate ("so_far", "reachable" or "blend": see
# guided_beam_search's entropy_estimate); "reachable" / "blend" changed 2-3 of 38 validation
# pieces, +0.0001 / -0.0006, for +15 % CPU (docs/compose.md, "The entropy the piece can still
# reach")
DEFAULT_ENTROPY_ESTIMATE = "so_far"
# the policy-guided search's entropy term x this in its estimate (see guided_beam_search);
# 1.5 / 2 gave +0.00001 / -0.0002 on validation (docs/compose.md, "The entropy the piece can
# still reach")
DEFAULT_ENTROPY_WEIGHT = 1.0
# a cost per note written in the policy-guided search's ranking (score units a note; see
# compose_value_and_search's note_cost): 0, none
DEFAULT_NOTE_COST = {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0}


class _NoteCostPrior:
    """The policy's next-note log-probabilities less ``shift`` for every note: a uniform shift
    per partial piece, so the policy's likeliest notes (the search's ``prior_top_k``) are the
    same, and the line's log-probability falls by ``shift`` a note."""

    def __init__(self, policy: ComposerPolicy, shift: float):
        self.policy, self.shift = policy, float(shift)

    def log_probs_batch(self, states: list[CounterpointState], masks: list[np.ndarray]
                        ) -> np.ndarray:
        return self.policy.log_probs_batch(states, masks) - self.shift


def n_value_features() -> int:
    """Length of the vector :func:`value_features` returns."""
    return n_features() + N_EXTRA


def value_features(state: CounterpointState) -> np.ndarray:
    """The value's input for ``state`` (float32, shape ``(n_value_features(),)``).

    The policy's features with the mask part zero, then: pitch entropy of the notes so far over
    the range (0-1); windows of 9 notes so far spanning at most 2 and exactly 3 scale steps
    (/4 each); notes so far (/64); eighths left (share of the piece); skips so far (/8); the
    peak's repeats (/3); scale steps from the peak to the top of the range (/7).
    """
    setup = state.setup
    out = np.empty(n_value_features(), dtype=np.float32)
    out[:n_features()] = features(state, _NO_MASK)
    positions = state.positions
    n = len(positions)
    counts: dict[int, int] = {}
    for p in positions:
        counts[p] = counts.get(p, 0) + 1
    n_pitches = setup.highest_position - setup.lowest_position + 1
    ent = -sum(c / n * math.log(c / n) for c in counts.values()) / math.log(n_pitches)
    narrow2 = narrow3 = 0
    for k in range(n - _NARROW_SIZE + 1):
        window = positions[k:k + _NARROW_SIZE]
        width = max(window) - min(window)
        narrow2 += width <= 2
        narrow3 += width == 3
    peak = max(positions)
    first = positions.index(peak)
    i = n_features()
    out[i] = ent
    out[i + 1] = narrow2 / 4.0
    out[i + 2] = narrow3 / 4.0
    out[i + 3] = n / 64.0
    out[i + 4] = (setup.total_eighths - state.time) / setup.total_eighths
    out[i + 5] = sum(1 for m in state.moves if m > 1 or m < -1) / 8.0
    out[i + 6] = positions[first + 1:].count(peak) / 3.0
    out[i + 7] = (setup.highest_position - peak) / 7.0
    return out


class ComposerValue:
    """A trained value (NumPy weights of an MLP with ReLU hidden layers and one output).

    Parameters
    ----------
    weights : list of (W, b) pairs
        Layer weights, ``W`` of shape (inputs, outputs); the last layer gives 1 output.
    meta : dict
        What made it (command, seed, data, fit figures); stored in the JSON beside the weights.
    """

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]], meta: dict | None = None):
        self.weights = [(np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32))
                        for w, b in weights]
        self.meta = dict(meta or {})
        if self.weights[0][0].shape[0] != n_value_features() or \
                self.weights[-1][0].shape[1] != 1:
            raise ConfigError(
                f"value weights take {self.weights[0][0].shape[0]} features and give "
                f"{self.weights[-1][0].shape[1]} outputs; this musicgym needs "
                f"{n_value_features()} and 1: retrain it with "
                "python -m musicgym.compose.value_train")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return still to come for a feature batch (b, n) (shape (b,)) or vector (scalar)."""
        return mlp.forward(x, self.weights)[..., 0]

    def __call__(self, states: list[CounterpointState]) -> np.ndarray:
        """Return still to come for each state (float64, shape (len(states),))."""
        if not states:
            return np.zeros(0)
        x = np.stack([value_features(s) for s in states])
        return self.predict(x).astype(np.float64)

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npz) and its .json (``meta``); returns the .npz path."""
        return mlp.save(path, self.weights, {
            **self.meta, "value_feature_version": VALUE_FEATURE_VERSION,
            "n_features": n_value_features(),
            "layers": [list(w.shape) for w, _ in self.weights]})

    @classmethod
    def load(cls, path: str | Path = "builtin") -> ComposerValue:
        """Load a value: ``"builtin"`` (shipped in the package), a ``.npz`` file, or a folder
        holding ``counterpoint_value.npz`` (as the trainer writes it).

        Raises
        ------
        ConfigError
            If there is no such file, or it is not a value of this feature version.
        """
        weights, meta, path = mlp.load(path, builtin=BUILTIN_VALUE,
                                       filename="counterpoint_value.npz", what="composing value",
                                       trainer="musicgym.compose.value_train")
        if meta.get("value_feature_version", VALUE_FEATURE_VERSION) != VALUE_FEATURE_VERSION:
            raise ConfigError(f"{path} has value feature version "
                              f"{meta['value_feature_version']}; this musicgym reads "
                              f"{VALUE_FEATURE_VERSION}: retrain it")
        return cls(weights, meta)


@_gc_paused
def compose_value_beam(env: gym.Env, policy: ComposerPolicy, value: ComposerValue, *,
                       beam: int = 16, top_k: int = 6, logp_weight: float = 0.2,
                       stats: dict | None = None) -> tuple[float, list[int]]:
    """Write one piece with the policy and the learned value: (return, actions).

    A time-synchronous beam (partial pieces compared only with those whose next note starts
    on the same eighth) keeps the ``beam`` best; each is extended by the policy's ``top_k``
    likeliest notes among those the env's mask allows (hard rules plus its dead-end lookahead);
    a child's rank is the soft-rule penalties so far + ``value`` (the return still to come,
    learned) + ``logp_weight`` x the line's total log-probability under the policy. Finished
    pieces are scored exactly as the env scores them, and the best is returned. It calls the
    env's oracle (mask, soft-rule penalties) and :func:`~musicgym.music.rules.score_piece` on
    finished pieces; nothing else.

    Parameters
    ----------
    env : CounterpointEnv or a wrapper of one
    policy : ComposerPolicy
    value : ComposerValue
    beam, top_k : int, keyword-only
    logp_weight : float, keyword-only
        The defaults (16, 6, 0.2) were the best of the 8 settings tried on the validation split
        (``value_train.validation_exercises``) with the builtin policy and value.
    stats : dict or None, keyword-only
        If given, filled with ``expanded`` (partial pieces extended), ``children`` (notes
        kept as candidates and valued) and ``evaluations`` (finished pieces scored).

    Raises
    ------
    ConfigError
        If ``beam`` or ``top_k`` is not a whole number of at least 1, or ``logp_weight`` is
        negative or not finite.
    """
    beam = whole_number("beam", beam, 1)
    top_k = whole_number("top_k", top_k, 1)
    if not (math.isfinite(logp_weight) and logp_weight >= 0):
        raise ConfigError(f"logp_weight must be a finite number of 0 or more, got "
                          f"{logp_weight!r}")
    env = env.unwrapped
    counters = {"expanded": 0, "children": 0, "evaluations": 0}
    # an entry: (rank, log-probability so far, penalties so far, state, actions)
    root = CounterpointState(env.setup)
    groups: dict[int, list] = {root.time: [(0.0, 0.0, 0.0, root, [])]}
    best: tuple[float, list[int]] = (-np.inf, [])
    while groups:
        entries = sorted(groups.pop(min(groups)), key=lambda e: -e[0])[:beam]
        pending = []  # unfinished children, valued together
        for _, logp, reward, state, actions in entries:
            mask = env.oracle.mask(state)
            if not mask.any():
                continue
            counters["expanded"] += 1
            lp = policy.log_probs(state, mask)
            step_rewards = env.oracle.step_rewards(state)
            for action in np.argsort(-lp)[:top_k].tolist():
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
                pending.append((logp + float(lp[action]), r, child, [*actions, action]))
        if pending:
            values = value([p[2] for p in pending])
            for (logp, r, child, acts), v in zip(pending, values, strict=True):
                groups.setdefault(child.time, []).append(
                    (r + float(v) + logp_weight * logp, logp, r, child, acts))
    if stats is not None:
        stats.update(counters)
    return best


def compose_value_and_search(env: gym.Env, policy: ComposerPolicy, value: ComposerValue, *,
                             beam: int | None = None, top_k: int = 6, logp_weight: float = 0.2,
                             search_width: int | None = None, search_top_k: int = 3,
                             search_logp: float | None = None, polish: bool | dict = True,
                             polish_pieces: int = DEFAULT_POLISH_PIECES,
                             entropy_estimate: str = DEFAULT_ENTROPY_ESTIMATE,
                             entropy_weight: float = DEFAULT_ENTROPY_WEIGHT,
                             note_cost: float | None = None,
                             stats: dict | None = None) -> tuple[float, list[int]]:
    """Write one piece with two decoders and keep the better: (return, actions).

    The value beam (:func:`compose_value_beam`: ``beam``, ``top_k``, ``logp_weight``) and the
    policy-guided search (:func:`~musicgym.compose.policy.policy_guided_search`: the guided
    search's score estimate + ``search_logp`` x the line's log-probability, each partial piece
    extended by the policy's ``search_top_k`` likeliest notes, ``search_width`` kept per
    eighth) each write a piece; the one with the higher return (the env's exact score) is
    returned. The two rank partial pieces differently (a learned value against a hand-made
    estimate), so where one goes astray the other often does not.

    Parameters
    ----------
    env : CounterpointEnv or a wrapper of one
    policy : ComposerPolicy
    value : ComposerValue
    beam : int or None, keyword-only
        The value beam's width; 0 leaves it out. ``None`` (default): 16, but 0 in species 5
        (``DEFAULT_VALUE_BEAM``), where on the validation split it added at most 0.01 to
        the search's piece for half as much time again, and both together pass 1 s a piece
        on a loaded machine.
    top_k, logp_weight : keyword-only
        The value beam's other settings.
    search_width : int or None, keyword-only
        The policy-guided search's width (0: leave it out); ``None`` (default): 200, but 300
        in species 5 (``DEFAULT_SEARCH_WIDTH``).
    search_top_k : int, keyword-only
        The policy-guided search's notes per partial piece.
    search_logp : float or None, keyword-only
        The weight of the policy's log-probabilities in the policy-guided search's ranking;
        ``None`` (default): 0.1, but 0.3 in species 5 (``DEFAULT_SEARCH_LOGP``).
    polish : bool or dict, keyword-only
        Polish the better piece by local search
        (:func:`~musicgym.compose.polish.polish_piece`, judged exactly; never worse): True
        (default) with ``DEFAULT_POLISH``'s settings, a dict with the settings to use
        instead, False not at all.
    polish_pieces : int, keyword-only
        How many finished pieces to polish, keeping the one with the highest polished return:
        1 (default, ``DEFAULT_POLISH_PIECES``) the better piece only; N > 1 the N best
        distinct pieces of both decoders together (the search's runners-up are scored
        anyway), best first. A different start can reach a different local optimum.
    entropy_estimate : {"so_far", "reachable", "blend"}, keyword-only
        The policy-guided search's entropy estimate (see
        :func:`~musicgym.compose.search.guided_beam_search`); default
        ``DEFAULT_ENTROPY_ESTIMATE``.
    entropy_weight : float, keyword-only
        The policy-guided search's entropy term is multiplied by this in its estimate
        (default ``DEFAULT_ENTROPY_WEIGHT``).
    note_cost : float or None, keyword-only
        A cost per note written, subtracted from the policy-guided search's estimate of each
        partial piece (score units a note; finished pieces are still judged exactly). It goes
        through the policy's log-probabilities, shifted by ``-note_cost / search_logp`` for
        every note, so the policy's ``search_top_k`` likeliest notes stay the same. ``None``
        (default): ``DEFAULT_NOTE_COST`` of the species.
    stats : dict or None, keyword-only
        If given, filled with ``children`` (notes valued or estimated, both decoders),
        ``evaluations`` (finished pieces scored), ``chosen`` (``"value"`` or ``"search"``)
        and ``polished`` (changes the polish kept; 0 without it).

    Raises
    ------
    ConfigError
        As the two decoders do, if ``beam`` or ``search_width`` is negative or not whole, or
        if both are 0; if ``polish`` is neither a bool nor a dict of ``polish_piece``'s
        settings, or a setting is out of range; if ``polish_pieces`` is not a whole number
        of at least 1; if ``entropy_estimate`` is unknown or ``entropy_weight`` is negative;
        if ``note_cost`` is negative or not finite, or positive with ``search_logp`` 0.
    """
    from musicgym.compose.policy import policy_guided_search

    check_entropy_settings(entropy_estimate, entropy_weight)

    species = env.unwrapped.setup.species
    if beam is None:
        beam = DEFAULT_VALUE_BEAM[species]
    if search_width is None:
        search_width = DEFAULT_SEARCH_WIDTH[species]
    if search_logp is None:
        search_logp = DEFAULT_SEARCH_LOGP[species]
    if note_cost is None:
        note_cost = DEFAULT_NOTE_COST[species]
    for name, number in (("search_logp", search_logp), ("note_cost", note_cost)):
        if isinstance(number, bool) or not isinstance(number, int | float | np.number) \
                or not (math.isfinite(number) and number >= 0):
            raise ConfigError(f"{name} must be a finite number of 0 or more, got {number!r}")
    if note_cost > 0 and not search_logp > 0:
        raise ConfigError(f"note_cost {note_cost!r} acts through the policy's "
                          f"log-probabilities, so it needs search_logp > 0 (got "
                          f"{search_logp!r}); give search_logp or note_cost=0")
    for name, width in (("beam", beam), ("search_width", search_width)):
        if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 0:
            raise ConfigError(f"{name} must be a whole number of 0 or more, got {width!r}")
    if not beam and not search_width:
        raise ConfigError("beam and search_width are both 0: nothing would write the piece; "
                          "give either a width")
    if polish is True:
        polish = DEFAULT_POLISH
    elif polish is not False and not isinstance(polish, dict):
        raise ConfigError(f"polish must be True, False or a dict of polish_piece's settings, "
                          f"got {polish!r}")
    if polish:
        unknown = set(polish) - set(inspect.signature(check_polish_settings).parameters)
        if unknown:
            raise ConfigError(f"polish: unknown setting(s) {sorted(unknown)}; give "
                              f"polish_piece's settings (e.g. {DEFAULT_POLISH})")
        check_polish_settings(**polish)  # before the searches run
    polish_pieces = whole_number("polish_pieces", polish_pieces, 1)
    n_starts = polish_pieces if polish else 1
    best: tuple[float, list[int]] = (-np.inf, [])
    starts: list[tuple[float, list[int]]] = []  # the pieces to polish, with n_starts > 1
    counters = {"children": 0, "evaluations": 0, "chosen": None}
    if beam:
        first: dict = {}
        best = compose_value_beam(env, policy, value, beam=int(beam), top_k=top_k,
                                  logp_weight=logp_weight, stats=first)
        counters.update(children=first["children"], evaluations=first["evaluations"],
                        chosen="value")
        if best[1]:
            starts.append(best)
    if search_width:
        second: dict = {}
        prior = _NoteCostPrior(policy, note_cost / search_logp) if note_cost > 0 else policy
        other = policy_guided_search(env, prior, beam_width=int(search_width),
                                     top_k=search_top_k, logp_weight=search_logp,
                                     stats=second, n_pieces=n_starts,
                                     entropy_estimate=entropy_estimate,
                                     entropy_weight=entropy_weight)
        counters["children"] += second["children"]
        counters["evaluations"] += second["evaluations"]
        if other[0] > best[0]:
            best, counters["chosen"] = other, "search"
        starts.extend(second["pieces"])
    counters["polished"] = 0
    if n_starts == 1:
        starts = [best] if best[1] else []
    else:  # the n_starts best distinct pieces, best first (the better decoder's first on ties)
        seen: set[tuple[int, ...]] = set()
        unique = []
        for piece in sorted(starts, key=lambda p: -p[0]):
            if tuple(piece[1]) not in seen:
                seen.add(tuple(piece[1]))
                unique.append(piece)
        starts = unique[:n_starts]
    if polish:
        for start in starts:
            polished: dict = {}
            try:
                result = polish_piece(env, start[1], stats=polished, **polish)
            except ConfigError:
                # the settings were checked above, so only a piece the oracle no longer allows
                # on replay lands here (a dead-end search that ran out of budget can answer
                # differently once its memo was emptied): that piece is kept as it is
                continue
            counters["evaluations"] += polished["evaluations"]
            # one start: its polished piece as it is (never worse); several: the best wins,
            # the earlier (better start) on ties
            if n_starts == 1 or result[0] > best[0]:
                best = result
                counters["polished"] = polished["accepted"]
    if stats is not None:
        stats.update(counters)
    return best
