"""The layers of shared/DESIGN.md hold: no module imports from a layer above its own.

import-linter checks the layers contract in pyproject.toml (``[tool.importlinter]``) on this
checkout's ``src/``, lazy imports inside functions included; a broken contract fails with
import-linter's own report (which module imports which, at which line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from importlinter import api

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "musicgym"


def _layers() -> list[str]:
    contracts = api.read_configuration(str(ROOT / "pyproject.toml"))
    (layers,) = [c["layers"] for c in contracts["contracts_options"] if c["type"] == "layers"]
    return [name.strip() for layer in layers for name in layer.split("|")]


def test_every_part_of_the_package_has_a_layer():
    # a module outside every layer would be checked by nothing
    parts = {p.stem if p.suffix == ".py" else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").is_file())
             and p.name not in ("__init__.py", "__main__.py")}
    assert {f"musicgym.{part}" for part in parts} <= set(_layers())


def test_no_module_imports_from_a_layer_above_its_own():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                               "sys.exit(lint_imports_command())",
         "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"imports against the layers:\n{run.stdout}{run.stderr}"
