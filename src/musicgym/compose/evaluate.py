"""Judge composed counterpoints: RL-Musician's score, rule violations, parallel perfects.

A piece is judged from what is written (its counterpoint notes, read back from
``piece.json``), not from the search's own report: the notes are turned back into moves and
durations and replayed in ``musicgym/Counterpoint-v0`` with every strict rule as a soft
penalty, so each broken rule is counted instead of forbidden. The result per piece:

* ``scores``: RL-Musician's five scores with its default weights and their ``total``
  (maximum 3.0);
* ``hard_violations``: broken strict rules (RL-Musician's 15 and the textbook ones), of which
  ``rl_musician_violations`` are its 15 and ``parallel_perfects`` consecutive fifths/octaves;
* ``rule_violations``: the count per rule;
* ``quality``: the species-aware Fux quality (0-3, with its six criteria; see
  :mod:`musicgym.music.rules.quality`), the measure for species 1-4, where RL-Musician's
  five scores (built for species 5) do not fit.

Across the pieces written on one exercise, ``variety`` is the mean pairwise share of
differing notes (:func:`mean_pairwise_difference`).

:func:`evaluate_folder` does this for every piece under a folder and averages; the ``musicgym
evaluate-compose`` command and ``musicgym compose --evaluate`` print it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from musicgym.compose.piece import BEATS_PER_EIGHTH, Piece, piece_from_json
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import InvalidActionError, ScoreFileError
from musicgym.music.rules import RL_MUSICIAN_RULES, SCORE_NAMES, STRICT_RULES
from musicgym.music.rules.species import encode_action

EXERCISE_FIELDS = ("cantus_firmus", "tonic", "mode", "species", "start_note", "end_note",
                   "lowest_note", "highest_note", "start_pause_eighths", "max_skip_degrees")
PARALLEL_RULE = "absence_of_parallel_perfects"


def counterpoint_actions(piece: Piece) -> list[int]:
    """The env actions that write the piece's counterpoint (voice 1) after its given first
    note and before its given last note."""
    env = CounterpointEnv(**_exercise(piece), lookahead=False)
    scale = env.setup.scale
    rows = np.flatnonzero(piece.notes["voice"] == 1)
    positions = [scale.position_of(piece.names[i]) for i in rows]
    eighths = np.rint(piece.notes["duration_beat"][rows] / BEATS_PER_EIGHTH).astype(int)
    actions = []
    for k in range(1, len(rows) - 1):
        move = positions[k] - positions[k - 1]
        if abs(move) > 7 or int(eighths[k]) not in (1, 2, 4, 8):
            raise ScoreFileError(f"counterpoint note {k} ({piece.names[rows[k]]}) is not one "
                                 "move of -7..+7 scale steps lasting 1, 2, 4 or 8 eighths")
        actions.append(encode_action(move, int(eighths[k])))
    return actions


def _exercise(piece: Piece) -> dict[str, Any]:
    exercise = piece.exercise
    missing = [f for f in ("cantus_firmus", "tonic", "mode") if f not in exercise]
    if missing:
        raise ScoreFileError(f"the piece has no counterpoint exercise ({', '.join(missing)} "
                             "missing in piece.json); only pieces written by `musicgym "
                             "compose` can be judged")
    return {k: exercise[k] for k in EXERCISE_FIELDS if k in exercise}


def evaluate_piece(piece: Piece) -> dict[str, Any]:
    """Judge one piece (see the module docstring for the fields).

    Raises
    ------
    ScoreFileError
        If the piece has no exercise or its notes cannot be written as env actions.
    """
    env = CounterpointEnv(**_exercise(piece), rules=[], penalties=dict.fromkeys(STRICT_RULES, 1),
                          lookahead=False, invalid_action="raise")
    env.reset()
    info: dict[str, Any] = {}
    finished = False
    for index, action in enumerate(counterpoint_actions(piece)):
        try:
            _, _, finished, truncated, info = env.step(action)
        except InvalidActionError as exc:
            raise ScoreFileError(f"counterpoint note {index + 1} cannot be judged: {exc}"
                                 ) from None
        if finished or truncated:
            break
    if not finished:
        raise ScoreFileError("the counterpoint does not reach the last bar: the piece is "
                             "unfinished")
    violations = {k: int(v) for k, v in info["rule_violations"].items()}
    from musicgym.music.rules.quality import fux_quality

    return {
        "quality": fux_quality(env.unwrapped.state),
        "species": env.unwrapped.setup.species,
        "scores": {k: float(v) for k, v in info["scores"].items()},
        "hard_violations": sum(violations.values()),
        "rl_musician_violations": sum(violations[r] for r in RL_MUSICIAN_RULES),
        "parallel_perfects": violations[PARALLEL_RULE],
        "rule_violations": violations,
    }


def evaluate_folder(folder: str | Path) -> dict[str, Any]:
    """Judge every ``piece.json`` under ``folder`` (searched recursively).

    Returns
    -------
    dict
        ``{"pieces": [{"piece": relative folder, ...evaluate_piece fields}], "mean": {...}}``,
        the mean over pieces of each score, the total and the violation counts.

    Raises
    ------
    ScoreFileError
        If the folder holds no piece, or a piece cannot be read or judged (named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ScoreFileError(f"{str(folder)!r} is not a folder of pieces (give the -o folder "
                             "of `musicgym compose`)")
    paths = sorted(folder.rglob("piece.json"))
    if not paths:
        raise ScoreFileError(f"no piece.json under {str(folder)!r}: write pieces with "
                             "`musicgym compose -o FOLDER` first")
    pieces = []
    for path in paths:
        try:
            result = evaluate_piece(piece_from_json(path))
        except ScoreFileError as exc:
            raise ScoreFileError(f"{path}: {exc}") from None
        pieces.append({"piece": str(path.parent.relative_to(folder)), **result})
    keys = [*SCORE_NAMES, "total"]
    mean = {k: float(np.mean([p["scores"][k] for p in pieces])) for k in keys}
    for k in ("hard_violations", "rl_musician_violations", "parallel_perfects"):
        mean[k] = float(np.mean([p[k] for p in pieces]))
    mean["quality"] = float(np.mean([p["quality"]["total"] for p in pieces]))
    # variety: among the pieces on one exercise (same cantus, species, voice)
    by_exercise: dict[str, list[np.ndarray]] = {}
    for path in paths:
        piece = piece_from_json(path)
        key = repr(sorted(_exercise(piece).items()))
        by_exercise.setdefault(key, []).append(_line_by_eighth(piece))
    shares = [mean_pairwise_difference(lines) for lines in by_exercise.values()
              if len(lines) >= 2]
    variety = float(np.mean(shares)) if shares else None
    return {"pieces": pieces, "mean": mean, "variety": variety}


def _line_by_eighth(piece: Piece) -> np.ndarray:
    """The counterpoint's MIDI key at each eighth of the piece (-1 where it rests)."""
    rows = np.flatnonzero(piece.notes["voice"] == 1)
    starts = np.rint(piece.notes["onset_beat"][rows] / BEATS_PER_EIGHTH).astype(int)
    ends = starts + np.rint(piece.notes["duration_beat"][rows] / BEATS_PER_EIGHTH).astype(int)
    out = np.full(int(ends.max()), -1, dtype=np.int64)
    for row, start, end in zip(rows, starts, ends, strict=True):
        out[start:end] = int(piece.notes["pitch"][row])
    return out


def mean_pairwise_difference(lines: list) -> float:
    """Mean, over all pairs of pieces on one exercise, of the share of eighths (where either
    sounds, the given first and last bars excepted) at which their counterpoints sound
    different notes: 0 for identical pieces, 1 for pieces that never agree.

    Parameters
    ----------
    lines : list of array of int
        Each piece's counterpoint key (or scale position) per eighth, -1 where silent.
    """
    lines = [np.asarray(x) for x in lines]
    if len(lines) < 2:
        return 0.0
    shares = []
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            a, b = lines[i], lines[j]
            n = min(len(a), len(b))
            a, b = a[8:n - 8], b[8:n - 8]
            sounding = (a >= 0) | (b >= 0)
            shares.append(float(np.mean(a[sounding] != b[sounding])) if sounding.any()
                          else 0.0)
    return float(np.mean(shares))


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_folder`'s result: one line per piece, the mean,
    then the rules broken anywhere."""
    header = (f"{'piece':<24} {'total':>6} {'loops':>6} {'entropy':>7} {'ranges':>6} "
              f"{'climax':>6} {'skips':>5} {'hard':>5} {'rlm':>4} {'par.':>4} {'fux':>5}")
    lines = [header, "-" * len(header)]

    def row(name: str, scores: dict, hard: float, rlm: float, par: float, fux: float) -> str:
        scores = {k: v + 0.0 for k, v in scores.items()}  # no "-0.00"
        return (f"{name:<24} {scores['total']:6.3f} {scores['looped_fragments']:6.2f} "
                f"{scores['entropy']:7.3f} {scores['narrow_ranges']:6.2f} "
                f"{scores['climax_explicity']:6.2f} {scores['number_of_skips']:5.2f} "
                f"{hard:5g} {rlm:4g} {par:4g} {fux:5.2f}")

    for p in report["pieces"]:
        lines.append(row(p["piece"][:24], p["scores"], p["hard_violations"],
                         p["rl_musician_violations"], p["parallel_perfects"],
                         p["quality"]["total"]))
    m = report["mean"]
    lines.append("-" * len(header))
    lines.append(row(f"mean of {len(report['pieces'])}", m, round(m["hard_violations"], 2),
                     round(m["rl_musician_violations"], 2), round(m["parallel_perfects"], 2),
                     m["quality"]))
    broken: dict[str, int] = {}
    for p in report["pieces"]:
        for rule, count in p["rule_violations"].items():
            broken[rule] = broken.get(rule, 0) + count
    broken = {k: v for k, v in broken.items() if v}
    lines.append("rules broken: " + (", ".join(f"{k} x{v}" for k, v in broken.items())
                                     or "none"))
    if report.get("variety") is not None:
        lines.append(f"variety: {100 * report['variety']:.1f} % of notes differ between "
                     "pieces on the same exercise (mean over pairs)")
    lines.append("(total: RL-Musician's 5-score total, max 3.0, built for species 5; hard: "
                 "strict-rule violations; rlm: of its 15 rules; par.: parallel fifths/octaves; "
                 "fux: species-aware Fux quality, max 3.0, docs/compose.md)")
    return "\n".join(lines)
