"""Engine benchmark: musicgym's NumPy backend vs the real Glicol engine, side by side.

For each patch (RaveForce's kick, a seq-driven saw bass through lpf, an FM tone, a plate reverb,
a sampler pattern) and B = 1 and B = 64 parameter sets of 1 s each, both backends render the
same parameters; the table gives rendered seconds of audio per wall-clock second (median of
repeats, first-call compilation excluded) and the ratio NumPy / reference.

Goals (issue 2): kick >= 100x the reference at B = 64 and >= 10x at B = 1; every patch faster
than the reference at B = 64.

    python benchmarks/engine.py [--repeats 5] [--json benchmarks/results/engine.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from musicgym.synth import Patch
from musicgym.synth.examples import EXAMPLES, default_params, example_samples

PATCHES = ["kick", "bassline", "fm", "plate", "sampler"]
SECONDS = 1.0


def params_for(name: str, patch: Patch, batch: int, seed: int = 0) -> np.ndarray:
    """B parameter rows spread +-30 % around the example's defaults (seeded)."""
    base = default_params(name, patch.params)
    rng = np.random.default_rng(seed)
    return base * rng.uniform(0.7, 1.3, size=(batch, base.shape[1]))


def time_render(patch: Patch, params: np.ndarray, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        patch.render(params if patch.n_params else np.zeros((params.shape[0], 0)),
                     seconds=SECONDS, progress=False)
        times.append(time.perf_counter() - t0)
    return times


def run(repeats: int, ref_repeats: int) -> list[dict]:
    samples = example_samples()
    rows = []
    for name in PATCHES:
        code = EXAMPLES[name][0]
        uses = samples if "\\kick" in code else None
        ours = Patch(code, samples=uses)
        ref = Patch(code, samples=uses, backend="glicol")
        for batch in (1, 64):
            params = params_for(name, ours, batch)
            time_render(ours, params, 1)  # warm-up: numba compilation and caches
            time_render(ref, params[:1], 1)
            t_ours = statistics.median(time_render(ours, params, repeats))
            t_ref = statistics.median(time_render(ref, params, ref_repeats))
            audio_s = batch * SECONDS
            rows.append({"patch": name, "batch": batch,
                         "numpy_s_per_s": audio_s / t_ours, "glicol_s_per_s": audio_s / t_ref,
                         "ratio": t_ref / t_ours, "numpy_wall_s": t_ours, "glicol_wall_s": t_ref})
            print(f"  {name:9s} B={batch:<3d} numpy {audio_s / t_ours:10.1f} s/s   "
                  f"glicol {audio_s / t_ref:8.1f} s/s   ratio {t_ref / t_ours:7.1f}x", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| patch | B | NumPy (audio s / wall s) | Glicol wasm (audio s / wall s) | "
             "NumPy / Glicol |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['patch']} | {r['batch']} | {r['numpy_s_per_s']:,.0f} | "
                     f"{r['glicol_s_per_s']:,.1f} | **{r['ratio']:,.1f}x** |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="repeats of each NumPy render")
    ap.add_argument("--ref-repeats", type=int, default=3, help="repeats of each Glicol render")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "engine.json"))
    args = ap.parse_args()
    print(f"engine benchmark: {SECONDS:g} s per parameter set, median of repeats")
    rows = run(args.repeats, args.ref_repeats)
    print()
    print(table(rows))
    kick = {r["batch"]: r["ratio"] for r in rows if r["patch"] == "kick"}
    goals = {
        "kick >= 100x at B=64": kick[64] >= 100,
        "kick >= 10x at B=1": kick[1] >= 10,
        "every patch faster at B=64": all(r["ratio"] > 1 for r in rows if r["batch"] == 64),
    }
    for goal, met in goals.items():
        print(f"{'met    ' if met else 'NOT MET'}  {goal}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({
        "command": "python benchmarks/engine.py", "machine": platform.platform(),
        "processor": platform.processor(), "seconds_per_set": SECONDS, "rows": rows,
        "goals": goals}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
