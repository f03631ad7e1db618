"""Composing-policy benchmark: the learned policy in one pass, the guided beam search, the
policy-guided search, the policy + learned value decoders (the value beam alone, and the value
beam with the policy-guided search beside it: ``compose_value_and_search``, the CLI's
``--policy-value`` decoder) and random pieces, species 1-5, on cantus firmi never trained on.

Test set: Fux's cantus firmi (``fux_dorian`` ... ``fux_ionian``; phrygian admits no
second-species counterpoint under the strict rules, so it has four species), RL-Musician's
default cantus, and ``--generated`` exercises of ``generate_exercises(n, seed=1000)`` (the
training script skips every one of these cantus firmi). Every piece is judged from its written
notes by ``musicgym.compose.evaluate`` (RL-Musician's 5-score total, max 3.0; hard-rule
violations; parallel fifths/octaves). "States judged" is the number of candidate notes the
method scored (the searches' ``children``).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compose_policy.py`` (``--policy`` a
trained .npz, default the shipped one; ``--generated``, ``--guided-width``, ``--prior-width``,
``--top-k``, ``--search-width``, ``--search-logp``; ``--validation N --train-seeds 1,2``
runs on the validation split instead, without the cantus of those seeds' training
exercises). Prints a table per species and writes
``benchmarks/results/compose_policy.json`` (with the machine's load average: CPU seconds a
piece grow on a shared machine).
RL-Musician's own search is benchmarked by ``benchmarks/compose.py`` on its default cantus
only (it cannot take modal cantus firmi), so it is not rerun here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from musicgym.compose.evaluate import evaluate_piece
from musicgym.compose.piece import piece_from_counterpoint
from musicgym.compose.policy import ComposerPolicy, compose_policy, policy_guided_search
from musicgym.compose.policy_train import TEST_SEED
from musicgym.compose.search import guided_beam_search, random_search
from musicgym.compose.value import ComposerValue, compose_value_and_search, compose_value_beam
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import CantusFirmusError, ParameterError
from musicgym.music.rules.species import CANTUS_FIRMI

RESULTS = Path(__file__).parent / "results" / "compose_policy.json"


def test_exercises(n_generated: int) -> list[tuple[str, dict]]:
    """(name, env kwargs) of every test exercise that admits a counterpoint."""
    from musicgym.music.cantus import generate_exercises

    out = []
    for species in range(1, 6):
        for name in CANTUS_FIRMI:
            out.append((f"{name}/s{species}", {"cantus_firmus": name, "species": species}))
    for i, ex in enumerate(generate_exercises(n_generated, seed=TEST_SEED)):
        out.append((f"generated{i}/s{ex['species']}", ex))
    return _admissible(out)


def validation_split(n: int, train_seeds: list[int],
                     n_train: int = 400) -> list[tuple[str, dict]]:
    """(name, env kwargs) of the validation exercises ``generate_exercises(n, seed=2000)``
    (``value_train.validation_exercises``), leaving out every held-out cantus and every cantus
    of the training exercises of each of ``train_seeds`` (so that pairs trained with different
    seeds meet the same exercises). The name's number is the exercise's index in that list."""
    from musicgym.compose.value_train import VAL_SEED, excluded_cantus
    from musicgym.music.cantus import generate_exercises

    seen = excluded_cantus(train_seeds, n_train)
    return _admissible([(f"val{i}/s{ex['species']}", ex)
                        for i, ex in enumerate(generate_exercises(n, seed=VAL_SEED))
                        if tuple(ex["cantus_firmus"]) not in seen])


def _admissible(out: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The exercises of ``out`` that admit a counterpoint."""
    ok = []
    for name, kwargs in out:
        try:
            CounterpointEnv(**kwargs).reset()
        except CantusFirmusError:
            continue
        ok.append((name, kwargs))
    return ok


def judge(env: CounterpointEnv, ret: float, actions: list[int], *,
          detail: bool = False) -> dict:
    """Replay ``actions`` and judge the written piece; ``detail`` adds every score, the notes'
    count, peak and distinct pitches, and the actions (benchmarks/compose_ceiling.py)."""
    env.reset()
    for action in actions:
        env.step(action)
    if not env.state.finished:
        return {"finished": False}
    result = evaluate_piece(piece_from_counterpoint(env.state, actions=actions))
    row = {"finished": True, "score": result["scores"]["total"], "return": ret,
           "hard_violations": result["hard_violations"],
           "parallel_perfects": result["parallel_perfects"]}
    if detail:
        positions = env.state.positions
        row.update(scores=result["scores"], notes=len(positions), peak=int(max(positions)),
                   pitches_used=len(set(positions)), actions=[int(a) for a in actions])
    return row


