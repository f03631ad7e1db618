"""Composing melodies on ``musicgym/Melody-v0``: searches, pieces, judging a written melody.

What ``musicgym compose --task melody`` and ``musicgym evaluate-compose`` use, as
``musicgym.compose.search`` and ``musicgym.compose.evaluate`` are for counterpoints:
:func:`random_melody` and :func:`beam_melody` (seeded searches), :func:`piece_from_melody` (an
episode as a :class:`~musicgym.compose.piece.Piece`, notes spelled in the key),
:func:`evaluate_melody` (judge a written melody again from its notes) and
:func:`evaluate_melody_folder` (every melody under a folder). The env itself is
:class:`musicgym.envs.melody.MelodyEnv`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from musicgym.compose.piece import Piece, piece_from_json
from musicgym.envs.melody import MelodyEnv
from musicgym.errors import ScoreFileError
from musicgym.music.notes import make_notes
from musicgym.music.pitch import parse_pitch, spell
from musicgym.music.rules.melody import HOLD, REST, MelodyState
from musicgym.music.scales import Scale
from musicgym.music.tunings import Tuning, equal_temperament

# one step of the melody env is an eighth note
BEATS_PER_STEP = 0.5


def random_melody(env: gym.Env, *, seed: int = 0) -> tuple[float, list[int]]:
    """One melody of uniformly random allowed actions: (return, actions)."""
    env = env.unwrapped
    rng = np.random.default_rng(seed)
    state = env.empty_state()
    total, actions = 0.0, []
    while state.step < env.n_steps:
        mask, reward, _ = env.judge(state)
        allowed = np.flatnonzero(mask)
        action = int(allowed[rng.integers(len(allowed))])
        total += float(reward[action])
        actions.append(action)
        state.add(action)
    return total, actions


def beam_melody(env: gym.Env, *, seed: int = 0, beam_width: int = 16,
                temperature: float = 2.0) -> tuple[float, list[int]]:
    """Seeded stochastic beam search on the env's own step rewards: (return, actions) of the
    best melody kept at the end.

    At each step every allowed action of every kept melody is scored by its return so far
    (one rule check per kept melody gives the reward of all actions) plus seeded Gumbel
    noise of scale ``temperature``, and the ``beam_width`` best continue. The noise makes
    seeds give different melodies (``temperature=0``: plain beam search, ties broken by the
    seed); the return reported is the true one, and replaying the actions in the env gives it.

    Raises
    ------
    ValueError
        If ``beam_width`` is below 1 or ``temperature`` is negative.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be 0 or more, got {temperature}")
    env = env.unwrapped
    rng = np.random.default_rng(seed)
    beam: list[tuple[float, list[int], MelodyState]] = [
        (0.0, [], env.empty_state())]
    for _ in range(env.n_steps):
        totals, owners, actions = [], [], []
        for index, (total, _, state) in enumerate(beam):
            mask, reward, _ = env.judge(state)
            allowed = np.flatnonzero(mask)
            totals.append(total + reward[allowed])
            owners.append(np.full(len(allowed), index))
            actions.append(allowed)
        totals, owners, actions = map(np.concatenate, (totals, owners, actions))
        noisy = totals + temperature * rng.gumbel(size=len(totals))
        order = np.lexsort((rng.random(len(totals)), -noisy))[:beam_width]
        next_beam = []
        for k in order:
            _, prefix, state = beam[owners[k]]
            child = copy.copy(state)
            child.events = list(state.events)
            child.add(int(actions[k]))
            next_beam.append((float(totals[k]), prefix + [int(actions[k])], child))
        beam = next_beam
    total, actions, _ = max(beam, key=lambda entry: entry[0])
    return total, actions


