"""Train the built-in matchers shipped in ``src/musicgym/data/matchers`` (one per preset).

    PYTHONPATH=src python scripts/train_matchers.py [PRESET...]

Each runs ``python -m musicgym.train.matcher --preset P --examples N --epochs 60 --seed 0``
(50,000 clips of 0.5 s for the drums, 30,000 of 1 s for FMTone-v0: 2-5 minutes each on one
core); the command is recorded in the matcher's JSON sidecar. Shipped so far: Kick-v0 and
Snare-v0 (FMTone-v0's run has not been made on the shared machine yet).
"""

from __future__ import annotations

import sys

from musicgym.train.matcher import main

EXAMPLES = {"Kick-v0": 50_000, "Snare-v0": 50_000, "FMTone-v0": 30_000}

if __name__ == "__main__":
    for preset in sys.argv[1:] or EXAMPLES:
        main(["--preset", preset, "--examples", str(EXAMPLES[preset]), "--epochs", "60",
              "--seed", "0", "-o", f"src/musicgym/data/matchers/{preset}"])
