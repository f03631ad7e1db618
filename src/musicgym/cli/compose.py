"""``musicgym compose`` (write counterpoints or melodies and their files) and ``musicgym
evaluate-compose`` (judge a folder of them)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from musicgym.compose.config import METHODS, TASKS, ComposeConfig, load_config, validate
from musicgym.errors import ConfigError, OutputError, ScoreFileError

MELODY_BEAM_WIDTH = 16
DIVERSITY = 0.5  # guided: default penalty weight for notes shared with earlier pieces


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compose", help="write species counterpoints or melodies (beam search, random, or "
                        "masked PPO)",
        description="Compose counterpoints on musicgym/Counterpoint-v0 (or, with --task "
                    "melody, melodies on musicgym/Melody-v0) and write, per piece, MIDI, a "
                    "notes TSV, MusicXML, LilyPond, a 16-bit WAV, a piano-roll PNG and "
                    "piece.json in the chosen tuning into DIR/piece_NNN/, plus "
                    "DIR/summary.json. Without -c: RL-Musician's default piece, or "
                    "Melody-v0's defaults (C major, 4 bars).")
    p.add_argument("-c", "--config", help="YAML or JSON config (RL-Musician's layout and "
                                          "field names are accepted)")
    p.add_argument("--task", choices=TASKS,
                   help="counterpoint (default) or melody (the config's task field, if any, "
                        "must agree)")
    p.add_argument("--cantus", metavar="NOTES",
                   help='a cantus firmus of your own, by its notes alone ("D4 F4 E4 D4 G4 F4 '
                        'A4 G4 F4 E4 D4"): tonic and mode are inferred (or give --tonic, '
                        "--mode), and the counterpoint's start, end and range follow from the "
                        "species' rules; replaces the config's cantus and its "
                        "counterpoint_specifications")
    p.add_argument("--species", type=int, choices=(1, 2, 3, 4, 5),
                   help="the species (default: the config's, else 5)")
    p.add_argument("--voice", choices=("above", "below"),
                   help="the counterpoint above (default) or below the cantus")
    p.add_argument("--tonic", help="with --cantus: the tonic, e.g. D or Bb (default: inferred)")
    p.add_argument("--mode", help="with --cantus: the mode, e.g. dorian (default: inferred)")
    p.add_argument("--pieces", type=int, help="number of pieces (default 1)")
    p.add_argument("--seed", type=int, help="random seed (default 0); piece i uses seed+i")
    p.add_argument("--method", choices=METHODS,
                   help="guided: beam search guided by an estimate of RL-Musician's score "
                        "(counterpoint's default); beam: RL-Musician's Monte Carlo beam search "
                        "(melody's default: beam search on the step rewards); random: uniformly "
                        "random allowed notes; ppo: train MaskablePPO, then compose; "
                        "policy: the pretrained composing policy, in one pass")
    p.add_argument("-o", "--output", dest="outdir", metavar="DIR",
                   help="output folder, one sub-folder per piece (default: the config's "
                        "rendering_params.dir, else outputs)")
    p.add_argument("--n-trials", type=int, help="beam search: rollouts per prefix (default: "
                                                "estimated per prefix, as RL-Musician does)")
    p.add_argument("--beam-width", type=int, help="beam search: prefixes kept (default 5; "
                                                  f"melody: {MELODY_BEAM_WIDTH})")
    p.add_argument("--guided-width", type=int,
                   help="guided: partial pieces kept per eighth (default 1000)")
    p.add_argument("--noise", type=float,
                   help="guided: scale of the seeded random tie-breaks (default 0.02; 0.1 gives "
                        "more varied pieces at a slightly lower score)")
    p.add_argument("--diversity", type=float,
                   help="guided: penalty weight for notes shared with the pieces written before "
                        "(default 0.5; 0: every seed gives nearly the same piece)")
    p.add_argument("--objective", choices=("rlm", "fux"),
                   help="guided: what the search maximises: rlm, RL-Musician's score (default, "
                        "built for species 5), or fux, the species-aware Fux quality (0-3) "
                        "that fits species 1-4")
    p.add_argument("--policy", metavar="builtin|RUN",
                   help="policy: the composing policy, 'builtin' (default: the one shipped) "
                        "or a .npz (or its folder) from python -m musicgym.compose.policy_train "
                        "(--task melody: from python -m musicgym.compose.melody_policy_train)")
    p.add_argument("--policy-beam", type=int,
                   help="policy: 1 (default) takes the likeliest allowed note each step; k "
                        "keeps the k likeliest partial pieces and returns the best finished")
    p.add_argument("--policy-value", metavar="builtin|RUN",
                   help="policy: also use a learned value ('builtin' or a .npz from python -m "
                        "musicgym.compose.value_train): a beam of 16 ranked by the value and "
                        "the policy's log-probabilities (--policy-beam sets the beam; by "
                        "default none in species 5), and the policy-guided search beside it; "
                        "the better piece is kept and polished by local search")
    p.add_argument("--policy-search", type=int, metavar="WIDTH",
                   help="policy with --policy-value: the width of the policy-guided search "
                        "run beside the value beam (default 200, in species 5 300; "
                        "0: the value beam alone)")
    p.add_argument("--ppo-timesteps", type=int,
                   help="ppo: training budget in env steps (default 20000)")
    p.add_argument("--no-wav", action="store_true", help="skip the WAV files")
    p.add_argument("--evaluate", action="store_true",
                   help="judge the pieces afterwards (as `musicgym evaluate-compose`)")
    p.set_defaults(func=run_compose)

    e = subparsers.add_parser(
        "evaluate-compose", help="judge composed pieces: RL-Musician's score, rule violations",
        description="Print, per piece and on average, RL-Musician's 5-score total (max 3.0), "
                    "strict-rule violations, parallel fifths/octaves and the rules broken, "
                    "for every piece.json under PIECES_DIR; for melodies, the return under "
                    "RL Tuner's nine rules and each rule's share.")
    e.add_argument("pieces_dir", help="a folder written by `musicgym compose`")
    e.add_argument("--json", dest="json_path", help="also write the report as JSON here")
    e.set_defaults(func=run_evaluate)


def _settings(args: argparse.Namespace) -> ComposeConfig:
    config = load_config(args.config, task=args.task)
    if config.method_is_default:
        config.method = None  # chosen again once the flags below are in
    for attr, name in (("pieces", "n_pieces"), ("seed", "seed"), ("method", "method"),
                       ("outdir", "outdir")):
        if getattr(args, attr) is not None:
            setattr(config, name, getattr(args, attr))
    for attr in ("n_trials", "beam_width", "guided_width", "noise", "ppo_timesteps",
                 "diversity", "objective", "policy", "policy_beam", "policy_value",
                 "policy_search"):
        if getattr(args, attr) is not None:
            config.agent[attr] = getattr(args, attr)
    _cantus_flags(config, args)
    if args.config is None or any(getattr(args, a) is not None for a in ("task", "cantus",
            "species", "voice", "tonic", "mode",
            "pieces", "seed", "method", "n_trials", "beam_width", "guided_width", "noise",
            "diversity", "objective",
            "ppo_timesteps", "policy", "policy_beam", "policy_value", "policy_search")):
        config.source = "command line" if args.config is None else f"{args.config} + flags"
    return validate(config)


def _cantus_flags(config: ComposeConfig, args: argparse.Namespace) -> None:
    """--cantus, --species, --voice, --tonic, --mode into the env's arguments."""
    flags = {name: getattr(args, name, None) for name in ("cantus", "species", "voice",
                                                          "tonic", "mode")}
    given = [f"--{name}" for name, value in flags.items() if value is not None]
    if not given:
        return
    if config.task != "counterpoint":
        raise ConfigError(f"{', '.join(given)} are for task counterpoint, not {config.task}")
    if flags["cantus"] is None and (flags["tonic"] or flags["mode"]):
        raise ConfigError("--tonic and --mode go with --cantus (the notes they describe)")
    kwargs = config.env_kwargs
    if flags["cantus"] is not None:
        notes = flags["cantus"].replace(",", " ").split()
        if len(notes) < 3:
            raise ConfigError(f"--cantus needs at least 3 notes separated by spaces, got "
                              f"{flags['cantus']!r}")
        # the config's tonic, mode and counterpoint range belong to its own cantus
        for name in ("tonic", "mode", "start_note", "end_note", "lowest_note", "highest_note"):
            kwargs.pop(name, None)
        kwargs["cantus_firmus"] = notes
    for name in ("species", "voice", "tonic", "mode"):
        if flags[name] is not None:
            kwargs[name] = flags[name]


