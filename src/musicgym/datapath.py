"""Where musicgym finds the real recordings it reads but never ships: the one-shots and duets.

They live outside the package (they are not musicgym's to redistribute), in one folder with a
``duets/`` and a ``oneshots/`` subfolder, found in this order:

1. ``$MUSICGYM_DATA_DIR``, the documented setting (any install: wheel, ``pip install .``);
2. ``shared/data`` beside a source checkout, when musicgym is imported from one (``src/musicgym``
   under a folder with ``pyproject.toml``, as in an editable install) and that folder exists.

Each subfolder can also be set on its own (``$MUSICGYM_DUETS_DIR``, ``$MUSICGYM_ONESHOTS_DIR``).
Nothing is downloaded; a caller that needs data that is not found gets a
:class:`~musicgym.errors.DataNotFoundError` naming the variable to set.
"""

from __future__ import annotations

import os
from pathlib import Path

from musicgym.errors import DataNotFoundError

DATA_DIR_ENV = "MUSICGYM_DATA_DIR"
_SUBDIR_ENV = {"duets": "MUSICGYM_DUETS_DIR", "oneshots": "MUSICGYM_ONESHOTS_DIR"}


def checkout_data_dir() -> Path | None:
    """``shared/data`` beside the source checkout musicgym is imported from, or None when it is
    imported from an installed copy (a wheel in site-packages has no checkout around it)."""
    package = Path(__file__).resolve().parent
    root = package.parents[1]
    if package.parent.name != "src" or not (root / "pyproject.toml").is_file():
        return None
    return root.parent / "shared" / "data"


def shared_data_dir() -> Path | None:
    """The data folder: ``$MUSICGYM_DATA_DIR``, else the checkout's ``shared/data`` when it is a
    folder, else None (no data here; see :func:`data_subdir` for the error that says so)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    beside = checkout_data_dir()
    return beside if beside is not None and beside.is_dir() else None


def data_subdir(name: str) -> Path:
    """Where the data subfolder ``name`` (``"duets"`` or ``"oneshots"``) is looked for.

    Its own variable wins (``$MUSICGYM_DUETS_DIR``, ``$MUSICGYM_ONESHOTS_DIR``), else
    ``shared_data_dir() / name``. The folder is not checked: use :func:`require_data_subdir`
    where the data is needed.

    Raises
    ------
    DataNotFoundError
        No data folder is set and musicgym does not run from a checkout with one beside it.
    """
    env = os.environ.get(_SUBDIR_ENV[name])
    if env:
        return Path(env).expanduser()
    base = shared_data_dir()
    if base is None:
        raise DataNotFoundError(
            f"no data folder for the real {name}: set {DATA_DIR_ENV} to the folder holding "
            f"duets/ and oneshots/ (or {_SUBDIR_ENV[name]} to the {name} folder itself)"
        )
    return base / name


def require_data_subdir(name: str) -> Path:
    """:func:`data_subdir`, checked to be a folder, else DataNotFoundError naming the setting."""
    folder = data_subdir(name)
    if not folder.is_dir():
        raise DataNotFoundError(
            f"the real {name} are not at {str(folder)!r}: set {DATA_DIR_ENV} to the folder "
            f"holding duets/ and oneshots/ (or {_SUBDIR_ENV[name]} to the {name} folder itself)"
        )
    return folder
