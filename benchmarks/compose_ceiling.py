"""Species-5 ceiling on the composing benchmark's test set: the best score any method finds on
each exercise, against the goal for the policy alone (mean >= 2.87 of 3).

The exercises are exactly the species-5 test exercises of ``benchmarks/compose_policy.py
--generated N`` (its ``test_exercises``). On each, these methods each write one piece, and the
ceiling estimate is the best score among them:

* the guided beam search (seed 0) at each width of ``--widths`` (default 1000, 3000, 6000,
  12000);
* the policy-guided search (the shipped policy, top 3, logp 0) at each width of
  ``--prior-widths`` (default 200, 1000, 3000);
* the shipped decoder (``musicgym compose --method policy --policy-value builtin``:
  ``compose_value_and_search`` at its defaults).

Every piece is judged from its written notes by ``musicgym.compose.evaluate.evaluate_piece``
(RL-Musician's five scores and their total; a piece with a hard violation or a parallel perfect
does not count). The best found is a lower bound of what the exercise allows, not a proof of
its maximum. Beside it, an upper bound from the rules alone, per exercise:

* ``climax_explicity``: the voices may be at most 16 semitones apart, so the counterpoint cannot
  rise above the highest cantus note of bars 2..n-1 plus a major tenth (nor above the start or
  end note, where those are higher); each scale step the reachable peak falls short of
  ``highest_note`` costs 0.3;
* ``entropy``: with that peak sounded once (each repeat costs 0.5 of the climax score), the other
  notes spread as evenly as possible over the reachable pitches below it, for any number of notes
  up to the rhythms' maximum (5 a middle bar);
* ``looped_fragments``, ``narrow_ranges`` at 0 and ``number_of_skips`` at 1 (their maxima).

The bound ignores the rest of the rules (the melodic rules, the tenth over the cantus in
each bar below the peak, the rhythms), so it is loose on entropy: it shows where a score is
capped by the range rule, not how high a piece can go.

Run: ``OMP_NUM_THREADS=1 nice python benchmarks/compose_ceiling.py`` (``--generated``,
``--widths``, ``--prior-widths``; about 21 min of CPU at the defaults). Prints a table per
exercise and per score, and writes ``benchmarks/results/compose_ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from compose_policy import judge, test_exercises  # the benchmark's own test set and judge

from musicgym.compose.policy import ComposerPolicy, policy_guided_search
from musicgym.compose.search import guided_beam_search
from musicgym.compose.value import ComposerValue, compose_value_and_search
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.rules import SCORE_NAMES

RESULTS = Path(__file__).parent / "results" / "compose_ceiling.json"
GOAL = 2.87
MAX_SEMITONES_BETWEEN_VOICES = 16  # absence_of_large_intervals (RL-Musician's default)
MAX_NOTES_A_BAR = 5  # the species-5 rhythms (2, 2, 2, 1, 1) and (2, 1, 1, 2, 2)
SHORTAGE_PENALTY, DUPLICATION_PENALTY = 0.3, 0.5  # climax_explicity's defaults


def even_entropy(n_notes: int, n_bins: int) -> float:
    """Entropy (nats) of ``n_notes`` spread as evenly as possible over ``n_bins`` pitches."""
    if n_bins <= 0 or n_notes <= 0:
        return 0.0
    base, extra = divmod(n_notes, n_bins)
    counts = [base + 1] * extra + [base] * (n_bins - extra)
    return -sum(c / n_notes * math.log(c / n_notes) for c in counts if c > 0)


def rule_bound(env: CounterpointEnv) -> dict:
    """Upper bounds of climax_explicity, entropy and the total from the range rules alone
    (see the module docstring)."""
    setup = env.setup
    position_midi = setup.position_midi
    cf = setup.cantus_midi.tolist()
    middle = cf[1:-1]
    start, end = setup.start_position, setup.end_position
    low, high = setup.lowest_position, setup.highest_position
    n_range = high - low + 1
    reachable_top = max(p for p in range(low, high + 1)
                        if p in (start, end)
                        or position_midi[p] <= max(middle) + MAX_SEMITONES_BETWEEN_VOICES)
    reachable_low = min(p for p in range(low, high + 1)
                        if p in (start, end) or position_midi[p] > min(middle))
    n_max = 2 + MAX_NOTES_A_BAR * (len(cf) - 2)
    best, best_at = -math.inf, None
    for peak in range(max(reachable_low, start, end), reachable_top + 1):
        below = peak - reachable_low  # pitches under the peak the line may use
        for peak_count in (1, 2):
            climax = (1.0 - SHORTAGE_PENALTY * (high - peak)
                      - DUPLICATION_PENALTY * (peak_count - 1))
            for n in range(peak_count + 1, n_max + 1):
                p_peak = peak_count / n
                h = -p_peak * math.log(p_peak)
                rest = n - peak_count
                if below > 0:
                    h += (rest / n) * even_entropy(rest, below) - (rest / n) * math.log(rest / n)
                value = climax + h / math.log(n_range)
                if value > best:
                    best, best_at = value, {"peak": peak, "peak_count": peak_count, "notes": n}
    return {"reachable_top_steps_short": high - reachable_top,
            "climax_bound": 1.0 - SHORTAGE_PENALTY * (high - reachable_top),
            "entropy_at_bound": best - (1.0 - SHORTAGE_PENALTY * (high - best_at["peak"])
                                        - DUPLICATION_PENALTY * (best_at["peak_count"] - 1)),
            "climax_plus_entropy_bound": best, "total_bound": 1.0 + best,
            "bound_at": best_at, "max_notes": n_max, "pitches_in_range": n_range,
            "bars": len(cf)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generated", type=int, default=10)
    parser.add_argument("--widths", default="1000,3000,6000,12000",
                        help="guided beam search widths, comma-separated")
    parser.add_argument("--prior-widths", default="200,1000,3000",
                        help="policy-guided search widths, comma-separated")
    parser.add_argument("--policy", default="builtin")
    parser.add_argument("--value", default="builtin")
    parser.add_argument("--only", default="", help="only exercises whose name contains this")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",") if w.strip()]
    policy = ComposerPolicy.load(args.policy)
    value = ComposerValue.load(args.value)
    methods = {f"guided w{w}": (lambda env, w=w: guided_beam_search(env, seed=0, beam_width=w))
               for w in widths}
    for w in [int(w) for w in args.prior_widths.split(",") if w.strip()]:
        methods[f"policy-guided w{w}"] = (
            lambda env, w=w: policy_guided_search(env, policy, beam_width=w, top_k=3))
    methods["shipped decoder"] = lambda env: compose_value_and_search(env, policy, value)
    exercises = [(name, kw) for name, kw in test_exercises(args.generated)
                 if CounterpointEnv(**kw).setup.species == 5 and args.only in name]
    print(f"{len(exercises)} species-5 test exercises", flush=True)
    load_before = os.getloadavg()
    rows = []
    for name, kwargs in exercises:
        env = CounterpointEnv(**kwargs)
        env.reset()
        row = {"exercise": name, "bound": rule_bound(env), "methods": {}}
        for method, run in methods.items():
            c0 = time.process_time()
            ret, actions = run(env)
            row["methods"][method] = {**judge(env, ret, actions, detail=True),
                                      "cpu_seconds": time.process_time() - c0}
            print(f"  {name:<20} {method:<18} {row['methods'][method].get('score', 'unfinished')}"
                  f"  ({row['methods'][method]['cpu_seconds']:.1f} s CPU)", flush=True)
        valid = {m: r for m, r in row["methods"].items() if r.get("finished")
                 and r["hard_violations"] == 0 and r["parallel_perfects"] == 0}
        row["best_method"] = max(valid, key=lambda m: valid[m]["score"])
        row["best"] = valid[row["best_method"]]
        rows.append(row)
    summary = summarize(rows, list(methods))
    print_tables(rows, summary, list(methods))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "machine": platform.platform(), "args": vars(args), "goal": GOAL,
        "load_average_1_5_15min": {"start": load_before, "end": os.getloadavg()},
        "summary": summary, "rows": rows}, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def summarize(rows: list[dict], methods: list[str]) -> dict:
    mean = {m: float(np.mean([r["methods"][m]["score"] for r in rows])) for m in methods}
    best = float(np.mean([r["best"]["score"] for r in rows]))
    bound = float(np.mean([r["bound"]["total_bound"] for r in rows]))
    return {"exercises": len(rows), "mean_by_method": mean, "mean_best_found": best,
            "mean_rule_bound": bound, "goal": GOAL, "best_minus_goal": best - GOAL,
            "shipped_minus_best": mean["shipped decoder"] - best,
            "best_score_means": {k: float(np.mean([r["best"]["scores"][k] for r in rows]))
                                 for k in SCORE_NAMES}}


def print_tables(rows: list[dict], summary: dict, methods: list[str]) -> None:
    short = {m: m.replace("guided ", "g").replace("policy-", "p").replace("shipped decoder",
                                                                          "shipped")
             for m in methods}
    print(f"\n{'exercise':<20} {'bars':>4} " + " ".join(f"{short[m]:>9}" for m in methods)
          + f" {'best':>6} {'bound':>6}")
    for r in rows:
        print(f"{r['exercise']:<20} {r['bound']['bars']:>4} "
              + " ".join(f"{r['methods'][m]['score']:>9.3f}" for m in methods)
              + f" {r['best']['score']:>6.3f} {r['bound']['total_bound']:>6.3f}")
    print(f"{'mean':<20} {'':>4} " + " ".join(f"{summary['mean_by_method'][m]:>9.3f}"
                                             for m in methods)
          + f" {summary['mean_best_found']:>6.3f} {summary['mean_rule_bound']:>6.3f}")
    print("\nthe best piece's five scores (max: loops 0, entropy 1, narrow 0, climax 1, skips 1)"
          "; climax bound from the range rule")
    print(f"{'exercise':<20} {'loops':>6} {'entropy':>8} {'narrow':>7} {'climax':>7} "
          f"{'skips':>6} {'notes':>6} {'pitches':>7} {'climax<=':>9} {'ent.<=':>7}")
    for r in rows:
        s = {k: v + 0.0 for k, v in r["best"]["scores"].items()}  # no "-0.00"
        b = r["bound"]
        print(f"{r['exercise']:<20} {s['looped_fragments']:>6.2f} {s['entropy']:>8.3f} "
              f"{s['narrow_ranges']:>7.2f} {s['climax_explicity']:>7.2f} "
              f"{s['number_of_skips']:>6.2f} {r['best']['notes']:>6} "
              f"{r['best']['pitches_used']:>3}/{b['pitches_in_range']:<3} "
              f"{b['climax_bound']:>9.2f} "
              f"{b['entropy_at_bound']:>7.3f}")
    print(f"\nmean best found {summary['mean_best_found']:.3f} against the goal {GOAL} "
          f"({summary['best_minus_goal']:+.3f}); shipped decoder "
          f"{summary['mean_by_method']['shipped decoder']:.3f} "
          f"({summary['shipped_minus_best']:+.3f} against the best found)")


if __name__ == "__main__":
    raise SystemExit(main())
