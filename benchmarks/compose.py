"""Composition benchmark: env speed, terminal-evaluation time, and piece quality on
RL-Musician's default cantus for RL-Musician's Monte Carlo beam search (its default budget),
musicgym's score-guided beam search, random pieces and masked PPO.

Env speed includes a fresh exercise every episode (a new env on the next generated exercise,
set-up included), on the compiled rules and on the Python rule path, with ``--baseline-src``
another checkout's code measured in the same run (``--speed-only`` for the speed rows alone).

Run: ``.venv/bin/python benchmarks/compose.py`` (options: ``--beam-pieces``,
``--guided-pieces``, ``--guided-width``, ``--ppo-steps``, ``--rl-musician-python`` for a venv
where ``rl-musician==0.4.6`` is installed). Prints a table and writes
``benchmarks/results/compose.json``. Quality is judged by ``musicgym.compose.evaluate`` on the
written notes: RL-Musician's 5-score total (max 3.0), strict-rule violations and parallel
fifths/octaves. Each search's budget (rollouts or notes tried, finished pieces scored) is
recorded per piece.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from musicgym.compose.evaluate import evaluate_piece
from musicgym.compose.piece import piece_from_counterpoint
from musicgym.compose.ppo import compose_with_policy
from musicgym.compose.search import beam_search, guided_beam_search, random_search
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.rules import score_piece

RESULTS = Path(__file__).parent / "results" / "compose.json"
SPEED_RESULTS = RESULTS.with_name("compose_speed.json")

# RL-Musician's own env, driven with random valid actions; run in its venv
RLM_SCRIPT = """
import random, time, yaml, importlib.resources as r, statistics
from rlmusician.environment import CounterpointEnv, Piece
from rlmusician.environment.evaluation import evaluate
cfg = yaml.safe_load(open(r.files('rlmusician') / 'configs' / 'default_config.yml'))
p = cfg['piece']
piece = Piece(tonic=p['tonic'], scale_type=p['scale_type'], cantus_firmus=p['cantus_firmus'],
              counterpoint_specifications=p['counterpoint_specifications'],
              rules=p['rules'], rendering_params=p['rendering_params'])
e = cfg['environment']
env = CounterpointEnv(piece, e['scoring_coefs'], e['scoring_fn_params'], e['reward_for_dead_end'])
random.seed(0)
steps, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < 10:
    env.reset()
    done = False
    while not done:
        _, _, done, info = env.step(random.choice(env.valid_actions))
        steps += 1
print('steps_per_s', steps / (time.perf_counter() - t0))
times = []
for _ in range(50):
    t = time.perf_counter()
    evaluate(env.piece, e['scoring_coefs'], e['scoring_fn_params'])
    times.append(time.perf_counter() - t)
