"""Seeded fuzzing of everything musicgym reads from outside: only musicgym's own errors allowed.

Each target takes inputs made from a seed (mutations of valid files, token soup, extreme
numbers) and runs the public reader on them; a success or a ``musicgym.errors`` exception is
fine, any other exception (or a hang, which the caller's timeout catches) is a finding.

    python scripts/fuzz.py --inputs 20000 --seed 1

The CI test (``tests/test_fuzz.py``) runs the same targets on a few thousand inputs.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from musicgym.errors import MusicgymError

EXTREMES = ["0", "-0", "1", "-1", "0.0", "2147483648", "-2147483649", "9" * 40, "1e308",
            "1.0e308", "nan", "inf", "-inf", "0.000001", "65536", "4294967296", "1/0", "①",
            "٣", "", "x", "{}", "-", "1/3", "3/0"]
NODES = ["sin", "saw", "squ", "tri", "imp", "noise", "sig", "mul", "add", "mix", "lpf", "hpf",
         "rhpf", "onepole", "apfmsgain", "delayn", "delayms", "envperc", "adsr", "seq", "speed",
         "choose", "sp", "bd", "sn", "hh", "plate", "points", "arrange", "balance", "pan"]
SYMBOLS = [" ", " ", " ", "\n", ">>", ":", "~a", "~b", "o", "a", "_", "{", "}", "{x}", ",",
           "\"", "'", "(", ")", "@", ".", "\t", "①", "é", "\\bd", "-", "+", "|", "//"]


PROGRAM_SEEDS = [
    "o: sin 440.0 >> mul 0.5", "o: saw 110.0 >> lpf 1000.0 1.0 >> delayms 10.0",
    "~a: sin 2.0 >> mul 100.0\no: squ ~a >> rhpf 300.0 0.7",
    "o: imp 2.0 >> envperc 0.01 0.2 >> mul ~b\n~b: tri 220.0",
    "o: noise 1 >> onepole 0.5 >> apfmsgain 20.0 0.5", "o: saw 50.0 >> plate 0.3",
    "o: seq 60 _ 62 >> bd 0.2", "o: seq 60 62 >> sn 0.1 >> delayn 100",
    "o: speed 2.0 >> seq 60 _~a 64 >> hh 0.05\n~a: choose 60 67",
    "o: sin {f} >> mul {g} >> lpf {c} 1.0",
    "~x: sig 0.5\no: saw 220.0 >> mul ~x >> adsr 0.01 0.1 0.5 0.2",
]
# numbers a valid program may hold, as Glicol writes them (a point, no exponent)
GLICOL_EXTREMES = ["0.0", "-0.0", "-1.0", "0", "2147483648", "2147483648.0", "1000000000",
                   "100000000000000000000.0", "0.0000001", "-100000.0", "128", "255", "99999"]


def _number(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(EXTREMES)
    return f"{rng.uniform(-2000, 20000):.{rng.randint(0, 3)}f}"


def glicol_program(rng: random.Random) -> str:
    """A program near Glicol's grammar: chains of nodes with odd arguments, or token soup."""
    roll = rng.random()
    if roll < 0.2:
        return "".join(rng.choice(SYMBOLS + NODES + EXTREMES) for _ in range(rng.randint(1, 20)))
    if roll < 0.6:  # a valid program with one or two numbers made extreme
        tokens = rng.choice(PROGRAM_SEEDS).split(" ")
        for _ in range(rng.randint(1, 2)):
            numbers = [i for i, t in enumerate(tokens) if t[:1].isdigit()]
            if numbers:
                tokens[rng.choice(numbers)] = rng.choice(GLICOL_EXTREMES)
        return " ".join(tokens)
    lines = []
    for name in rng.sample(["o", "~a", "~b", "out"], rng.randint(1, 3)):
        nodes = []
        for _ in range(rng.randint(1, 4)):
            node = rng.choice(NODES)
            args = [rng.choice([_number(rng), "~a", "~b", "{}", "60 _ 62"]) if node == "seq"
                    else _number(rng) if rng.random() < 0.8 else rng.choice(["~a", "~b", "{}"])
                    for _ in range(rng.randint(0, 3))]
            nodes.append(" ".join([node, *args]))
        lines.append(f"{name}: " + " >> ".join(nodes))
    return "\n".join(lines)


def _arithmetic(rng: random.Random, depth: int) -> str:
    """A well-formed expression in x, with extreme numbers now and then."""
    roll = rng.random()
    if depth == 0 or roll < 0.3:
        return rng.choice(["x", "x", "pi", f"{rng.uniform(-3, 3):.2f}", _number(rng)])
    if roll < 0.8:
        op = rng.choice(["+", "-", "*", "/", "**"])
        return f"({_arithmetic(rng, depth - 1)} {op} {_arithmetic(rng, depth - 1)})"
    name = rng.choice(["exp", "log", "sqrt", "sin", "abs", "floor", "round", "min", "max"])
    args = [_arithmetic(rng, depth - 1) for _ in range(2 if name in ("min", "max") else 1)]
    return f"{name}({', '.join(args)})"


