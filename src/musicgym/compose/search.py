"""Search for ``musicgym/Counterpoint-v0``: seeded random rollouts, RL-Musician's Monte Carlo
beam search (MCBS), on our masked rules so the comparison with it is fair, and musicgym's
score-guided beam search (:func:`guided_beam_search`).

MCBS keeps ``beam_width`` action prefixes; from each it plays ``n_trials`` uniformly random
allowed continuations to the end, keeps the ``n_records_to_keep`` best finished records, and
extends the beam by one action along the best records, until every prefix is a whole piece.
As in RL-Musician 0.4.6, ``n_trials`` is by default estimated per prefix: ``n_trials_factor``
times the mean, over ``n_trials_estimation_width`` random walks of
``n_trials_estimation_depth`` steps, of the product of the numbers of allowed actions met.
Unlike RL-Musician's, it is seeded (``numpy.random.Generator``) and runs in one process.

Rollouts play on the env's rules directly (its :class:`~musicgym.music.rules.lookahead.
CounterpointOracle` and a copied state), not through ``env.step``: no observation is built,
and a prefix is never replayed. Rewards are the env's (soft-rule penalties, then the final
score, or ``reward_for_dead_end``), so replaying the actions in the env gives the same return.
"""

from __future__ import annotations

import functools
import gc
import math

import gymnasium as gym
import numpy as np

from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import ConfigError
from musicgym.music.rules import score_piece
from musicgym.music.rules.species import ACTION_DURATIONS, ACTION_MOVES, CounterpointState


def _env(env: gym.Env) -> CounterpointEnv:
    return env.unwrapped  # type: ignore[return-value]


def _step(env: CounterpointEnv, state: CounterpointState, action: int) -> tuple[float, bool]:
    """Apply ``action`` to ``state`` as ``env.step`` would: (reward, episode over)."""
    reward = float(env.oracle.step_rewards(state)[action])
    state.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
    if state.finished:
        scores = score_piece(state, coefs=env.scoring_coefs, params=env.scoring_fn_params)
        return reward + scores["total"], True
    if not env.oracle.mask(state).any():
        return reward + env.reward_for_dead_end, True
    return reward, False


def _rollout(env: CounterpointEnv, state: CounterpointState, rng: np.random.Generator,
             ) -> tuple[float, list[int]]:
    """Play uniformly random allowed actions from ``state`` (modified) to the end."""
    reward, actions = 0.0, []
    while True:
        allowed = np.flatnonzero(env.oracle.mask(state))
        if not len(allowed):
            return reward + env.reward_for_dead_end, actions
        action = int(allowed[rng.integers(len(allowed))])
        actions.append(action)
        r, done = _step(env, state, action)
        reward += r
        if done:
            return reward, actions


def random_search(env: gym.Env, *, seed: int = 0) -> tuple[float, list[int]]:
    """One uniformly random allowed piece: (return, actions)."""
    env = _env(env)
    return _rollout(env, CounterpointState(env.setup), np.random.default_rng(seed))


def estimate_n_trials(env: gym.Env, state: CounterpointState, rng: np.random.Generator, *,
                      depth: int = 3, width: int = 10, factor: float = 3.0) -> int:
    """RL-Musician's trial count for a prefix: ``factor`` x the mean product of the numbers of
    allowed actions over ``width`` random walks of ``depth`` steps (at least 1)."""
    env = _env(env)
    products = []
    for _ in range(width):
        walk, product = state.copy(), 1
        for _ in range(depth):
            if walk.finished:
                break
            allowed = np.flatnonzero(env.oracle.mask(walk))
            if not len(allowed):
                break
            product *= len(allowed)
            action = int(allowed[rng.integers(len(allowed))])
            walk.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
        products.append(product)
    return max(1, int(round(factor * float(np.mean(products)))))