def run_compose(args: argparse.Namespace) -> int:
    import gymnasium as gym
    from tqdm import tqdm

    import musicgym.envs  # noqa: F401  (registers the env ids)
    from musicgym.compose.melody import piece_from_melody
    from musicgym.compose.outputs import check_writable, write_piece
    from musicgym.compose.piece import piece_from_counterpoint
    from musicgym.compose.ppo import replay
    from musicgym.music.tunings import make_tuning

    config = _settings(args)
    for name in config.ignored:
        print(f"note: {name} is RL-Musician's and is ignored here (musicgym renders with its "
              "own engine, in one process)")
    tuning_kwargs = dict(config.tuning)
    melody = config.task == "melody"
    if melody:
        env = gym.make("musicgym/Melody-v0", **config.env_kwargs)
        tonic_midi = 60 + int(env.unwrapped.scale.pitch_classes[0])  # tonic in octave 4
    else:
        env = gym.make("musicgym/Counterpoint-v0", **config.env_kwargs)
        setup = env.unwrapped.setup
        tonic_midi = int(setup.position_midi[setup.cantus_positions[-1]])
    tuning = make_tuning(tuning_kwargs.pop("kind", "12tet"), tonic_midi=tonic_midi,
                         **tuning_kwargs)
    outdir = check_writable(config.outdir)
    composer = _composer(config, env)
    summary = []
    t_start = time.perf_counter()
    for i in tqdm(range(config.n_pieces), desc=f"composing ({config.method})", unit="piece",
                  disable=config.n_pieces == 1 and config.method == "random"):
        seed = config.seed + i
        t0 = time.perf_counter()
        reward, actions = composer(seed)
        seconds = time.perf_counter() - t0
        if melody:
            try:
                piece = piece_from_melody(env, actions, tuning=tuning, bpm=config.bpm,
                                          velocity=config.velocities[0])
            except ScoreFileError as exc:
                print(f"piece {i + 1}: {exc}; nothing written")
                summary.append({"piece": None, "seed": seed, "finished": False,
                                "seconds": seconds})
                continue
        else:
            state = replay(env, actions)
            if not state.finished:
                print(f"piece {i + 1}: no finished piece found (dead end); nothing written")
                summary.append({"piece": None, "seed": seed, "finished": False,
                                "seconds": seconds})
                continue
            piece = piece_from_counterpoint(state, actions=actions, tuning=tuning,
                                            bpm=config.bpm, velocities=config.velocities)
        name = f"piece_{i + 1:03d}"
        write_piece(outdir / name, piece, title=f"{name} ({config.method}, seed {seed})",
                    wav=not args.no_wav, programs=config.programs)
        summary.append({"piece": name, "seed": seed, "finished": True, "return": reward,
                        "seconds": seconds, "actions": actions})
    (outdir / "summary.json").write_text(json.dumps(
        {"task": config.task, "method": config.method, "config": config.source,
         "tuning": tuning.name,
         "bpm": config.bpm, "agent": config.agent, "env": _jsonable(config.env_kwargs),
         "wall_seconds": time.perf_counter() - t_start, "pieces": summary}, indent=1),
        encoding="utf-8")
    done = [s for s in summary if s["finished"]]
    print(f"wrote {len(done)} piece(s) to {outdir}/ ({config.method}, {tuning.name}, "
          f"{config.bpm:g} bpm); returns: " + ", ".join(f"{s['return']:.3f}" for s in done))
    if args.evaluate and done:
        _print_evaluation(outdir, None)
    return 0 if done else 1


