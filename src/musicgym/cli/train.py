"""``musicgym train``, ``musicgym evaluate``, ``musicgym baseline`` and ``musicgym demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from musicgym.errors import ConfigError, OutputError


def add_parser(subparsers) -> None:
    t = subparsers.add_parser(
        "train", help="train an agent (Stable-Baselines3) on a registered env",
        description="Train on ENV_ID; writes runs/<timestamp>-<ALGO>/ (model, config, "
                    "TensorBoard logs, evaluations, atomic checkpoints).")
    t.add_argument("env_id", nargs="?", help="e.g. musicgym/Kick-v0 (or give --config/--resume)")
    t.add_argument("--algo", choices=["ppo", "a2c", "sac", "td3", "dqn", "maskable_ppo",
                                      "recurrent_ppo"])
    t.add_argument("--steps", type=int, help="environment steps (default 20000)")
    t.add_argument("--n-envs", type=int, help="parallel envs (default 16)")
    t.add_argument("--seed", type=int)
    t.add_argument("--config", help="YAML/JSON file with any TrainConfig field")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its checkpoint")
    t.add_argument("--eval-every", type=int, help="evaluate every N steps")
    t.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps")
    t.add_argument("--runs", default="runs", help="folder for new runs (default runs/)")
    t.add_argument("--backend", choices=["sb3", "rllib"], default="sb3",
                   help="sb3: Stable-Baselines3 on this machine (default); rllib: Ray RLlib's "
                        "PPO, locally or on a Ray cluster")
    t.add_argument("--num-env-runners", type=int, default=2,
                   help="rllib: sampling processes, one CPU each (default 2; 0: in the driver)")
    t.add_argument("--address", help="rllib: an existing Ray cluster, e.g. ray://HOST:10001 "
                                     "(default: RAY_ADDRESS if set, else a local Ray)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=run_train)

    e = subparsers.add_parser("evaluate", help="evaluate a training run")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=8)
    e.set_defaults(func=run_evaluate)

    b = subparsers.add_parser("baseline", help="random search or CMA-ES on a sound-matching env")
    b.add_argument("env_id")
    b.add_argument("--method", choices=["random", "cmaes"], default="cmaes")
    b.add_argument("--budget", type=int, default=1000, help="synthesiser evaluations (episodes)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("-o", "--output", help="write the result as JSON here")
    b.set_defaults(func=run_baseline)

    d = subparsers.add_parser("demo", help="the main job on its built-in default: train on the "
                                           "kick preset, compare with baselines, write out/demo/")
    d.add_argument("-o", "--output", default="out/demo")
    d.add_argument("--steps", type=int, default=None, help="training steps (default: a budget "
                                                           "that fits about 2 minutes here)")
    d.set_defaults(func=run_demo)


def run_train(args: argparse.Namespace) -> int:
    from musicgym.train.config import TrainConfig
    from musicgym.train.runner import train

    overrides = {"env_id": args.env_id, "algo": args.algo, "steps": args.steps,
                 "n_envs": args.n_envs, "seed": args.seed, "eval_every": args.eval_every,
                 "checkpoint_every": args.checkpoint_every}
    given = {k: v for k, v in overrides.items() if v is not None}
    if args.backend == "rllib":
        return _run_train_rllib(args, given)
    if args.resume:
        config = TrainConfig(**{k: v for k, v in given.items() if k == "steps"}) \
            if "steps" in given else None
        run_dir = train(config, resume=args.resume, progress=not args.no_progress)
    else:
        if args.config:
            config = TrainConfig.load(args.config, **given)
        elif args.env_id:
            config = TrainConfig(**given)
        else:
            raise ConfigError("give an ENV_ID, --config FILE or --resume RUN_DIR")
        run_dir = train(config, runs_root=args.runs, progress=not args.no_progress)
    print(f"run written to {run_dir}/ (model.zip, config.yaml, evaluations.json, tensorboard/)")
    print(f"evaluate it with: musicgym evaluate {run_dir}")
    return 0


def _run_train_rllib(args: argparse.Namespace, given: dict) -> int:
    from musicgym.train.config import TrainConfig
    from musicgym.train.rllib import train_rllib

    if args.resume:
        raise ConfigError("--resume is not supported with --backend rllib; restore its "
                          "checkpoint/ with ray.rllib's Algorithm.from_checkpoint")
    if args.config:
        config = TrainConfig.load(args.config, **given)
    elif args.env_id:
        config = TrainConfig(**given)
    else:
        raise ConfigError("give an ENV_ID or --config FILE")
    run_dir = train_rllib(config, num_env_runners=args.num_env_runners, address=args.address,
                          runs_root=args.runs, progress=not args.no_progress)
    print(f"run written to {run_dir}/ (checkpoint/, config.yaml, metrics.json, "
          "evaluations.json)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from musicgym.train.evaluate import evaluate_run

    metrics = evaluate_run(args.run_dir, args.episodes)
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    print(f"wrote {args.run_dir}/eval/ (metrics.json and, for sound tasks, WAVs and PNGs)")
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from musicgym.train.baselines import cmaes, random_search

    search = cmaes if args.method == "cmaes" else random_search
    result = search(args.env_id, args.budget, seed=args.seed)
    print(f"{args.method} on {args.env_id}: best clip distance {result['best_distance']:.4f} "
          f"after {result['evaluations']} evaluations ({result['seconds']:.1f} s)")
    print(f"best parameters per step: {result['best_params']}")
    if args.output:
        output = Path(args.output)
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(result, indent=2), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {str(output)!r}: {exc.strerror}; give --output a "
                              "path you can write to") from None
        print(f"wrote {args.output}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from musicgym.train.demo import demo

    demo(args.output, steps=args.steps)
    return 0
