"""Does a trained residual accompanist beat the tempo model it corrects? (issue 15, item 5)

Compares a RecurrentPPO run of ``musicgym/Accompany-v0`` (``musicgym train``, any run folder)
with its own base (the env's ``residual_on`` tempo model, ``kalman+timing`` in the defaults)
at equal conditions: the same followed performances, the same follower (the run's, HMM in the
defaults), the same rehearsal takes, the same re-synchronisation; only the agent's correction
differs. Whole performances, shares of shared onsets within 50/100 ms (skipped ones count as
misses).

* Validation (what to choose agents on): real Brahms take 5 (followed against take 1, timed by
  takes 1-4; train agents on takes 1-4 only, ``takes: [1, 2, 3, 4]``) and simulated
  performances of the three stress pieces never trained on
  (:data:`musicgym.follow.corpus.VALIDATION_STRESS_PIECES`), each by ``--per-piece`` seeded
  random players (:func:`musicgym.follow.corpus.random_expression`), each with five earlier
  takes by the same player as its rehearsals.
* ``--test``: the held-out Brahms takes 6 and 7, once, at the end (agent vs the same base with
  the same rehearsals; the takes before each, at most five, as the env's memory has them).

Run: ``MUSICGYM_DATA_DIR=... python benchmarks/accompany_agent.py RUN_DIR [RUN_DIR ...]
[--test]``; prints a table and writes benchmarks/results/accompany_agent.json.
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

import numpy as np

from musicgym.follow.accompanist import make_episode
from musicgym.follow.corpus import (
    MAX_MEMORY_TAKES,
    VALIDATION_STRESS_PIECES,
    brahms_takes,
    earlier_curves,
    plain_rendition,
    random_expression,
    reference_take,
)
from musicgym.follow.duets import tempo_curve
from musicgym.follow.evaluate import pool_runs, run_tempo_model
from musicgym.follow.followers import FOLLOWERS, make_follower
from musicgym.follow.report import AGENT_ENV_DEFAULTS, agent_run
from musicgym.follow.simulate import simulate_performance
from musicgym.follow.stress import stress_piece
from musicgym.follow.tempo import build_tempo_model

RESULTS = Path(__file__).parent / "results"
VALIDATION_TAKES = (5,)
TEST_TAKES = (6, 7)


def real_episodes(take_numbers, follower: str):
    """``(episode, rehearsal curves)`` of real Brahms takes, each followed against the first
    other training take and timed by the (at most five) takes before it."""
    takes = brahms_takes()
    out = []
    for n in take_numbers:
        take = next(t for t in takes if t.take == n)
        reference = reference_take(takes, n).solo.performed
        episode = make_episode(take.solo, take.accompaniment.score,
                               follower=make_follower(follower, reference=reference, seed=n),
                               accompaniment=take.accompaniment, piece=take.piece, take=n)
        out.append((episode, earlier_curves(takes, n)))
    return out


def simulated_episodes(follower: str, per_piece: int, seed: int = 0):
    """``(episode, rehearsal curves)`` of ``per_piece`` seeded players of each validation
    piece (never trained on), followed against the piece played plainly."""
    out = []
    for name in VALIDATION_STRESS_PIECES:
        piece = stress_piece(name)
        for i in range(per_piece):
            rng = np.random.default_rng([seed, zlib.crc32(name.encode()), i])
            expression = random_expression(piece, rng)
            seeds = rng.integers(2**31, size=MAX_MEMORY_TAKES + 2)
            solo = simulate_performance(piece.solo, seed=int(seeds[0]), expression=expression)
            reference = (plain_rendition(piece) if FOLLOWERS[follower].needs_reference
                         else None)
            episode = make_episode(solo, piece.accompaniment,
                                   follower=make_follower(follower, reference=reference,
                                                          seed=int(seeds[1])),
                                   piece=name)
            curves = [tempo_curve(simulate_performance(piece.solo, seed=int(s),
                                                       expression=expression).score)
                      for s in seeds[2:]]
            out.append((episode, curves))
    return out


def compare(policy, env_kwargs: dict, episodes) -> dict:
    """Pooled figures of the agent and of its base on the same episodes."""
    kw = {**AGENT_ENV_DEFAULTS, **env_kwargs}
    base_runs, agent_runs = [], []
    for episode, curves in episodes:
        curves = curves if kw["memory"] else []
        base_runs.append(run_tempo_model(episode, build_tempo_model(kw["residual_on"], curves),
                                         max_log_ratio=kw["max_log_ratio"],
                                         resync_s=kw["resync_s"]))
        agent_runs.append(agent_run(policy, episode, kw, curves))
    base, agent = pool_runs(base_runs), pool_runs(agent_runs)
    return {"base": base, "agent": agent, "n_episodes": len(episodes),
            "gain_50_points": 100 * (agent["within_50_ms"] - base["within_50_ms"]),
            "gain_100_points": 100 * (agent["within_100_ms"] - base["within_100_ms"])}


def _line(label: str, result: dict) -> str:
    b, a = result["base"], result["agent"]
    return (f"{label:<34} base {100 * b['within_50_ms']:5.1f} / {100 * b['within_100_ms']:5.1f}"
            f"  agent {100 * a['within_50_ms']:5.1f} / {100 * a['within_100_ms']:5.1f}"
            f"  gain {result['gain_50_points']:+.1f} / {result['gain_100_points']:+.1f} points"
            f"  ({result['n_episodes']} performances, {a['n_onsets']} shared onsets)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders made by musicgym train")
    parser.add_argument("--per-piece", type=int, default=4,
                        help="simulated players per validation piece (default 4)")
    parser.add_argument("--test", action="store_true",
                        help="also the held-out takes 6-7 (once, at the end)")
    args = parser.parse_args()
    from musicgym.train.evaluate import load_run

    results, cache = {}, {}
    for run in args.runs:
        config, policy = load_run(run)
        kw = config.env_kwargs
        follower = kw.get("follower", "oracle")
        if follower not in cache:
            cache[follower] = {
                "take 5": real_episodes(VALIDATION_TAKES, follower),
                "validation pieces": simulated_episodes(follower, args.per_piece),
            }
            if args.test:
                cache[follower]["takes 6-7 (test)"] = real_episodes(TEST_TAKES, follower)
        results[run] = {"env_kwargs": kw, "seed": config.seed, "steps": config.steps}
        print(f"{run} (seed {config.seed}, {config.steps} steps, behind {follower})")
        for label, episodes in cache[follower].items():
            results[run][label] = compare(policy, kw, episodes)
            print("  " + _line(label, results[run][label]))
    out = RESULTS / "accompany_agent.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
