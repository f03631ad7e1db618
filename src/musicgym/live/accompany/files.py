"""Files of live accompaniment: recorded performances to replay, rehearsal takes, and the
two-track MIDI file of a duet played."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musicgym.errors import ScoreFileError
from musicgym.live.accompany.engine import LiveAccompanist
from musicgym.music.midi import open_midi
from musicgym.music.notes import NOTE_DTYPE
from musicgym.music.score import MIDI_SUFFIXES, read_match


def rehearsal_curves(paths: list[str | Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The soloist's tempo curves (score beats, seconds) in earlier takes, from match files of
    the solo part, for :class:`~musicgym.follow.tempo.RehearsedTiming` live.

    Raises
    ------
    ScoreFileError
        When a file is missing or is not a ``.match`` file (its notes need score positions).
    """
    from musicgym.follow.duets import tempo_curve

    curves = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ScoreFileError(f"rehearsal file {str(path)!r} does not exist")
        if path.suffix.lower() != ".match":
            raise ScoreFileError(
                f"{str(path)!r}: a rehearsal must be a .match file of the solo part (its notes "
                "need score positions)"
            )
        curves.append(tempo_curve(read_match(path).score))
    return curves


def read_performance(path: str | Path) -> np.ndarray:
    """A recorded performance: a match file's performed notes, or a MIDI file's notes in
    seconds (all tracks, tempo changes applied).

    Returns
    -------
    numpy.ndarray, dtype NOTE_DTYPE
        ``onset_sec``, ``duration_sec``, ``pitch``, ``velocity`` filled; ``onset_beat`` is the
        score position for a match file's matched notes and NaN otherwise.

    Raises
    ------
    ScoreFileError
        When the file is missing, is neither ``.match`` nor MIDI, or holds no notes.
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"performance file {str(path)!r} does not exist")
    if path.suffix.lower() == ".match":
        return read_match(path).performed
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise ScoreFileError(
            f"{str(path)!r}: a performance to replay must be a .match or MIDI (.mid, .midi) file"
        )
    midi = open_midi(path)
    now, sounding, notes = 0.0, {}, []
    for message in midi:  # merged tracks, times in seconds
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding.setdefault(message.note, []).append((now, message.velocity))
        elif message.type in ("note_on", "note_off") and sounding.get(message.note):
            onset, velocity = sounding[message.note].pop(0)
            notes.append((onset, now - onset, message.note, velocity))
    if not notes:
        raise ScoreFileError(f"{str(path)!r} holds no notes to replay")
    out = np.zeros(len(notes), dtype=NOTE_DTYPE)
    out["onset_beat"] = np.nan
    columns = np.array(notes, dtype=float)
    for i, field_name in enumerate(("onset_sec", "duration_sec", "pitch", "velocity")):
        out[field_name] = columns[:, i]
    return np.sort(out, order=["onset_sec", "pitch"])


def played_notes(performed: np.ndarray, accompanist: LiveAccompanist) -> np.ndarray:
    """The solo (voice 0) and what the accompanist played (voice 1) as one note array (times
    in seconds; ``onset_beat`` and ``duration_beat`` hold the same numbers)."""
    played = np.array(accompanist.played, dtype=float).reshape(-1, 4)
    out = np.zeros(len(performed) + len(played), dtype=NOTE_DTYPE)
    solo, acc = out[: len(performed)], out[len(performed) :]
    solo["onset_sec"], solo["duration_sec"] = performed["onset_sec"], performed["duration_sec"]
    solo["pitch"], solo["velocity"] = performed["pitch"], np.maximum(performed["velocity"], 1)
    acc["onset_sec"], acc["duration_sec"] = played[:, 0], played[:, 1]
    acc["pitch"], acc["velocity"], acc["voice"] = played[:, 2], played[:, 3], 1
    out["onset_beat"], out["duration_beat"] = out["onset_sec"], out["duration_sec"]
    return np.sort(out, order=["onset_sec", "pitch"])


def write_duet_midi(path: str | Path, notes: np.ndarray) -> Path:
    """Write :func:`played_notes` to a MIDI file: one track and channel per voice (solo,
    accompaniment), 12-TET keys, 120 bpm with 480 ticks a beat (960 ticks a second)."""
    import mido

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi = mido.MidiFile(ticks_per_beat=480)
    for voice, name in enumerate(("solo", "accompaniment")):
        part = notes[notes["voice"] == voice]
        events = sorted(
            [(float(n["onset_sec"]), 1, int(n["pitch"]), int(n["velocity"])) for n in part]
            + [(float(n["onset_sec"] + n["duration_sec"]), 0, int(n["pitch"]), 0) for n in part]
        )
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        if voice == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
        last = 0
        for time_s, is_on, pitch, velocity in events:
            tick = int(round(time_s * 960))
            track.append(mido.Message("note_on" if is_on else "note_off", channel=voice,
                                      note=pitch, velocity=velocity, time=tick - last))
            last = tick
        midi.tracks.append(track)
    midi.save(path)
    return path