def beam_search(env: gym.Env, *, seed: int = 0, beam_width: int = 5,
                n_records_to_keep: int = 10, n_trials: int | None = None,
                n_trials_estimation_depth: int = 3, n_trials_estimation_width: int = 10,
                n_trials_factor: float = 3.0, stats: dict | None = None,
                ) -> tuple[float, list[int]]:
    """Monte Carlo beam search (RL-Musician's agent): the best (return, actions) found.

    Parameters
    ----------
    env : CounterpointEnv or a wrapper of one
    seed : int, keyword-only
    beam_width, n_records_to_keep : int, keyword-only
        RL-Musician's defaults (5, 10).
    n_trials : int or None, keyword-only
        Rollouts per prefix; ``None`` (default) estimates them per prefix as RL-Musician does,
        from the ``n_trials_estimation_*`` and ``n_trials_factor`` settings (its defaults).
    stats : dict or None, keyword-only
        If given, filled with the budget used: ``rollouts`` (random continuations played)
        and ``evaluations`` (finished pieces scored).

    Returns
    -------
    (float, list of int)
        The best finished piece's return and actions (``(-inf, [])`` if none finished).
    """
    env = _env(env)
    rng = np.random.default_rng(seed)
    # a beam entry: (actions so far, state after them, reward so far)
    beam = [([], CounterpointState(env.setup), 0.0)]
    best: tuple[float, list[int]] = (-np.inf, [])
    n_rollouts = n_finished = 0
    while beam:
        records = []
        for index, (prefix, state, reward) in enumerate(beam):
            trials = n_trials or estimate_n_trials(
                env, state, rng, depth=n_trials_estimation_depth,
                width=n_trials_estimation_width, factor=n_trials_factor)
            for _ in range(trials):
                walk = state.copy()
                rest_reward, rest = _rollout(env, walk, rng)
                n_rollouts += 1
                if walk.finished:
                    n_finished += 1
                    records.append((reward + rest_reward, prefix + rest, index))
        if not records:
            break
        records.sort(key=lambda rec: -rec[0])
        records = records[:n_records_to_keep]
        if records[0][0] > best[0]:
            best = records[0][:2]
        beam = _extend(env, beam, records, beam_width)
    if stats is not None:
        stats.update(rollouts=n_rollouts, evaluations=n_finished)
    return best


def _extend(env: CounterpointEnv, beam: list, records: list, beam_width: int) -> list:
    """The next beam: each record's prefix one action longer, unique, unfinished."""
    depth = len(beam[0][0]) + 1
    seen, next_beam = set(), []
    for _, actions, index in records:
        key = tuple(actions[:depth])
        if len(actions) < depth or key in seen:
            continue
        seen.add(key)
        prefix, state, reward = beam[index]
        child = state.copy()
        step_reward, done = _step(env, child, actions[depth - 1])
        if not done:
            next_beam.append((list(key), child, reward + step_reward))
        if len(seen) == beam_width:
            break
    return next_beam


# score-guided beam search


class _Node:
    """A partial piece in :func:`guided_beam_search`: its parent and last action, the running
    facts its score estimate needs (pitch counts, skips, peak, narrow-range penalty so far,
    the last notes), and its state, made only when the node survives pruning."""

    __slots__ = ("parent", "action", "state", "time", "reward", "counts", "clogc", "n_notes",
                 "skips", "peak", "repeats", "narrow", "tail", "estimate", "fux", "same", "logp")

    def actions(self) -> list[int]:
        node, actions = self, []
        while node.parent is not None:
            actions.append(node.action)
            node = node.parent
        return actions[::-1]

    def make_state(self) -> CounterpointState:
        if self.state is None:
            self.state = self.parent.state.copy()
            self.state.add(_MOVES[self.action], _DURATIONS[self.action])
        return self.state


_MOVES, _DURATIONS = ACTION_MOVES.tolist(), ACTION_DURATIONS.tolist()


def _score_params(env: CounterpointEnv) -> tuple[dict, dict]:
    """Score weights and each score's parameters in force (defaults merged with the env's)."""
    from musicgym.music.rules import SCORE_NAMES
    from musicgym.music.rules.registry import get_score

    coefs = env.scoring_coefs if env.scoring_coefs is not None else dict.fromkeys(
        SCORE_NAMES, 1.0)
    params = {name: {**get_score(name).defaults, **env.scoring_fn_params.get(name, {})}
              for name in SCORE_NAMES}
    return coefs, params


# RL-Musician's two scores that are minus counts of faults, never above 0 with their default
# parameters and a weight of 0 or more
_NOT_ABOVE_0 = ("looped_fragments", "narrow_ranges")


def score_bound_terms(env: CounterpointEnv) -> list:
    """(weight, bound score function) of every score of the env's but the two that are never
    above 0 (``looped_fragments`` and ``narrow_ranges``, at their default parameters and
    weighted 0 or more): summed from 0 in the env's order, as
    :func:`~musicgym.music.rules.score_piece` sums all of them, these terms give an upper
    bound on its total (each rounded addition is monotonic, and the terms left out are at
    most 0) for a fraction of its cost (the two cost the most). Empty where that does not
    hold."""
    from musicgym.music.rules.scores import _DEFAULT_COEFS, _bound_score

    coefs = env.scoring_coefs if env.scoring_coefs is not None else _DEFAULT_COEFS
    params = env.scoring_fn_params or {}
    if any(coefs.get(name, 0.0) < 0 or params.get(name) for name in _NOT_ABOVE_0):
        return []
    return [(float(weight), _bound_score(name, params.get(name)))
            for name, weight in coefs.items() if name not in _NOT_ABOVE_0]


