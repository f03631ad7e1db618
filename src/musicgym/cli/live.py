"""``musicgym live MODE``: play with a musician in real time; each mode comes from its own module.

A mode's module calls :func:`live_modes` from its ``add_parser(subparsers)`` and adds its
parser to what it returns (``musicgym.cli.accompany`` adds ``accompany``; another module may add
``improvise`` the same way). The ``live`` parser is made by whichever module asks first.
"""

from __future__ import annotations

import argparse


def live_modes(subparsers) -> argparse._SubParsersAction:
    """The sub-commands of ``musicgym live``, creating the ``live`` parser on first use.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``musicgym`` command's subparsers (what ``add_parser`` receives).

    Returns
    -------
    argparse._SubParsersAction
        Add a mode with ``live_modes(subparsers).add_parser(NAME, ...)`` and give it a
        ``func`` default.
    """
    live = subparsers.choices.get("live")
    if live is None:
        live = subparsers.add_parser(
            "live", help="play with a musician in real time (MIDI, OSC)",
            description="Play live with a trained agent or a baseline. Choose a MODE.")
        live.musicgym_modes = live.add_subparsers(dest="live_mode", metavar="MODE")
        live.set_defaults(func=lambda args: _print_modes(live))
    return live.musicgym_modes


def _print_modes(live: argparse.ArgumentParser) -> int:
    live.print_help()
    return 2
