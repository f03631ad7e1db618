"""``musicgym live accompany`` (play along with a soloist) and ``musicgym evaluate-accompany``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from musicgym.cli.live import live_modes
from musicgym.errors import AccompanyConfigError

MIDI_APIS = ("alsa", "jack", "coremidi", "winmm")  # as musicgym.live.accompany.MIDI_APIS


def add_parser(subparsers) -> None:
    p = live_modes(subparsers).add_parser(
        "accompany", help="accompany a soloist: MIDI in, accompaniment out",
        description="Follow a soloist (MIDI input port, or a recorded performance with "
                    "--replay) with on-line time warping and play the other part of the score "
                    "in time with them, steered by a trained agent (--model) or a tempo model "
                    "(--tempo-model). With --replay the accompaniment (and the solo) is written "
                    "to a MIDI file.")
    p.add_argument("--score", required=True, help="MusicXML or MIDI score holding both parts")
    p.add_argument("--part", action="append", default=[], metavar="ROLE=PART",
                   help="solo=PART and accompaniment=PART: part index, id or name "
                        "(default solo=0, accompaniment=1)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", metavar="RUN", help="a trained agent's run folder")
    who.add_argument("--tempo-model", metavar="NAME",
                     help="fixed, reactive, moving_average, linear_sync or kalman")
    p.add_argument("--reference", metavar="FILE",
                   help="a performance of the solo part (.match or MIDI) to follow against "
                        "(default: the solo part played at --bpm)")
    p.add_argument("--follower", choices=("oltw", "hmm"), default="oltw",
                   help="score follower: oltw (on-line time warping, default) or hmm (a "
                        "note-level hidden Markov model; reports at the attack)")
    p.add_argument("--rehearsal", action="append", default=[], metavar="FILE",
                   help="an earlier take of the solo part (.match; repeat for several): the "
                        "tempo model then plays to the next solo onset as these takes time it "
                        "(kalman+timing); with --tempo-model only")
    p.add_argument("--bpm", type=float, default=120.0,
                   help="expected tempo in score beats a minute (default 120)")
    p.add_argument("--replay", metavar="FILE",
                   help="file-driven mode: replay this solo performance (.match or MIDI)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="--replay speed: 1 real time, 4 four times faster, 0 no waiting")
    p.add_argument("-o", "--output", default="out/accompany.mid",
                   help="--replay: MIDI file to write (default out/accompany.mid)")
    p.add_argument("--input", metavar="PORT", help="MIDI input port (default: the first)")
    p.add_argument("--output-port", metavar="PORT", help="MIDI output port (default: the first)")
    p.add_argument("--virtual", action="store_true",
                   help="open virtual ports instead (where the MIDI system allows: ALSA, "
                        "JACK, CoreMIDI), named by --input and --output-port (default "
                        "'musicgym soloist' and 'musicgym accompanist')")
    p.add_argument("--midi-api", choices=tuple(MIDI_APIS), metavar="API",
                   help="MIDI system for the ports: alsa, jack (a running JACK server, "
                        "e.g. `jackd -d dummy`), coremidi or winmm, through python-rtmidi "
                        "(default: mido's default backend, or the MIDO_BACKEND variable)")
    p.add_argument("--seconds", type=float, help="stop live play after this long")
    p.set_defaults(func=run_live_accompany)

    e = subparsers.add_parser(
        "evaluate-accompany", help="accompanists on the held-out Brahms takes (table + JSON)",
        description="Play the held-out Brahms duet takes with every tempo model (and a trained "
                    "agent) behind the oracle and the OLTW follower; print the share of shared "
                    "onsets within 50/100/250 ms, mean and median |asynchrony| and tempo "
                    "jitter, beside the human secondo.")
    e.add_argument("run", nargs="?", metavar="RUN_DIR", help="a trained agent's run folder")
    e.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    e.add_argument("--followers", nargs="+", default=["oracle", "oltw", "hmm"],
                   help="among oracle, oltw and hmm (default all three)")
    e.add_argument("--duets-dir", help="folder of the real duets (default: shared/data/duets)")
    e.set_defaults(func=run_evaluate)


def _parts(items: list[str]) -> dict[str, int | str]:
    parts: dict[str, int | str] = {"solo": 0, "accompaniment": 1}
    for item in items:
        role, sep, part = item.partition("=")
        if not sep or role.strip() not in parts or not part.strip():
            raise AccompanyConfigError(
                f"--part expects solo=PART or accompaniment=PART, got {item!r}")
        part = part.strip()
        parts[role.strip()] = int(part) if part.isdecimal() else part
    return parts


def build_accompanist(args: argparse.Namespace):
    """The :class:`~musicgym.live.accompany.LiveAccompanist` the arguments describe."""
    from musicgym.follow.followers import HMMFollower, OLTWFollower
    from musicgym.follow.tempo import RehearsedTiming, make_tempo_model
    from musicgym.live.accompany import (
        AgentController,
        LiveAccompanist,
        TempoModelController,
        read_performance,
        rehearsal_curves,
    )
    from musicgym.music.score import read_score

    if not args.bpm > 0:
        raise AccompanyConfigError(f"--bpm must be > 0, got {args.bpm!r}")
    parts = _parts(args.part)
    rehearsals = getattr(args, "rehearsal", [])
    if args.model and rehearsals:
        raise AccompanyConfigError(
            "--rehearsal works with --tempo-model only: a trained agent has no memory of "
            "earlier takes live yet"
        )
    if args.model:  # models and files first: a bad one fails before the slow score parse
        from musicgym.follow.train import load_agent

        controller = AgentController(*load_agent(args.model))
    else:
        model = make_tempo_model(args.tempo_model)
        if rehearsals:
            model = RehearsedTiming(model, rehearsal_curves(rehearsals))
        controller = TempoModelController(model)
    reference = read_performance(args.reference) if args.reference else None
    solo = read_score(args.score, part=parts["solo"], bpm=args.bpm)
    accompaniment = read_score(args.score, part=parts["accompaniment"], bpm=args.bpm)
    reference = solo if reference is None else reference
    follower_class = HMMFollower if getattr(args, "follower", "oltw") == "hmm" else OLTWFollower
    return LiveAccompanist(solo, accompaniment, follower_class(reference), controller,
                           beat_period_s=60.0 / args.bpm)


def run_live_accompany(args: argparse.Namespace) -> int:
    from musicgym.live.accompany import (
        open_ports,
        play_ports,
        played_notes,
        read_performance,
        replay,
        write_duet_midi,
    )

    if not args.replay:  # fail fast, before the score is read, where no MIDI system exists
        input_port, output_port = open_ports(args.input, args.output_port,
                                             virtual=args.virtual, api=args.midi_api)
    accompanist = build_accompanist(args)
    if args.replay:
        performed = read_performance(args.replay)
        replay(performed, accompanist, speed=args.speed)
        notes = played_notes(performed, accompanist)
        out = write_duet_midi(args.output, notes)
        print(f"wrote {out}: {len(accompanist.played)} accompaniment notes against "
              f"{len(performed)} solo notes; {len(accompanist.report_beat)} solo onsets "
              f"followed, {accompanist.resyncs} re-synchronisations")
        return 0
    accompanist.warm_up()  # before saying so: listening from the first note on
    print(f"listening on {input_port.name!r}, playing to {output_port.name!r} (Ctrl-C stops)",
          file=sys.stderr)
    with input_port, output_port:
        played = play_ports(accompanist, input_port, output_port, seconds=args.seconds)
    print(f"played {len(played)} events")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from musicgym.follow.report import evaluate_accompanists, format_table

    results = evaluate_accompanists(args.run, followers=tuple(args.followers),
                                    duets_dir=args.duets_dir)
    print(format_table(results))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
        print(f"wrote {path}")
    return 0
