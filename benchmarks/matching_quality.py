"""Sound-matching quality on real one-shots: trained agents vs random search and CMA-ES.

On each recorded one-shot in ``../shared/data/oneshots`` (kicks, snares, a hat, a bass hit, a
blip, a bell), with one fixed patch (a sine-plus-filtered-noise drum voice with an envelope:
``musicgym/Snare-v0``'s patch and ranges), at equal budgets of synthesiser evaluations:

* one goal-conditioned PPO policy for all targets (it sees the target's features), proposing
  parameters for each target with a single forward pass;
* a PPO agent per target (the same budget per target);
* random search and CMA-ES per target.

Reported per target and on average: the MR-STFT distance and the 13-MFCC mean absolute error
(spiegelib's metric) of each method's sound, and the time the goal-conditioned policy needs to
propose parameters for a new target. Goal (issue 4): the goal-conditioned policy within 10 % of
CMA-ES's distance at a 1,000-evaluation budget.

    python benchmarks/matching_quality.py [--budget 1000] [--goal-steps 20000]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from musicgym.datapath import require_data_subdir


def env_kwargs(target, observation: str = "features") -> dict:
    from musicgym.envs.presets import PRESETS

    preset = PRESETS["Snare-v0"]
    return {"code": preset["code"], "target": target, "total_step": 1, "step_len": 0.5,
            "action_space": preset["action_space"], "observation": observation}


def sound_of(actions: np.ndarray, target) -> tuple[np.ndarray, np.ndarray]:
    from musicgym.train.baselines import render_actions

    clip, target_clip, _ = render_actions("musicgym/SynthMatch-v0",
                                          np.asarray(actions).reshape(1, -1),
                                          env_kwargs=env_kwargs(target))
    return clip, target_clip


def metrics(clip: np.ndarray, target_clip: np.ndarray) -> dict:
    from musicgym.train.evaluate import sound_metrics

    return sound_metrics(clip, target_clip, 44100)


def train_ppo(target, steps: int, seed: int, observation: str):
    import torch
    from gymnasium.vector import AutoresetMode
    from stable_baselines3 import PPO

    from musicgym.envs.synth_match_vector import SynthMatchVectorEnv
    from musicgym.train.sb3 import SB3VecEnv

    torch.set_num_threads(1)
    venv = SB3VecEnv(SynthMatchVectorEnv(num_envs=32, autoreset_mode=AutoresetMode.SAME_STEP,
                                         **env_kwargs(target, observation)))
    venv.seed(seed)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=128, n_epochs=10,
                learning_rate=3e-3, seed=seed, verbose=0)
    return model.learn(total_timesteps=steps)


def propose(model, target, observation: str) -> tuple[np.ndarray, float]:
    """The policy's action for a target (one forward pass) and the time it took."""
    import gymnasium as gym

    import musicgym  # noqa: F401

    env = gym.make("musicgym/SynthMatch-v0", **env_kwargs(target, observation))
    obs, _ = env.reset(seed=0)
    t0 = time.perf_counter()
    action, _ = model.predict(obs, deterministic=True)
    return np.asarray(action), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=1000, help="evaluations per method and target")
    ap.add_argument("--goal-steps", type=int, default=20_000,
                    help="training steps of the goal-conditioned policy (all targets)")
    ap.add_argument("--per-target-steps", type=int, default=None,
                    help="training steps per target agent (default: --budget)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" /
                                          "matching_quality.json"))
    args = ap.parse_args()
    from musicgym.train.baselines import cmaes, random_search

    oneshots = require_data_subdir("oneshots")
    files = sorted(oneshots.glob("*.flac"))
    per_target_steps = args.per_target_steps or args.budget
    print(f"{len(files)} one-shots; budget {args.budget} evaluations per method and target")
    t0 = time.perf_counter()
    goal_model = train_ppo(oneshots, args.goal_steps, args.seed, "goal")
    goal_train_s = time.perf_counter() - t0
    rows, propose_times = [], []
    for f in files:
        row = {"target": f.stem}
        action, dt = propose(goal_model, f, "goal")
        propose_times.append(dt)
        row["goal_policy"] = metrics(*sound_of(action, f))
        agent = train_ppo(f, per_target_steps, args.seed, "features")
        row["per_target_ppo"] = metrics(*sound_of(propose(agent, f, "features")[0], f))
        for name, search in (("random", random_search), ("cmaes", cmaes)):
            result = search("musicgym/SynthMatch-v0", args.budget, seed=args.seed,
                            env_kwargs=env_kwargs(str(f)))
            row[name] = metrics(*sound_of(np.asarray(result["best_actions"]), f))
        rows.append(row)
        print(f"  {f.stem:20s} " + "  ".join(f"{m} {row[m]['mrstft']:.3f}" for m in
                                              ("goal_policy", "per_target_ppo", "random",
                                               "cmaes")), flush=True)
    methods = ["goal_policy", "per_target_ppo", "random", "cmaes"]
    mean = {m: {k: float(np.mean([r[m][k] for r in rows])) for k in ("mrstft", "mfcc")}
            for m in methods}
    print("\n| target | " + " | ".join(f"{m} MR-STFT / MFCC" for m in methods) + " |")
    print("|---|" + "---|" * len(methods))
    for r in rows + [{"target": "**mean**", **mean}]:
        print(f"| {r['target']} | " + " | ".join(
            f"{r[m]['mrstft']:.3f} / {r[m]['mfcc']:.1f}" for m in methods) + " |")
    gap = mean["goal_policy"]["mrstft"] / mean["cmaes"]["mrstft"] - 1.0
    print(f"\ngoal-conditioned policy: {goal_train_s:.0f} s training on all targets, "
          f"{1000 * np.median(propose_times):.2f} ms to propose parameters for a target")
    print(f"{'met    ' if gap <= 0.10 else 'NOT MET'}  goal policy within 10 % of CMA-ES "
          f"(it is {gap:+.1%})")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({
        "command": "python benchmarks/matching_quality.py", "machine": platform.platform(),
        "budget": args.budget, "goal_steps": args.goal_steps, "rows": rows, "mean": mean,
        "goal_policy_train_s": goal_train_s, "propose_ms": 1000 * float(np.median(propose_times)),
        "gap_vs_cmaes": gap}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