def _mutate_text(text: str, rng: random.Random) -> str:
    """Replace numbers with extremes, drop or duplicate lines, insert bytes of noise."""
    tokens = text.split(",")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(tokens))
        tokens[i] = tokens[i].rstrip("0123456789.") + rng.choice(EXTREMES)
    out = ",".join(tokens)
    if rng.random() < 0.2:
        lines = out.splitlines()
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i] if rng.random() < 0.5 else "".join(rng.choice(SYMBOLS)
                                                                     for _ in range(8)))
        out = "\n".join(lines)
    return out


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(buf))
        buf[i] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    if rng.random() < 0.2:
        del buf[rng.randrange(len(buf)):]
    return bytes(buf)


CONFIG_SEEDS = [
    "algo: ppo\nenv_id: musicgym/Kick-v0\nenv_kwargs: {n_steps: 2, action_space: [[lin, 0, 1],"
    " [rel, 0, '0.5 - x']]}\n",
    '{"piece": {"bars": 4, "mode": "major"}, "agent": {"lr": 0.001}}',
    "a: &a [1, 2, 3]\nb: &b [*a, *a, *a]\nc: [*b, *b]\n",
    "x:\n  - y:\n      - z: [1, [2, [3, [4]]]]\n",
]
MATCH_SEED = """info(matchFileVersion,5.0).
info(midiClockUnits,480).
info(midiClockRate,500000).
info(keySignature,[A Maj/F# min]).
info(timeSignature,[2/4]).
snote(n2,[C,#],4,1:1,0,3/8,0.0,1.5,[])-note(n0,[C,#],4,551,1096,1096,44).
snote(n3,[F,#],4,1:2,1/8,1/8,1.5,2.0,[])-note(n1,[F,#],4,1218,1280,1280,52).
snote(n5,[A,n],4,2:1,0,3/8,2.0,3.5,[])-note(n2,[A,n],4,1447,2055,2055,72).
snote(n6,[F,#],4,2:2,1/8,1/8,3.5,4.0,[])-note(n3,[F,#],4,2087,2152,2152,45).
"""
MUSICXML_SEED = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>A</part-name>
</score-part></part-list><part id="P1"><measure number="1"><attributes><divisions>1</divisions>
<key><fifths>0</fifths></key><time><beats>4</beats><beat-type>4</beat-type></time></attributes>
<note><pitch><step>C</step><octave>4</octave></pitch><duration>2</duration><voice>1</voice>
</note><note><pitch><step>E</step><alter>1</alter><octave>4</octave></pitch>
<duration>2</duration><voice>1</voice></note></measure></part></score-partwise>
"""
SCALA_SEED = "! x.scl\nA scale\n 4\n!\n 9/8\n 5/4\n 701.955\n 2/1\n"


def _midi_seed() -> bytes:
    from musicgym.music.midi import write_midi
    from musicgym.music.notes import make_notes

    with tempfile.TemporaryDirectory() as folder:
        notes = make_notes([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [60, 64, 67])
        path = write_midi(Path(folder) / "seed.mid", notes)
        return path.read_bytes()


def _wav_seed() -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.sin(np.arange(2000) / 10.0).astype(np.float32), 8000, format="WAV",
             subtype="PCM_16")
    return buffer.getvalue()


class Targets:
    """The fuzz targets; each ``name(rng)`` runs one input and returns what it tried."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.midi_seed = _midi_seed()
        self.wav_seed = _wav_seed()

    def _file(self, name: str, data: bytes | str) -> Path:
        path = self.folder / name
        path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str)
                         else data)
        return path

    def parser(self, rng: random.Random) -> str:
        from musicgym.synth.parse import parse

        code = glicol_program(rng)
        parse(code)
        return code

    def renderer(self, rng: random.Random) -> str:
        from musicgym.synth.patch import Patch

        code = glicol_program(rng)
        patch = Patch(code, max_bytes=256 * 2**20)
        params = [[rng.choice([0.0, -1.0, 1e9, 440.0, np.nan]) for _ in patch.params]] \
            if patch.params else None
        patch.render(params, n_samples=rng.choice([1, 128, 300]))
        return code

    def config(self, rng: random.Random) -> str:
        from musicgym.safeio import load_mapping

        text = _mutate_text(rng.choice(CONFIG_SEEDS), rng)
        data = text.encode() if rng.random() < 0.8 else _mutate_bytes(text.encode(), rng)
        kind = rng.choice(["yaml", "json"])
        load_mapping(self._file(f"c.{kind}", data))
        return repr(data[:200])

    def expression(self, rng: random.Random) -> str:
        from musicgym.envs.spaces import ParameterMap

        parts = ["x", "(", ")", "+", "-", "*", "/", "**", "log(", "exp(", "sqrt(", "max(x, ",
                 "pi", "__import__", ".real", "lambda", "[", "]", _number(rng), _number(rng)]
        text = "".join(rng.choice(parts) for _ in range(rng.randint(1, 12))) \
            if rng.random() < 0.4 else _arithmetic(rng, 3)
        pmap = ParameterMap([("lin", -1.0, 1.0), ("rel", 0, text)])
        pmap.params(np.array([[rng.uniform(-1, 1)]]))
        return text

    def match(self, rng: random.Random) -> str:
        from musicgym.music.score import read_match

        text = _mutate_text(MATCH_SEED, rng)
        read_match(self._file("f.match", text))
        return text

    def midi(self, rng: random.Random) -> str:
        from musicgym.music.score import read_score

        read_score(self._file("f.mid", _mutate_bytes(self.midi_seed, rng)))
        return "midi bytes"

    def musicxml(self, rng: random.Random) -> str:
        from musicgym.music.score import read_score

        text = MUSICXML_SEED
        for _ in range(rng.randint(1, 3)):
            tags = ["divisions", "duration", "octave", "beats", "beat-type", "alter", "fifths"]
            tag = rng.choice(tags)
            start = text.find(f"<{tag}>")
            end = text.find(f"</{tag}>", start)
            text = text[:start] + f"<{tag}>{rng.choice(EXTREMES)}" + text[end:]
        read_score(self._file("f.musicxml", text))
        return text

    def scala(self, rng: random.Random) -> str:
        from musicgym.music.tunings import read_scl

        text = _mutate_text(SCALA_SEED.replace("\n", ",\n"), rng).replace(",\n", "\n")
        read_scl(self._file("f.scl", text))
        return text

    def audio(self, rng: random.Random) -> str:
        from musicgym.audio.io import read_audio

        read_audio(self._file("f.wav", _mutate_bytes(self.wav_seed, rng)),
                   sr=rng.choice([None, 8000, 44100]))
        return "wav bytes"

    def _kick_env(self):
        from musicgym.envs.presets import KICK_CODE, kick_target
        from musicgym.envs.synth_match import SynthMatchEnv

        if not hasattr(self, "_env"):
            self._env = SynthMatchEnv(KICK_CODE, kick_target(), 1, 0.05,
                                      [("exp", 0.0005, 0.05), ("exp", 0.05, 0.5),
                                       ("exp", 30.0, 300.0)])
        return self._env

    def env(self, rng: random.Random) -> str:
        env = self._kick_env()
        seed = rng.choice([None, 0, 1, 2**31])
        env.reset(seed=seed)
        action = rng.choice([np.zeros(3, np.float32), np.full(3, 2.0, np.float32),
                             np.array([np.nan, 0, 0], np.float32), np.zeros(4, np.float32),
                             np.zeros((2, 3), np.float32), "x", None, [0.0, 0.0, 0.0]])
        env.step(action)
        return f"reset(seed={seed}) step({action!r})"

    def env_reset(self, rng: random.Random) -> str:
        options = rng.choice([None, {}, {"target": 0}, {"target": 99}, {"target": -1},
                              {"target": "a"}, {"target": 1.5}, {"other": 1}, "options"])
        self._kick_env().reset(options=options)
        return f"reset(options={options!r})"