OBJECTIVES = ("rlm", "fux")
# how guided_beam_search estimates a partial piece's final entropy (see its docstring)
ENTROPY_ESTIMATES = ("so_far", "reachable", "blend")
# mean length in eighths of a counterpoint note, per species, for the "reachable" entropy:
# whole, half, quarter, tied halves; species 5 is the mean of the shipped decoder's pieces on
# training exercises (see docs/compose.md, "The entropy the piece can still reach")
NOTE_EIGHTHS = {1: 8.0, 2: 4.0, 3: 2.0, 4: 4.0, 5: 2.1}


def whole_number(name: str, value, least: int) -> int:
    """``value`` as an int, checked to be a whole number (not a bool) of at least ``least``.

    Raises
    ------
    ConfigError
        Otherwise, naming the setting ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ConfigError(f"{name} must be a whole number of at least {least}, got {value!r}")
    return int(value)


def check_entropy_settings(entropy_estimate: str, entropy_weight: float) -> None:
    """Check :func:`guided_beam_search`'s ``entropy_estimate`` and ``entropy_weight``.

    Raises
    ------
    ConfigError
        If the estimate is not one of :data:`ENTROPY_ESTIMATES` or the weight is negative,
        not finite or not a number.
    """
    if entropy_estimate not in ENTROPY_ESTIMATES:
        raise ConfigError(f"entropy_estimate must be one of {', '.join(ENTROPY_ESTIMATES)}, "
                          f"got {entropy_estimate!r}")
    if isinstance(entropy_weight, bool) or not isinstance(entropy_weight, int | float | np.number) \
            or not (math.isfinite(entropy_weight) and entropy_weight >= 0):
        raise ConfigError(f"entropy_weight must be a finite number of 0 or more, got "
                          f"{entropy_weight!r}")


def usable_ranges(setup) -> list[tuple[int, int]]:
    """For each eighth ``t`` (0 .. total), the lowest and highest scale positions of the range
    that still sound on the right side of the cantus (strictly above it when the counterpoint
    is above, else strictly below) in at least one middle bar from ``t``'s bar on; ``(1, 0)``
    (empty) when no middle bar is left or none fits."""
    pos_midi, cf_midi = setup.midi_lists
    low, high = setup.lowest_position, setup.highest_position
    above = setup.counterpoint_above
    per_bar = []
    for bar in range(setup.n_bars - 1):  # the last bar holds the given end note
        fits = [p for p in range(low, high + 1)
                if (pos_midi[p] > cf_midi[bar] if above else pos_midi[p] < cf_midi[bar])]
        per_bar.append((min(fits), max(fits)) if fits else (high + 1, low - 1))
    out = []
    for t in range(setup.total_eighths + 1):
        bars = per_bar[max(t // 8, 1):]  # the first bar is given too
        lo = min([b[0] for b in bars], default=high + 1)
        hi = max([b[1] for b in bars], default=low - 1)
        out.append((lo, hi) if lo <= hi else (1, 0))
    return out


def reachable_entropy(counts, n_notes: int, clogc: float, extra_notes: float,
                      lo_index: int, hi_index: int, end_index: int) -> float:
    """The (unnormalised, natural-log) entropy of a pitch histogram once the given end note
    (index ``end_index``) and ``extra_notes`` more notes are added, the extra notes spread
    (fractionally) to level up the least-used pitches among indices ``lo_index .. hi_index``:
    water-filling, the highest entropy those notes can reach.

    Parameters
    ----------
    counts : list of int
        Notes so far per pitch of the range (index 0 = the lowest position); changed and
        restored in place.
    n_notes : int
        ``sum(counts)``.
    clogc : float
        ``sum(c * log(c))`` over ``counts`` (0 log 0 = 0), which the search keeps anyway.
    extra_notes : float
        Notes still to come before the end note; none are added if 0 or less or if the
        index range is empty.
    """
    log = math.log
    old = counts[end_index]
    clogc += (old + 1) * log(old + 1) - (old * log(old) if old else 0.0)
    if extra_notes <= 0 or hi_index < lo_index:
        return log(n_notes + 1) - clogc / (n_notes + 1)
    counts[end_index] = old + 1  # the end note's pitch, for the slice below
    usable = sorted(counts[lo_index:hi_index + 1])
    counts[end_index] = old
    # the lowest k usable counts, all raised to ``level``, absorb the extra notes
    k, below = 1, usable[0]
    n_usable = len(usable)
    while k < n_usable and below + extra_notes > k * usable[k]:
        below += usable[k]
        k += 1
    level = (below + extra_notes) / k
    for c in usable[:k]:
        if c > 1:
            clogc -= c * log(c)
    total = n_notes + 1 + extra_notes
    return log(total) - (clogc + k * level * log(level)) / total


def _eighths_of(env: CounterpointEnv, actions: list[int]) -> np.ndarray:
    """The counterpoint's scale position at each eighth after playing ``actions`` (-1: none)."""
    state = CounterpointState(env.setup)
    for action in actions:
        if state.finished:
            break
        state.add(_MOVES[action], _DURATIONS[action])
    out = np.full(env.setup.total_eighths, -1, dtype=np.int64)
    for start, duration, position in zip(state.starts, state.durations, state.positions,
                                         strict=True):
        out[start:start + duration] = position
    return out


