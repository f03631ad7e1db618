"""The ``musicgym`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit code). Every subcommand and option
has a help line (tests/cli/test_help.py walks the tree), and ``-o/--output`` is always an
output folder.

Exit status: 0 done; 1 a :class:`~musicgym.errors.MusicgymError` (bad input, printed as one
line); 2 a command line refused before any work (:func:`refuse`, or argparse's own usage
errors); 130 interrupted; 141 standard output closed early (``musicgym nodes | head``), quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from musicgym.errors import MusicgymError, UsageError

# subcommand modules, in the order `musicgym --help` lists them
SUBCOMMANDS = [
    "musicgym.cli.render",
    "musicgym.cli.train",
    "musicgym.cli.compose",
    "musicgym.cli.improvise",
    "musicgym.cli.accompany",
    "musicgym.cli.match",
]


# 128 + SIGPIPE: what a shell reports for a command whose reader went away
EXIT_BROKEN_PIPE = 141


def _version() -> str:
    try:
        return version("musicgym")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The ``musicgym`` parser with every subcommand's parser added."""
    parser = argparse.ArgumentParser(
        prog="musicgym",
        description="Reinforcement-learning environments for real musical work.",
    )
    parser.add_argument("--version", action="version", version=f"musicgym {_version()}",
                        help="print musicgym's version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def refuse(args: argparse.Namespace, message: str) -> int:
    """Refuse a command line before any work: one line on standard error, exit status 2."""
    command = " ".join(filter(None, ["musicgym", args.command, getattr(args, "live_mode", None)]))
    print(f"{command}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run ``musicgym`` with ``argv`` (default: the process's arguments); the exit status."""
    try:
        return _run(argv)
    except BrokenPipeError:
        # the reader left (`musicgym nodes | head`): stop quietly, and point standard output
        # at /dev/null so that the interpreter's last flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not after main has returned
        return status
    except MusicgymError as exc:
        print(f"musicgym {args.command}: error: {exc}", file=sys.stderr)
        # a usage error exits as argparse does for a bad option
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
