"""``musicgym demo``: the main job on its built-in default, start to finish in a few minutes.

Trains PPO on ``musicgym/Kick-v0`` (RaveForce's kick patch against a kick musicgym synthesises
itself with a different model), compares the agent with random search and CMA-ES at the same
number of synthesiser evaluations, and writes ``out/demo/``: ``target.wav``, ``agent.wav``,
``random.wav``, ``cmaes.wav``, ``comparison.png`` (target / agent / difference spectrograms),
``curve.png`` (the agent's learning curve beside the baselines' results) and ``summary.md``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from musicgym.train.config import TrainConfig

ENV_ID = "musicgym/Kick-v0"
DEFAULT_STEPS = 8192


def demo(output: str | Path = "out/demo", *, steps: int | None = None, seed: int = 0) -> Path:
    """Run the demo and return the folder it wrote (see the module docstring)."""
    from musicgym.audio.io import write_wav
    from musicgym.train.baselines import cmaes, random_search, render_actions
    from musicgym.train.evaluate import comparison_png, curve_png, load_run, run_episodes
    from musicgym.train.runner import train

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    steps = steps or DEFAULT_STEPS
    t0 = time.perf_counter()
    print(f"1/3 training PPO on {ENV_ID} for {steps} steps (16 envs in one engine call)")
    config = TrainConfig(env_id=ENV_ID, algo="ppo", steps=steps, n_envs=16, seed=seed,
                         eval_every=max(512, steps // 8), eval_episodes=1,
                         algo_kwargs={"n_steps": 32, "batch_size": 128, "n_epochs": 10,
                                      "learning_rate": 3e-3, "ent_coef": 0.0})
    run_dir = train(config, runs_root=out / "runs", progress=True)
    train_s = time.perf_counter() - t0
    config, model = load_run(run_dir)
    agent = run_episodes(model, config, 1)[0]
    print(f"2/3 random search and CMA-ES with the same budget ({steps} evaluations)")
    results = {}
    for name, search in (("random", random_search), ("cmaes", cmaes)):
        results[name] = search(ENV_ID, steps, seed=seed)
    print("3/3 writing sounds, pictures and the summary")
    target, sr = agent["target"], agent["sr"]
    write_wav(out / "target.wav", target, sr)
    write_wav(out / "agent.wav", agent["clip"], sr)
    for name, result in results.items():
        clip, _, _ = render_actions(ENV_ID, np.asarray(result["best_actions"]))
        write_wav(out / f"{name}.wav", clip, sr)
    comparison_png(out / "comparison.png", target, agent["clip"], sr)
    evaluations = json.loads((run_dir / "evaluations.json").read_text())
    curve_png(out / "curve.png", evaluations, title=f"PPO on {ENV_ID}",
              baselines={name: r["best_distance"] for name, r in results.items()})
    summary = _summary(agent, results, steps, train_s, run_dir)
    (out / "summary.md").write_text(summary, encoding="utf-8")
    print()
    print(summary)
    print(f"Everything is in {out}/ (listen to target.wav and agent.wav).")
    return out


def _summary(agent: dict, results: dict, steps: int, train_s: float, run_dir: Path) -> str:
    rows = [("PPO agent (one forward pass)", agent["clip_distance"], f"{train_s:.0f} s training")]
    rows += [(f"{name} search, best of {r['evaluations']}", r["best_distance"],
              f"{r['seconds']:.1f} s") for name, r in results.items()]
    lines = ["# musicgym demo: matching a kick", "",
             f"Task `{ENV_ID}`: RaveForce's kick patch (attack, decay, frequency of a sine kick) "
             "against a swept-sine kick synthesised by a different model, so no setting matches "
             "it exactly. Distance: multi-resolution STFT (lower is better).", "",
             "| method | distance to the target | time |", "|---|---|---|"]
    lines += [f"| {name} | {dist:.4f} | {cost} |" for name, dist, cost in rows]
    lines += ["", f"Budget: {steps} synthesiser evaluations for every method (the agent's "
              f"training episodes). The trained run is in `{run_dir}`."]
    return "\n".join(lines) + "\n"
