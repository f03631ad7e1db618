"""Sound-matching env throughput: musicgym vs a RaveForce-style loop, side by side in one run.

Task: ``musicgym/Kick-v0`` (RaveForce's kick patch, 0.5 s target). Four ways to take env steps
with random actions:

1. RaveForce-style loop: the real Glicol engine driven as RaveForce 0.2.4 drives it (one engine
   instance; per step: fill the code, ``update``, render 128-sample blocks, decode each block
   with a per-sample ``struct.unpack`` loop, raw MSE against the target);
2. musicgym's env with the reference backend (real engine, MR-STFT reward);
3. musicgym's env with the NumPy backend, B = 1;
4. musicgym's native vector env, B = 64 (one engine call for the 64 envs);
5. the same with the reward transforming every frame: the MR-STFT skips frames of exact
   silence before a render's first and after its last non-zero sample (their sums are known
   from the target), and random kicks are silent for about half the clip; this row shows the
   reward's cost on sounds that never fall silent (same rewards, bit for bit);
6. (4) with ``MUSICGYM_NUM_THREADS`` set to every core (``--threads``, default
   ``os.cpu_count()``): blocks of rows rendered and rewarded side by side (same results, bit
   for bit); its speed over (4), both in this run, is the figure for issue 13.

Steps per second are env transitions: each rendered and rewarded segment counts one. A vector
step counts the envs that stepped in it, not B: with Gymnasium's NEXT_STEP autoreset, the call
after an episode ends only resets that env (no render, reward 0), so with Kick-v0's one-step
episodes every other vector call is such a reset (counting them as B steps, as this benchmark
did before 2026-12-02, doubled the vector figure; the JSON keeps that count as
``calls_steps_per_s``). The reward share is the time spent computing rewards (segment + running
clip distance: ``MatchCore.distances`` and ``clip_distances``, or ``MultiResolutionSTFT.batch``
less the observation features it computes for one-step presets) over the loop's time.
Goals (issue 3): (4) >= 30x (1); rewards <= half of a step's time (in (4); (5) for reference).

    python benchmarks/synth_match.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import musicgym  # noqa: F401  (registers the envs)
from musicgym.audio.distances import MultiResolutionSTFT
from musicgym.envs import matching
from musicgym.envs.presets import KICK_CODE, PRESETS, kick_target
from musicgym.synth.reference import BLOCK, _Instance
from musicgym.threads import THREADS_ENV


def raveforce_loop(budget_s: float) -> float:
    """Steps per second of RaveForce's own loop, on the real engine through wasmtime."""
    target = kick_target()
    spec = PRESETS["Kick-v0"]["action_space"]
    rng = np.random.default_rng(0)
    inst = _Instance(44100, 120.0, 42)
    code = KICK_CODE.replace("{}", "{:.6f}")
    n_blocks = int(0.5 * 44100 / BLOCK)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget_s:
        values = [float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) for _, lo, hi in spec]
        inst.update(code.format(*values))
        audio = []
        for _ in range(n_blocks):
            inst.process()
            raw = inst.memory.read(inst.store, inst.out_ptr, inst.out_ptr + 1024)
            block = [struct.unpack("<f", bytes(raw[i:i + 4]))[0] for i in range(0, 1024, 4)]
            audio.extend(block[:128])
        padded = np.zeros(len(target))
        padded[:len(audio)] = audio[:len(target)]
        _ = -np.mean((padded - target) ** 2)
        steps += 1
    return steps / (time.perf_counter() - t0)


