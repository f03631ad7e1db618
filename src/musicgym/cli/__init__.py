"""The ``musicgym`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from musicgym.errors import MusicgymError, UsageError

# subcommand modules, in the order `musicgym --help` lists them
SUBCOMMANDS = [
    "musicgym.cli.render",
    "musicgym.cli.train",
    "musicgym.cli.compose",
    "musicgym.cli.improvise",
    "musicgym.cli.accompany",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicgym",
        description="Reinforcement-learning environments for real musical work.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MusicgymError as exc:
        print(f"musicgym {args.command}: error: {exc}", file=sys.stderr)
        # a usage error exits as argparse does for a bad option
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
