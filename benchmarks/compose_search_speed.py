"""CPU time of the policy-guided search (the shipped species-5 decoder's search), per piece and
per state expanded, on the species-5 test exercises of ``compose_policy.py --generated 10``,
with a digest of the pieces written, so that two source trees can be compared: the same
digest means the same pieces (actions and returns) and the same number of states.

Run it with each tree's ``src`` first on ``PYTHONPATH``, alternating, on a quiet machine:
``OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/compose_search_speed.py
--widths 100,300 --logp 0.1``. Every piece is searched on a fresh env (its rule caches empty),
in one process (so the compiled rules serve from the second exercise on, as in
``compose_policy.py``); ``--repeats`` keeps each piece's least CPU time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

from compose_policy import test_exercises  # the benchmark's own test set

import musicgym
from musicgym.compose.policy import ComposerPolicy, policy_guided_search
from musicgym.envs.counterpoint import CounterpointEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="100,300")
    parser.add_argument("--logp", type=float, default=0.1, help="the search's logp weight")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    exercises = [(name, kw) for name, kw in test_exercises(10) if name.endswith("/s5")]
    policy = ComposerPolicy.load("builtin")
    out = {"src": os.path.dirname(musicgym.__file__), "load_average": os.getloadavg(),
           "exercises": len(exercises)}
    for width in (int(w) for w in args.widths.split(",")):
        digest, cpu_s, states = hashlib.md5(), 0.0, 0
        for name, kw in exercises:
            times = []
            for _ in range(args.repeats):
                env = CounterpointEnv(**kw)
                env.reset()
                stats: dict = {}
                start = time.process_time()
                ret, actions = policy_guided_search(env, policy, top_k=args.top_k,
                                                    beam_width=width, logp_weight=args.logp,
                                                    stats=stats)
                times.append(time.process_time() - start)
            cpu_s += min(times)
            states += stats["expanded"]
            digest.update(repr((name, ret, actions, stats["expanded"])).encode())
        out[f"w{width}"] = {"cpu_s_per_piece": round(cpu_s / len(exercises), 4),
                            "us_per_state": round(1e6 * cpu_s / states, 1),
                            "states": states, "digest": digest.hexdigest()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