print('eval_ms', 1000 * statistics.median(times))
"""


def env_speed(seconds: float = 10.0, *, compiled: bool = True) -> dict:
    """Env steps/s of a random masked policy through ``env.step``: the first episodes on a
    fresh exercise (rules judged for every new state) and later ones (cached verdicts). The
    cold time runs from building the env, so it includes the set-up of the first reset, also
    reported alone. ``compiled``: the compiled rules and search (loaded before the clock
    starts, as in any process past its first exercise) or the Python rule path (which builds
    the static verdict table of the whole exercise at the first reset)."""
    if compiled:  # load the compiled code (once per process) before the clock starts
        warm_up = CounterpointEnv(cantus_firmus="fux_dorian", species=2)
        warm_up.oracle.compiled = True
        warm_up.reset()
    rng = np.random.default_rng(0)
    result = {}
    t0 = time.perf_counter()
    env = CounterpointEnv()
    env.oracle.compiled = compiled
    for phase in ("cold_first_10_episodes", "warm"):
        steps, episodes = 0, 0
        if phase == "warm":
            t0 = time.perf_counter()
        while (episodes < 10 if phase.startswith("cold") else time.perf_counter() - t0 < seconds):
            t_reset = time.perf_counter()
            _, info = env.reset()
            if phase.startswith("cold") and episodes == 0:
                result["first_reset_ms"] = 1000 * (time.perf_counter() - t_reset)
            done = False
            while not done:
                action = int(rng.choice(np.flatnonzero(info["action_mask"])))
                _, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
                steps += 1
            episodes += 1
        result[f"steps_per_s_{phase}"] = steps / (time.perf_counter() - t0)
        result[f"steps_{phase}"] = steps
    return result


def fresh_exercise_speed(seconds: float = 10.0, *, n_exercises: int = 200, seed: int = 0,
                         compiled: bool = True) -> dict:
    """Env steps/s with a fresh exercise every episode, set-up included: for each episode a
    new ``CounterpointEnv`` on the next of ``n_exercises`` generated exercises (species 1-5
    and the six modes in turn, ``generate_exercises(n, seed=seed)``, made before the clock
    starts), its first ``reset`` (empty rule caches: nothing is carried from one env to the
    next but tables that do not depend on the cantus), then one episode of a random masked
    policy (Python's ``random``, as RL-Musician's own measure: a cheap policy, so that the
    env's time is what is measured), for ``seconds``. ``compiled=False`` runs the Python rule
    path instead of the compiled one (musicgym.music.rules.fastmask), for comparison. Making
    the exercises and one untimed episode (which load the compiled code from numba's cache,
    or compile it on a first run) are timed apart, as ``start_s``."""
    import random

    from musicgym.music.cantus import generate_exercises

    t0 = time.perf_counter()
    exercises = generate_exercises(n_exercises + 1, seed=seed)

    def episode(exercise: dict, rng: random.Random) -> int:
        env = CounterpointEnv(**exercise)
        env.oracle.compiled = compiled  # (an attribute the code before it ignores)
        _, info = env.reset()
        steps, done = 0, False
        while not done:
            allowed = np.flatnonzero(info["action_mask"]).tolist()
            _, _, terminated, truncated, info = env.step(allowed[rng.randrange(len(allowed))])
            done = terminated or truncated
            steps += 1
        return steps

    rng = random.Random(seed)
    episode(exercises[-1], rng)
    start_s = time.perf_counter() - t0
    steps = episodes = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        steps += episode(exercises[episodes % n_exercises], rng)
        episodes += 1
    elapsed = time.perf_counter() - t0
    return {"steps_per_s": steps / elapsed, "steps": steps, "episodes": episodes,
            "ms_per_episode": 1000 * elapsed / episodes, "start_s": start_s,
            "compiled": compiled}


def fresh_baseline(src: str | None, seconds: float) -> dict | None:
    """:func:`fresh_exercise_speed` of another checkout's code (its ``src`` folder), in a
    subprocess: the code before a change, measured in the same run."""
    if not src:
        return None
    run = subprocess.run([sys.executable, __file__, "--fresh-only", "--fresh-seconds",
                          str(seconds)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": src})
    if run.returncode != 0:
        return {"status": "failed: " + run.stderr.strip()[-300:]}
    return {"status": "ok", **json.loads(run.stdout.strip().splitlines()[-1])}


def fresh_rows(seconds: float, peer: dict, baseline_src: str | None) -> dict:
    """The fresh-exercise rows: this code (compiled rules, then the Python rule path), an
    optional baseline checkout, each against RL-Musician's steps/s from the same run."""
    rows = {"compiled": fresh_exercise_speed(seconds),
            "python_rules": fresh_exercise_speed(seconds, compiled=False)}
    baseline = fresh_baseline(baseline_src, seconds)
    if baseline is not None:
        rows["baseline"] = {**baseline, "src": baseline_src}
    return rows


def print_fresh(rows: dict, peer: dict) -> None:
    print("\n| fresh exercise every episode (set-up included) | steps/s | ms/episode | "
          "x RL-Musician |\n|---|---|---|---|")
    names = {"compiled": "this code", "python_rules": "this code, Python rule path",
             "baseline": f"baseline {rows.get('baseline', {}).get('src')}"}
    for key, row in rows.items():
        if row.get("status", "ok") != "ok":
            print(f"| {names[key]} | {row['status']} | | |")
            continue
        ratio = (f"{row['steps_per_s'] / peer['steps_per_s']:.1f}x"
                 if peer["status"] == "ok" else "-")
        print(f"| {names[key]} | {row['steps_per_s']:.0f} | {row['ms_per_episode']:.2f} | "
              f"{ratio} |")


def evaluation_time_ms(repeats: int = 300) -> float:
    """Median time of the terminal evaluation (RL-Musician's five scores) of a finished piece."""
    env = CounterpointEnv()
    _, actions = random_search(env, seed=0)
    state = _replay(env, actions)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        score_piece(state)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def _replay(env: CounterpointEnv, actions: list[int]):
    env.reset()
    for action in actions:
        env.step(action)
    return env.state


def judge(env: CounterpointEnv, composer, seeds: list[int], *, budget: bool = False) -> dict:
    """Compose one piece per seed and judge it from its notes. With ``budget``, ``composer``
    takes ``(seed, stats)`` and fills ``stats`` with the search budget it used."""
    rows = []
    for seed in seeds:
        stats: dict = {}
        t0 = time.perf_counter()
        _, actions = composer(seed, stats) if budget else composer(seed)
        seconds = time.perf_counter() - t0
        state = _replay(env, actions)
        if not state.finished:
            rows.append({"seed": seed, "finished": False, "seconds": seconds})
            continue
        result = evaluate_piece(piece_from_counterpoint(state, actions=actions))
        rows.append({"seed": seed, "finished": True, "seconds": seconds,
                     "total": result["scores"]["total"],
                     "hard_violations": result["hard_violations"],
                     "parallel_perfects": result["parallel_perfects"], **stats})
        print(f"  seed {seed}: {rows[-1]}", flush=True)
        rows[-1]["actions"] = [int(a) for a in actions]
    done = [r for r in rows if r["finished"]]
    return {"pieces": rows, "n": len(rows), "finished": len(done),
            "mean_total": float(np.mean([r["total"] for r in done])) if done else None,
            "best_total": float(np.max([r["total"] for r in done])) if done else None,
            "hard_violations": int(sum(r["hard_violations"] for r in done)),
            "parallel_perfects": int(sum(r["parallel_perfects"] for r in done)),
            "seconds_per_piece": float(np.mean([r["seconds"] for r in rows])),
            "max_seconds": float(np.max([r["seconds"] for r in rows])),
            "distinct_pieces": len({tuple(r.get("actions", ())) for r in rows})}


def _budget(method: dict) -> str:
    """The mean search budget per piece, in words."""
    pieces = method["pieces"]

    def mean(key: str) -> float:
        return float(np.mean([p.get(key, 0) for p in pieces]))

    if pieces and "rollouts" in pieces[0]:
        return (f"{mean('rollouts'):.0f} random rollouts, {mean('evaluations'):.0f} pieces "
                "scored")
    if pieces and "children" in pieces[0]:
        return (f"{mean('expanded'):.0f} partial pieces extended, {mean('children'):.0f} "
                f"notes tried, {mean('evaluations'):.0f} pieces scored")
    return "one sampled piece"


def rl_musician(python: str | None) -> dict:
    """RL-Musician 0.4.6's env speed, run in its own venv (or why it could not be run)."""
    if not python:
        return {"status": "not run: give --rl-musician-python (a venv with rl-musician==0.4.6)"}
    try:
        run = subprocess.run([python, "-c", RLM_SCRIPT], capture_output=True, text=True,
                             timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"status": f"failed: {exc}"}
    if run.returncode != 0:
        return {"status": "failed: " + run.stderr.strip().splitlines()[-1][:300]}
    values = dict(line.split() for line in run.stdout.splitlines() if line.count(" ") == 1)
    return {"status": "ok", "steps_per_s": float(values["steps_per_s"]),
            "eval_ms": float(values["eval_ms"])}


def print_speed(speed: dict, eval_ms: float, peer: dict) -> None:
    print("\n| what | figure |\n|---|---|")
    print(f"| env steps/s, first 10 episodes (cold rule cache, compiled rules) | "
          f"{speed['steps_per_s_cold_first_10_episodes']:.0f} |")
    print(f"| first reset, ms | "
          f"{speed['first_reset_ms']:.1f} |")
    print(f"| env steps/s, warm cache | {speed['steps_per_s_warm']:.0f} |")
    if "python_rules" in speed:
        slow = speed["python_rules"]
        print(f"| the same, Python rule path: first 10 episodes / first reset / warm | "
              f"{slow['steps_per_s_cold_first_10_episodes']:.0f} / "
              f"{slow['first_reset_ms']:.1f} ms / {slow['steps_per_s_warm']:.0f} |")
    print(f"| terminal evaluation (5 scores), median | {eval_ms:.3f} ms |")
    if peer["status"] == "ok":
        print(f"| RL-Musician 0.4.6 env steps/s / evaluation | {peer['steps_per_s']:.0f} / "
              f"{peer['eval_ms']:.2f} ms |")
        print(f"| ratio steps/s (ours warm / RL-Musician) | "
              f"{speed['steps_per_s_warm'] / peer['steps_per_s']:.1f}x |")
        print(f"| ratio steps/s (ours cold / RL-Musician) | "
              f"{speed['steps_per_s_cold_first_10_episodes'] / peer['steps_per_s']:.1f}x |")
    else:
        print(f"| RL-Musician 0.4.6 | {peer['status']} |")


def train_counterpoint_ppo(env, steps: int):
    """MaskablePPO trained by musicgym's runner with the composition defaults (a temporary run)."""
    import tempfile

    from musicgym.train.config import resolve
    from musicgym.train.runfiles import load_run
    from musicgym.train.runner import train

    with tempfile.TemporaryDirectory() as runs:
        config = resolve({"env_id": "musicgym/Counterpoint-v0", "steps": steps, "seed": 0,
                          "eval_episodes": 1})
        return load_run(train(config, runs_root=runs, progress=False), env=env)[1]


SPECIES_RESULTS = Path(__file__).parent / "results" / "compose_species.json"


def species_quality(*, width: int, n_generated: int, random_pieces: int,
                    variety_pieces: int) -> dict:
    """Issue 14's rows: the Fux quality (0-3) by species 1-5 of the guided search with the
    Fux objective and of random pieces, on a test set of cantus firmi none of the search's
    settings were tuned on (Fux's six, and ``n_generated`` from generate_cantus seeds
    900_000+, one per mode in turn), counterpoint above; then variety: ``variety_pieces``
    pieces per exercise at diversity 0 and 0.5 on Fux's six, species 1-5."""
    from musicgym.compose.evaluate import mean_pairwise_difference
    from musicgym.compose.search import diverse_pieces, piece_eighths
    from musicgym.music.cantus import (
        CANTUS_MODES,
        admits_counterpoint,
        counterpoint_exercise,
        fux_cantus_firmi,
        generate_cantus,
    )
    from musicgym.music.rules.quality import fux_quality

    test_set = dict(fux_cantus_firmi())
    for i in range(n_generated):
        mode = CANTUS_MODES[i % len(CANTUS_MODES)]
        test_set[f"generated_{mode}_{900_000 + i}"] = generate_cantus(seed=900_000 + i,
                                                                      mode=mode)
    rows, skipped = {}, []
    for species in range(1, 6):
        guided, rand, seconds = [], [], []
        for name, cantus in test_set.items():
            ex = counterpoint_exercise(cantus, species=species)
            if not admits_counterpoint(ex):
                skipped.append(f"{name} species {species}")
                continue
            env = CounterpointEnv(**ex)
            t0 = time.perf_counter()
            _, actions = guided_beam_search(env, seed=0, beam_width=width, objective="fux")
            seconds.append(time.perf_counter() - t0)
            guided.append(fux_quality(_replay(env, actions))["total"])
            rand += [fux_quality(_replay(env, random_search(env, seed=s)[1]))["total"]
                     for s in range(random_pieces)]
        rows[species] = {"guided_fux": float(np.mean(guided)), "random": float(np.mean(rand)),
                         "exercises": len(guided), "guided_seconds": float(np.mean(seconds))}
        print(f"  species {species}: guided (fux) {rows[species]['guided_fux']:.2f}, random "
              f"{rows[species]['random']:.2f} over {len(guided)} cantus firmi", flush=True)
    variety = {}
    for diversity in (0.0, 0.5):
        shares, quality = [], []
        for cantus in fux_cantus_firmi().values():
            for species in range(1, 6):
                ex = counterpoint_exercise(cantus, species=species)
                if not admits_counterpoint(ex):
                    continue
                env = CounterpointEnv(**ex)
                pieces = diverse_pieces(env, variety_pieces, seed=0, diversity=diversity,
                                        objective="fux", beam_width=width)
                shares.append(mean_pairwise_difference([piece_eighths(env, a)
                                                        for _, a in pieces]))
                quality += [fux_quality(_replay(env, a))["total"] for _, a in pieces]
        variety[str(diversity)] = {"differing_notes": float(np.mean(shares)),
                                   "fux_quality": float(np.mean(quality))}
        print(f"  variety at diversity {diversity}: {100 * np.mean(shares):.1f} % differing "
              f"notes, Fux quality {np.mean(quality):.2f}", flush=True)
    return {"test_set": {k: [int(m) for m in v] for k, v in test_set.items()},
            "skipped (the strict rules admit no counterpoint)": skipped,
            "guided_width": width, "by_species": rows, "variety": variety}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beam-pieces", type=int, default=5)
    parser.add_argument("--guided-pieces", type=int, default=5)
    parser.add_argument("--guided-width", type=int, default=1000)
    parser.add_argument("--guided-noise", type=float, nargs="+", default=[0.02, 0.1],
                        help="one guided-beam row per value (seeded tie-break noise)")
    parser.add_argument("--random-pieces", type=int, default=20)
    parser.add_argument("--ppo-steps", type=int, default=20_000)
    parser.add_argument("--ppo-pieces", type=int, default=10)
    parser.add_argument("--rl-musician-python", default=os.environ.get("MUSICGYM_RLM_PYTHON"),
                        help="python of a venv with rl-musician==0.4.6 (default: "
                             "$MUSICGYM_RLM_PYTHON, which `make bench` sets)")
    parser.add_argument("--speed-only", action="store_true",
                        help="only env speed and evaluation time, written to "
                             f"{SPEED_RESULTS.name}")
    parser.add_argument("--species-quality", action="store_true",
                        help="only issue 14's rows (Fux quality by species 1-5 on Fux's and "
                             f"generated cantus firmi, and variety), written to "
                             f"{SPECIES_RESULTS.name}")
    parser.add_argument("--generated-cantus", type=int, default=6)
    parser.add_argument("--fresh-seconds", type=float, default=10.0,
                        help="seconds of each fresh-exercise row")
    parser.add_argument("--baseline-src",
                        help="the src folder of another checkout (e.g. the code before a "
                             "change), whose fresh-exercise speed is measured in the same run")
    parser.add_argument("--fresh-only", action="store_true",
                        help="only the fresh-exercise speed of the importable musicgym, as "
                             "one JSON line (what --baseline-src runs)")
    args = parser.parse_args()

    if args.fresh_only:
        print(json.dumps(fresh_exercise_speed(args.fresh_seconds)))
        return 0

    if args.species_quality:
        print("Fux quality by species and variety...", flush=True)
        result = species_quality(width=min(args.guided_width, 200),
                                 n_generated=args.generated_cantus, random_pieces=5,
                                 variety_pieces=3)
        SPECIES_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        SPECIES_RESULTS.write_text(json.dumps({"machine": platform.platform(), **result},
                                              indent=1), encoding="utf-8")
        return 0

    print("env speed...", flush=True)
    speed = env_speed()
    speed["python_rules"] = env_speed(compiled=False)
    eval_ms = evaluation_time_ms()
    peer = rl_musician(args.rl_musician_python)
    print("fresh-exercise speed...", flush=True)
    fresh = fresh_rows(args.fresh_seconds, peer, args.baseline_src)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if args.speed_only:
        print_speed(speed, eval_ms, peer)
        print_fresh(fresh, peer)
        SPEED_RESULTS.write_text(json.dumps({
            "machine": platform.platform(), "python": platform.python_version(),
            "env_speed": speed, "evaluation_ms": eval_ms, "rl_musician": peer,
            "fresh_exercise": fresh}, indent=1), encoding="utf-8")
        print(f"\nwrote {SPEED_RESULTS}")
        return 0
    env = CounterpointEnv()
    print("random pieces...", flush=True)
    methods = {"random": judge(env, lambda s: random_search(env, seed=s),
                               list(range(args.random_pieces)))}
    for noise in args.guided_noise:
        name = f"guided beam (width {args.guided_width}, noise {noise:g})"
        print(f"{name}...", flush=True)
        # each search piece gets a fresh env: its rule caches start empty, as for a new exercise
        methods[name] = judge(
            env, lambda s, stats, noise=noise: guided_beam_search(
                CounterpointEnv(), seed=s, beam_width=args.guided_width, noise=noise,
                stats=stats),
            list(range(args.guided_pieces)), budget=True)
    print("beam search at RL-Musician's default budget...", flush=True)
    methods["beam (RL-Musician default budget)"] = judge(
        env, lambda s, stats: beam_search(CounterpointEnv(), seed=s, stats=stats),
        list(range(args.beam_pieces)), budget=True)
    print(f"masked PPO ({args.ppo_steps} training steps)...", flush=True)
    t0 = time.perf_counter()
    ppo_env = CounterpointEnv()
    model = train_counterpoint_ppo(ppo_env, args.ppo_steps)
    train_s = time.perf_counter() - t0
    methods[f"masked PPO ({args.ppo_steps} steps)"] = judge(
        ppo_env, lambda s: compose_with_policy(model, ppo_env, seed=s),
        list(range(args.ppo_pieces)))
    methods[f"masked PPO ({args.ppo_steps} steps)"]["train_seconds"] = train_s

    print_speed(speed, eval_ms, peer)
    print_fresh(fresh, peer)
    print("\n| method | pieces (distinct) | finished | mean total | best | hard viol. | "
          "parallel perfects | s/piece (max) | budget/piece (mean) |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for name, m in methods.items():
        mean = f"{m['mean_total']:.3f}" if m["mean_total"] is not None else "-"
        best = f"{m['best_total']:.3f}" if m["best_total"] is not None else "-"
        print(f"| {name} | {m['n']} ({m['distinct_pieces']}) | {m['finished']} | {mean} | "
              f"{best} | "
              f"{m['hard_violations']} | {m['parallel_perfects']} | "
              f"{m['seconds_per_piece']:.2f} ({m['max_seconds']:.2f}) | {_budget(m)} |")
    if "train_seconds" in methods[f"masked PPO ({args.ppo_steps} steps)"]:
        print(f"(PPO training took {train_s:.1f} s, not counted per piece)")
    RESULTS.write_text(json.dumps({
        "machine": platform.platform(), "python": platform.python_version(),
        "env_speed": speed, "evaluation_ms": eval_ms, "rl_musician": peer,
        "fresh_exercise": fresh, "methods": methods, "args": vars(args)}, indent=1),
        encoding="utf-8")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
