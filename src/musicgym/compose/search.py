"""Search baselines for ``musicgym/Counterpoint-v0``: seeded random rollouts and RL-Musician's
Monte Carlo beam search (MCBS), run on our masked env so the comparison with it is fair.

MCBS keeps ``beam_width`` action prefixes; from each it plays ``n_trials`` uniformly random
allowed continuations to the end, keeps the ``n_records_to_keep`` best finished records, and
extends the beam by one action along the best records, until every prefix is a whole piece.
Unlike RL-Musician's, it is seeded (``numpy.random.Generator``) and runs in one process.
"""

from __future__ import annotations

import numpy as np

from musicgym.envs.counterpoint import CounterpointEnv


def _rollout(env: CounterpointEnv, prefix: list[int], rng: np.random.Generator):
    _, info = env.reset()
    actions = list(prefix)
    reward = 0.0
    for action in prefix:
        _, r, terminated, truncated, info = env.step(action)
        reward += r
        if terminated or truncated:
            return reward, actions, info
    while True:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        actions.append(action)
        _, r, terminated, truncated, info = env.step(action)
        reward += r
        if terminated or truncated:
            return reward, actions, info


def random_search(env: CounterpointEnv, *, seed: int = 0) -> tuple[float, list[int]]:
    """One uniformly random allowed piece: (return, actions)."""
    reward, actions, _ = _rollout(env, [], np.random.default_rng(seed))
    return reward, actions


def beam_search(env: CounterpointEnv, *, seed: int = 0, beam_width: int = 5,
                n_records_to_keep: int = 10, n_trials: int = 30) -> tuple[float, list[int]]:
    """Monte Carlo beam search (RL-Musician's agent): the best (return, actions) found."""
    rng = np.random.default_rng(seed)
    beam: list[list[int]] = [[]]
    best: tuple[float, list[int]] = (-np.inf, [])
    while beam:
        records = []
        for prefix in beam:
            for _ in range(n_trials):
                reward, actions, info = _rollout(env, prefix, rng)
                if "scores" in info:
                    records.append((reward, actions))
        if not records:
            break
        records.sort(key=lambda rec: -rec[0])
        records = records[:n_records_to_keep]
        if records[0][0] > best[0]:
            best = records[0]
        depth = len(beam[0]) + 1
        next_beam: list[list[int]] = []
        for _, actions in records:
            if len(actions) >= depth and actions[:depth] not in next_beam:
                next_beam.append(actions[:depth])
        beam = [p for p in next_beam[:beam_width] if not _finished(env, p)]
    return best


def _finished(env: CounterpointEnv, prefix: list[int]) -> bool:
    env.reset()
    for action in prefix:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return True
    return False