def random_row(env: CounterpointEnv, name: str, n_pieces: int) -> dict:
    """The "random" row of one exercise: the mean score of ``n_pieces`` (>= 1) seeded random
    pieces, their hard violations and parallel perfects summed."""
    if n_pieces < 1:
        raise ParameterError(f"n_pieces must be >= 1, got {n_pieces}")
    scores = []
    for seed in range(n_pieces):
        ret, actions = random_search(env, seed=seed)
        scores.append(judge(env, ret, actions))
    return {"exercise": name, "species": env.setup.species, "method": "random",
            "seconds": None, "states_judged": None, "finished": True,
            "score": float(np.mean([s["score"] for s in scores])),
            "hard_violations": int(sum(s["hard_violations"] for s in scores)),
            "parallel_perfects": int(sum(s["parallel_perfects"] for s in scores))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="builtin")
    parser.add_argument("--generated", type=int, default=20)
    parser.add_argument("--guided-width", type=int, default=1000)
    parser.add_argument("--prior-width", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--policy-beam", type=int, default=8)
    parser.add_argument("--value", default="builtin", help="learned value for the "
                        "policy + value decoder ('none' to leave it out)")
    parser.add_argument("--value-beam", type=int, default=16)
    parser.add_argument("--value-top-k", type=int, default=6)
    parser.add_argument("--value-logp", type=float, default=0.2, help="logp_weight")
    parser.add_argument("--search-width", type=int, default=None, help="the policy-guided "
                        "search's width in the policy + value + search decoder (default: its "
                        "own per species)")
    parser.add_argument("--search-logp", type=float, default=None, help="its logp_weight "
                        "(default: the decoder's per species, 0.1, 0.3 in species 5)")
    parser.add_argument("--only", default="", help="run only the methods whose name "
                        "contains one of these comma-separated words (e.g. 'policy,value')")
    parser.add_argument("--random-pieces", type=int, default=3)
    parser.add_argument("--validation", type=int, default=0, help="run on the validation "
                        "split (generate_exercises(N, seed=2000), value_train's) instead of "
                        "the test set")
    parser.add_argument("--train-seeds", default="1", help="with --validation: leave out the "
                        "cantus firmi of the training exercises of these comma-separated "
                        "seeds (e.g. '1,2' to compare pairs trained with seeds 1 and 2)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    policy = ComposerPolicy.load(args.policy)
    methods = {
        "policy (one pass, greedy)": lambda env: compose_policy(env, policy, stats=stats),
        f"policy (beam {args.policy_beam})": lambda env: compose_policy(
            env, policy, beam=args.policy_beam, stats=stats),
        f"policy + score estimate (width {args.policy_beam}, top {args.top_k})":
            lambda env: policy_guided_search(env, policy, beam_width=args.policy_beam,
                                             top_k=args.top_k, stats=stats),
        f"guided search (width {args.guided_width})": lambda env: guided_beam_search(
            env, beam_width=args.guided_width, stats=stats),
        f"guided search (width {args.prior_width})": lambda env: guided_beam_search(
            env, beam_width=args.prior_width, stats=stats),
        f"policy-guided search (width {args.prior_width}, top {args.top_k})":
            lambda env: policy_guided_search(env, policy, beam_width=args.prior_width,
                                             top_k=args.top_k, stats=stats),
    }
    if args.value != "none":
        value = ComposerValue.load(args.value)
        methods[f"policy + learned value (beam {args.value_beam}, top {args.value_top_k}, "
                f"logp {args.value_logp:g})"] = (
            lambda env: compose_value_beam(env, policy, value, beam=args.value_beam,
                                           top_k=args.value_top_k,
                                           logp_weight=args.value_logp, stats=stats))
        # the value beam at its default width per species (16; left out in species 5)
        width = "200 / 300 in sp 5" if args.search_width is None else args.search_width
        logp = "0.1 / 0.3 in sp 5" if args.search_logp is None else f"{args.search_logp:g}"
        methods[f"policy + value + search (search width {width}, top "
                f"{args.top_k}, logp {logp}, polished)"] = (
            lambda env: compose_value_and_search(
                env, policy, value, top_k=args.value_top_k,
                logp_weight=args.value_logp, search_width=args.search_width,
                search_top_k=args.top_k, search_logp=args.search_logp, stats=stats))
    if args.only:
        words = [w.strip() for w in args.only.split(",") if w.strip()]
        methods = {k: v for k, v in methods.items() if any(w in k for w in words)}
    rows = []
    if args.validation:
        seeds = [int(w) for w in args.train_seeds.split(",") if w.strip()]
        exercises = validation_split(args.validation, seeds)
        print(f"{len(exercises)} validation exercises", flush=True)
    else:
        exercises = test_exercises(args.generated)
        print(f"{len(exercises)} test exercises", flush=True)
    t_all = time.perf_counter()
    load_before = os.getloadavg()  # CPU seconds per piece grow on a shared machine
    for name, kwargs in exercises:
        env = CounterpointEnv(**kwargs)
        species = env.setup.species
        for method, run in methods.items():
            stats: dict = {}
            t0, c0 = time.perf_counter(), time.process_time()
            ret, actions = run(env)
            seconds = time.perf_counter() - t0
            # CPU seconds of this process: close to the wall time on an idle core, and far
            # less inflated than it when the machine is shared
            cpu = time.process_time() - c0
            rows.append({"exercise": name, "species": species, "method": method,
                         "seconds": seconds, "cpu_seconds": cpu,
                         "states_judged": stats.get("children"),
                         **judge(env, ret, actions)})
        if args.random_pieces:
            rows.append(random_row(env, name, args.random_pieces))
        print(f"  {name} done ({time.perf_counter() - t_all:.0f} s)", flush=True)
    summary = summarize(rows)
    print_table(summary)
    print(f"load average (1, 5, 15 min) at the start {load_before}, at the end "
          f"{os.getloadavg()} on {os.cpu_count()} cores")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "machine": platform.platform(), "policy": policy.meta.get("command"),
        "split": "validation" if args.validation else "test",
        "load_average_1_5_15min": {"start": load_before, "end": os.getloadavg()},
        "args": vars(args), "summary": summary, "rows": rows}, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def summarize(rows: list[dict]) -> dict:
    out: dict = {}
    for row in rows:
        key = f"s{row['species']}"
        out.setdefault(key, {}).setdefault(row["method"], []).append(row)
    summary = {}
    for species, methods in sorted(out.items()):
        summary[species] = {}
        for method, rs in methods.items():
            done = [r for r in rs if r.get("finished")]
            secs = [r["seconds"] for r in done if r["seconds"] is not None]
            cpus = [r["cpu_seconds"] for r in done if r.get("cpu_seconds") is not None]
            states = [r["states_judged"] for r in done if r["states_judged"] is not None]
            summary[species][method] = {
                "pieces": len(rs), "finished": len(done),
                "mean_score": float(np.mean([r["score"] for r in done])),
                "hard_violations": int(sum(r["hard_violations"] for r in done)),
                "parallel_perfects": int(sum(r["parallel_perfects"] for r in done)),
                "mean_seconds": float(np.mean(secs)) if secs else None,
                "max_seconds": float(np.max(secs)) if secs else None,
                "max_cpu_seconds": float(np.max(cpus)) if cpus else None,
                "mean_cpu_seconds": float(np.mean(cpus)) if cpus else None,
                "mean_states_judged": float(np.mean(states)) if states else None}
    return summary


def print_table(summary: dict) -> None:
    for species, methods in summary.items():
        print(f"\nspecies {species[1:]}")
        print(f"  {'method':<48} {'score':>7} {'hard':>5} {'par':>4} {'s/piece':>8} "
              f"{'cpu max':>8} {'states':>8}")
        for method, m in methods.items():
            secs = f"{m['mean_seconds']:.3f}" if m["mean_seconds"] is not None else "-"
            states = (f"{m['mean_states_judged']:.0f}" if m["mean_states_judged"] is not None
                      else "-")
            cpu = f"{m['max_cpu_seconds']:.3f}" if m.get("max_cpu_seconds") is not None else "-"
            print(f"  {method:<48} {m['mean_score']:>7.3f} {m['hard_violations']:>5} "
                  f"{m['parallel_perfects']:>4} {secs:>8} {cpu:>8} {states:>8}")


if __name__ == "__main__":
    raise SystemExit(main())
