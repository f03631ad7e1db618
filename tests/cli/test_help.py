"""The command line behaves the same everywhere: help lines, ``--version``, a closed pipe."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from musicgym.cli import build_parser

SRC = Path(__file__).resolve().parents[2] / "src"


def _undocumented(parser: argparse.ArgumentParser, command: str) -> list[str]:
    """Every subcommand (help and description), option and positional under ``parser``
    without a help line."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                # help: its line in the parent's list; description: atop its own --help
                if not (helped.get(name) or "").strip():
                    missing.append(f"{command} {name}")
                if not (sub.description or "").strip():
                    missing.append(f"{command} {name} (description)")
                missing += _undocumented(sub, f"{command} {name}")
            continue
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            what = "/".join(action.option_strings) or action.dest
            missing.append(f"{command} {what}")
    return missing


def test_the_walk_finds_what_has_no_help():
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--ok", help="documented")
    sub = parser.add_subparsers()
    quiet = sub.add_parser("quiet")
    quiet.add_argument("--seed")
    sub.add_parser("told", help="a line", description="more")
    assert _undocumented(parser, "p") == ["p quiet", "p quiet (description)", "p quiet --seed"]


def test_every_subcommand_and_option_has_a_help_line():
    missing = _undocumented(build_parser(), "musicgym")
    assert not missing, "without a help line:\n" + "\n".join(missing)


def _musicgym(shell_tail: str = "", *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]), PYTHONUNBUFFERED="1")
    command = " ".join([f"'{sys.executable}' -m musicgym", *args, shell_tail])
    return subprocess.run(["bash", "-c", command + "; echo status ${PIPESTATUS[0]}"],
                          env=env, capture_output=True, text=True, timeout=300)


def test_version_is_the_packages():
    run = _musicgym("", "--version")
    assert run.stdout.splitlines()[0] == f"musicgym {version('musicgym')}"
    assert "status 0" in run.stdout and run.stderr == ""


def test_output_into_a_closed_pipe_is_quiet():
    # unbuffered, each line is written as printed: `head` leaves after the first one
    run = _musicgym("| head -1", "nodes")
    assert run.stdout.splitlines()[0].startswith("Nodes the NumPy backend runs")
    assert run.stderr == ""
    assert run.stdout.splitlines()[-1] in ("status 0", "status 141")
    run = _musicgym("| true", "nodes")   # the reader is gone before the first line
    assert run.stderr == "" and run.stdout.strip() == "status 141"