# (target, share of the inputs): the parser is cheap, partitura's readers are not
PLAN = [("parser", 0.45), ("renderer", 0.06), ("config", 0.14), ("expression", 0.12),
        ("scala", 0.1), ("audio", 0.05), ("midi", 0.03), ("musicxml", 0.015), ("match", 0.005),
        ("env", 0.03), ("env_reset", 0.005)]


def fuzz(n_inputs: int, seed: int = 0, stats: dict | None = None,
         targets: tuple[str, ...] | None = None) -> Iterator[tuple[str, str, str]]:
    """Run about ``n_inputs`` inputs; yield (target, input, traceback) for each foreign error.

    ``stats``, if given, gets per target the count of inputs accepted and refused (our errors);
    ``targets`` picks some of :data:`PLAN`'s targets (default all).
    """
    stats = {} if stats is None else stats
    with tempfile.TemporaryDirectory() as folder:
        runner = Targets(Path(folder))
        for name, share in PLAN:
            if targets is not None and name not in targets:
                continue
            rng = random.Random(f"{seed}-{name}")
            run: Callable[[random.Random], str] = getattr(runner, name)
            counts = stats.setdefault(name, {"accepted": 0, "refused": 0})
            for _ in range(max(3, int(n_inputs * share))):
                state = rng.getstate()
                try:
                    run(rng)
                    counts["accepted"] += 1
                except MusicgymError:
                    counts["refused"] += 1
                except Exception:  # a finding: anything but our own errors
                    rng.setstate(state)
                    yield name, _describe(name, rng), traceback.format_exc()


def _describe(name: str, rng: random.Random) -> str:
    """The input a target made from this rng state (recreated without running it)."""
    makers = {"parser": glicol_program, "renderer": glicol_program}
    return makers[name](rng) if name in makers else f"{name} input (rerun with this seed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=5000, help="inputs in all (default 5000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    findings, stats = 0, {}
    for name, text, trace in fuzz(args.inputs, args.seed, stats):
        findings += 1
        print(f"--- {name}: {text!r}\n{trace}")
    for name, counts in stats.items():
        print(f"{name:>10}: {counts['accepted']} accepted, {counts['refused']} refused")
    print(f"{args.inputs} inputs, seed {args.seed}: {findings} foreign exceptions")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