def _composer(config: ComposeConfig, env):
    """A function seed -> (return, actions) for the configured method."""
    from musicgym.compose.search import beam_search, guided_beam_search, random_search

    agent = config.agent
    if config.task == "melody" and config.method == "policy":
        from musicgym.compose.melody_policy import MelodyPolicy, compose_melody_policy

        melody_policy = MelodyPolicy.load(agent.get("policy", "builtin"))
        temperature = agent.get("temperature", 0.0)  # 0: greedy, the same melody every seed
        return lambda seed: compose_melody_policy(env, melody_policy, seed=seed,
                                                  temperature=temperature)
    if config.task == "melody" and config.method != "ppo":
        from musicgym.compose.melody import beam_melody, random_melody

        if config.method == "random":
            return lambda seed: random_melody(env, seed=seed)
        kwargs = {"beam_width": agent.get("beam_width", MELODY_BEAM_WIDTH)}
        if "temperature" in agent:
            kwargs["temperature"] = agent["temperature"]
        return lambda seed: beam_melody(env, seed=seed, **kwargs)
    if config.method == "random":
        return lambda seed: random_search(env, seed=seed)
    if config.method == "guided":
        kwargs = {"beam_width": agent.get("guided_width", 1000),
                  "objective": agent.get("objective", "rlm"),
                  "diversity": agent.get("diversity", DIVERSITY)}
        if "noise" in agent:
            kwargs["noise"] = agent["noise"]
        written: list[list[int]] = []  # earlier pieces, for the diversity penalty

        def guided(seed: int) -> tuple[float, list[int]]:
            reward, actions = guided_beam_search(env, seed=seed, avoid=list(written), **kwargs)
            if actions:
                written.append(actions)
            return reward, actions

        return guided
    if config.method == "policy":
        from musicgym.compose.policy import ComposerPolicy, compose_policy

        policy = ComposerPolicy.load(agent.get("policy", "builtin"))
        if agent.get("policy_value"):
            from musicgym.compose.value import ComposerValue, compose_value_and_search

            value = ComposerValue.load(agent["policy_value"])
            beam = agent.get("policy_beam")  # None: the decoder's default per species
            width = agent.get("policy_search")  # None: the decoder's default too
            return lambda seed: compose_value_and_search(env, policy, value, beam=beam,
                                                         search_width=width)
        beam = agent.get("policy_beam", 1)
        return lambda seed: compose_policy(env, policy, beam=beam)
    if config.method == "beam":
        keys = ("beam_width", "n_records_to_keep", "n_trials", "n_trials_estimation_depth",
                "n_trials_estimation_width", "n_trials_factor")
        kwargs = {k: agent[k] for k in keys if k in agent}
        return lambda seed: beam_search(env, seed=seed, **kwargs)
    from musicgym.compose.ppo import compose_with_policy
    from musicgym.train.config import resolve
    from musicgym.train.runfiles import load_run
    from musicgym.train.runner import train

    env_id = "musicgym/Melody-v0" if config.task == "melody" else "musicgym/Counterpoint-v0"
    train_config = resolve({"env_id": env_id, "steps": agent.get("ppo_timesteps", 20_000),
                            "seed": config.seed, "env_kwargs": dict(config.env_kwargs),
                            "eval_episodes": 1})
    print(f"training MaskablePPO for {train_config.steps} steps...", flush=True)
    t0 = time.perf_counter()
    run_dir = train(train_config, runs_root=Path(config.outdir) / "runs",
                    progress=train_config.steps >= 5000)
    _, model = load_run(run_dir, env=env)
    print(f"trained in {time.perf_counter() - t0:.1f} s (the run: {run_dir})")
    return lambda seed: compose_with_policy(model, env, seed=seed)


def _jsonable(kwargs: dict) -> dict:
    return {k: v if isinstance(v, (str, int, float, bool, list, dict)) or v is None else str(v)
            for k, v in kwargs.items()}


def _print_evaluation(folder: Path, json_path: str | None) -> dict:
    from musicgym.compose.evaluate import evaluate_folder, format_report
    from musicgym.compose.melody import (
        evaluate_melody_folder,
        format_melody_report,
        is_melody_folder,
    )

    if is_melody_folder(folder):
        report = evaluate_melody_folder(folder)
        print(format_melody_report(report))
    else:
        report = evaluate_folder(folder)
        print(format_report(report))
    if json_path:
        try:
            Path(json_path).write_text(json.dumps(report, indent=1), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write the report {json_path!r}: {exc.strerror}; give "
                              "--json a path you can write to") from None
        print(f"wrote {json_path}")
    return report


def run_evaluate(args: argparse.Namespace) -> int:
    _print_evaluation(Path(args.pieces_dir), args.json_path)
    return 0
