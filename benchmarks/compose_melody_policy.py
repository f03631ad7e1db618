"""Melody policy against the beam search at equal time, on held-out melody settings.

Settings: the tonic/mode pairs the policy's training never drew
(:data:`musicgym.compose.melody_policy_train.HELD_OUT`: C major, Melody-v0's default, D dorian,
F# lydian, Bb harmonic minor, E phrygian, A aeolian), each in three forms
(:func:`~musicgym.compose.melody_policy_train.held_out_settings`: Melody-v0's default 4 bars of
8; 4 bars of 6 over G3..F#5; 6 bars of 8 with the key as a hard mask), so 18 settings;
seeds 1000.. . Per method: mean return (RL Tuner's nine rules at weight 1, as
``evaluate_melody`` judges), notes out of key per melody, s/piece. The beam search is run at
the widest width whose mean time per piece does not exceed the policy's ("equal time"), and at
its default width 16, each also at temperature 0 (no noise: the plain beam search).

``OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/compose_melody_policy.py --seeds 2``
writes ``benchmarks/results/compose_melody_policy.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from musicgym.compose.melody import beam_melody
from musicgym.compose.melody_policy import (
    MelodyPolicy,
    best_of_melody_policy,
    compose_melody_policy,
)
from musicgym.compose.melody_policy_train import held_out_settings
from musicgym.envs.melody import MelodyEnv


def run(envs_seeds, compose) -> dict:
    returns, off_key, seconds = [], [], []
    for env, seed in envs_seeds:
        t0 = time.perf_counter()
        total, actions = compose(env, seed)
        seconds.append(time.perf_counter() - t0)
        returns.append(total)
        state = env.empty_state()
        off_key.append(sum(int(a >= 2 and not state.in_key[a]) for a in actions))
    # held_out_settings lists the three forms one after the other
    by_form = np.array_split(np.array(returns), 3) if len(returns) % 3 == 0 else []
    return {"mean_return": float(np.mean(returns)), "best": float(np.max(returns)),
            "mean_return_by_form": [float(np.mean(f)) for f in by_form],
            "worst": float(np.min(returns)), "out_of_key": float(np.mean(off_key)),
            "s_per_piece": float(np.mean(seconds)), "pieces": len(returns)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2, help="melodies per held-out setting")
    p.add_argument("--policy", default="builtin")
    p.add_argument("--best-of", type=int, nargs="*", default=[4, 16],
                   help="also the best of k policy melodies, for each k")
    p.add_argument("--plain-widths", type=int, nargs="*", default=[],
                   help="also the plain beam search (temperature 0) at these widths")
    p.add_argument("--out", default="benchmarks/results/compose_melody_policy.json")
    args = p.parse_args(argv)
    policy = MelodyPolicy.load(args.policy)
    cases = [(MelodyEnv(**s), 1000 + k) for s in held_out_settings() for k in range(args.seeds)]
    rows = {}
    decoders = {"policy greedy": lambda e, s: compose_melody_policy(e, policy, seed=s)}
    for k in args.best_of:
        decoders[f"policy best of {k} (temperature 0.5)"] = (
            lambda e, s, k=k: best_of_melody_policy(e, policy, samples=k, seed=s))
    for name, decoder in decoders.items():
        rows[name] = run(cases, decoder)
        print(f"{name}: {rows[name]}", flush=True)
    # time per piece of each beam width, on a subset: the widest beam within each decoder's
    # time is that decoder's equal-time rival
    probe = {}
    for width in (*range(1, 9), 10, 12, 16, 20, 24, 32, 40, 48):
        probe[width] = run(cases[:: max(1, len(cases) // 12)],
                           lambda e, s, w=width: beam_melody(e, seed=s, beam_width=w)
                           )["s_per_piece"]
    equal = {}
    for name in decoders:
        fits = [w for w, sec in probe.items() if sec <= rows[name]["s_per_piece"]]
        equal[name] = max(fits) if fits else 1
    for width in sorted({*equal.values(), 16}):
        label = f"beam width {width}" + (" (default)" if width == 16 else "")
        rows[label] = run(cases, lambda e, s, w=width: beam_melody(e, seed=s, beam_width=w))
        rows[label]["equal_time_to"] = [n for n, w in equal.items() if w == width]
        print(f"{label}: {rows[label]}", flush=True)
        # the plain beam search (no Gumbel noise, ties broken by the seed) at the same width
        label = f"beam width {width}, temperature 0"
        rows[label] = run(cases, lambda e, s, w=width: beam_melody(e, seed=s, beam_width=w,
                                                                   temperature=0.0))
        print(f"{label}: {rows[label]}", flush=True)
    for width in args.plain_widths:
        label = f"beam width {width}, temperature 0"
        rows[label] = run(cases, lambda e, s, w=width: beam_melody(e, seed=s, beam_width=w,
                                                                   temperature=0.0))
        print(f"{label}: {rows[label]}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": held_out_settings(), "seeds": args.seeds,
                               "policy": args.policy, "equal_time_width": equal,
                               "beam_probe_s_per_piece": probe,
                               "rows": rows}, indent=1), encoding="utf-8")
    print(f"{'method':<40} {'mean return':>11} {'by form':>17} {'best':>6} {'off key':>7} "
          f"{'s/piece':>8}")
    for name, r in rows.items():
        forms = "/".join(f"{x:.0f}" for x in r["mean_return_by_form"])
        print(f"{name:<40} {r['mean_return']:11.1f} {forms:>17} {r['best']:6.1f} "
              f"{r['out_of_key']:7.2f} {r['s_per_piece']:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
