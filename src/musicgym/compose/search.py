"""Search baselines for ``musicgym/Counterpoint-v0``: seeded random rollouts and RL-Musician's
Monte Carlo beam search (MCBS), on our masked rules so the comparison with it is fair.

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

import gymnasium as gym
import numpy as np

from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.rules import score_piece
from musicgym.music.rules.species import ACTION_DURATIONS, ACTION_MOVES, CounterpointState


def _env(env: gym.Env) -> CounterpointEnv:
    return env.unwrapped  # type: ignore[return-value]


def _step(env: CounterpointEnv, state: CounterpointState, action: int) -> tuple[float, bool]:
    """Apply ``action`` to ``state`` as ``env.step`` would: (reward, episode over)."""
    reward = float(env.oracle.check(state)[1][action])
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
                n_trials_factor: float = 3.0) -> tuple[float, list[int]]:
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
    while beam:
        records = []
        for index, (prefix, state, reward) in enumerate(beam):
            trials = n_trials or estimate_n_trials(
                env, state, rng, depth=n_trials_estimation_depth,
                width=n_trials_estimation_width, factor=n_trials_factor)
            for _ in range(trials):
                walk = state.copy()
                rest_reward, rest = _rollout(env, walk, rng)
                if walk.finished:
                    records.append((reward + rest_reward, prefix + rest, index))
        if not records:
            break
        records.sort(key=lambda rec: -rec[0])
        records = records[:n_records_to_keep]
        if records[0][0] > best[0]:
            best = records[0][:2]
        beam = _extend(env, beam, records, beam_width)
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
