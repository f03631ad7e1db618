"""``musicgym match``: name the synth settings that play a sound.

Per target ``OUTDIR/<target name>/`` gets ``params.json`` (each hole's value in the patch's
units), ``patch.glicol`` (holes filled: ``musicgym render`` plays the match), ``match.wav`` and
``comparison.png``; ``OUTDIR/summary.json`` lists, per target and method, the MR-STFT distance,
the 13-MFCC mean absolute error, the evaluations used and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from musicgym.errors import ConfigError, OutputError, TargetError, UsageError

MAX_STEPS = 64  # steps of a sequencer patch given as --code
METHOD_CHOICES = ("policy", "policy@k", "refine", "policy+nm", "policy+cmaes", "cmaes",
                  "random")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "match", help="find the settings of a patch that play given sounds",
        description="Match each TARGET sound (a file, or a folder of them) with a patch: a "
                    "built-in preset or your own Glicol code and action space. Methods: "
                    "policy (a trained matcher, one render), policy@k (its k best guesses, "
                    "the best kept), refine (a K-step refinement episode: the matcher hears "
                    "its current sound against the target), policy+nm (Nelder-Mead from the "
                    "best guess), policy+cmaes (CMA-ES seeded by the matcher), cmaes, random. "
                    "A target is cut or padded to the patch's "
                    "length (0.5 s for the drum presets, 4 s for BassLine-v0).")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="an audio file, or a folder of audio files (repeat)")
    patch = p.add_mutually_exclusive_group(required=True)
    patch.add_argument("--preset", metavar="NAME",
                       help="a sound-matching preset: Kick-v0, Snare-v0, FMTone-v0, or "
                        "BassLine-v0 (16 steps of 0.25 s: each step matched on its own, "
                        "--budget renders per step)")
    patch.add_argument("--code", metavar="FILE.glicol",
                       help="your patch, with holes {name} or {} (needs --action-space)")
    p.add_argument("--action-space", metavar="FILE",
                   help="with --code: a YAML/JSON mapping with 'action_space' (one entry per "
                        "hole, e.g. [exp, 30, 300]) and optionally 'seconds' (default 0.5) and "
                        "'steps' (default 1: a sequencer of that many steps of 'seconds' "
                        "each, matched step by step)")
    p.add_argument("--method", action="append", choices=METHOD_CHOICES, default=None,
                   help="matching method (repeat to compare several; default policy+nm with "
                        "a matcher (the best hybrid on every set measured, docs/matching.md), "
                        "policy for BassLine-v0 (a search on the sound's distance names wrong "
                        "notes), cmaes without a matcher)")
    p.add_argument("--budget", type=int, default=None,
                   help="evaluations per target and method (default: 16 for policy@k, 10 "
                        "for refine, 100 for policy+nm and policy+cmaes, 1000 for cmaes and "
                        "random)")
    p.add_argument("--policy", default="builtin", metavar="builtin|PATH",
                   help="the matcher: builtin (shipped for the preset) or a matcher's base "
                        "path, as written by `python -m musicgym.train.matcher` (default "
                        "builtin)")
    p.add_argument("--no-critic", action="store_true",
                   help="guess without the matcher's critic (the built-in Snare-v0 has one: it "
                        "chooses policy@k's guesses and policy+nm's start; a critic whose JSON "
                        "sets single_guess also chooses policy's guess: the built-in's does not)")
    p.add_argument("--seed", type=int, default=0, help="seed of the searches (default 0)")
    p.add_argument("--no-plots", action="store_true", help="skip comparison.png")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.set_defaults(func=run_match)


def _spec(args: argparse.Namespace) -> dict:
    from musicgym.safeio import load_mapping
    from musicgym.train.matcher import patch_spec

    if args.preset is not None:
        if args.action_space is not None:
            raise UsageError("--action-space goes with --code; a preset has its own")
        return patch_spec(args.preset)
    if args.action_space is None:
        raise UsageError("--code needs --action-space FILE (the range of each hole)")
    code_path = Path(args.code)
    if not code_path.is_file():
        raise ConfigError(f"--code {args.code}: no such file")
    space = load_mapping(Path(args.action_space))
    if not isinstance(space.get("action_space"), list):
        raise ConfigError(f"--action-space {args.action_space}: expected a mapping with an "
                          "'action_space' list (one entry per hole, e.g. [exp, 30, 300])")
    seconds = space.get("seconds", 0.5)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
            not 0 < seconds <= 10:
        raise ConfigError(f"--action-space {args.action_space}: 'seconds' must be a duration "
                          f"in (0, 10], got {seconds!r}")
    steps = space.get("steps", 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS \
            or steps * seconds > 60:
        raise ConfigError(f"--action-space {args.action_space}: 'steps' must be a whole number "
                          f"of steps in [1, {MAX_STEPS}], at most 60 s in all, got {steps!r}")
    return patch_spec(code=code_path.read_text(encoding="utf-8"),
                      action_space=space["action_space"], seconds=float(seconds), steps=steps)


def _targets(items: list[str]) -> list[Path]:
    from musicgym.envs.matching import AUDIO_EXTENSIONS

    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise TargetError(f"{item}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in "
                                  "this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise TargetError(f"{item}: no such file or folder")
    return files


def _matcher(args: argparse.Namespace, spec: dict, methods: list[str]):
    from musicgym.envs.matcher_model import Matcher

    if not any(m.startswith("policy") or m == "refine" for m in methods):
        return None
    if args.policy == "builtin":
        if spec["preset"] is None:
            raise UsageError("--policy builtin needs --preset; for your own --code give "
                             "--policy PATH (a matcher trained on that patch)")
        matcher = Matcher.builtin(spec["preset"])
    else:
        matcher = Matcher.load(args.policy)
        if matcher.meta["code"].strip() != spec["code"].strip():
            raise ConfigError(f"--policy {args.policy}: this matcher was trained on another "
                              "patch")
    matcher.use_critic = not args.no_critic
    return matcher


def run_match(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from musicgym.envs.matcher_model import builtin_presets
    from musicgym.train.match import match_target, write_match

    spec = _spec(args)
    files = _targets(args.targets)
    if args.budget is not None and args.budget < 1:
        raise UsageError(f"--budget must be a positive integer, got {args.budget}")
    has_matcher = spec["preset"] in builtin_presets() or args.policy != "builtin"
    # a sequencer's notes: a search on the sound's distance renames them wrongly (on bass
    # lines 41 % of the notes right after policy+nm, 99 % for the matcher alone)
    methods = args.method or (["cmaes"] if not has_matcher else
                              ["policy"] if spec["steps"] > 1 else ["policy+nm"])
    matcher = _matcher(args, spec, methods)
    out = Path(args.output)
    names = [f.stem for f in files]
    # two targets with one name (kick.wav, kick.flac, or two folders) get numbered folders
    dirs = [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]
    summary = {"patch": spec["preset"] or args.code, "methods": methods, "targets": []}
    t0 = time.perf_counter()
    for path, name in zip(tqdm(files, desc="matching", unit="target"), dirs, strict=True):
        row = {"target": str(path), "folder": name, "methods": {}}
        for method in methods:
            budget = None if method == "policy" else args.budget
            result = match_target(spec, path, method, budget=budget, matcher=matcher,
                                  seed=args.seed)
            # with several methods each writes its own folder; with one, the target's folder
            folder = out / name if len(methods) == 1 else out / name / method
            write_match(result, folder, plots=not args.no_plots)
            holes = result["patch"].params
            rows = result["params"] if "steps" in result else [result["params"]]
            params = [dict(zip(holes, map(float, r), strict=True)) for r in rows]
            row["methods"][method] = {
                "mrstft": result["mrstft"], "mfcc_mae": result["mfcc"],
                "evaluations": result["evaluations"], "seconds": round(result["seconds"], 3),
                "params": params if "steps" in result else params[0]}
        summary["targets"].append(row)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    try:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write summary.json: {exc}") from None
    for row in summary["targets"]:
        print(f"{row['folder']}: " + "; ".join(
            f"{m} MR-STFT {v['mrstft']:.3f}, MFCC {v['mfcc_mae']:.2f}, {v['evaluations']} evals"
            for m, v in row["methods"].items()))
    print(f"wrote {out}/summary.json")
    return 0
