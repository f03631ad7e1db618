"""Sheet music as text: MusicXML (through music21) and LilyPond source, from note arrays.

Both writers take a note array (:data:`~musicgym.music.notes.NOTE_DTYPE`, beats in quarter
notes) and the spelled name of every note, so ``Bb`` stays ``Bb`` and, in 19-EDO, ``C#`` and
``Db`` stay different notes. Each voice becomes a staff; notes that cross a bar line are split
and tied. The LilyPond text needs no ``lilypond`` binary to be written (engrave it with
``lilypond file.ly`` where one is installed).

Tunings other than 12-TET: give ``cents``, each note's deviation from its written note in
12-TET (:meth:`~musicgym.music.tunings.Tuning.cents_from_12tet`), and every note is marked
above the staff with it, rounded (``+14c``, ``-16c``, ``0c``): a MusicXML ``<words>``
direction, a LilyPond ``^\\markup``. A note tied across a bar line is marked once.

This module writes text; it does not read scores (``musicgym.music.score``) or MIDI.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from musicgym.errors import ScoreFileError
from musicgym.music.pitch import parse_pitch

# LilyPond durations of the lengths it writes as one note, in quarter notes, longest first
_LILY_LENGTHS = ((Fraction(4), "1"), (Fraction(3), "2."), (Fraction(2), "2"),
                 (Fraction(3, 2), "4."), (Fraction(1), "4"), (Fraction(3, 4), "8."),
                 (Fraction(1, 2), "8"), (Fraction(1, 4), "16"))
_LILY_MODES = {"major": "major", "ionian": "ionian", "dorian": "dorian", "phrygian": "phrygian",
               "lydian": "lydian", "mixolydian": "mixolydian", "aeolian": "aeolian",
               "locrian": "locrian", "natural_minor": "minor", "minor": "minor",
               "harmonic_minor": "minor", "melodic_minor": "minor"}


Event = tuple[Fraction, Fraction, str | None, bool, str | None]


def cents_mark(cents: float) -> str:
    """The text marking a note's deviation from 12-TET: ``+14c``, ``-16c``, ``0c``."""
    rounded = int(round(float(cents)))
    return f"{rounded:+d}c" if rounded else "0c"


def _marks(cents: Sequence[float] | None, n: int) -> list[str | None]:
    if cents is None:
        return [None] * n
    cents = np.asarray(cents, dtype=float)
    if cents.shape != (n,) or not np.all(np.isfinite(cents)):
        raise ScoreFileError(f"cents must hold one finite number per note ({n}), got shape "
                             f"{cents.shape}")
    return [cents_mark(c) for c in cents]


def _voice_events(notes: np.ndarray, names: Sequence[str], voice: int, bar_beats: Fraction,
                  marks: Sequence[str | None] | None = None) -> list[Event]:
    """(onset, length, name or None for a rest, tied to the next, mark) in quarter notes,
    split at bar lines, rests filling every gap from 0; a note's mark is on its first part."""
    marks = [None] * len(notes) if marks is None else marks
    rows = [(Fraction(float(n["onset_beat"])).limit_denominator(64),
             Fraction(float(n["duration_beat"])).limit_denominator(64), name, mark)
            for n, name, mark in zip(notes, names, marks, strict=True) if n["voice"] == voice]
    rows.sort(key=lambda r: r[0])
    events, now = [], Fraction(0)
    for onset, length, name, mark in rows:
        if onset > now:
            events += _split_at_bars(now, onset - now, None, bar_beats)
        if onset < now:
            raise ScoreFileError(f"voice {voice} has overlapping notes at beat {float(onset):g}; "
                                 "give chords to separate voices")
        events += _split_at_bars(onset, length, name, bar_beats, mark)
        now = onset + length
    return events


def _split_at_bars(onset: Fraction, length: Fraction, name: str | None, bar_beats: Fraction,
                   mark: str | None = None) -> list[Event]:
    pieces = []
    while length > 0:
        to_bar = bar_beats - onset % bar_beats
        part = min(length, to_bar)
        length -= part
        pieces.append((onset, part, name, name is not None and length > 0,
                       mark if not pieces else None))
        onset += part
    return pieces


