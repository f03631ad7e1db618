"""``musicgym train``, ``musicgym evaluate``, ``musicgym report``, ``musicgym baseline`` and
``musicgym demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from musicgym.errors import OutputError, UsageError
from musicgym.train.config import ALGOS, LEARNERS


def add_parser(subparsers) -> None:
    t = subparsers.add_parser(
        "train", help="train an agent (Stable-Baselines3) on any registered env",
        description="Train on ENV_ID with its family's defaults (train/defaults/*.yaml), your "
                    "--config (or CONFIG.yaml in ENV_ID's place) and flags over them; writes "
                    "runs/<timestamp>-<ALGO>/ (model, resolved config, TensorBoard and CSV "
                    "logs, evaluations, atomic checkpoints). algo inverse trains the "
                    "improvisation env's inverse improviser into the same folder layout "
                    "(examples/improvise_inverse_*.yaml). Exit code 2: the run cannot work "
                    "(nothing written).")
    t.add_argument("env_id", nargs="?", help="e.g. musicgym/Kick-v0, or a config file "
                                             "(CONFIG.yaml: as --config) (or give --resume)")
    t.add_argument("--algo", choices=list(ALGOS),
                   help="algorithm (default: the env family's; it must fit the env's action "
                        "space, maskable_ppo needs action masks)")
    t.add_argument("--steps", type=int, help="environment steps to train; rollouts are sized "
                                             "to it (default: the family's)")
    t.add_argument("--n-envs", type=int, help="parallel envs (default: the family's)")
    t.add_argument("--seed", type=int, help="seeds envs, algorithm and evaluation (default 0)")
    t.add_argument("--config", help="YAML/JSON file with any TrainConfig field")
    t.add_argument("--resume", metavar="RUN", help="continue a run from its last good "
                                                   "checkpoint (--steps N extends it to N)")
    t.add_argument("--eval-every", type=int, help="evaluate (and checkpoint) every N steps "
                                                  "(default 0: at the end)")
    t.add_argument("--checkpoint-every", type=int,
                   help="checkpoint every N steps (default: a tenth of the budget)")
    t.add_argument("--runs", default="runs", help="folder for new runs (default runs/)")
    t.add_argument("--backend", choices=["sb3", "rllib"], default="sb3",
                   help="sb3: Stable-Baselines3 on this machine (default); rllib: Ray RLlib's "
                        "PPO, locally or on a Ray cluster")
    t.add_argument("--num-env-runners", type=int, default=2,
                   help="rllib: sampling processes, one CPU each (default 2; 0: in the driver)")
    t.add_argument("--address", help="rllib: an existing Ray cluster, e.g. HEAD:6379 from one "
                                     "of its machines or ray://HEAD:10001 (Ray Client) "
                                     "(default: RAY_ADDRESS if set, else a local Ray)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "evaluate", help="evaluate a training run of any env family",
        description="Play the run's agent and write what to look at or listen to into "
                    "RUN/eval/ (or -o): metrics.json and curve.png always; sound matching: "
                    "target/agent WAVs and a spectrogram comparison; composition: the piece "
                    "as MIDI, MusicXML, WAV and piano roll; improvisation: the synth's WAV and "
                    "descriptor traces; accompaniment: a two-track MIDI, its sound and an "
                    "asynchrony plot; and report.html, the page musicgym report writes.")
    e.add_argument("run_dir", metavar="RUN", help="a run folder made by musicgym train")
    e.add_argument("--episodes", type=int, default=8, help="episodes for the metrics (default 8)")
    e.add_argument("-o", "--output", help="output folder (default RUN/eval)")
    e.set_defaults(func=run_evaluate)

    r = subparsers.add_parser(
        "report", help="write a run's report page: one self-contained HTML file",
        description="Write one HTML page (sounds, pictures and styles embedded: it opens "
                    "offline) with the run's audio players (target, agent, baselines), "
                    "pictures, learning curves, metrics and configuration, for a run of any "
                    "family. Reads RUN/eval/, evaluating the run first if it was not.")
    r.add_argument("run_dir", metavar="RUN", help="a run folder made by musicgym train")
    r.add_argument("--episodes", type=int, default=8,
                   help="episodes of the evaluation, if the run has none yet (default 8)")
    r.add_argument("-o", "--output", help="output folder: writes report.html there (default "
                                          "RUN/eval)")
    r.set_defaults(func=run_report)

    b = subparsers.add_parser(
        "baseline", help="random search or CMA-ES on a sound-matching env",
        description="Search the env's action space for the settings closest to its target, "
                    "with no learning: BUDGET whole episodes rendered in batches; prints the "
                    "best clip distance and settings (-o DIR writes DIR/METHOD.json).")
    b.add_argument("env_id", help="a sound-matching env, e.g. musicgym/Kick-v0")
    b.add_argument("--method", choices=["random", "cmaes"], default="cmaes",
                   help="search method (default cmaes)")
    b.add_argument("--budget", type=int, default=1000, help="synthesiser evaluations (episodes)")
    b.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    b.add_argument("-o", "--output", help="output folder: writes METHOD.json there")
    b.set_defaults(func=run_baseline)

    d = subparsers.add_parser("demo", help="the main job on its built-in default: the built-in "
                                           "matcher against search on unheard sounds, PPO on "
                                           "one kick, write out/demo/",
                              description="The built-in Snare-v0 matcher names the settings of "
                                          "held-out sounds in one pass, against random search "
                                          "and CMA-ES at 1,000 evaluations and the matcher + "
                                          "CMA-ES at 100; then PPO on musicgym/Kick-v0 against "
                                          "search at the same number of evaluations. Writes "
                                          "sounds, pictures and a summary to the output folder "
                                          "(about a minute on 2 cores).")
    d.add_argument("-o", "--output", default="out/demo", help="output folder (default out/demo)")
    d.add_argument("--steps", type=int, default=None,
                   help="PPO's training steps on Kick-v0 (default 8192)")
    d.add_argument("--budget", type=int, default=1000,
                   help="random search's and CMA-ES's evaluations per held-out target "
                        "(default 1000)")
    d.add_argument("--hybrid-budget", type=int, default=100,
                   help="the matcher + CMA-ES's evaluations per target (default 100)")
    d.add_argument("--targets", choices=["auto", "real", "synthetic"], default="auto",
                   help="held-out targets: the real one-shots, sounds of the patch at random "
                        "settings, or the real ones when found (default auto)")
    d.set_defaults(func=run_demo)


def run_train(args: argparse.Namespace) -> int:
    from musicgym.train.config import TrainConfig, read_config_file, resolve
    from musicgym.train.runner import train

    if args.env_id and not args.config and Path(args.env_id).suffix in (".yaml", ".yml",
                                                                          ".json"):
        args.config, args.env_id = args.env_id, None   # musicgym train CONFIG.yaml
    overrides = {"env_id": args.env_id, "algo": args.algo, "steps": args.steps,
                 "n_envs": args.n_envs, "seed": args.seed, "eval_every": args.eval_every,
                 "checkpoint_every": args.checkpoint_every}
    given = {k: v for k, v in overrides.items() if v is not None}
    if args.backend == "rllib":
        return _run_train_rllib(args, given)
    if args.resume:
        if set(given) - {"steps"}:
            raise UsageError(f"--resume continues a run with its own config; only --steps may "
                             f"change (given: {', '.join(sorted(set(given) - {'steps'}))})")
        config = TrainConfig(steps=given["steps"]) if "steps" in given else None
        run_dir = train(config, resume=args.resume, progress=not args.no_progress)
    else:
        if args.config:
            fields = {**read_config_file(args.config), **given}
            config = resolve(fields, source=f"{args.config} + flags")
        elif args.env_id:
            config = resolve(given)
        else:
            raise UsageError("give an ENV_ID, --config FILE or --resume RUN")
        run_dir = train(config, runs_root=args.runs, progress=not args.no_progress)
    files = sorted(p.name + "/" * p.is_dir() for p in run_dir.iterdir()
                   if not p.name.startswith("."))
    print(f"run written to {run_dir}/ ({', '.join(files)})")
    print(f"evaluate it with: musicgym evaluate {run_dir}")
    return 0


def _run_train_rllib(args: argparse.Namespace, given: dict) -> int:
    from musicgym.train.config import TrainConfig, read_config_file, resolve
    from musicgym.train.rllib import train_rllib

    if args.resume:
        config = TrainConfig(steps=given["steps"]) if "steps" in given else None
    elif args.config or args.env_id:
        fields = {**(read_config_file(args.config) if args.config else {}), **given}
        config = resolve(fields, source=f"{args.config} + flags" if args.config else
                         "command line")
        # the family's env settings apply; its algo_kwargs are Stable-Baselines3's, not RLlib's
        config.algo_kwargs = dict(fields.get("algo_kwargs") or {})
    else:
        raise UsageError("give an ENV_ID, --config FILE or --resume RUN")
    if config is not None and config.algo in LEARNERS:
        raise UsageError(f"algo {config.algo} trains with the default backend (drop --backend "
                         "rllib): --backend rllib trains PPO")
    run_dir = train_rllib(config, num_env_runners=args.num_env_runners, address=args.address,
                          runs_root=args.runs, progress=not args.no_progress,
                          resume=args.resume)
    print(f"run written to {run_dir}/ (checkpoint/, config.yaml, rllib.json, metrics.json, "
          "evaluations.json)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from musicgym.train.evaluate import evaluate_run
    from musicgym.train.report import write_report

    if args.episodes < 1:
        raise UsageError(f"--episodes: must be a positive integer, got {args.episodes}")
    metrics = evaluate_run(args.run_dir, args.episodes, output=args.output)
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    out = args.output or f"{args.run_dir}/eval"
    print(f"wrote {out}/ (metrics.json, curve.png and the family's files)")
    page = write_report(args.run_dir, eval_dir=out)
    print(f"report page (open it in a browser): {page}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from musicgym.train.report import write_report

    if args.episodes < 1:
        raise UsageError(f"--episodes: must be a positive integer, got {args.episodes}")
    output = Path(args.output) / "report.html" if args.output else None
    page = write_report(args.run_dir, output=output, episodes=args.episodes)
    print(f"wrote {page} (open it in a browser)")
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from musicgym.train.baselines import cmaes, random_search

    search = cmaes if args.method == "cmaes" else random_search
    result = search(args.env_id, args.budget, seed=args.seed)
    print(f"{args.method} on {args.env_id}: best clip distance {result['best_distance']:.4f} "
          f"after {result['evaluations']} evaluations ({result['seconds']:.1f} s)")
    print(f"best parameters per step: {result['best_params']}")
    if args.output:
        out = Path(args.output) / f"{args.method}.json"
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"-o {args.output}: cannot write {out.name} there: {exc}") from None
        print(f"wrote {out}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from musicgym.train.demo import demo

    demo(args.output, steps=args.steps, budget=args.budget,
         hybrid_budget=args.hybrid_budget, targets=args.targets)
    return 0
