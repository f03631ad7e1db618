"""Fixtures over the real Brahms duet takes (read in place from ../shared/data/duets)."""

from __future__ import annotations

import pytest

from musicgym.follow.duets import BRAHMS, default_duets_dir, load_duet


@pytest.fixture(scope="session")
def brahms_match_dir():
    folder = default_duets_dir() / BRAHMS / "match"
    if not folder.is_dir():
        pytest.skip(
            f"real duets not found at {folder}: set MUSICGYM_DUETS_DIR to the shared duets folder"
        )
    return folder


@pytest.fixture(scope="session")
def brahms_takes(brahms_match_dir):
    return load_duet(brahms_match_dir)