def spell_key(scale: Scale, midi: int) -> str:
    """Spelled name of a MIDI key in ``scale``: its scale spelling if it belongs to the
    scale, else a neighbouring degree raised or lowered by a semitone, whichever needs the
    smaller accidental (on a tie: flats in keys with flats, else sharps).

    Examples
    --------
    >>> spell_key(Scale("F", "major"), 70), spell_key(Scale("F", "major"), 66)
    ('Bb4', 'Gb4')
    """
    midi = int(midi)
    base = 7 * ((midi - int(scale.midi(0))) // 12)
    neighbours = []
    for position in range(base - 2, base + 10):
        pitch = scale.pitch(position)
        if pitch.midi == midi:
            return pitch.name
        alter = pitch.alter + midi - pitch.midi
        if abs(midi - pitch.midi) == 1 and abs(alter) <= 2:
            neighbours.append(spell(pitch.diatonic_index, midi))
    flat_key = any("b" in name for name in scale.pitch_class_names)
    return min(neighbours, key=lambda p: (abs(p.alter), (p.alter > 0) == flat_key)).name


def melody_notes(events: list[int]) -> list[tuple[int, int, int]]:
    """(start step, length in steps, MIDI key) of each note of an event list: a key starts a
    note, ``HOLD`` lengthens it, ``REST`` (or a hold after a rest) is silence."""
    notes: list[list[int]] = []
    sounding = False
    for step, event in enumerate(events):
        if event >= 0:
            notes.append([step, 1, int(event)])
            sounding = True
        elif event == HOLD and sounding:
            notes[-1][1] += 1
        else:
            sounding = False
    return [tuple(n) for n in notes]


def time_signature_of(steps_per_bar: int) -> tuple[int, int]:
    """The metre of a bar of ``steps_per_bar`` eighth notes: 8 -> 4/4, 6 -> 3/4, 7 -> 7/8."""
    return (steps_per_bar // 2, 4) if steps_per_bar % 2 == 0 else (steps_per_bar, 8)


def piece_from_melody(env: gym.Env, actions: list[int], *, tuning: Tuning | None = None,
                      bpm: float = 120.0, velocity: int = 90) -> Piece:
    """The melody that ``actions`` write in ``env`` as a one-voice :class:`Piece`.

    Notes are spelled in the env's key (:func:`spell_key`); ``pitch`` is the tuning's step of
    that spelling (the MIDI key in 12-note tunings). ``piece.exercise`` holds
    ``{"task": "melody", "env": the env's settings, "actions": actions}``.

    Parameters
    ----------
    env : MelodyEnv or a wrapper of one
    actions : list of int
        A whole episode's actions (``n_steps`` of them).
    tuning : Tuning or None, keyword-only
        Default: 12-TET at A4 = 440 Hz.
    bpm : float, keyword-only
        Quarter notes per minute; a step is an eighth note.
    velocity : int, keyword-only
        MIDI velocity of every note.

    Raises
    ------
    ScoreFileError
        If the actions are not a whole episode or write no note at all.
    """

    env = env.unwrapped
    if len(actions) != env.n_steps:
        raise ScoreFileError(f"a melody needs {env.n_steps} actions (one per step), got "
                             f"{len(actions)}")
    state = env.empty_state()
    for action in actions:
        state.add(int(action))
    rows = melody_notes(state.events)
    if not rows:
        raise ScoreFileError("the melody has no note (only rests): nothing to write")
    tuning = tuning or equal_temperament()
    names = [spell_key(env.scale, key) for _, _, key in rows]
    steps = [tuning.step(parse_pitch(name)) for name in names]
    notes = make_notes([r[0] * BEATS_PER_STEP for r in rows],
                       [r[1] * BEATS_PER_STEP for r in rows], steps, velocity=velocity,
                       voice=0, bpm=bpm)
    order = {f"n{i}": name for i, name in enumerate(names)}  # make_notes may reorder
    names = [order[i] for i in notes["id"]]
    return Piece(notes=notes, names=names,
                 frequencies_hz=np.asarray(tuning.frequency_hz(notes["pitch"]), dtype=float),
                 tuning=tuning, bpm=float(bpm),
                 time_signature=time_signature_of(env.settings["steps_per_bar"]),
                 tonic=env.scale.tonic, mode=env.scale.mode, voice_names=("melody",),
                 exercise={"task": "melody", "env": dict(env.settings),
                           "actions": [int(a) for a in actions]})


def melody_actions(piece: Piece, env: gym.Env) -> list[int]:
    """The env actions that write a one-voice piece's notes, read from the notes themselves.

    Raises
    ------
    ScoreFileError
        If a note is off the eighth-note grid, outside the env's keys, overlaps the next one,
        or the melody is longer than the env's ``n_steps``.
    """

    env = env.unwrapped
    low = env.settings["lowest_midi"]
    events = [REST] * env.n_steps
    for note, name in zip(piece.notes, piece.names, strict=True):
        start = note["onset_beat"] / BEATS_PER_STEP
        length = note["duration_beat"] / BEATS_PER_STEP
        key = parse_pitch(name).midi
        if start != round(start) or length != round(length) or length < 1:
            raise ScoreFileError(f"note {name} at beat {note['onset_beat']:g} is not on the "
                                 "melody's eighth-note grid")
        start, length = int(round(start)), int(round(length))
        if start + length > env.n_steps:
            raise ScoreFileError(f"note {name} ends after the melody's {env.n_steps} steps")
        if not 0 <= key - low < env.n_actions - 2:
            raise ScoreFileError(f"note {name} lies outside the melody's keys "
                                 f"{low}..{low + env.n_actions - 3}")
        if any(e != REST for e in events[start:start + length]):
            raise ScoreFileError(f"note {name} at beat {note['onset_beat']:g} overlaps "
                                 "another note; a melody has one voice")
        events[start:start + length] = [key] + [HOLD] * (length - 1)
    return [0 if e == HOLD else 1 if e == REST else 2 + e - low for e in events]


def evaluate_melody(piece: Piece) -> dict[str, Any]:
    """Judge a written melody from its notes: RL Tuner's nine rules, weight 1 each.

    Returns
    -------
    dict
        ``total`` (the return under all nine rules, no masks), ``rule_rewards`` (per rule),
        ``out_of_key`` (notes outside the key) and ``mask_violations`` (actions that the
        piece's own hard masks forbid).

    Raises
    ------
    ScoreFileError
        If the piece is not a melody written by ``musicgym compose`` or its notes do not fit
        the melody env.
    """
    settings = dict(piece.exercise.get("env", {}))
    if piece.exercise.get("task") != "melody" or not settings:
        raise ScoreFileError("the piece is not a melody (piece.json has no exercise with "
                             "task 'melody'); write it with `musicgym compose --task melody`")
    masks = settings.pop("masks", [])
    settings.pop("weights", None)
    judge = MelodyEnv(**settings)
    actions = melody_actions(piece, judge)
    judge.reset()
    total, info = 0.0, {}
    for action in actions:
        _, reward, _, _, info = judge.step(action)
        total += reward
    own = MelodyEnv(**settings, masks=masks)
    state = own.empty_state()
    violations = 0
    for action in actions:
        violations += not own.judge(state)[0][action]
        state.add(action)
    keys = state.action_events[[a for a in actions if a >= 2]]
    return {"total": float(total),
            "rule_rewards": {k: float(v) for k, v in info["rule_rewards"].items()},
            "out_of_key": int(np.count_nonzero(~judge.scale.contains_midi(keys))),
            "mask_violations": violations}


def is_melody_folder(folder: Path) -> bool:
    """Whether the pieces under ``folder`` are melodies (all) or counterpoints (all).

    Raises
    ------
    ScoreFileError
        If the folder holds both kinds.
    """
    paths = sorted(folder.rglob("piece.json")) if folder.is_dir() else []
    kinds = set()
    for path in paths:
        try:
            exercise = json.loads(path.read_text(encoding="utf-8")).get("exercise", {})
        except (OSError, ValueError, AttributeError):
            return False  # evaluate_folder reports the unreadable file
        kinds.add(isinstance(exercise, dict) and exercise.get("task") == "melody")
    if len(kinds) > 1:
        raise ScoreFileError(f"{str(folder)!r} mixes melodies and counterpoints; judge each "
                             "kind in its own folder")
    return kinds == {True}


def evaluate_melody_folder(folder: Path) -> dict[str, Any]:
    """Judge every melody ``piece.json`` under ``folder`` (:func:`evaluate_melody`): per
    piece and the mean of ``total``, ``out_of_key`` and ``mask_violations``."""
    pieces = []
    for path in sorted(Path(folder).rglob("piece.json")):
        try:
            result = evaluate_melody(piece_from_json(path))
        except ScoreFileError as exc:
            raise ScoreFileError(f"{path}: {exc}") from None
        pieces.append({"piece": str(path.parent.relative_to(folder)), **result})
    mean = {k: float(sum(p[k] for p in pieces) / len(pieces))
            for k in ("total", "out_of_key", "mask_violations")}
    return {"pieces": pieces, "mean": mean}


def format_melody_report(report: dict[str, Any]) -> str:
    """One line per melody (its return under RL Tuner's nine rules and the largest rule
    shares), then the mean."""
    lines = [f"{'piece':<24} {'total':>8} {'out of key':>10} {'masked':>6}  largest rule terms"]
    for p in report["pieces"]:
        terms = sorted(p["rule_rewards"].items(), key=lambda kv: -abs(kv[1]))[:3]
        lines.append(f"{p['piece'][:24]:<24} {p['total']:8.2f} {p['out_of_key']:10d} "
                     f"{p['mask_violations']:6d}  "
                     + ", ".join(f"{k.removeprefix('rl_tuner_')} {v:+.1f}" for k, v in terms))
    m = report["mean"]
    lines.append(f"{'mean of ' + str(len(report['pieces'])):<24} {m['total']:8.2f} "
                 f"{m['out_of_key']:10.2f} {m['mask_violations']:6.2f}")
    lines.append("(total: return under RL Tuner's nine rules, weight 1 each, no masks; "
                 "masked: notes the piece's own hard masks forbid)")
    return "\n".join(lines)
