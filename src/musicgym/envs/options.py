"""The ``options`` of ``reset``, checked once for every env: a mapping or None.

Gymnasium passes ``reset(options=...)`` through untouched, so a caller's string or list would
otherwise surface as an ``AttributeError`` deep inside an env.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from musicgym.errors import MusicgymError


def reset_options(options: Any, error: type[MusicgymError]) -> Mapping:
    """``options`` as a mapping (``{}`` for None).

    Parameters
    ----------
    options : mapping or None
        What ``reset(options=...)`` received.
    error : type
        The env's own error class, raised for anything else.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise error(f"reset options must be a dict such as {{'target': 0}} or None, got "
                    f"{type(options).__name__} {options!r:.60}")
    return options
