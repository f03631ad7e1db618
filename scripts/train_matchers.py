"""Train the built-in matchers shipped in ``src/musicgym/data/matchers`` (one per preset).

    PYTHONPATH=src python scripts/train_matchers.py [PRESET...]

Each runs ``python -m musicgym.train.matcher --preset P --examples N --epochs 60 --seed 0``
(50,000 clips of 0.5 s for the drums, 30,000 of 1 s for FMTone-v0: 2-5 minutes each on one
core); the command is recorded in the matcher's JSON sidecar. Shipped so far: Kick-v0 and
Snare-v0 (FMTone-v0's run has not been made on the shared machine yet).

Snare-v0 (the patch the real one-shots are matched with) then learns from search:
``--init`` itself ``--distill 2000`` (2,000 SoundFont one-shots matched by policy+nm, then a
fine-tune; about 5 minutes of search on one core, docs/matching.md).
"""

from __future__ import annotations

import sys

from musicgym.train.matcher import main

EXAMPLES = {"Kick-v0": 50_000, "Snare-v0": 50_000, "FMTone-v0": 30_000}
DISTILL = {"Snare-v0": 2000}  # SoundFont one-shots it then learns from search on

if __name__ == "__main__":
    for preset in sys.argv[1:] or EXAMPLES:
        main(["--preset", preset, "--examples", str(EXAMPLES[preset]), "--epochs", "60",
              "--seed", "0", "-o", f"src/musicgym/data/matchers/{preset}"])
        if preset in DISTILL:
            path = f"src/musicgym/data/matchers/{preset}"
            main(["--preset", preset, "--init", path, "--examples", "20000", "--seed", "0",
                  "--distill", str(DISTILL[preset]), "--distill-budget", "100",
                  "--finetune-epochs", "20", "-o", path])