def _lily_pitch(name: str) -> str:
    pitch = parse_pitch(name)
    accidental = "is" * pitch.alter if pitch.alter >= 0 else "es" * -pitch.alter
    marks = "'" * (pitch.octave - 3) if pitch.octave >= 3 else "," * (3 - pitch.octave)
    return pitch.letter.lower() + accidental + marks


def _lily_lengths(length: Fraction) -> list[str]:
    out = []
    for value, text in _LILY_LENGTHS:
        while length >= value:
            out.append(text)
            length -= value
    if length:
        raise ScoreFileError(f"a note length of {float(length):g} quarters has no LilyPond "
                             "spelling down to sixteenths")
    return out


def lilypond_text(notes: np.ndarray, names: Sequence[str], *, tonic: str = "C",
                  mode: str = "major", bpm: float = 120.0,
                  time_signature: tuple[int, int] = (4, 4), voice_names: Sequence[str] = (),
                  title: str = "", comment: str = "",
                  cents: Sequence[float] | None = None) -> str:
    """LilyPond source of a score, one staff per voice (highest voice on top).

    Parameters
    ----------
    notes : numpy.ndarray, dtype NOTE_DTYPE
    names : sequence of str
        Spelled name of each note, aligned with ``notes``.
    tonic, mode : str, keyword-only
        Key signature (modes map to LilyPond's ``\\dorian`` etc.).
    bpm : float, keyword-only
        Quarter notes per minute for ``\\tempo``.
    time_signature : (int, int), keyword-only
    voice_names : sequence of str, keyword-only
        Staff names per voice number.
    title, comment : str, keyword-only
        Header title; a ``%`` comment line (e.g. the tuning).
    cents : sequence of float or None, keyword-only
        Per note, its deviation in cents from its written note in 12-TET, marked above it
        (``^\\markup { "+14c" }``); ``None``: no marks (12-TET).

    Returns
    -------
    str
    """
    bar_beats = Fraction(time_signature[0] * 4, time_signature[1])
    key = _lily_pitch(f"{tonic}3")
    voices = sorted(set(notes["voice"].tolist()), key=lambda v: -_mean_key(notes, names, v))
    marks = _marks(cents, len(notes))
    staves = []
    for voice in voices:
        tokens = []
        for _, length, name, tied, mark in _voice_events(notes, names, voice, bar_beats, marks):
            for k, text in enumerate(parts := _lily_lengths(length)):
                if name is None:
                    tokens.append(f"r{text}")
                    continue
                tie = "~" if tied or k < len(parts) - 1 else ""
                markup = f'^\\markup {{ "{mark}" }}' if mark is not None and k == 0 else ""
                tokens.append(f"{_lily_pitch(name)}{text}{markup}{tie}")
        clef = "treble" if _mean_key(notes, names, voice) >= 60 else "bass"
        label = voice_names[voice] if voice < len(voice_names) else f"voice {voice}"
        staves.append(
            f'  \\new Staff \\with {{ instrumentName = "{label}" }} {{\n'
            f"    \\clef {clef} \\key {key} \\{_LILY_MODES.get(mode, 'major')} "
            f"\\time {time_signature[0]}/{time_signature[1]} \\tempo 4 = {bpm:g}\n"
            f"    {' '.join(tokens)} \\bar \"|.\"\n  }}")
    lines = ['\\version "2.24.0"']
    if comment:
        lines.append(f"% {comment}")
    lines.append(f'\\header {{ title = "{title}" tagline = ##f }}')
    lines.append("\\score {\n  <<\n" + "\n".join(staves)
                 + "\n  >>\n  \\layout { }\n  \\midi { }\n}")
    return "\n".join(lines) + "\n"


def _mean_key(notes: np.ndarray, names: Sequence[str], voice: int) -> float:
    """Mean MIDI key of a voice, from the spelled names (``pitch`` may be an EDO step)."""
    return float(np.mean([parse_pitch(n).midi for n, v in zip(names, notes["voice"], strict=True)
                          if v == voice]))


