"""Accompaniment benchmark on the real Brahms duet takes (held-out takes 6 and 7).

For each follower (oracle; MIDI OLTW and MIDI HMM against training take 1) and each tempo
model: the share of shared onsets within 50/100/250 ms of the soloist, mean and median
|asynchrony|, and tempo jitter, beside the human secondo of the same takes
(:func:`musicgym.follow.report.evaluate_accompanists`). Every accompanist re-synchronises
(jumps to the soloist when more than ``RESYNC_S`` apart); the Kalman model is also run
without it. With ``--train`` a RecurrentPPO agent is trained first
(:class:`musicgym.follow.train.TrainConfig` defaults, a few minutes on 2 cores) and gets its
rows; ``--run RUN_DIR`` evaluates an agent trained before. Then where the misses of
kalman+timing come from, follower accuracy, and the time per OLTW and HMM update (one frame
in, a report out if any, dated; median of 5 runs over 2,000 frames).
Prints a table and writes benchmarks/results/accompany.json.
Run: ``.venv/bin/python benchmarks/accompany.py --train``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from musicgym.follow.corpus import brahms_takes
from musicgym.follow.followers import HMMFollower, OLTWFollower, piano_roll
from musicgym.follow.report import evaluate_accompanists, format_table

RESULTS = Path(__file__).parent / "results"
AGENT_RUN = Path(__file__).parents[1] / "runs" / "accompany_agent"  # runs/ is not versioned


def update_time_ms(takes, follower_class=OLTWFollower) -> float:
    follower = follower_class(takes[0].solo.performed)
    roll = piano_roll(takes[6].solo.performed, follower.frame_s)[:2000]
    follower.report(roll[0])  # numba compile
    runs = []
    for _ in range(5):
        follower.reset()
        start = time.perf_counter()
        for frame in roll:
            follower.report(frame)  # the whole per-frame work: warping, reporting, dating
        runs.append((time.perf_counter() - start) / len(roll) * 1000.0)
    return float(np.median(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train an agent first")
    parser.add_argument("--run", help="evaluate this trained agent's run folder")
    args = parser.parse_args()
    run_dir = args.run
    train_seconds = None
    if args.train:
        from musicgym.follow.train import TrainConfig, train

        run_dir = AGENT_RUN
        start = time.perf_counter()
        train(TrainConfig(), run_dir)
        train_seconds = time.perf_counter() - start
    results = evaluate_accompanists(run_dir)
    results["train_seconds"] = train_seconds
    takes = brahms_takes()
    results["oltw_update_ms"] = update_time_ms(takes)
    results["hmm_update_ms"] = update_time_ms(takes, HMMFollower)
    results["machine"] = platform.platform()
    print(format_table(results))
    if train_seconds is not None:
        print(f"agent trained in {train_seconds:.0f} s ({run_dir})")
    print(f"OLTW update (report + dating): {results['oltw_update_ms']:.3f} ms per 20 ms frame; "
          f"HMM: {results['hmm_update_ms']:.3f} ms")
    out = RESULTS / "accompany.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
