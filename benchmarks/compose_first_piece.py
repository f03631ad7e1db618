"""CPU time of the first piece a fresh process writes with the shipped decoder (the case of
``musicgym compose --method policy --policy-value builtin`` writing one piece), each run in its
own subprocess, so the figure includes whatever a process loads on first use.

Each child imports the package, builds ``musicgym/Counterpoint-v0`` on one exercise (default
``fux_dorian``, species 5) as the CLI does (``gym.make``, then ``reset``), loads the shipped
policy and value, and writes the piece with ``compose_value_and_search`` at its defaults; then
a second piece on another exercise (``--second``, default ``fux_mixolydian``) in the same
process, for comparison. It reports CPU seconds (``time.process_time``, all threads) of each
step, the first piece's wall seconds, whether numba and SciPy were loaded after the first
piece, and a digest of both pieces (return and actions), which must not differ between the
trees compared.

Compare two source trees by alternating them, on a quiet machine::

    python benchmarks/compose_first_piece.py --src /path/to/main/src,src --repeats 3

Children get ``OMP_NUM_THREADS=1`` (as the other benchmarks) unless ``--threads default``
leaves the variable out, as a user's shell does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import hashlib, json, os, sys, time
cpu, wall = time.process_time, time.perf_counter
t = cpu()
import gymnasium as gym
import musicgym.envs  # noqa: F401  (registers the env ids, as the CLI does)
from musicgym.compose.policy import ComposerPolicy
from musicgym.compose.value import ComposerValue, compose_value_and_search
out = {"import_s": cpu() - t}
exercise, second, species = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = cpu()
env = gym.make("musicgym/Counterpoint-v0", cantus_firmus=exercise, species=species)
env.reset()
out["env_s"] = cpu() - t
t = cpu()
policy, value = ComposerPolicy.load("builtin"), ComposerValue.load("builtin")
out["models_s"] = cpu() - t
t, w = cpu(), wall()
first = compose_value_and_search(env, policy, value)
out["first_piece_s"], out["first_piece_wall_s"] = cpu() - t, wall() - w
out["numba_loaded"], out["scipy_loaded"] = "numba" in sys.modules, "scipy" in sys.modules
env = gym.make("musicgym/Counterpoint-v0", cantus_firmus=second, species=species)
env.reset()
t = cpu()
other = compose_value_and_search(env, policy, value)
out["second_piece_s"] = cpu() - t
out["first_return"] = first[0]
out["digest"] = hashlib.md5(repr((first, other)).encode()).hexdigest()
print(json.dumps(out))
"""


def run_child(src: str, exercise: str, second: str, species: int, threads: str) -> dict:
    """One fresh process on ``src``: its report, plus its whole CPU time."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = src
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    if threads == "1":
        env["OMP_NUM_THREADS"] = "1"
    before = os.times()
    done = subprocess.run([sys.executable, "-c", _CHILD, exercise, second, str(species)],
                          env=env, capture_output=True, text=True, timeout=600)
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"child on {src} failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["process_cpu_s"] = (after.children_user - before.children_user
                               + after.children_system - before.children_system)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in report.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"),
                        help="source trees (comma-separated), alternated run by run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--exercise", default="fux_dorian")
    parser.add_argument("--second", default="fux_mixolydian")
    parser.add_argument("--species", type=int, default=5)
    parser.add_argument("--threads", choices=("1", "default"), default="1",
                        help="children's OMP_NUM_THREADS: 1, or left unset")
    args = parser.parse_args()
    trees = [str(Path(s).resolve()) for s in args.src.split(",")]
    runs: dict[str, list[dict]] = {tree: [] for tree in trees}
    for _ in range(args.repeats):
        for tree in trees:
            report = run_child(tree, args.exercise, args.second, args.species, args.threads)
            report["load_average"] = round(os.getloadavg()[0], 2)
            runs[tree].append(report)
            print(json.dumps({"src": tree, **report}), flush=True)
    for tree, reports in runs.items():
        firsts = sorted(r["first_piece_s"] for r in reports)
        digests = {r["digest"] for r in reports}
        print(f"{tree}: first piece {firsts[0]:.2f}-{firsts[-1]:.2f} s CPU "
              f"(median {firsts[len(firsts) // 2]:.2f}), digests {sorted(digests)}")


if __name__ == "__main__":
    main()
