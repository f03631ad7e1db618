"""Shared fixtures: the real Glicol engine (skipped with a clear message where absent) and the
real material in $MUSICGYM_DATA_DIR or ../shared/data (read in place, never copied into the
repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicgym.datapath import data_subdir


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
    folder = data_subdir("oneshots")
    if not folder.is_dir():
        pytest.skip(f"real one-shots not found at {folder}: set MUSICGYM_DATA_DIR")
    return folder
