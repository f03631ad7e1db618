"""Load a script of the repository (a benchmark harness, scripts/fuzz.py) as a module, by path:
they are not part of the package, so the tests cannot import them by name."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str) -> ModuleType:
    """The module ``name`` executed from ``ROOT / relative`` (e.g. ``benchmarks/x.py``)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
