"""Built-in example patches: what ``make demo`` renders and ``benchmarks/engine.py`` times.

Each entry is Glicol code with holes and one default parameter row. The sampler example plays
a drum sample that musicgym makes itself (a rendered ``bd``), so nothing is downloaded.
"""

from __future__ import annotations

import numpy as np

EXAMPLES: dict[str, tuple[str, dict[str, float]]] = {
    # RaveForce's kick example, unchanged
    "kick": ("~env: imp 0.1 >> envperc {} {}\nkick_drum: sin {} >> mul ~env",
             {"0": 0.002, "1": 0.35, "2": 60.0}),
    "bassline": ("~gate: seq 36 _ 36 48_ 39 _ 43 36_\n"
                 "~env: get ~gate >> envperc 0.005 {decay}\n"
                 "o: get ~gate >> sawsynth 0.005 {decay} >> lpf {cutoff} {q} >> mul 0.3",
                 {"decay": 0.2, "cutoff": 900.0, "q": 2.0}),
    "fm": ("~mod: sin {mod_hz} >> mul {depth_hz} >> add {carrier_hz}\n"
           "o: sin ~mod >> mul 0.3",
           {"mod_hz": 220.0, "depth_hz": 300.0, "carrier_hz": 440.0}),
    "plate": ("~click: imp 2 >> envperc 0.001 0.05\n"
              "o: saw 220 >> mul ~click >> plate {mix} >> mul 0.5",
              {"mix": 0.3}),
    "sampler": ('o: psampler "\\kick@0 \\kick@0.25 \\kick@0.5 \\kick@0.625"(1) >> mul {gain}',
                {"gain": 0.8}),
}


def default_params(name: str, params: tuple[str, ...]) -> np.ndarray:
    """The example's default parameter row, in the patch's column order."""
    values = EXAMPLES[name][1]
    return np.array([[values[p] for p in params]], dtype=np.float64)


def example_samples(sr: int = 44100) -> dict[str, tuple[np.ndarray, int]]:
    """Samples the examples use, made by musicgym's own engine (no download)."""
    from musicgym.synth.patch import Patch

    kick = Patch("o: imp 0.5 >> bd 0.3", sr=sr).render(seconds=0.4)[0]
    return {"kick": (kick, sr)}
