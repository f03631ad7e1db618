"""A composed piece as the writers see it: spelled notes in time, tuned, with its exercise.

:class:`Piece` is the hand-over point between composing (an env episode, a search, a policy)
and the files written for a musician (``musicgym.compose.outputs``). It holds one note array
(:data:`~musicgym.music.notes.NOTE_DTYPE`; ``pitch`` is the tuning's step number), the spelled
name of every note, their frequencies in the chosen tuning, the metre and tempo, and the
counterpoint exercise it answers, so that a piece written to disk can be read back and judged
again (:func:`piece_from_json`).

This module makes and reads pieces; it writes no audio, MIDI or notation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicgym.errors import ScoreFileError
from musicgym.music.notes import make_notes
from musicgym.music.pitch import parse_pitch
from musicgym.music.rules.species import EIGHTHS_PER_BAR, CounterpointSetup, CounterpointState
from musicgym.music.tunings import Tuning, equal_temperament

VOICE_NAMES = ("cantus firmus", "counterpoint")
# one eighth note in quarter-note beats: the counterpoint env counts time in eighths
BEATS_PER_EIGHTH = 0.5


@dataclass
class Piece:
    """Notes of a finished piece, with everything needed to write and judge it.

    Attributes
    ----------
    notes : numpy.ndarray, shape (n,), dtype NOTE_DTYPE
        Sorted by onset then pitch; beats are quarter notes, ``pitch`` is the tuning's step.
    names : list of str
        Spelled name of each note (``"Bb4"``), aligned with ``notes``.
    frequencies_hz : numpy.ndarray, shape (n,)
        Sounding frequency of each note in ``tuning``.
    tuning : Tuning
    bpm : float
        Quarter notes per minute.
    time_signature : tuple of int
        (beats per bar, beat unit), e.g. (4, 4).
    tonic, mode : str
        The key (``"D"``, ``"dorian"``).
    voice_names : tuple of str
        Name of each voice number.
    exercise : dict
        The counterpoint exercise (``musicgym/Counterpoint-v0`` arguments, see
        :func:`exercise_of`) the piece answers, and ``"actions"``, the env actions that wrote
        it; empty for other pieces.
    """

    notes: np.ndarray
    names: list[str]
    frequencies_hz: np.ndarray
    tuning: Tuning
    bpm: float
    time_signature: tuple[int, int] = (4, 4)
    tonic: str = "C"
    mode: str = "major"
    voice_names: tuple[str, ...] = VOICE_NAMES
    exercise: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Time at which the last note ends."""
        ends = self.notes["onset_sec"] + self.notes["duration_sec"]
        return float(ends.max()) if len(ends) else 0.0

    @property
    def beats_per_bar(self) -> float:
        """Quarter-note beats in one bar."""
        beats, unit = self.time_signature
        return beats * 4.0 / unit


def exercise_of(setup: CounterpointSetup) -> dict[str, Any]:
    """The ``musicgym/Counterpoint-v0`` arguments that rebuild an exercise, notes spelled out."""
    return {"cantus_firmus": [setup.name(int(p)) for p in setup.cantus_positions],
            "tonic": setup.scale.tonic, "mode": setup.scale.mode, "species": setup.species,
            "start_note": setup.name(setup.start_position),
            "end_note": setup.name(setup.end_position),
            "lowest_note": setup.name(setup.lowest_position),
            "highest_note": setup.name(setup.highest_position),
            "start_pause_eighths": setup.start_pause_eighths,
            "max_skip_degrees": setup.max_skip_degrees}


