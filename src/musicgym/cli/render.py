"""``musicgym render``, ``musicgym nodes`` and ``musicgym examples`` (the engine's commands)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from musicgym.errors import ParameterError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="render a Glicol patch to an audio file",
        description="Render Glicol code to DIR/<patch name>.wav (32-bit float), or with --file "
                    "to exactly that file in the format of its suffix. Holes {name} or {} in "
                    "the code are set with --param (positional holes are named 0, 1, ...).")
    p.add_argument("patch", help="a .glicol file, or - to read the code from standard input")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", default="out", metavar="DIR",
                       help="output folder: the WAV is DIR/<patch file name>.wav, "
                            "DIR/patch.wav for standard input (default out)")
    where.add_argument("--file", metavar="PATH",
                       help="write exactly this file instead, in the format its suffix names: "
                            ".wav (32-bit float), .flac (24-bit, clipped to [-1, 1]) or .ogg "
                            "(Vorbis); another suffix is refused")
    p.add_argument("--seconds", type=float, required=True, help="duration to render in seconds")
    p.add_argument("--backend", choices=["numpy", "glicol"], default="numpy",
                   help="numpy: musicgym's engine (default); glicol: the real Glicol engine")
    p.add_argument("--sr", type=int, default=44100, help="sample rate in Hz (default 44100)")
    p.add_argument("--bpm", type=float, default=120.0, help="tempo in beats per minute "
                                                            "(default 120)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="value of a template hole (repeat for each hole)")
    p.add_argument("--sample", action="append", default=[], metavar="NAME=FILE",
                   help="load an audio file as sample \\NAME (repeat)")
    p.add_argument("--fix-bugs", action="store_true",
                   help="numpy backend only: textbook biquads instead of the engine's")
    p.add_argument("--steps", type=int, default=1, metavar="N",
                   help="a sequencer's patch.glicol, as `musicgym match --preset BassLine-v0` "
                        "writes it: N blocks, each after a '// step k' line, each rendered "
                        "for SECONDS / N from a fresh state and joined (default 1: the whole "
                        "file is one patch)")
    p.set_defaults(func=run_render)

    n = subparsers.add_parser(
        "nodes", help="list the Glicol nodes musicgym runs",
        description="List the nodes the NumPy backend runs (each with its arguments and one "
                    "line of doc), those only the real engine runs, and those it crashes on.")
    n.set_defaults(func=run_nodes)

    d = subparsers.add_parser(
        "examples", help="render the built-in example patches to WAV",
        description="Render each built-in example patch for 4 s with musicgym's engine: "
                    "DIR/<name>.wav and its code as DIR/<name>.glicol.")
    d.add_argument("-o", "--output", default="out/examples", metavar="DIR",
                   help="output folder (default out/examples)")
    d.set_defaults(func=run_examples)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--{what} expects NAME=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _read_code(source: str) -> str:
    import sys

    from musicgym.errors import MusicgymError

    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise MusicgymError(f"patch file {source!r} does not exist")
    return path.read_text(encoding="utf-8")


def run_render(args: argparse.Namespace) -> int:
    from musicgym.audio.io import AUDIO_FORMATS, write_audio
    from musicgym.cli import refuse
    from musicgym.synth import Patch

    if args.file is not None:
        out = Path(args.file)
        if out.suffix.lower() not in AUDIO_FORMATS:
            return refuse(args, f"--file {args.file}: cannot write {out.suffix or 'no suffix'!r}"
                                f" audio; give a file ending in {', '.join(AUDIO_FORMATS)}")
    else:
        stem = "patch" if args.patch == "-" else Path(args.patch).stem
        out = Path(args.output) / f"{stem}.wav"
    code = _read_code(args.patch)
    if args.steps != 1:
        return _render_steps(args, code, out)
    patch = Patch(code, sr=args.sr, bpm=args.bpm, backend=args.backend,
                  samples=_pairs(args.sample, "sample"), compat=not args.fix_bugs)
    given = _pairs(args.param, "param")
    unknown = sorted(set(given) - set(patch.params))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; this patch has "
                             f"{list(patch.params) or 'no holes'}")
    missing = [p for p in patch.params if p not in given]
    if missing:
        raise ParameterError(f"give a value for every hole with --param: missing {missing}")
    try:
        row = np.array([[float(given[p]) for p in patch.params]])
    except ValueError as exc:
        raise ParameterError(f"--param values must be numbers: {exc}") from exc
    t0 = time.perf_counter()
    audio = patch.render(row if patch.params else None, seconds=args.seconds,
                         progress=args.seconds > 30)[0]
    elapsed = time.perf_counter() - t0
    out = write_audio(out, audio, patch.sr)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    print(f"wrote {out} ({args.seconds:g} s, {patch.sr} Hz, peak {peak:.3f}, "
          f"rendered in {elapsed:.2f} s with the {args.backend} backend)")
    if peak > 1.0:
        kept = "the WAV is 32-bit float, so nothing is clipped" \
            if out.suffix.lower() == ".wav" else f"the {out.suffix} file is clipped to [-1, 1]"
        print(f"note: the peak is over 1.0 (Glicol has no limiter); {kept}")
    return 0


def split_steps(code: str, steps: int) -> list[str]:
    """The ``steps`` blocks of a sequencer's patch file (each after a ``// step k`` line).

    Raises
    ------
    ParameterError
        ``steps`` is not a positive number, or the file has another number of blocks."""
    from musicgym.train.match import STEP_MARK

    if steps < 1:
        raise ParameterError(f"--steps must be a positive integer, got {steps}")
    blocks: list[list[str]] = []
    for line in code.splitlines():
        if line.startswith(STEP_MARK):
            blocks.append([])
        elif blocks:
            blocks[-1].append(line)
    if len(blocks) != steps:
        raise ParameterError(f"--steps {steps}: the file has {len(blocks)} blocks starting "
                             f"with a '{STEP_MARK}k' line; give --steps {len(blocks) or 1}")
    return ["\n".join(b) for b in blocks]


def _render_steps(args: argparse.Namespace, code: str, out: Path) -> int:
    """``musicgym render FILE --steps N``: each block for seconds / N, joined."""
    from musicgym.audio.io import write_audio
    from musicgym.synth import Patch

    if args.param:
        raise ParameterError("--steps renders a sequencer's filled patch: its blocks have no "
                             "holes, so --param has nothing to set")
    blocks = split_steps(code, args.steps)
    n = int(round(args.seconds * args.sr / args.steps))
    t0 = time.perf_counter()
    parts = []
    for k, block in enumerate(blocks):
        patch = Patch(block, sr=args.sr, bpm=args.bpm, backend=args.backend,
                      samples=_pairs(args.sample, "sample"), compat=not args.fix_bugs)
        if patch.params:
            raise ParameterError(f"step {k + 1}: holes {list(patch.params)} are not filled")
        parts.append(patch.render(None, n_samples=n)[0])
    audio = np.concatenate(parts, axis=-1)
    out = write_audio(out, audio, args.sr)
    print(f"wrote {out} ({args.steps} steps of {n / args.sr:g} s, {args.sr} Hz, rendered in "
          f"{time.perf_counter() - t0:.2f} s with the {args.backend} backend)")
    return 0


def run_nodes(args: argparse.Namespace) -> int:
    from musicgym.synth.nodes import ENGINE_TRAPS, NODES, REFERENCE_ONLY
    from musicgym.synth.parse import SIGNATURES

    aliases = {}
    for name, cls in NODES.items():
        aliases.setdefault(cls, []).append(name)
    print("Nodes the NumPy backend runs (faithful to glicol@0.4.0):\n")
    for cls, names in sorted(aliases.items(), key=lambda kv: kv[1][0]):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else names[0]
        also = f"  (also: {', '.join(names[1:])})" if len(names) > 1 else ""
        print(f"  {doc}{also}")
    only = sorted(n for n in REFERENCE_ONLY if n in SIGNATURES)
    print(f"\nOnly with --backend glicol: {', '.join(only)}")
    print(f"The real engine crashes on: {', '.join(sorted(ENGINE_TRAPS))}")
    return 0


def run_examples(args: argparse.Namespace) -> int:
    from musicgym.audio.io import write_wav
    from musicgym.synth import Patch
    from musicgym.synth.examples import EXAMPLES, default_params, example_samples

    folder = Path(args.output)
    samples = example_samples()
    print(f"Rendering {len(EXAMPLES)} example patches (4 s each) with musicgym's engine:")
    for name, (code, _) in EXAMPLES.items():
        patch = Patch(code, samples=samples if "\\kick" in code else None)
        t0 = time.perf_counter()
        audio = patch.render(default_params(name, patch.params), seconds=4.0)[0]
        elapsed = time.perf_counter() - t0
        path = write_wav(folder / f"{name}.wav", audio, patch.sr)
        print(f"  {path}  ({elapsed * 1000:.0f} ms)")
        (folder / f"{name}.glicol").write_text(code + "\n", encoding="utf-8")
    print(f"\nListen to the WAV files in {folder}/ (the .glicol files beside them are the code).")
    return 0
