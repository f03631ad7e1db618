"""Trained improvisers against the simple players, on the corpus's held-out tracks.

Per synth and descriptor set: train an inverse agent (``musicgym train-improviser``'s
:func:`musicgym.train.improvise_agents.train_inverse`) on the training tracks of the corpus
(``musicgym corpus build``: melodies on sampled instruments, and the recorded one-shots), then
play every held-out track (held-out pieces on held-out instruments, and held-out one-shots)
frame by frame, hearing the synth rendered, with: the agent; the nearest-neighbour oracle on an
11-point grid (the evaluation's usual one) and on the agent's own training grid; holding still;
random moves. Reported: the reward's RMSE, per-descriptor error, time to match, training time.

    python benchmarks/improvise_agents.py [--synths sine fm granular subtractive]
        [--feature-sets lp lps lpsm] [--ship] [-o out/improvise/agents]
    python benchmarks/improvise_agents.py --builtins sine fm sine-lpsm ...   # no training

``--ship`` writes each synth's ``lp`` agent to ``src/musicgym/data/improvisers/SYNTH.npz``
(the built-ins ``--model builtin:SYNTH`` plays) and the other sets' to ``SYNTH-SET.npz``
(``builtin:SYNTH-SET``), with its figures in the JSON beside it. ``--corpus`` a validation
corpus (a ``musicgym corpus build`` recipe over training pieces and instruments only) with
``--tag`` and the training options compares variants without touching the held-out tracks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

SHIP_SET = "lp"   # the shipped built-ins are the loudness + pitch agents
BUILTIN_DIR = Path(__file__).resolve().parents[1] / "src" / "musicgym" / "data" / "improvisers"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--synths", nargs="+", default=["sine", "fm", "granular", "subtractive"])
    p.add_argument("--feature-sets", nargs="+", default=["lp", "lps", "lpsm"])
    p.add_argument("--corpus", help="corpus folder (default: `musicgym corpus build`'s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ship", action="store_true", help="write the agents as built-ins")
    p.add_argument("-o", "--output", default="out/improvise/agents")
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--distil-steps", type=int, default=3000)
    p.add_argument("--refine-steps", type=int, default=3000)
    p.add_argument("--anchor", type=float, default=0.1)
    p.add_argument("--search", action="store_true", help="agents refine by table search")
    p.add_argument("--search-grid", action="store_true",
                   help="agents search the table's grid points only (implies --search)")
    p.add_argument("--stay-margin", type=float, default=0.0,
                   help="agents keep their setting unless the answer is this much closer")
    p.add_argument("--search-from-current", action="store_true",
                   help="agents also search from their current setting")
    p.add_argument("--tag", default="", help="suffix of the result keys (a variant's name)")
    p.add_argument("--no-fine-oracle", action="store_true",
                   help="skip the oracle on the agent's training grid (faster)")
    p.add_argument("--builtins", nargs="+", metavar="NAME",
                   help="train nothing: evaluate these shipped agents (builtin:NAME) beside "
                        "the baselines, per descriptor")
    args = p.parse_args(argv)
    if args.builtins:
        return evaluate_builtins(args)

    import torch

    from musicgym.envs.improvise_corpus import build_corpus
    from musicgym.safeio import load_mapping
    from musicgym.train.evaluate_improvise import evaluate_improvisers, method_summaries
    from musicgym.train.improvise_agents import env_kwargs_for, train_command, train_inverse
    from musicgym.train.runfiles import write_atomically

    torch.set_num_threads(1)
    corpus = str(args.corpus or build_corpus())
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    # an earlier run's table, merged into (read bounded: a results folder may come from others)
    results = load_mapping(results_path) if results_path.is_file() else {}
    for feature_set in args.feature_sets:
        for synth in args.synths:
            key = f"{synth}-{feature_set}{args.tag}"
            agent = train_inverse(synth, feature_set, corpus, seed=args.seed,
                                  hidden=tuple(args.hidden), distil_steps=args.distil_steps,
                                  refine_steps=args.refine_steps, anchor=args.anchor,
                                  search=args.search, search_grid=args.search_grid,
                                  stay_margin=args.stay_margin,
                                  search_from_current=args.search_from_current,
                                  log=lambda line: print(line, file=sys.stderr, flush=True))
            agent.meta["command"] = train_command(
                synth, feature_set, seed=args.seed, distil_steps=args.distil_steps,
                refine_steps=args.refine_steps, hidden=args.hidden, anchor=args.anchor,
                search=args.search, search_grid=args.search_grid, stay_margin=args.stay_margin,
                search_from_current=args.search_from_current)
            agent.meta["corpus"] = Path(corpus).name
            kwargs = {**env_kwargs_for(synth, feature_set, corpus), "mode": "render"}
            start = time.perf_counter()
            report = evaluate_improvisers(kwargs, model=agent, seed=args.seed)
            row = method_summaries(report)
            if not args.no_fine_oracle:
                fine = evaluate_improvisers(kwargs, methods=["oracle"], seed=args.seed,
                                            subdiv=agent.meta["subdiv"])
                row[f"oracle_{agent.meta['subdiv']}"] = method_summaries(fine)["oracle"]
            row["train_seconds"] = agent.meta["train_seconds"]
            row["eval_seconds"] = round(time.perf_counter() - start, 1)
            row["tracks"] = report["tracks"]
            results[key] = row
            agent.meta["heldout"] = {m: {"rmse": round(r["rmse"], 4)} for m, r in row.items()
                                     if isinstance(r, dict)}
            path = agent.save(out / f"{key}.npz")
            if args.ship:   # the lp agents are builtin:SYNTH, the others builtin:SYNTH-SET
                name = synth if feature_set == SHIP_SET else f"{synth}-{feature_set}"
                BUILTIN_DIR.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, BUILTIN_DIR / f"{name}.npz")
                shutil.copyfile(path.with_suffix(".json"), BUILTIN_DIR / f"{name}.json")
            write_atomically(results_path, json.dumps(results, indent=2) + "\n")
            print(f"{key}: " + ", ".join(f"{m} {r['rmse']:.3f}" for m, r in row.items()
                                         if isinstance(r, dict))
                  + f"; trained {row['train_seconds']} s", flush=True)
    print(table(results))
    return 0


def evaluate_builtins(args) -> int:
    """Each named built-in agent on the held-out tracks beside oracle, hold and random."""
    from musicgym.envs.improvise_agents import InverseAgent
    from musicgym.envs.improvise_corpus import build_corpus
    from musicgym.train.evaluate_improvise import evaluate_improvisers, method_summaries

    corpus = str(args.corpus or build_corpus())
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "builtins.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for name in args.builtins:
        agent = InverseAgent.load(f"builtin:{name}")
        kwargs = {**agent.env_kwargs, "corpus": corpus, "mode": "render"}
        start = time.perf_counter()
        row = method_summaries(evaluate_improvisers(kwargs, model=agent, seed=args.seed))
        row["eval_seconds"] = round(time.perf_counter() - start, 1)
        row["command"] = agent.meta.get("command")
        results[name] = row
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"{name}: " + ", ".join(f"{m} {r['rmse']:.3f}" for m, r in row.items()
                                      if isinstance(r, dict)), flush=True)
    return 0


def table(results: dict) -> str:
    lines = ["| synth | descriptors | agent | oracle (11) | oracle (training grid) | hold | "
             "random | agent / oracle (11) | agent time to match (s) | training (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in results.items():
        synth, fs = key.split("-", 1)
        fine = next((v for k, v in row.items() if k.startswith("oracle_")),
                    {"rmse": float("nan")})
        ttm = row["agent"]["time_to_match_s"]
        lines.append(f"| {synth} | {fs} | {row['agent']['rmse']:.3f} | "
                     f"{row['oracle']['rmse']:.3f} | {fine['rmse']:.3f} | "
                     f"{row['hold']['rmse']:.3f} | {row['random']['rmse']:.3f} | "
                     f"{row['agent']['rmse'] / row['oracle']['rmse']:.2f} | "
                     f"{'never' if ttm is None else f'{ttm:.3f}'} | {row['train_seconds']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
