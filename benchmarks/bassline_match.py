"""BassLine-v0 matching: the built-in matcher names a bass line's notes (issue 13, item 5).

BassLine-v0 is a 16-step sequencer (a saw through a low-pass filter; each step a note, MIDI
33-51, and a cutoff). Every method matches a target step by step
(:func:`musicgym.train.match.match_target`); "evaluations" count renders of one 0.25 s step.

Targets, none used for any choice:

* ``default``: the preset's own target (an additive-saw bass line, another synthesis model);
* ``soundfont``: bass lines of General MIDI programs the matcher never heard
  (:data:`musicgym.train.matcher_steps.TEST_PROGRAMS`: fretless, slap 2, synth bass 2,
  pizzicato, bassoon), seed 2000 (the matcher learnt from seed 1's lines of other programs;
  its recipe was chosen on seed 1000's lines of the training programs);
* ``synthetic``: the patch itself at random settings (seed 777000), whose cutoffs are known
  too.

Per method and set: notes named exactly (the musical question), MR-STFT and 13-MFCC error of
the whole line (the issue's measures), cutoff error on the synthetic lines (|normalised
difference| / 2, median), step renders and seconds per line. ``yin`` names notes with a
non-learning pitch tracker (YIN) and renders nothing.

    MUSICGYM_DATA_DIR=... python benchmarks/bassline_match.py --lines 10 --synthetic 4

writes ``benchmarks/results/bassline_match.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from musicgym.envs.matcher_model import Matcher  # noqa: E402
from musicgym.envs.presets import BASS_NOTES, bassline_target  # noqa: E402
from musicgym.envs.spaces import ParameterMap  # noqa: E402
from musicgym.train.match import SYNTHETIC_SEED, match_target  # noqa: E402
from musicgym.train.matcher import patch_spec  # noqa: E402
from musicgym.train.matcher_steps import (  # noqa: E402
    TEST_PROGRAMS,
    note_accuracy,
    soundfont_basslines,
    yin_notes,
)

TEST_SEED = 2000


def targets(spec: dict, lines: int, synthetic: int) -> list[dict]:
    """[{set, name, clip, notes, actions (synthetic only)}]."""
    out = [{"set": "default", "name": "default", "clip": bassline_target(),
            "notes": np.array(BASS_NOTES), "actions": None}]
    clips, notes, progs = soundfont_basslines(lines, spec, seed=TEST_SEED,
                                              programs=TEST_PROGRAMS)
    out += [{"set": "soundfont", "name": f"sf{i}_program{p}", "clip": c, "notes": n,
             "actions": None} for i, (c, n, p) in enumerate(zip(clips, notes, progs, strict=True))]
    if synthetic:
        from musicgym.synth import Patch

        patch = Patch(spec["code"])
        pmap = ParameterMap(spec["action_space"], n_holes=patch.n_params, flat=True)
        rng = np.random.default_rng(SYNTHETIC_SEED)
        for i in range(synthetic):
            actions = rng.uniform(-1, 1, (spec["steps"], pmap.space.shape[0]))
            params = pmap.params(actions, len(actions))
            step_n = int(round(spec["seconds"] * 44100))
            clip = patch.render(params, n_samples=step_n, progress=False)[:, 0].reshape(-1)
            out.append({"set": "synthetic", "name": f"synthetic{i}", "clip": clip,
                        "notes": params[:, 0].astype(int), "actions": actions})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10, help="SoundFont bass lines (default 10)")
    ap.add_argument("--synthetic", type=int, default=4, help="synthetic lines (default 4)")
    ap.add_argument("--budget", type=int, default=1000,
                    help="renders per step for cmaes and random (default 1000)")
    ap.add_argument("--hybrid-budget", type=int, default=100,
                    help="renders per step for policy+nm (default 100)")
    ap.add_argument("--matcher", default="builtin", help="builtin or a matcher's base path")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"
                                          / "bassline_match.json"))
    args = ap.parse_args(argv)
    spec = patch_spec("BassLine-v0")
    matcher = Matcher.builtin("BassLine-v0") if args.matcher == "builtin" \
        else Matcher.load(args.matcher)
    items = targets(spec, args.lines, args.synthetic)
    methods = [("yin", None), ("policy", None), ("policy+nm", args.hybrid_budget),
               ("cmaes", args.budget), ("random", args.budget)]
    rows = []
    for item in items:
        step_n = len(item["clip"]) // spec["steps"]
        for method, budget in methods:
            t0 = time.perf_counter()
            if method == "yin":
                named = yin_notes(item["clip"][:spec["steps"] * step_n].reshape(spec["steps"], -1))
                row = {"notes": note_accuracy(named, item["notes"]), "mrstft": None,
                       "mfcc": None, "cutoff_error": None, "evaluations": 0}
            else:
                r = match_target(spec, item["clip"], method, budget=budget, matcher=matcher)
                err = None
                if item["actions"] is not None:
                    err = float(np.median(np.abs(r["actions"][:, 1] - item["actions"][:, 1]))
                                / 2)
                row = {"notes": note_accuracy(r["params"][:, 0].astype(int), item["notes"]),
                       "mrstft": r["mrstft"], "mfcc": r["mfcc"], "cutoff_error": err,
                       "evaluations": r["evaluations"]}
            row.update(set=item["set"], target=item["name"], method=method,
                       seconds=time.perf_counter() - t0)
            rows.append(row)
            print(f"{item['name']:22s} {method:10s} notes {row['notes']:.3f} "
                  + (f"MR-STFT {row['mrstft']:.3f} MFCC {row['mfcc']:.2f} "
                     if row["mrstft"] is not None else "")
                  + f"{row['evaluations']} renders {row['seconds']:.1f} s", flush=True)
    table = []
    for name in ("default", "soundfont", "synthetic"):
        for method, _ in methods:
            sel = [r for r in rows if r["set"] == name and r["method"] == method]
            if not sel:
                continue

            def mean(key, sel=sel):
                vals = [r[key] for r in sel if r[key] is not None]
                return float(np.mean(vals)) if vals else None

            cut = [r["cutoff_error"] for r in sel if r["cutoff_error"] is not None]
            table.append({"set": name, "method": method, "targets": len(sel),
                          "notes": mean("notes"), "mrstft": mean("mrstft"), "mfcc": mean("mfcc"),
                          "cutoff_error": float(np.median(cut)) if cut else None,
                          "evaluations": mean("evaluations"), "seconds": mean("seconds")})
    print("\n| set | method | targets | notes right | MR-STFT | 13-MFCC | cutoff error "
          "(synthetic) | step renders | s / line |")
    print("|---|---|---|---|---|---|---|---|---|")

    def fmt(v, f):
        return "-" if v is None else format(v, f)

    for t in table:
        print(f"| {t['set']} | {t['method']} | {t['targets']} | {t['notes'] * 100:.1f} % | "
              f"{fmt(t['mrstft'], '.3f')} | {fmt(t['mfcc'], '.2f')} | "
              f"{fmt(t['cutoff_error'], '.4f')} | {t['evaluations']:.0f} | "
              f"{t['seconds']:.2f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "table": table, "rows": rows}, indent=1)
                   + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