def to_music21(notes: np.ndarray, names: Sequence[str], *, tonic: str = "C",
               mode: str = "major", bpm: float = 120.0,
               time_signature: tuple[int, int] = (4, 4), voice_names: Sequence[str] = (),
               title: str = "", cents: Sequence[float] | None = None):
    """A ``music21.stream.Score``, one part per voice (highest voice first), bars made.

    ``cents`` (one per note, or ``None``) adds each note's deviation from 12-TET as a text
    direction above it (``+14c``), as in :func:`lilypond_text`.
    """
    from music21 import expressions, key, metadata, meter, note, stream, tempo, tie

    score = stream.Score()
    score.metadata = metadata.Metadata(title=title)
    bar_beats = Fraction(time_signature[0] * 4, time_signature[1])
    voices = sorted(set(notes["voice"].tolist()), key=lambda v: -_mean_key(notes, names, v))
    marks = _marks(cents, len(notes))
    for index, voice in enumerate(voices):
        part = stream.Part()
        part.partName = voice_names[voice] if voice < len(voice_names) else f"voice {voice}"
        part.append(meter.TimeSignature(f"{time_signature[0]}/{time_signature[1]}"))
        part.append(key.Key(tonic.replace("b", "-") if len(tonic) > 1 else tonic,
                            _music21_mode(mode)))
        if index == 0:
            part.append(tempo.MetronomeMark(number=bpm))
        for onset, length, name, tied, mark in _voice_events(notes, names, voice, bar_beats,
                                                            marks):
            if mark is not None:
                words = expressions.TextExpression(mark)
                words.placement = "above"
                part.insert(onset, words)
            if name is None:
                element = note.Rest(quarterLength=length)
            else:
                pitch = parse_pitch(name)
                element = note.Note(pitch.letter + _m21_accidental(pitch.alter)
                                    + str(pitch.octave), quarterLength=length)
            if tied:
                element.tie = tie.Tie("start")
            part.append(element)
        measured = part.makeMeasures()
        measured.partName = part.partName
        score.insert(0, measured)
    _close_ties(score)
    return score


def _m21_accidental(alter: int) -> str:
    return "#" * alter if alter >= 0 else "-" * -alter


def _music21_mode(mode: str) -> str:
    return {"ionian": "major", "natural_minor": "minor", "aeolian": "minor",
            "harmonic_minor": "minor", "melodic_minor": "minor"}.get(mode, mode)


def _close_ties(score) -> None:
    """Mark the note after each tie start as its continuation (``stop``) so readers join them."""
    from music21 import tie

    for part in score.parts:
        previous = None
        for element in part.recurse().notesAndRests:
            if (previous is not None and previous.tie is not None
                    and previous.tie.type in ("start", "continue") and element.isNote):
                element.tie = tie.Tie("continue" if element.tie is not None else "stop")
            previous = element if element.isNote else None


def write_musicxml(path: str | os.PathLike, notes: np.ndarray, names: Sequence[str],
                   **kwargs) -> Path:
    """Write a MusicXML file (keyword arguments as in :func:`to_music21`).

    Raises
    ------
    ScoreFileError
        If the file cannot be written.
    """
    path = Path(path)
    score = to_music21(notes, names, **kwargs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        written = score.write("musicxml", fp=str(path))
    except OSError as exc:
        raise ScoreFileError(f"cannot write MusicXML file {str(path)!r}: {exc.strerror}; "
                             "choose a folder you can write to") from None
    return Path(written)


def write_lilypond(path: str | os.PathLike, notes: np.ndarray, names: Sequence[str],
                   **kwargs) -> Path:
    """Write LilyPond source (keyword arguments as in :func:`lilypond_text`).

    Raises
    ------
    ScoreFileError
        If the file cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(lilypond_text(notes, names, **kwargs), encoding="utf-8")
    except OSError as exc:
        raise ScoreFileError(f"cannot write LilyPond file {str(path)!r}: {exc.strerror}; "
                             "choose a folder you can write to") from None
    return path