def _objective(env: CounterpointEnv, state: CounterpointState, env_return: float,
               objective: str) -> float:
    if objective == "fux":
        from musicgym.music.rules.quality import fux_quality

        # the Fux quality first; the env's return (RL-Musician's score) only breaks ties
        return fux_quality(state)["total"] + 1e-3 * env_return
    return env_return


def _gc_paused(search):
    """Run ``search`` with Python's cyclic garbage collector paused and BLAS on one thread
    (both as they were before, after).

    A search makes hundreds of thousands of small objects and no reference cycles (a node
    points only to its parent), so the collector's passes over them, a fifth of a
    policy-guided search's time, find nothing to free. The composing models' matrix products
    (a few hundred rows by 128) are too small to share: with OpenBLAS's default of a thread
    per core, and no ``OMP_NUM_THREADS=1``, the shipped decoder took 2.1-2.9 s of CPU a
    species-5 piece (its threads wait busily) against 0.4-1.0 s on one thread, and more wall
    time too, on the shared 2-core machine. One thread gives the same products, bit for bit
    (OpenBLAS splits the rows and columns among threads, not the sums)."""
    @functools.wraps(search)
    def paused(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        enabled = gc.isenabled()
        gc.disable()
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                return search(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()
    return paused


@_gc_paused
def guided_beam_search(env: gym.Env, *, seed: int = 0, beam_width: int = 1000,
                       noise: float = 0.02, stats: dict | None = None,
                       objective: str = "rlm", avoid: list[list[int]] | None = None,
                       diversity: float = 0.0, prior=None, prior_top_k: int | None = None,
                       prior_weight: float = 0.0, n_pieces: int = 1,
                       entropy_estimate: str = "so_far", entropy_weight: float = 1.0,
                       ) -> tuple[float, list[int]]:
    """Beam search guided by an estimate of RL-Musician's score, in time order: the best
    (return, actions) found.

    Partial pieces are grouped by the eighth their next note starts on; the group at the
    earliest eighth is pruned to the ``beam_width`` best by the estimate below and every allowed
    next note (the env's mask, with its dead-end lookahead) of each survivor is tried. Finished
    pieces are scored exactly as the env scores them, and the best is returned.

    The estimate of a partial piece's final score, from RL-Musician's five score definitions
    and the env's weights and parameters: ``entropy`` of the notes so far; the
    ``narrow_ranges`` penalty of the windows already complete; ``climax_explicity`` with its
    repeat penalty so far and its shortfall penalty growing from 0 to full over the piece (a
    higher peak may still come); ``number_of_skips``: the best reward still possible for the
    skips made; ``looped_fragments``: not estimated (0). Candidates that agree on everything
    the future depends on (the rule signature, pitch counts, skips, peak, last 8 notes) are
    merged; the kept beam is spread over the skip counts (each count up to
    ``beam_width // 4`` first, then the best of the rest), and ties are broken by
    ``noise`` x a seeded uniform number.

    Parameters
    ----------
    env : CounterpointEnv or a wrapper of one
    seed : int, keyword-only
    beam_width : int, keyword-only
        Partial pieces kept per eighth.
    noise : float, keyword-only
        Scale of the seeded random tie-breaks added to the estimates.
    stats : dict or None, keyword-only
        If given, filled with the budget used: ``expanded`` (partial pieces extended),
        ``children`` (notes tried), ``evaluations`` (finished pieces scored), and
        ``objective`` (the best piece's objective value, diversity penalty included).
    objective : {"rlm", "fux"}, keyword-only
        What "best" means: ``"rlm"`` (default) the env's return (RL-Musician's score);
        ``"fux"`` the species-aware Fux quality
        (:func:`~musicgym.music.rules.quality.fux_quality`, 0-3), estimated on partial
        pieces from the structural verticals so far (share of imperfect consonances and of
        contrary motions), the steps, the repeated notes and the climax's repeats.
    avoid : list of list of int or None, keyword-only
        Action sequences of earlier pieces on the same exercise to differ from.
    diversity : float, keyword-only
        Weight of the penalty for sounding the same note as an ``avoid`` piece at the same
        eighth: the objective loses ``diversity`` x the share of the written eighths (mean
        over the avoided pieces) that agree.
    prior : callable or None, keyword-only
        A prior over the next note of many partial pieces at once: ``prior(states, masks)``
        -> log-probabilities of shape ``(len(states), 60)`` (``-inf`` where the mask
        forbids), e.g. a composing policy's
        :meth:`~musicgym.compose.policy.ComposerPolicy.log_probs_batch`.
    prior_top_k : int or None, keyword-only
        With a ``prior``: try only its ``prior_top_k`` likeliest allowed notes (None: all).
    prior_weight : float, keyword-only
        With a ``prior``: add ``prior_weight`` x the line's total log-probability under it to
        the estimate (0: the prior only prunes).
    n_pieces : int, keyword-only
        With ``stats``: also put there, as ``pieces``, the ``n_pieces`` best distinct finished
        pieces found (each (return, actions), best first by the objective; the first is the
        piece returned), e.g. for :func:`~musicgym.compose.polish.polish_piece` to start from
        several. They are scored anyway, so this costs only keeping them. 1 (default): just
        the returned piece.
    entropy_estimate : {"so_far", "reachable", "blend"}, keyword-only
        The estimate's ``entropy`` term (objective ``"rlm"`` only): ``"so_far"`` (default)
        the entropy of the notes written; ``"reachable"`` the highest entropy the piece can
        still reach, if the given end note and the notes still to come (the eighths left
        before the last bar / :data:`NOTE_EIGHTHS` of the species) went to the least-used
        pitches of the range that still sound on the right side of the cantus in some bar
        left (:func:`reachable_entropy`, :func:`usable_ranges`); ``"blend"``: share written
        x "so_far" + share left x "reachable".

    Returns
    -------
    (float, list of int)
        The best finished piece's return (as ``env.step`` would sum it) and actions
        (``(-inf, [])`` if none finished).

    Raises
    ------
    ConfigError
        If ``beam_width`` is not a whole number of at least 1, ``noise`` or ``diversity`` is
        negative, or ``objective`` is unknown; if ``prior_weight`` is negative or
        ``prior_top_k`` is not None or a whole number of at least 1; if ``n_pieces`` is
        not a whole number of at least 1; if ``entropy_estimate`` is unknown or
        ``entropy_weight`` is negative or not finite.
    """
    import heapq
    import math

    env = _env(env)
    setup = env.setup
    if isinstance(beam_width, bool) or not isinstance(beam_width, int | np.integer) \
            or beam_width < 1:
        raise ConfigError(f"beam_width must be a whole number of at least 1, got "
                          f"{beam_width!r}")
    if not noise >= 0:
        raise ConfigError(f"noise must be 0 or more, got {noise!r}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got "
                          f"{objective!r}")
    if not diversity >= 0:
        raise ConfigError(f"diversity must be 0 or more, got {diversity!r}")
    if not (math.isfinite(prior_weight) and prior_weight >= 0):
        raise ConfigError(f"prior_weight must be a finite number of 0 or more, got "
                          f"{prior_weight!r}")
    if prior_top_k is not None and (isinstance(prior_top_k, bool) or not isinstance(
            prior_top_k, int | np.integer) or prior_top_k < 1):
        raise ConfigError(f"prior_top_k must be a whole number of at least 1 or None, got "
                          f"{prior_top_k!r}")
    n_pieces = whole_number("n_pieces", n_pieces, 1)
    check_entropy_settings(entropy_estimate, entropy_weight)
    reach = entropy_estimate != "so_far"
    blend = entropy_estimate == "blend"
    if reach:
        usable = [(lo - setup.lowest_position, hi - setup.lowest_position)
                  for lo, hi in usable_ranges(setup)]
        note_eighths = NOTE_EIGHTHS[setup.species]
        end_index = setup.end_position - setup.lowest_position
    # the runners-up: a min-heap of (value, -order, node) holding the n_pieces best finished
    # pieces; the order breaks ties as the best does (the earlier piece wins), and each node
    # is a different path of the tree, so the pieces are distinct
    keep_top = int(n_pieces) if stats is not None and n_pieces > 1 else 0
    top: list = []
    use_logp = prior is not None and prior_weight > 0
    fux = objective == "fux"
    avoided = [_eighths_of(env, a) for a in (avoid or []) if diversity > 0]
    # eighth x position -> number of avoided pieces sounding that position then
    written = setup.total_eighths - 2 * 8  # the first and last bars are given
    if avoided:
        same_at = np.zeros((setup.total_eighths, len(setup.position_midi)), dtype=np.int64)
        for eighths in avoided:
            ok = eighths >= 0
            np.add.at(same_at, (np.flatnonzero(ok), eighths[ok]), 1)
        same_scale = diversity / (len(avoided) * written)
    rng = np.random.default_rng(seed)
    # a finished piece whose env return cannot pass the best one's (its upper bound,
    # score_bound_terms, does not) is not scored exactly: the same best piece, for less CPU
    # (only where the best is all that is kept, by the env's return)
    bound_terms = (score_bound_terms(env) if not fux and not avoided and not keep_top
                   else [])
    coefs, params = _score_params(env)
    c_ent = float(coefs.get("entropy", 0.0)) * entropy_weight
    c_narrow = float(coefs.get("narrow_ranges", 0.0))
    c_climax = float(coefs.get("climax_explicity", 0.0))
    c_skips = float(coefs.get("number_of_skips", 0.0))
    narrow_size = int(params["narrow_ranges"]["min_size"])
    narrow_pen = params["narrow_ranges"]["penalties"] or {2: 1.0, 3: 0.5}
    shortage_pen = float(params["climax_explicity"]["shortage_penalty"])
    dup_pen = float(params["climax_explicity"]["duplication_penalty"])
    skip_rewards = params["number_of_skips"]["rewards"] or {
        1: 0.8, 2: 0.9, 3: 1.0, 4: 0.9, 5: 0.5, 6: 0.25}
    max_skips = max(skip_rewards) + 1
    # best reward still reachable with k skips made so far
    best_skips = [max([float(skip_rewards.get(j, 0.0)) for j in range(k, max_skips + 1)])
                  for k in range(max_skips + 1)]
    # narrow-range penalty of a window of each width
    narrow_of = [max([v for k, v in narrow_pen.items() if k >= w], default=0.0)
                 for w in range(2 * 7 * 11)]
    low, high = setup.lowest_position, setup.highest_position
    log_pitches = math.log(high - low + 1)
    total, final_bar = setup.total_eighths, setup.final_bar_eighth
    keep_tail = max(narrow_size, 8)
    xlogx = [0.0] + [k * math.log(k) for k in range(1, 512)]
    n_expanded = n_children = n_evaluations = 0

    if fux:
        from musicgym.music.rules.quality import (
            CONTRARY_TARGET,
            IMPERFECT_TARGET,
            STEP_TARGETS,
        )

        offset = 4 if setup.species == 4 else 0
        cf_midi = setup.cantus_midi.tolist()
        pos_midi = setup.position_midi.tolist()
        above = setup.counterpoint_above
        step_target = STEP_TARGETS[setup.species]
        n_struct_total = max(1, setup.n_bars - 2)
    root = _Node()
    root.parent, root.action, root.state = None, -1, CounterpointState(setup)
    root.time, root.reward = root.state.time, 0.0
    counts = [0] * (high - low + 1)
    counts[setup.start_position - low] = 1
    root.counts, root.clogc, root.n_notes = tuple(counts), 0.0, 1
    root.skips, root.peak, root.repeats, root.narrow, root.estimate = (
        0, setup.start_position, 0, 0.0, 0.0)
    root.tail = (setup.start_position,)
    # (structural verticals, imperfect ones, last structural cp key, its cantus key,
    #  motions, contrary ones, repeated notes, steps, moves, extreme, extreme's count)
    start_midi = int(setup.position_midi[setup.start_position])
    root.fux = (0, 0, start_midi, int(setup.cantus_midi[0]), 0, 0, 0, 0, 0,
                setup.start_position if above else -setup.start_position, 1) if fux else None
    root.same = 0
    root.logp = 0.0
    groups: dict[int, list[_Node]] = {root.time: [root]}
    best: tuple[float, list[int]] = (-np.inf, [])
    best_value = -np.inf
    while groups:
        nodes = _prune(groups.pop(min(groups)), beam_width, noise, rng)
        masks = [env.oracle.mask(node.state) for node in nodes]
        if prior is not None:  # one call for the whole group: the prior may batch
            priors = prior([node.state for node in nodes], masks)
        for j, allowed in enumerate(_allowed_actions(masks, priors if prior is not None
                                                     else None, prior_top_k)):
            if not allowed:
                continue  # a dead end (only when lookahead is off or gave up)
            node = nodes[j]
            state = node.state
            if prior is not None:
                log_probs = priors[j]
            n_expanded += 1
            step_rewards = env.oracle.step_rewards(state)
            last, time = state.positions[-1], state.time
            # what every child of this node shares, looked up once
            node_counts, node_peak, node_clogc = node.counts, node.peak, node.clogc
            node_reward, node_narrow = node.reward, node.narrow
            n = node.n_notes + 1
            log_n = math.log(n)
            head = node.tail[1 - keep_tail:]
            if 2 <= narrow_size <= n:  # the narrow-range window's notes before the child's
                window = head[len(head) + 1 - narrow_size:]
                window_max, window_min = max(window), min(window)
            for action in allowed:
                n_children += 1
                move = _MOVES[action]
                child = _Node()
                child.parent, child.action, child.state = node, action, None
                child.time = child_time = time + _DURATIONS[action]
                child.reward = reward = node_reward + float(step_rewards[action])
                if child_time >= final_bar:  # the end note follows: score the piece
                    n_evaluations += 1
                    finished = child.make_state()
                    if bound_terms and reward + sum(weight * score(finished) for weight, score
                                                    in bound_terms) <= best_value:
                        continue
                    reward += score_piece(finished, coefs=env.scoring_coefs,
                                          params=env.scoring_fn_params)["total"]
                    value = (_objective(env, finished, reward, objective)
                             if fux else reward)
                    if avoided:
                        same = node.same + int(same_at[time:final_bar, last + move].sum())
                        value -= same_scale * same
                    if value > best_value:
                        best, best_value = (reward, child.actions()), value
                    if keep_top:
                        item = (value, -n_evaluations, reward, child)
                        if len(top) < keep_top:
                            heapq.heappush(top, item)
                        elif item[:2] > top[0][:2]:
                            heapq.heapreplace(top, item)
                    continue
                position = last + move
                index = position - low
                counts = list(node_counts)
                old = counts[index]
                counts[index] = old + 1
                child.counts = tuple(counts)
                child.clogc = clogc = node_clogc - xlogx[old] + xlogx[old + 1]
                child.n_notes = n
                child.skips = skips = node.skips + (move > 1 or move < -1)
                if position > node_peak:
                    child.peak, child.repeats = peak, repeats = position, 0
                else:
                    child.peak = peak = node_peak
                    child.repeats = repeats = node.repeats + (position == node_peak)
                child.tail = (*head, position)
                narrow = node_narrow
                if 2 <= narrow_size <= n:
                    narrow -= narrow_of[(position if position > window_max else window_max)
                                        - (position if position < window_min else window_min)]
                elif n >= narrow_size:
                    window = (*head, position)[-narrow_size:]
                    narrow -= narrow_of[max(window) - min(window)]
                child.narrow = narrow
                progress = child_time / total
                entropy = (log_n - clogc / n) / log_pitches
                if reach:
                    lo_i, hi_i = usable[child_time]
                    reachable = reachable_entropy(
                        counts, n, clogc, (final_bar - child_time) / note_eighths, lo_i, hi_i,
                        end_index) / log_pitches
                    entropy = (progress * entropy + (1.0 - progress) * reachable if blend
                               else reachable)
                climax = (1.0 - dup_pen * repeats
                          - shortage_pen * (high - peak) * progress)
                if fux:
                    child.estimate = reward + _fux_estimate(
                        node.fux, child, time, move, pos_midi[position], cf_midi, offset,
                        above, position, step_target, n_struct_total, IMPERFECT_TARGET,
                        CONTRARY_TARGET)
                else:
                    child.estimate = (reward + c_ent * entropy + c_narrow * narrow
                                      + c_climax * climax
                                      + c_skips * best_skips[min(skips, max_skips)])
                if avoided:
                    child.same = node.same + int(same_at[time:child_time, position].sum())
                    child.estimate -= same_scale * child.same
                else:
                    child.same = 0
                if use_logp:
                    child.logp = node.logp + float(log_probs[action])
                    child.estimate += prior_weight * child.logp
                groups.setdefault(child_time, []).append(child)
    if stats is not None:
        stats.update(expanded=n_expanded, children=n_children, evaluations=n_evaluations,
                     objective=float(best_value))
        if keep_top:
            top.sort(key=lambda item: item[:2], reverse=True)
            stats["pieces"] = [(reward, child.actions()) for _, _, reward, child in top]
        else:
            stats["pieces"] = [best] if best[1] else []
    return best


def diverse_pieces(env: gym.Env, n: int, *, seed: int = 0, diversity: float = 0.5,
                   objective: str = "rlm", beam_width: int = 1000, noise: float = 0.02,
                   ) -> list[tuple[float, list[int]]]:
    """``n`` different good pieces on one exercise: piece ``i`` is the guided search's best
    (seed ``seed + i``) with a penalty of ``diversity`` x its share of notes shared with the
    pieces before it (see :func:`guided_beam_search`'s ``avoid``). Measure how different
    they are with :func:`musicgym.compose.evaluate.mean_pairwise_difference`.

    Returns
    -------
    list of (float, list of int)
        Each piece's env return and actions.
    """
    pieces: list[tuple[float, list[int]]] = []
    for i in range(n):
        pieces.append(guided_beam_search(
            env, seed=seed + i, beam_width=beam_width, noise=noise, objective=objective,
            avoid=[actions for _, actions in pieces if actions], diversity=diversity))
    return pieces


def piece_eighths(env: gym.Env, actions: list[int]) -> np.ndarray:
    """The counterpoint's scale position at each eighth after ``actions`` (-1 where silent),
    for :func:`musicgym.compose.evaluate.mean_pairwise_difference`."""
    return _eighths_of(_env(env), actions)


def _fux_estimate(facts: tuple, child: _Node, time: int, move: int, midi: int,
                  cf_midi: list[int], offset: int, above: bool, position: int,
                  step_target: float, n_struct_total: int, imperfect_target: float,
                  contrary_target: float) -> float:
    """The Fux quality a partial piece is heading for, from its facts so far (``child.fux``
    is set here): imperfect and contrary shares of the structural verticals written, steps,
    repeated notes and the climax's count; the cadence counted as met (the rules see to it)."""
    (n_struct, n_imp, last_cp, last_cf, n_motion, n_contrary, n_rep, n_steps, n_moves,
     extreme, n_extreme) = facts
    n_moves += 1
    n_steps += move == 1 or move == -1
    n_rep += move == 0
    line = position if above else -position
    if line > extreme:
        extreme, n_extreme = line, 1
    elif line == extreme:
        n_extreme += 1
    # structural verticals this note sounds on (a whole note may cover one; a tie two)
    first = time - offset
    bar = -(-first // 8)  # the first structural eighth at or after ``time``
    while bar * 8 + offset < child.time:
        cf = cf_midi[bar]
        n_struct += 1
        n_imp += (abs(midi - cf) % 12) in (3, 4, 8, 9)
        n_motion += 1
        n_contrary += (midi - last_cp) * (cf - last_cf) < 0
        last_cp, last_cf = midi, cf
        bar += 1
    child.fux = (n_struct, n_imp, last_cp, last_cf, n_motion, n_contrary, n_rep, n_steps,
                 n_moves, extreme, n_extreme)
    imperfect = min(1.0, n_imp / max(1, n_struct) / imperfect_target) if n_struct else 1.0
    contrary = min(1.0, n_contrary / n_motion / contrary_target) if n_motion else 1.0
    steps = min(1.0, n_steps / n_moves / step_target)
    climax = {1: 1.0, 2: 0.5}.get(n_extreme, 0.0)
    variety = max(0.0, 1.0 - 0.25 * n_rep)
    return 0.5 * (imperfect + contrary + steps + climax + variety + 1.0)


def _allowed_actions(masks: list[np.ndarray], priors: np.ndarray | None,
                     top_k: int | None) -> list[list[int]]:
    """The actions :func:`guided_beam_search` tries from each state of a group, in action
    order: those its mask allows, and with a prior's log-probabilities and ``top_k``, only the
    ``top_k`` likeliest of them where more are allowed. All rows at once: the same actions as
    one row at a time (each row is sorted by the same algorithm)."""
    if not masks:
        return []
    allowed = np.stack(masks)
    if priors is not None and top_k is not None:
        many = np.flatnonzero(allowed.sum(axis=1) > top_k)
        if len(many):
            top = np.argsort(-priors[many], axis=1)[:, :top_k]
            keep = np.zeros((len(many), allowed.shape[1]), dtype=bool)
            keep[np.arange(len(many))[:, None], top] = True
            allowed[many] &= keep
    rows, actions = np.nonzero(allowed)
    ends = np.cumsum(np.bincount(rows, minlength=len(masks))).tolist()
    actions = actions.tolist()
    return [actions[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def _prune(nodes: list, beam_width: int, noise: float, rng: np.random.Generator) -> list:
    """The best ``beam_width`` nodes, spread over skip counts, equivalent ones merged (the
    best of them kept); only the nodes looked at get their states made."""
    if len(nodes) == 1:
        nodes[0].make_state()
        return nodes
    keys = np.array([node.estimate for node in nodes]) + noise * rng.random(len(nodes))
    order = np.argsort(-keys, kind="stable").tolist()
    share = max(1, beam_width // 4)
    seen: set = set()
    taken, per_skips, rest = [], {}, []

    def take(node: _Node) -> None:
        key = (node.make_state().signature(), node.counts, node.skips, node.peak,
               node.repeats, node.tail)
        if key not in seen:
            seen.add(key)
            taken.append(node)
            per_skips[node.skips] = per_skips.get(node.skips, 0) + 1

    for i in order:
        node = nodes[i]
        if per_skips.get(node.skips, 0) < share and len(taken) < beam_width:
            take(node)
        else:
            rest.append(node)
    for node in rest:
        if len(taken) >= beam_width:
            break
        take(node)
    return taken
