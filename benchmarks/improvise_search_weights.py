"""Per-descriptor search weights for an inverse agent, raised where it loses (a negative result).

On a *validation* corpus (never the held-out tracks of the real split): train the agent
(grid search + stay margin 0.05), then repeat: play the validation corpus's test tracks, and
multiply each descriptor's search weight by ``exp(eta * max(0, log(agent MAE / min(hold MAE,
random MAE)) + 0.05))`` (Lagrange-multiplier style: a descriptor the agent loses on weighs more
in its search), renormalised to mean 1. Prints per round the RMSE against the oracle and the
descriptors still lost. docs/improvise.md reports that this moves the losses around rather
than removing them, at a cost in RMSE.

    python benchmarks/improvise_search_weights.py --corpus VAL --synth subtractive \
        --feature-set lpsm --rounds 5 --eta 2
"""

from __future__ import annotations

import argparse
import os
import sys

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True, help="a validation corpus folder")
    p.add_argument("--synth", default="subtractive")
    p.add_argument("--feature-set", default="lpsm")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--eta", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from musicgym.train.evaluate_improvise import evaluate_improvisers, method_summaries
    from musicgym.train.improvise_agents import env_kwargs_for, train_inverse

    torch.set_num_threads(1)
    agent = train_inverse(args.synth, args.feature_set, args.corpus, seed=args.seed,
                          search_grid=True, stay_margin=0.05)
    kwargs = {**env_kwargs_for(args.synth, args.feature_set, args.corpus), "mode": "render"}
    base = method_summaries(evaluate_improvisers(kwargs, methods=["oracle", "hold", "random"],
                                                 seed=args.seed))
    feats = list(base["hold"]["mae_z"])
    bar = np.array([min(base["hold"]["mae_z"][f], base["random"]["mae_z"][f]) for f in feats])
    weights = np.ones(len(feats))
    for rnd in range(args.rounds + 1):
        agent.meta["search_weights"] = weights.tolist()
        row = method_summaries(evaluate_improvisers(kwargs, model=agent, methods=["agent"],
                                                    seed=args.seed))["agent"]
        mae = np.array([row["mae_z"][f] for f in feats])
        lost = [f"{f} {m:.2f}/{b:.2f}" for f, m, b in zip(feats, mae, bar, strict=True) if m >= b]
        print(f"round {rnd}: RMSE {row['rmse']:.3f} (oracle {base['oracle']['rmse']:.3f}); "
              f"loses on {len(lost)}: {', '.join(lost)}", flush=True)
        weights = weights * np.exp(args.eta * np.clip(np.log(mae / bar) + 0.05, 0.0, None))
        weights *= len(weights) / weights.sum()
    return 0


if __name__ == "__main__":
    sys.exit(main())
