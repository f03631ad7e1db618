"""Shared fixtures: the real Glicol engine (skipped with a clear message where absent) and the
real material in ../shared/data (read from there, never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def glicol():
    """The real engine's render function, or a skip saying how to install it."""
    from musicgym.synth import reference

    if not reference.is_installed():
        pytest.skip(f"the real Glicol engine is not installed at {reference.wasm_path()}: "
                    "run `make setup` (npm install glicol@0.4.0)")
    return reference.render_reference


@pytest.fixture(scope="session")
def oneshots_dir() -> Path:
    folder = SHARED_DATA / "oneshots"
    if not folder.is_dir():
        pytest.skip(f"real one-shots not found at {folder} (shared/data is beside the repository)")
    return folder
