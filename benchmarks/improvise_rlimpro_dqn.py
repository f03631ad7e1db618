"""RL-impro's own set-up as a baseline row: SB3 DQN trained through ``musicgym train``.

Per synth: train DQN with ``examples/improvise_rlimpro_dqn.yaml`` (RL-impro's ``Discrete(3**N)``
moves of 0.05 per parameter, its reward ``8 (0.5 - RMSE)^3``, a lookup table, SB3's default
DQN hyperparameters) on the *training* tracks of ``musicgym corpus build``'s corpus (and
synthetic targets half the time), through the one training stack
(:func:`musicgym.train.runner.train`), then play every held-out track frame by frame, hearing
the synth rendered, beside the nearest-neighbour oracle (11-point grid), holding still and
random moves, exactly as ``benchmarks/improvise_agents.py`` scores the inverse agents.

    python benchmarks/improvise_rlimpro_dqn.py [--synths sine fm granular subtractive]
        [--feature-sets lp] [--steps 150000] [-o out/improvise/dqn]

Writes ``results.json`` (merged over earlier runs, one key per synth-feature set) and prints
one line per row. The held-out tracks are played once, after training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "improvise_rlimpro_dqn.yaml"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--synths", nargs="+", default=["sine", "fm", "granular", "subtractive"])
    p.add_argument("--feature-sets", nargs="+", default=["lp"])
    p.add_argument("--steps", type=int, help="DQN steps (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="out/improvise/dqn")
    args = p.parse_args(argv)

    import yaml

    from musicgym.envs.improvise_core import resolve_corpus
    from musicgym.safeio import load_mapping
    from musicgym.train.config import TrainConfig
    from musicgym.train.evaluate import load_run
    from musicgym.train.evaluate_improvise import evaluate_improvisers, method_summaries
    from musicgym.train.improvise_agents import FEATURE_SETS
    from musicgym.train.runfiles import write_atomically
    from musicgym.train.runner import train

    base = yaml.safe_load(CONFIG.read_text())
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    # an earlier run's table, merged into (read bounded: a results folder may come from others)
    results = load_mapping(results_path) if results_path.is_file() else {}
    for feature_set in args.feature_sets:
        for synth in args.synths:
            key = f"{synth}-{feature_set}"
            features = FEATURE_SETS[feature_set]
            cfg = {**base, "seed": args.seed,
                   "env_kwargs": {**base["env_kwargs"], "synth": synth,
                                  "features_keep": features, "features_reward": features}}
            if args.steps:
                cfg["steps"] = args.steps
            start = time.perf_counter()
            run = train(TrainConfig.from_dict(cfg), runs_root=out / "runs", progress=False)
            train_s = time.perf_counter() - start
            _, model = load_run(run)
            kwargs = {**cfg["env_kwargs"], "corpus": str(resolve_corpus(cfg["env_kwargs"]
                                                                        ["corpus"])),
                      "mode": "render"}
            start = time.perf_counter()
            row = method_summaries(evaluate_improvisers(kwargs, model=model, seed=args.seed))
            row["dqn"] = row.pop("agent")
            row.update(train_seconds=round(train_s, 1), steps=cfg["steps"], run=str(run),
                       eval_seconds=round(time.perf_counter() - start, 1),
                       command=f"python benchmarks/improvise_rlimpro_dqn.py --synths {synth} "
                               f"--feature-sets {feature_set} --steps {cfg['steps']} "
                               f"--seed {args.seed}")
            results[key] = row
            write_atomically(results_path, json.dumps(results, indent=2) + "\n")
            print(f"{key}: " + ", ".join(f"{m} {r['rmse']:.3f}" for m, r in row.items()
                                         if isinstance(r, dict))
                  + f"; trained {row['train_seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
