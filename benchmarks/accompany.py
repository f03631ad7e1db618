"""Accompaniment benchmark on the real Brahms duet takes (held-out takes 6 and 7).

For each follower (oracle, MIDI OLTW against training take 1) and each tempo model: the share
of shared onsets within 50/100/250 ms of the soloist, mean and median |asynchrony|, and tempo
jitter, beside the human secondo of the same takes. Every accompanist re-synchronises (jumps to
the soloist when more than ``RESYNC_S`` apart); the Kalman model is also run without it.
Then follower accuracy and the time per OLTW update (median of 5 runs over 2,000 frames).
Prints a table and writes benchmarks/results/accompany.json.
Run: ``.venv/bin/python benchmarks/accompany.py``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from musicgym.follow.accompanist import RESYNC_S, make_episode
from musicgym.follow.corpus import TEST_TAKES, brahms_takes, reference_take
from musicgym.follow.evaluate import evaluate_tempo_model, human_metrics
from musicgym.follow.followers import (
    OLTWFollower,
    OracleFollower,
    follower_accuracy,
    follower_errors_ms,
    piano_roll,
)
from musicgym.follow.tempo import TEMPO_MODELS, make_tempo_model


def follower_for(name, takes, take):
    if name == "oracle":
        return OracleFollower()
    return OLTWFollower(reference_take(takes, take).solo.performed)


def update_time_ms(takes) -> float:
    follower = OLTWFollower(takes[0].solo.performed)
    roll = piano_roll(takes[6].solo.performed, follower.frame_s)[:2000]
    follower.update(roll[0])  # numba compile
    runs = []
    for _ in range(5):
        follower.reset()
        start = time.perf_counter()
        for frame in roll:
            follower.update(frame)
        runs.append((time.perf_counter() - start) / len(roll) * 1000.0)
    return float(np.median(runs))


def main() -> None:
    takes = brahms_takes()
    held_out = [t for t in takes if t.take in TEST_TAKES]
    results = {"takes": list(TEST_TAKES), "rows": [], "followers": {}}
    for follower_name in ("oracle", "oltw"):
        episodes, errors = [], []
        for t in held_out:
            follower = follower_for(follower_name, takes, t.take)
            episodes.append(make_episode(t.solo, t.accompaniment.score, follower=follower,
                                         accompaniment=t.accompaniment, piece=t.piece,
                                         take=t.take))
            errors.append(follower_errors_ms(episodes[-1].report_sec, episodes[-1].report_beat,
                                             t.solo.performed))
        results["followers"][follower_name] = follower_accuracy(np.concatenate(errors))
        for model in TEMPO_MODELS:
            row = evaluate_tempo_model(episodes, lambda m=model: make_tempo_model(m))
            results["rows"].append({"follower": follower_name, "accompanist": model,
                                    "resync_s": RESYNC_S, **row})
        row = evaluate_tempo_model(episodes, lambda: make_tempo_model("kalman"), resync_s=None)
        results["rows"].append({"follower": follower_name, "accompanist": "kalman",
                                "resync_s": None, **row})
    human = [human_metrics(make_episode(t.solo, t.accompaniment.score,
                                        accompaniment=t.accompaniment)) for t in held_out]
    pooled = {k: float(np.mean([h[k] for h in human])) for k in human[0]}
    results["rows"].append({"follower": "-", "accompanist": "human secondo", "resync_s": None,
                            **pooled})
    results["oltw_update_ms"] = update_time_ms(takes)
    results["machine"] = platform.platform()

    header = f"{'follower':8} {'accompanist':16} {'resync':>6} {'<=50ms':>7} {'<=100ms':>8} "
    header += f"{'<=250ms':>8} "
    header += f"{'mean|a|':>8} {'med|a|':>7} {'jitter':>7}"
    print(header)
    for r in results["rows"]:
        resync = "-" if r["resync_s"] is None else f"{r['resync_s']:.2f}"
        print(f"{r['follower']:8} {r['accompanist']:16} {resync:>6} {r['within_50_ms']:7.1%} "
              f"{r['within_100_ms']:8.1%} {r['within_250_ms']:8.1%} {r['mean_abs_ms']:8.1f} "
              f"{r['median_abs_ms']:7.1f} {r['tempo_jitter']:7.3f}")
    for name, acc in results["followers"].items():
        print(f"follower {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    print(f"OLTW update: {results['oltw_update_ms']:.3f} ms per 20 ms frame")
    out = Path(__file__).parent / "results" / "accompany.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
