"""Train the built-in matchers shipped in ``src/musicgym/data/matchers`` (one per preset).

    PYTHONPATH=src python scripts/train_matchers.py [PRESET...]

Each runs ``python -m musicgym.train.matcher --preset P --examples 50000 --epochs 60 --seed 0``
(about 2 minutes each on one core); the command is recorded in the matcher's JSON sidecar.
"""

from __future__ import annotations

import sys

from musicgym.train.matcher import main

PRESETS = ("Kick-v0", "Snare-v0", "FMTone-v0")

if __name__ == "__main__":
    for preset in sys.argv[1:] or PRESETS:
        main(["--preset", preset, "--examples", "50000", "--epochs", "60", "--seed", "0",
              "-o", f"src/musicgym/data/matchers/{preset}"])
