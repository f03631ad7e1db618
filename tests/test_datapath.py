"""Where the real recordings are found: MUSICGYM_DATA_DIR, a subfolder's own variable, or the
checkout's shared/data; an error naming the setting when they are needed and not found."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicgym.datapath import checkout_data_dir, data_subdir, require_data_subdir, shared_data_dir
from musicgym.errors import AccompanyConfigError, DataNotFoundError
from musicgym.follow.corpus import brahms_takes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_data_vars(monkeypatch):
    for name in ("MUSICGYM_DATA_DIR", "MUSICGYM_DUETS_DIR", "MUSICGYM_ONESHOTS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_checkout_default_is_shared_data_beside_it(no_data_vars):
    assert checkout_data_dir() == ROOT.parent / "shared" / "data"
    beside = checkout_data_dir()
    assert shared_data_dir() == (beside if beside.is_dir() else None)


def test_musicgym_data_dir_wins_and_a_subfolder_variable_wins_over_it(no_data_vars, monkeypatch,
                                                                      tmp_path):
    (tmp_path / "duets").mkdir()
    monkeypatch.setenv("MUSICGYM_DATA_DIR", str(tmp_path))
    assert shared_data_dir() == tmp_path
    assert require_data_subdir("duets") == tmp_path / "duets"
    monkeypatch.setenv("MUSICGYM_ONESHOTS_DIR", str(tmp_path / "mine"))
    assert data_subdir("oneshots") == tmp_path / "mine"


def test_missing_data_names_the_setting(no_data_vars, monkeypatch, tmp_path):
    monkeypatch.setenv("MUSICGYM_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="set MUSICGYM_DATA_DIR"):
        require_data_subdir("oneshots")
    with pytest.raises(AccompanyConfigError, match="MUSICGYM_DATA_DIR.*simulated"):
        brahms_takes()