def env_loop(env, budget_s: float, batch: int = 1,
             threads: int = 1) -> tuple[float, float, float]:
    """(env transitions per second, share of the time spent in rewards, vector calls x B per
    second) with random actions.

    The reward's time is the wall time of ``MatchCore.distances`` and ``clip_distances`` and
    of ``MultiResolutionSTFT.batch`` (which one-step presets call directly), all called on
    the stepping thread, less the observation features that ``batch`` computes for the
    step through its callback, plus the silence scan that the step's render blocks run for
    the reward (those two summed over the ``threads`` threads, divided by ``threads``)."""
    core = env.unwrapped.core if hasattr(env, "unwrapped") else env.core
    reward_time, feature_time, spans_time = [0.0], [0.0], [0.0]
    local = threading.local()  # clip_distances may call distances: count nested time once
    lock = threading.Lock()
    originals = {name: getattr(core, name) for name in ("distances", "clip_distances")}

    def timing(original):
        def timed(*args, **kwargs):
            local.depth = getattr(local, "depth", 0) + 1
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                local.depth -= 1
                if local.depth == 0:
                    reward_time[0] += time.perf_counter() - t
        return timed

    batch_original = MultiResolutionSTFT.batch

    def batch_features_apart(self, *args, on_rows=None, **kwargs):
        if on_rows is not None:
            features = on_rows

            def on_rows(*args):
                t = time.perf_counter()
                features(*args)
                with lock:
                    feature_time[0] += time.perf_counter() - t
        return batch_original(self, *args, on_rows=on_rows, **kwargs)

    spans_original = matching._sound_spans
    # the render blocks' pass: the reward's silence scan with the (cheap, same-pass)
    # finiteness check of the render
    fused_original = matching._finite_sound_spans

    def timed_scan(original):
        def scan(*args):
            t = time.perf_counter()
            try:
                return original(*args)
            finally:
                with lock:
                    spans_time[0] += time.perf_counter() - t
        return scan

    spans_timed, fused_timed = timed_scan(spans_original), timed_scan(fused_original)

    for name, original in originals.items():
        setattr(core, name, timing(original))
    MultiResolutionSTFT.batch = timing(batch_features_apart)
    matching._sound_spans = spans_timed
    matching._finite_sound_spans = fused_timed
    env.action_space.seed(0)
    env.reset(seed=0)
    env.step(env.action_space.sample())  # warm-up (numba caches, target features)
    env.reset(seed=0)
    reward_time[0] = feature_time[0] = spans_time[0] = 0.0
    steps, calls, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < budget_s:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        calls += batch
        if batch == 1:
            steps += 1
            if terminated or truncated:
                env.reset()
        else:  # the envs that rendered a segment (the others were autoresetting)
            steps += int(np.count_nonzero(info["_clip_distance"]))
    elapsed = time.perf_counter() - t0
    for name in originals:
        delattr(core, name)  # back to the class's methods
    MultiResolutionSTFT.batch = batch_original
    matching._sound_spans = spans_original
    matching._finite_sound_spans = fused_original
    reward_s = reward_time[0] + (spans_time[0] - feature_time[0]) / threads
    return steps / elapsed, reward_s / elapsed, calls / elapsed


def dense_vector_env():
    """The B = 64 vector env with silence skipping off in its MR-STFT (contender 5)."""
    env = gym.make_vec("musicgym/Kick-v0", num_envs=64)
    env.core.distance.SKIP_SILENCE = False
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="time budget per contender")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "synth_match.json"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for contender 6 (default: every core)")
    args = ap.parse_args()
    os.environ[THREADS_ENV] = "1"  # contenders 1-5 on one thread, whatever the shell says
    rows = []
    print("Kick-v0 (0.5 s target), random actions, env transitions per second:")
    rf = raveforce_loop(args.seconds)
    rows.append({"contender": "RaveForce-style loop (real engine, struct.unpack, raw MSE)",
                 "steps_per_s": rf, "reward_share": None})
    print(f"  RaveForce-style loop             {rf:9.1f}", flush=True)
    for label, env, batch in [
        ("musicgym env, reference backend", gym.make("musicgym/Kick-v0", backend="glicol"), 1),
        ("musicgym env, NumPy backend, B=1", gym.make("musicgym/Kick-v0"), 1),
        ("musicgym vector env, B=64", gym.make_vec("musicgym/Kick-v0", num_envs=64), 64),
        ("vector env, B=64, every frame", dense_vector_env(), 64),
    ]:
        sps, share, calls = env_loop(env, args.seconds, batch)
        rows.append({"contender": label, "steps_per_s": sps, "reward_share": share,
                     "calls_steps_per_s": calls})
        extra = f"   (calls x B: {calls:.1f}/s)" if batch > 1 else ""
        print(f"  {label:32s} {sps:9.1f}   rewards {share:5.1%} of step time{extra}", flush=True)
    os.environ[THREADS_ENV] = str(args.threads)
    label = f"musicgym vector env, B=64, {args.threads} threads"
    sps, share, calls = env_loop(gym.make_vec("musicgym/Kick-v0", num_envs=64), args.seconds, 64,
                                 args.threads)
    os.environ[THREADS_ENV] = "1"
    rows.append({"contender": label, "steps_per_s": sps, "reward_share": share,
                 "calls_steps_per_s": calls, "threads": args.threads})
    print(f"  {label:32s} {sps:9.1f}   rewards {share:5.1%} of step time   "
          f"({sps / rows[3]['steps_per_s']:.2f}x one thread)", flush=True)
    print("\n| contender | env steps / s | vs RaveForce loop | reward share of step |")
    print("|---|---|---|---|")
    for r in rows:
        share = "" if r["reward_share"] is None else f"{r['reward_share']:.0%}"
        print(f"| {r['contender']} | {r['steps_per_s']:,.1f} | "
              f"**{r['steps_per_s'] / rf:,.1f}x** | {share} |")
    vec = rows[3]
    goals = {"vector env >= 30x RaveForce loop": vec["steps_per_s"] / rf >= 30,
             "rewards <= half of a step": vec["reward_share"] <= 0.5}
    for goal, met in goals.items():
        print(f"{'met    ' if met else 'NOT MET'}  {goal}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"command": "python benchmarks/synth_match.py",
                                           "machine": platform.platform(), "rows": rows,
                                           "goals": goals}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
