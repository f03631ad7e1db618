"""Improvise-v0 env steps per second: rendering mode and lookup mode at B = 1 and 64, beside
the per-step cost of RL-impro's design (one nearest-row table lookup per env and step, in a
Python loop, no audio).

    python benchmarks/improvise.py [--repeats 5] [--steps 30]

Prints a table and writes benchmarks/results/improvise.json. An env step is one env moving
once (a vector step of B envs counts B). Goals (issue 6): lookup >= 20,000 steps/s at B = 64,
rendering >= 1,000 steps/s at B = 64.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from musicgym.envs.improvise import ImproviseVectorEnv
from musicgym.envs.improvise_data import build_lookup
from musicgym.envs.synths import make_synth

RESULTS = Path(__file__).parent / "results" / "improvise.json"
SYNTH = "fm"                 # RL-impro's FM3, 3 parameters
SUBDIV = 10                  # RL-impro's FM3 table: 10^3 rows
FEATURES = ["loudness-dB", "specshape", "mfcc", "chroma"]   # RL-impro's usual set, F = 33


def time_env(env: ImproviseVectorEnv, steps: int, repeats: int) -> float:
    """Median env steps per second over ``repeats`` runs of ``steps`` vector steps."""
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    actions = rng.integers(0, 27, size=(steps, env.num_envs))
    env.step(actions[0])    # warm-up (JIT, caches)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for a in actions:
            env.step(a)
        rates.append(steps * env.num_envs / (time.perf_counter() - start))
    return float(np.median(rates))


def time_rl_impro(table, batch: int, steps: int, repeats: int) -> float:
    """RL-impro's step: decode a ternary action, move, take the L1-nearest table row, for one
    env at a time (its envs are separate processes or a DummyVecEnv loop)."""
    rng = np.random.default_rng(0)
    params = rng.random((batch, 3))
    actions = rng.integers(0, 27, size=(steps, batch))
    powers = 3 ** np.arange(2, -1, -1)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for row in actions:
            for b in range(batch):
                digits = (row[b] // powers) % 3
                params[b] = np.clip(params[b] + (1 - digits) * 0.05, 0.0, 1.0)
                table.nearest(params[b:b + 1])
        rates.append(steps * batch / (time.perf_counter() - start))
    return float(np.median(rates))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    table = build_lookup(make_synth(SYNTH), subdiv=SUBDIV, features=FEATURES)
    common = {"synth": SYNTH, "features_keep": FEATURES, "max_episode_steps": 10_000}
    rows = []
    for batch in (1, 64):
        row = {"B": batch}
        for mode in ("render", "lookup"):
            env = ImproviseVectorEnv(batch, mode=mode, lookup=table, **common)
            row[mode] = time_env(env, args.steps, args.repeats)
        row["rl_impro_nearest_row"] = time_rl_impro(table, batch, args.steps, args.repeats)
        rows.append(row)
    print(f"Improvise-v0 env steps/s ({SYNTH}, F = 33, frame 1024 at 44.1 kHz, median of "
          f"{args.repeats})")
    print(f"{'B':>4} {'rendering':>12} {'lookup':>12} {'RL-impro lookup':>16} "
          f"{'lookup/RL-impro':>16}")
    for row in rows:
        print(f"{row['B']:>4} {row['render']:>12,.0f} {row['lookup']:>12,.0f} "
              f"{row['rl_impro_nearest_row']:>16,.0f} "
              f"{row['lookup'] / row['rl_impro_nearest_row']:>15.1f}x")
    big = rows[-1]
    goals = {"lookup_B64_ge_20000": big["lookup"] >= 20_000,
             "render_B64_ge_1000": big["render"] >= 1_000}
    print("goals:", ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in goals.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows, "goals": goals, "synth": SYNTH,
                                   "features": FEATURES, "table_rows": SUBDIV ** 3,
                                   "machine": platform.platform(), "time": time.ctime()},
                                  indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
