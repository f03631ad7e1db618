"""``musicgym live accompany`` (play along with a soloist) and ``musicgym evaluate-accompany``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from musicgym.cli.live import live_modes
from musicgym.errors import AccompanyConfigError
from musicgym.follow.followers import DEFAULT_FOLLOWER, FOLLOWERS, follower_names

EVALUATED_FOLLOWERS = follower_names(evaluated=True)  # as musicgym.follow.report.FOLLOWERS

MIDI_APIS = ("alsa", "jack", "coremidi", "winmm")  # as musicgym.live.accompany.MIDI_APIS
ENV_ID = "musicgym/Accompany-v0"


def _followers_help(names: tuple[str, ...]) -> str:
    return "; ".join(f"{n}: {FOLLOWERS[n].summary}" for n in names)


def add_parser(subparsers) -> None:
    p = live_modes(subparsers).add_parser(
        "accompany", help="accompany a soloist: MIDI in, accompaniment out",
        description="Follow a soloist (MIDI input port, or a recorded performance with "
                    "--replay) with a score follower (default: the HMM) and play the other "
                    "part of the score in time with them, steered by a trained agent (--model) "
                    "or a tempo model "
                    "(--tempo-model). With --replay the accompaniment (and the solo) is written "
                    "to a MIDI file.")
    p.add_argument("--score", help="MusicXML or MIDI score holding both parts")
    p.add_argument("--solo-score", metavar="FILE",
                   help="the solo part alone (MusicXML or MIDI; instead of --score, with "
                        "--accompaniment-score)")
    p.add_argument("--accompaniment-score", metavar="FILE",
                   help="the accompaniment part alone (MusicXML or MIDI)")
    p.add_argument("--part", action="append", default=[], metavar="ROLE=PART",
                   help="solo=PART and accompaniment=PART: part index, id or name "
                        "(default solo=0, accompaniment=1)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", metavar="RUN",
                     help="a trained agent's run folder (musicgym train musicgym/Accompany-v0)")
    who.add_argument("--tempo-model", metavar="NAME",
                     help="fixed, reactive, moving_average, linear_sync or kalman")
    p.add_argument("--reference", metavar="FILE",
                   help="a performance of the solo part (.match, or a roughly metronomic "
                        "MIDI file, aligned to the solo part by pitch and order) to follow "
                        "against (default: the solo part played at --bpm)")
    online = follower_names(online=True)
    p.add_argument("--follower", choices=online,
                   help=f"score follower ({_followers_help(online)}); default: the one a "
                        f"--model run was trained behind, else {DEFAULT_FOLLOWER}")
    p.add_argument("--rehearsal", action="append", default=[], metavar="FILE",
                   help="an earlier take of the solo part (.match; repeat for several): a "
                        "--tempo-model then plays to the next solo onset as these takes time it "
                        "(kalman+timing); a --model run's memory features and "
                        "'+timing'/'+rehearsal' base read them")
    p.add_argument("--bpm", type=float, default=120.0,
                   help="expected tempo in score beats a minute (default 120)")
    p.add_argument("--replay", metavar="FILE",
                   help="file-driven mode: replay this solo performance (.match or MIDI, or "
                        "a recording, .wav/.flac/.ogg, followed through the audio front end)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="--replay speed: 1 real time, 4 four times faster, 0 no waiting")
    p.add_argument("-o", "--output", default="out/accompany", metavar="DIR",
                   help="--replay: output folder; the solo and the accompaniment are written "
                        "to DIR/duet.mid, one track each (default out/accompany)")
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
    p.add_argument("--instrument", choices=("piano", "mono"), default="piano",
                   help="--replay of a .wav: the soloist's instrument, for the audio front end "
                        "(piano: several keys per onset; mono: one)")
    p.add_argument("--orchestra-program", default="strings", metavar="PROGRAM",
                   help="--replay of a .wav or --audio-input: General MIDI program (name or "
                        "0-127) the accompaniment is rendered with (default strings)")
    p.add_argument("--audio-input", nargs="?", const="", metavar="DEVICE",
                   help="follow the soloist through a sound card's input instead of MIDI "
                        "(sounddevice over PortAudio: ALSA, or JACK, e.g. `jackd -d dummy`; "
                        "DEVICE: index or name part, default the default input); stops after "
                        "--seconds or Ctrl-C, then writes DIR/duet.mid (and --wav)")
    p.add_argument("--round-trip-ms", type=float, default=0.0, metavar="MS",
                   help="--audio-input: the sound card's measured round trip (musicgym.live."
                        "accompany.audio.measure_round_trip_s); the orchestra starts each "
                        "note this much early (default 0)")
    p.add_argument("--no-audio-output", action="store_true",
                   help="--audio-input: do not sound the accompaniment (only write it)")
    p.add_argument("--wav", metavar="FILE",
                   help="--replay of a .wav: also write the solo and the rendered "
                        "accompaniment mixed to this WAV file")
    p.set_defaults(func=run_live_accompany)

    e = subparsers.add_parser(
        "evaluate-accompany", help="accompanists on the held-out Brahms takes (table + JSON)",
        description="Play the held-out Brahms duet takes (6 and 7) with every tempo model (and "
                    "a trained agent, --model) behind each follower; print the share of shared "
                    "onsets within 50/100/250 ms, mean and median |asynchrony| and tempo "
                    "jitter, beside the human secondo.")
    e.add_argument("--model", metavar="RUN",
                   help="a trained agent's run folder (musicgym train musicgym/Accompany-v0); "
                        "played with the env settings it was trained with")
    e.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    e.add_argument("--followers", nargs="+", default=list(EVALUATED_FOLLOWERS),
                   metavar="FOLLOWER",
                   help=f"among {', '.join(follower_names())} (default: "
                        f"{' '.join(EVALUATED_FOLLOWERS)})")
    e.add_argument("--duets-dir",
                   help="folder of the real duets (default: $MUSICGYM_DUETS_DIR, else "
                        "$MUSICGYM_DATA_DIR/duets, else shared/data/duets beside a source "
                        "checkout)")
    e.add_argument("--duets", metavar="DIR",
                   help="any folder of duet takes instead of the Brahms ones: .match files "
                        "paired by name, the part name being the field that differs "
                        "(Piece_Primo_day_1.match with Piece_Secondo_day_1.match)")
    e.add_argument("--solo-part", default="Primo",
                   help="--duets: the soloist's part name in the file names (default Primo)")
    e.add_argument("--accompaniment-part", default="Secondo",
                   help="--duets: the accompanist's part name (default Secondo)")
    e.add_argument("--takes", nargs="+", type=int, metavar="N",
                   help="takes to test (default: 6 7 of the Brahms; with --duets the last "
                        "two, numbered 1, 2... in name order); the others are references and "
                        "rehearsals")
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


def load_accompanist_run(run_dir: str):
    """``(env_kwargs, model)`` of an Accompany-v0 run made by ``musicgym train``.

    Raises
    ------
    AccompanyConfigError
        When ``run_dir`` is not a finished run, or was trained on another env.
    """
    from musicgym.errors import ConfigError
    from musicgym.train.config import TrainConfig
    from musicgym.train.evaluate import load_run

    try:
        # the env first: a run of another family is named before its model is read
        env_id = TrainConfig.load(Path(run_dir) / "config.yaml").env_id
        if env_id != ENV_ID:
            raise AccompanyConfigError(
                f"{run_dir!r} was trained on {env_id}, not {ENV_ID}: not an accompanist")
        config, model = load_run(run_dir)
    except ConfigError as exc:
        raise AccompanyConfigError(
            f"{run_dir!r} is not a trained accompanist run ({exc}); train one with "
            f"`musicgym train {ENV_ID}`"
        ) from exc
    return dict(config.env_kwargs), model


def build_accompanist(args: argparse.Namespace):
    """The :class:`~musicgym.live.accompany.LiveAccompanist` the arguments describe."""
    from musicgym.follow.duets import align_to_score
    from musicgym.follow.followers import make_follower
    from musicgym.follow.tempo import RehearsedTiming, make_tempo_model
    from musicgym.live.accompany import (
        LiveAccompanist,
        TempoModelController,
        agent_controller,
        read_performance,
        rehearsal_curves,
    )
    from musicgym.music.score import read_score

    if not args.bpm > 0:
        raise AccompanyConfigError(f"--bpm must be > 0, got {args.bpm!r}")
    parts = _parts(args.part)
    solo_file = getattr(args, "solo_score", None) or args.score
    accompaniment_file = getattr(args, "accompaniment_score", None) or args.score
    if not (solo_file and accompaniment_file):
        raise AccompanyConfigError(
            "give --score (both parts in one file) or --solo-score and --accompaniment-score")
    if getattr(args, "solo_score", None):
        parts["solo"] = parts["solo"] if any(i.startswith("solo=") for i in args.part) else 0
    if getattr(args, "accompaniment_score", None):
        parts["accompaniment"] = (parts["accompaniment"] if any(
            i.startswith("accompaniment=") for i in args.part) else 0)
    # models and files first: a bad one fails before the slow score parse
    rehearsals = rehearsal_curves(getattr(args, "rehearsal", []))
    follower = getattr(args, "follower", None)
    if args.model:
        env_kwargs, model = load_accompanist_run(args.model)
        controller = agent_controller(model, env_kwargs, rehearsals)
        trained_behind = env_kwargs.get("follower")
        if follower is None and trained_behind in follower_names(online=True):
            follower = trained_behind
    else:
        model = make_tempo_model(args.tempo_model)
        if rehearsals:
            model = RehearsedTiming(model, rehearsals)
        controller = TempoModelController(model)
    reference = read_performance(args.reference) if args.reference else None
    solo = read_score(solo_file, part=parts["solo"], bpm=args.bpm)
    accompaniment = read_score(accompaniment_file, part=parts["accompaniment"], bpm=args.bpm)
    # a MIDI reference has no score positions: align it to the solo part (the seed's layout)
    reference = solo if reference is None else align_to_score(reference, solo)
    return LiveAccompanist(solo, accompaniment,
                           make_follower(follower or DEFAULT_FOLLOWER,
                                         reference=reference, score=solo), controller,
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

    if getattr(args, "audio_input", None) is not None:
        return _listen_audio(args)
    if not args.replay:  # fail fast, before the score is read, where no MIDI system exists
        input_port, output_port = open_ports(args.input, args.output_port,
                                             virtual=args.virtual, api=args.midi_api)
    accompanist = build_accompanist(args)
    if args.replay and Path(args.replay).suffix.lower() in (".wav", ".flac", ".ogg"):
        return _replay_recording(args, accompanist)
    if args.replay:
        performed = read_performance(args.replay)
        replay(performed, accompanist, speed=args.speed)
        notes = played_notes(performed, accompanist)
        out = write_duet_midi(Path(args.output) / "duet.mid", notes)
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


def _listen_audio(args: argparse.Namespace) -> int:
    """``--audio-input [DEVICE]``: follow a microphone; write what was played."""
    from musicgym.audio.io import write_audio
    from musicgym.live.accompany.audio import Orchestra, listen_audio, render_duet

    if args.wav:
        from musicgym.audio.soundfont import Part

        Part([], program=_program(args)).checked("--orchestra-program")
    accompanist = build_accompanist(args)
    device = args.audio_input
    device = None if device == "" else int(device) if device.isdecimal() else device
    print(f"listening on audio input {device or 'default'} (Ctrl-C stops)", file=sys.stderr)
    orchestra = None
    if not args.no_audio_output:
        if not 0 <= args.round_trip_ms < 1000:
            raise AccompanyConfigError(
                f"--round-trip-ms must be in [0, 1000), got {args.round_trip_ms!r}")
        orchestra = Orchestra(program=_program(args), device=device,
                              latency_s=args.round_trip_ms / 1000.0)
    _, audio, sr = listen_audio(accompanist, device=device, seconds=args.seconds,
                                instrument=args.instrument, keep_audio=bool(args.wav),
                                orchestra=orchestra)
    out = _write_played(args, accompanist)
    print(f"wrote {out}: {len(accompanist.played)} accompaniment notes; "
          f"{len(accompanist.report_beat)} solo onsets followed")
    if args.wav:
        mix = render_duet(audio, sr, accompanist.played, program=_program(args))
        print(f"wrote {write_audio(args.wav, mix, sr)}: what was heard and the accompaniment")
    return 0


def _write_played(args: argparse.Namespace, accompanist) -> Path:
    import numpy as np

    from musicgym.live.accompany import write_duet_midi
    from musicgym.music.notes import NOTE_DTYPE

    played = np.array(accompanist.played, dtype=float).reshape(-1, 4)
    notes = np.zeros(len(played), dtype=NOTE_DTYPE)
    notes["onset_sec"], notes["duration_sec"] = played[:, 0], played[:, 1]
    notes["pitch"], notes["velocity"], notes["voice"] = played[:, 2], played[:, 3], 1
    notes["onset_beat"], notes["duration_beat"] = notes["onset_sec"], notes["duration_sec"]
    return write_duet_midi(Path(args.output) / "duet.mid", notes)


def _replay_recording(args: argparse.Namespace, accompanist) -> int:
    """``--replay take.wav``: follow a recording; write the accompaniment as MIDI (and the
    mix as a WAV with ``--wav``)."""
    from musicgym.audio.io import write_audio
    from musicgym.live.accompany.audio import read_take_audio, render_duet, replay_audio

    if args.wav:  # a bad program fails before the recording is followed
        from musicgym.audio.soundfont import Part

        Part([], program=_program(args)).checked("--orchestra-program")
    audio, sr = read_take_audio(args.replay)
    replay_audio(audio, sr, accompanist, instrument=args.instrument, speed=args.speed)
    out = _write_played(args, accompanist)
    print(f"wrote {out}: {len(accompanist.played)} accompaniment notes; "
          f"{len(accompanist.report_beat)} solo onsets followed in "
          f"{len(audio) / sr:.1f} s of audio, "
          f"{accompanist.resyncs} re-synchronisations")
    if args.wav:
        mix = render_duet(audio, sr, accompanist.played, program=_program(args))
        print(f"wrote {write_audio(args.wav, mix, sr)}: solo and accompaniment mixed")
    return 0


def _program(args: argparse.Namespace) -> int | str:
    value = args.orchestra_program
    return int(value) if str(value).isdecimal() else value


def run_evaluate(args: argparse.Namespace) -> int:
    from musicgym.follow.report import evaluate_accompanists, format_table

    policy, env_kwargs = None, None
    if args.model:
        env_kwargs, policy = load_accompanist_run(args.model)
    extra = {}
    if getattr(args, "duets", None):
        from musicgym.follow.duets import find_duet_takes

        all_takes = find_duet_takes(args.duets, solo_part=args.solo_part,
                                    accompaniment_part=args.accompaniment_part)
        numbers = [t.take for t in all_takes]
        extra = {"all_takes": all_takes, "takes": tuple(args.takes or numbers[-2:])}
    elif getattr(args, "takes", None):
        extra = {"takes": tuple(args.takes)}
    results = evaluate_accompanists(policy, env_kwargs=env_kwargs,
                                    followers=tuple(args.followers), duets_dir=args.duets_dir,
                                    **extra)
    print(format_table(results))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
        print(f"wrote {path}")
    return 0
