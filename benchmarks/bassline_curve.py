"""BassLine-v0's note head: how the notes it names grow with the bass lines it learns from.

The learning curve behind the shipped recipe (docs/matching.md, "BassLine-v0"): the one-step
matcher trained on the patch's own sounds (``--examples``, ``--epochs``, seed 0), then a note
head trained on it and on N SoundFont bass lines of the training programs less the
validation ones (:func:`musicgym.train.matcher_steps.learn_notes`, the same lines for every
N: a longer run's first N lines are a shorter run's), scored on the steps of bass lines of
the validation programs (seed 1000) that no head heard, beside YIN. The test programs are
not used.

    OMP_NUM_THREADS=1 python benchmarks/bassline_curve.py --lines 156 312 625 1250 2500

writes ``benchmarks/results/bassline_curve.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from musicgym.envs.spaces import ParameterMap  # noqa: E402
from musicgym.train.matcher import patch_spec, synthetic_dataset, train_matcher  # noqa: E402
from musicgym.train.matcher_steps import (  # noqa: E402
    TRAIN_PROGRAMS,
    VALIDATION_PROGRAMS,
    learn_notes,
    note_accuracy,
    soundfont_basslines,
    yin_notes,
)


def named(matcher, spec: dict, steps: np.ndarray) -> np.ndarray:
    """The MIDI note of each step by the matcher's single pass."""
    actions = matcher.forward(matcher.features(steps))
    return ParameterMap(spec["action_space"], flat=True).params(actions, len(actions))[:, 0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="+", default=[156, 312, 625, 1250, 2500],
                    help="bass lines the head learns from, one head per number")
    ap.add_argument("--validation-lines", type=int, default=40)
    ap.add_argument("--examples", type=int, default=40_000)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"
                                          / "bassline_curve.json"))
    args = ap.parse_args(argv)
    spec = patch_spec("BassLine-v0")
    clips, notes, _ = soundfont_basslines(args.validation_lines, spec, seed=1000,
                                          programs=VALIDATION_PROGRAMS)
    steps, truth = clips.reshape(-1, clips.shape[1] // 16), notes.reshape(-1)
    rows = [{"model": "YIN (no learning)", "lines": 0,
             "notes": note_accuracy(yin_notes(steps), truth)}]
    t0 = time.perf_counter()
    base = train_matcher(spec, examples=args.examples, epochs=args.epochs, seed=0,
                         log=lambda _: None)
    rows.append({"model": "regression, the patch's sounds only", "lines": 0,
                 "notes": note_accuracy(named(base, spec, steps), truth),
                 "seconds": time.perf_counter() - t0})
    print(rows[0], rows[1], sep="\n", flush=True)
    x, y = synthetic_dataset(spec, min(args.examples, 20_000), seed=0,
                             features=base.features_kwargs)
    pool = [p for p in TRAIN_PROGRAMS if p not in VALIDATION_PROGRAMS]
    for n in args.lines:
        t0 = time.perf_counter()
        head = learn_notes(base, spec, x, y, n, seed=0, programs=pool, log=lambda _: None)
        rows.append({"model": "note head", "lines": n,
                     "notes": note_accuracy(named(head, spec, steps), truth),
                     "seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    print(f"\n| model | bass lines learnt from | validation steps named ({len(truth)}) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['lines']} | {100 * r['notes']:.1f} % |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
