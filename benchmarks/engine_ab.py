"""One example patch's render in two source trees, side by side in interleaved bursts.

The engine's counterpart of ``benchmarks/vector_env_ab.py``: one process per tree keeps its
patch compiled and alternates bursts of renders with the other (the order flipping each
round), so both see the same load on a shared machine. Prints each tree's render time (best
and median burst median) and the median of the paired per-round ratios, the figure to quote
for a speed-up.

    python benchmarks/engine_ab.py /path/to/main/src src [--patch kick] [--batch 64]
        [--rounds 12] [--renders 10]

Threads: ``MUSICGYM_NUM_THREADS`` as set in the shell (default 1), the same for both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

SECONDS = 1.0


def worker(name: str, batch: int) -> None:
    """Build the patch, then for each line of stdin (a number of renders) render and print
    the burst's median and best seconds per render."""
    import numpy as np

    from musicgym.synth import Patch
    from musicgym.synth.examples import EXAMPLES, default_params, example_samples

    code = EXAMPLES[name][0]
    patch = Patch(code, samples=example_samples() if "\\kick" in code else None)
    base = default_params(name, patch.params)  # spread as benchmarks/engine.py does
    params = base * np.random.default_rng(0).uniform(0.7, 1.3, (batch, base.shape[1]))
    for _ in range(3):  # warm-up: numba caches
        patch.render(params, seconds=SECONDS, progress=False)
    print("ready", flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            t = time.perf_counter()
            patch.render(params, seconds=SECONDS, progress=False)
            times.append(time.perf_counter() - t)
        print(statistics.median(times), min(times), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="the first tree's src folder (e.g. main's)")
    ap.add_argument("new", help="the second tree's src folder")
    ap.add_argument("--patch", default="kick", help="a name in musicgym.synth.examples")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--renders", type=int, default=10, help="renders per burst")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.patch, args.batch)
        return
    trees = [args.base, args.new]
    procs = []
    for tree in trees:
        env = dict(os.environ, PYTHONPATH=tree)
        proc = subprocess.Popen([sys.executable, __file__, "--worker", "--patch", args.patch,
                                 "--batch", str(args.batch), "x", "x"], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"the worker for {tree} failed to start")
        procs.append(proc)
    medians: list[list[float]] = [[], []]
    for r in range(args.rounds):
        for k in ((0, 1) if r % 2 == 0 else (1, 0)):
            procs[k].stdin.write(f"{args.renders}\n")
            procs[k].stdin.flush()
            medians[k].append(float(procs[k].stdout.readline().split()[0]))
    for proc in procs:
        proc.stdin.close()
        proc.wait()
    threads = os.environ.get("MUSICGYM_NUM_THREADS", 1)
    print(f"{args.patch} B={args.batch}, {SECONDS:g} s, {args.rounds} rounds of "
          f"{args.renders} renders, MUSICGYM_NUM_THREADS={threads}")
    for label, tree, m in zip(("base", "new "), trees, medians, strict=True):
        print(f"  {label} {tree}: ms per render, burst medians: best {1e3 * min(m):.2f} "
              f"median {1e3 * statistics.median(m):.2f}")
    ratios = [a / b for a, b in zip(medians[0], medians[1], strict=True)]
    print(f"  new speed / base speed, paired per round: median {statistics.median(ratios):.3f}")
    print(f"  load average {[f'{x:.2f}' for x in os.getloadavg()]}")


if __name__ == "__main__":
    main()
