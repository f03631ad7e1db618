"""The scripts in examples/ run (tiny budgets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_raveforce_port_runs():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "raveforce_port.py")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "terminated: True" in proc.stdout


def test_sb3_training_example_writes_sounds(tmp_path):
    pytest.importorskip("stable_baselines3")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "train_synth_match_sb3.py"),
                           "--steps", "64", "--num-envs", "8", "--batch-size", "32",
                           "-o", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = next(tmp_path.iterdir())
    assert (run / "agent.wav").is_file() and (run / "target.wav").is_file()
    assert "distance to the target" in proc.stdout