def piece_from_counterpoint(state: CounterpointState, *, actions: list[int] | None = None,
                            tuning: Tuning | None = None, bpm: float = 120.0,
                            velocities: tuple[int, int] = (80, 96)) -> Piece:
    """Turn a counterpoint episode's state into a :class:`Piece` (cantus = voice 0).

    Parameters
    ----------
    state : CounterpointState
        The env's state (``env.unwrapped.state``), normally finished.
    actions : list of int or None, keyword-only
        The actions that wrote it (kept in ``exercise["actions"]``).
    tuning : Tuning or None, keyword-only
        Default: 12-TET at A4 = 440 Hz.
    bpm : float, keyword-only
        Quarter notes per minute (120: one 4/4 bar lasts 2 s).
    velocities : (int, int), keyword-only
        MIDI velocity of the cantus and of the counterpoint.

    Returns
    -------
    Piece
    """
    setup = state.setup
    tuning = tuning or equal_temperament()
    cf_names = [setup.name(int(p)) for p in setup.cantus_positions]
    cp_names = [setup.name(int(p)) for p in state.positions]
    onsets = np.concatenate([np.arange(setup.n_bars) * EIGHTHS_PER_BAR, state.starts])
    durations = np.concatenate([np.full(setup.n_bars, EIGHTHS_PER_BAR), state.durations])
    voices = np.repeat([0, 1], [setup.n_bars, len(state.positions)])
    names = cf_names + cp_names
    steps = np.array([tuning.step(parse_pitch(n)) for n in names])
    ids = [f"n{i}" for i in range(len(names))]
    notes = make_notes(onsets * BEATS_PER_EIGHTH, durations * BEATS_PER_EIGHTH, steps,
                       velocity=np.where(voices == 0, *velocities), voice=voices, bpm=bpm, ids=ids)
    by_id = dict(zip(ids, names, strict=True))
    sorted_names = [by_id[i] for i in notes["id"]]
    record = exercise_of(setup)
    if actions is not None:
        record["actions"] = [int(a) for a in actions]
    return Piece(notes=notes, names=sorted_names,
                 frequencies_hz=np.asarray(tuning.frequency_hz(notes["pitch"]), dtype=float),
                 tuning=tuning, bpm=float(bpm), tonic=setup.scale.tonic, mode=setup.scale.mode,
                 exercise=record)


def piece_to_json(piece: Piece) -> dict[str, Any]:
    """A JSON-ready description of a piece (what ``piece.json`` holds)."""
    tuning = piece.tuning
    return {
        "format": "musicgym-piece-1",
        "tonic": piece.tonic, "mode": piece.mode, "bpm": piece.bpm,
        "time_signature": list(piece.time_signature),
        "voice_names": list(piece.voice_names),
        "tuning": {"name": tuning.name, "cents": list(tuning.cents),
                   "period_cents": tuning.period_cents, "root_step": tuning.root_step,
                   "root_hz": tuning.root_hz, "mapping": tuning.mapping},
        "exercise": piece.exercise,
        "notes": [
            {"onset_beat": float(n["onset_beat"]), "duration_beat": float(n["duration_beat"]),
             "voice": int(n["voice"]), "name": name, "step": int(n["pitch"]),
             "frequency_hz": float(f), "velocity": int(n["velocity"])}
            for n, name, f in zip(piece.notes, piece.names, piece.frequencies_hz, strict=True)
        ],
    }


def piece_from_json(path: str | Path) -> Piece:
    """Read a ``piece.json`` written by :func:`musicgym.compose.outputs.write_piece`.

    Raises
    ------
    ScoreFileError
        If the file is missing, is not JSON, or lacks a field (the message names it).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScoreFileError(f"cannot read piece file {str(path)!r}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ScoreFileError(f"{str(path)!r}, line {exc.lineno}: not JSON ({exc.msg})") from None
    try:
        t = data["tuning"]
        tuning = Tuning(t["name"], tuple(t["cents"]), float(t["period_cents"]),
                        int(t["root_step"]), float(t["root_hz"]), t["mapping"])
        rows = data["notes"]
        notes = make_notes([r["onset_beat"] for r in rows], [r["duration_beat"] for r in rows],
                           [r["step"] for r in rows], velocity=[r["velocity"] for r in rows],
                           voice=[r["voice"] for r in rows], bpm=float(data["bpm"]),
                           ids=[f"n{i}" for i in range(len(rows))])
        by_id = {f"n{i}": r for i, r in enumerate(rows)}
        ordered = [by_id[i] for i in notes["id"]]
        return Piece(notes=notes, names=[r["name"] for r in ordered],
                     frequencies_hz=np.array([r["frequency_hz"] for r in ordered], dtype=float),
                     tuning=tuning, bpm=float(data["bpm"]),
                     time_signature=tuple(data["time_signature"]), tonic=data["tonic"],
                     mode=data["mode"], voice_names=tuple(data["voice_names"]),
                     exercise=dict(data.get("exercise", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise ScoreFileError(
            f"{str(path)!r} is not a musicgym piece file (missing or bad field: {exc}); "
            "write it with `musicgym compose`") from None
