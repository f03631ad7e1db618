"""The B = 64 Kick-v0 vector env of two source trees, side by side in interleaved bursts.

On a shared machine a benchmark run minutes after another meets a different load; this one
keeps one env per tree alive in its own process and alternates short bursts between them
(the order flipping each round), so both see the same load. It prints each tree's env
transitions per second (median and best burst, wall clock and process CPU time) and the
median of the paired per-round ratios, the figure to quote for a speed-up.

    python benchmarks/vector_env_ab.py /path/to/main/src src [--rounds 30] [--calls 6]

Threads: ``MUSICGYM_NUM_THREADS`` as set in the shell (default 1), the same for both, or
``--base-threads`` / ``--new-threads`` for each (``src src --base-threads 1 --new-threads 2``:
what a second thread buys, both measured under the same load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def worker(env_id: str, batch: int) -> None:
    """Build the env, then for each line of stdin (a number of vector calls) run them and
    print ``steps wall_s cpu_s``."""
    import gymnasium as gym
    import numpy as np

    import musicgym  # noqa: F401  (registers the envs)

    env = gym.make_vec(env_id, num_envs=batch)
    env.action_space.seed(0)
    env.reset(seed=0)
    actions = [env.action_space.sample() for _ in range(64)]
    for a in actions[:4]:  # warm-up: numba caches, target features
        env.step(a)
    print("ready", flush=True)
    k = 0
    for line in sys.stdin:
        steps, t, c = 0, time.perf_counter(), time.process_time()
        for _ in range(int(line)):
            _, _, _, _, info = env.step(actions[k % len(actions)])
            k += 1
            steps += int(np.count_nonzero(info["_clip_distance"]))  # autoresets do not count
        print(steps, time.perf_counter() - t, time.process_time() - c, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="the first tree's src folder (e.g. main's)")
    ap.add_argument("new", help="the second tree's src folder")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--calls", type=int, default=6, help="vector calls per burst")
    ap.add_argument("--env", default="musicgym/Kick-v0")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--base-threads", type=int, help="MUSICGYM_NUM_THREADS for the first tree")
    ap.add_argument("--new-threads", type=int, help="MUSICGYM_NUM_THREADS for the second tree")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.env, args.batch)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.setdefault("MUSICGYM_NUM_THREADS", "1")
    trees = {"base": os.path.abspath(args.base), "new": os.path.abspath(args.new)}
    threads = {"base": args.base_threads or int(env["MUSICGYM_NUM_THREADS"]),
               "new": args.new_threads or int(env["MUSICGYM_NUM_THREADS"])}
    procs = {}
    for name, src in trees.items():
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, args.base, args.new, "--worker", "--env", args.env,
             "--batch", str(args.batch)],
            env=dict(env, PYTHONPATH=src, MUSICGYM_NUM_THREADS=str(threads[name])),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if procs[name].stdout.readline().strip() != "ready":
            raise SystemExit(f"the {name} tree's env did not start ({src})")
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        order = list(procs.items()) if r % 2 == 0 else list(reversed(procs.items()))
        for name, proc in order:
            proc.stdin.write(f"{args.calls}\n")
            proc.stdin.flush()
            steps, wall, cpu = proc.stdout.readline().split()
            rates[name].append((int(steps) / float(wall), int(steps) / float(cpu)))
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    print(f"{args.env} B={args.batch}, {args.rounds} rounds of {args.calls} vector calls, "
          f"MUSICGYM_NUM_THREADS base {threads['base']}, new {threads['new']}")
    for name, src in trees.items():
        wall = [w for w, _ in rates[name]]
        cpu = [c for _, c in rates[name]]
        print(f"  {name:4s} {src}: env steps/s median {statistics.median(wall):8.1f} "
              f"best {max(wall):8.1f} | per CPU second median {statistics.median(cpu):8.1f}")
    paired = [n[0] / b[0] for n, b in zip(rates["new"], rates["base"], strict=True)]
    print(f"  new / base, paired per round: median {statistics.median(paired):.3f}")
    print(f"  load average {open('/proc/loadavg').read().split()[:3]}"
          if os.path.exists("/proc/loadavg") else "")


if __name__ == "__main__":
    main()
