"""Write note arrays to Standard MIDI Files, in any tuning, with the right tempo and metre.

A tuning other than 12-TET is carried by pitch bend: each note is played on the nearest MIDI
key and bent to its exact frequency. Pitch bend acts on a whole channel, so two notes sounding
at once with different bends must be on different channels: every note gets a channel of its
own among those free at its onset (channel 10, General MIDI's drums, is never used), and each
used channel is told its bend range by RPN 0 at the start. A 12-TET piece needs no bend and
still plays the same way.

This module writes files, and opens them for reading with :func:`open_midi`, which refuses
what the readers cannot bound (format 2, a zero or SMPTE division, a file too large); reading
MIDI scores into note arrays is ``musicgym.music.score``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musicgym.errors import ScoreFileError

DRUM_CHANNEL = 9
MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
BEND_MAX = 8191
# a Standard MIDI File of a piece is kilobytes; this bounds the work of parsing one
MAX_MIDI_BYTES = 16 * 1024 * 1024
# 10,000 bars of 4/4: score readers lay out every bar, so a delta time of 2**28 ticks must not
MAX_MIDI_BEATS = 40_000


def key_and_bend(frequencies_hz: np.ndarray, *, bend_range_semitones: float = 2.0,
                 a4_hz: float = 440.0) -> tuple[np.ndarray, np.ndarray]:
    """Nearest MIDI key and pitch-bend value that sound each frequency.

    Parameters
    ----------
    frequencies_hz : array_like, shape (n,)
    bend_range_semitones : float, keyword-only
        The synthesiser's bend range (what RPN 0 sets), 2 by default.
    a4_hz : float, keyword-only
        Frequency the receiver plays for key 69 (MIDI assumes 440 Hz).

    Returns
    -------
    keys : numpy.ndarray of int, shape (n,)
    bends : numpy.ndarray of int, shape (n,)
        In -8192..8191; 0 is no bend, 8191 is ``+bend_range_semitones``.
    """
    fractional = 69.0 + 12.0 * np.log2(np.asarray(frequencies_hz, dtype=float) / a4_hz)
    keys = np.rint(fractional).astype(int)
    if np.any((keys < 0) | (keys > 127)):
        raise ScoreFileError("a note lies outside the MIDI keys 0..127 (8.2 Hz .. 12.5 kHz)")
    bends = np.rint((fractional - keys) / bend_range_semitones * (BEND_MAX + 1)).astype(int)
    return keys, np.clip(bends, -BEND_MAX - 1, BEND_MAX)


def assign_channels(onsets: np.ndarray, offsets: np.ndarray, bends: np.ndarray,
                    voices: np.ndarray) -> np.ndarray:
    """A MIDI channel per note, so that notes sounding together never share a channel.

    A channel freed by a voice at a tick is free again at that tick for the same voice only
    (its track writes the note-off first; another track's events at the same tick may come
    in either order). Among free channels, one with the note's bend already is preferred.

    Raises
    ------
    ScoreFileError
        If more than 15 notes sound at once.
    """
    free_at = dict.fromkeys(MELODIC_CHANNELS, -np.inf)
    owner = dict.fromkeys(MELODIC_CHANNELS, -1)
    bend_of = dict.fromkeys(MELODIC_CHANNELS, 0)
    channels = np.zeros(len(onsets), dtype=int)
    for i in np.argsort(onsets, kind="stable"):
        free = [c for c in MELODIC_CHANNELS if free_at[c] < onsets[i]
                or (free_at[c] == onsets[i] and owner[c] == voices[i])]
        if not free:
            raise ScoreFileError(
                f"more than {len(MELODIC_CHANNELS)} notes sound at {onsets[i]} ticks; MIDI "
                "pitch bend needs one channel per sounding note")
        same = [c for c in free if bend_of[c] == bends[i]]
        channel = (same or free)[0]
        channels[i] = channel
        free_at[channel], owner[channel], bend_of[channel] = offsets[i], voices[i], bends[i]
    return channels


def write_midi(
    path: str | os.PathLike,
    notes: np.ndarray,
    *,
    frequencies_hz: np.ndarray | None = None,
    bpm: float = 120.0,
    time_signature: tuple[int, int] = (4, 4),
    track_names: Sequence[str] = (),
    programs: Sequence[int] = (),
    bend_range_semitones: int = 2,
    ticks_per_beat: int = 480,
) -> Path:
    """Write a note array to a type-1 MIDI file, one track per voice.

    Parameters
    ----------
    path : path-like
        Destination ``.mid`` file (written atomically; the folder is created).
    notes : numpy.ndarray, dtype NOTE_DTYPE
        Onsets and durations in quarter-note beats, velocities, voices.
    frequencies_hz : array_like of shape (n,) or None, keyword-only
        Sounding frequencies: keys and bends are derived from them. ``None`` plays ``pitch``
        as MIDI keys without bend (12-TET).
    bpm : float, keyword-only
        Quarter notes per minute, written as the file's tempo.
    time_signature : (int, int), keyword-only
        Written as the file's time signature.
    track_names, programs : sequences, keyword-only
        Per voice number: the track name and the General MIDI program (default 0, piano).
    bend_range_semitones : int, keyword-only
        Bend range set by RPN 0 on every used channel (1..24).
    ticks_per_beat : int, keyword-only

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ScoreFileError
        If the file cannot be written, a note is outside the MIDI range, or more than 15 notes
        sound at once.
    """
    import mido

    if not 1 <= bend_range_semitones <= 24:
        raise ScoreFileError(f"bend_range_semitones must be 1..24, got {bend_range_semitones}")
    if frequencies_hz is None:
        keys, bends = notes["pitch"].astype(int), np.zeros(len(notes), dtype=int)
    else:
        keys, bends = key_and_bend(frequencies_hz, bend_range_semitones=bend_range_semitones)
    on = np.rint(notes["onset_beat"] * ticks_per_beat).astype(int)
    off = np.rint((notes["onset_beat"] + notes["duration_beat"]) * ticks_per_beat).astype(int)
    channels = assign_channels(on, off, bends, notes["voice"])
    voices = sorted(set(notes["voice"].tolist()))

    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=time_signature[0],
                                      denominator=time_signature[1], time=0))
    events: dict[int, list[tuple[int, int, mido.Message]]] = {v: [] for v in voices}
    first = voices[0] if voices else 0
    for channel in sorted(set(channels.tolist())):
        for control, value in ((101, 0), (100, 0), (6, bend_range_semitones), (38, 0),
                               (101, 127), (100, 127)):
            events[first].append((0, 0, mido.Message("control_change", channel=channel,
                                                      control=control, value=value)))
    program_of: dict[int, int] = {}
    bend_of: dict[int, int] = {}
    for i in np.argsort(on, kind="stable"):
        voice, channel = int(notes["voice"][i]), int(channels[i])
        program = int(programs[voice]) if voice < len(programs) else 0
        if program_of.get(channel) != program:
            program_of[channel] = program
            events[voice].append((on[i], 1, mido.Message("program_change", channel=channel,
                                                          program=program)))
        if bend_of.get(channel, 0) != bends[i]:
            bend_of[channel] = int(bends[i])
            events[voice].append((on[i], 2, mido.Message("pitchwheel", channel=channel,
                                                          pitch=int(bends[i]))))
        velocity = int(np.clip(notes["velocity"][i], 1, 127))
        events[voice].append((on[i], 3, mido.Message("note_on", channel=channel,
                                                     note=int(keys[i]), velocity=velocity)))
        events[voice].append((off[i], 0, mido.Message("note_off", channel=channel,
                                                      note=int(keys[i]), velocity=0)))
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(conductor)
    for voice in voices:
        track = mido.MidiTrack()
        if voice < len(track_names):
            track.append(mido.MetaMessage("track_name", name=str(track_names[voice]), time=0))
        now = 0
        for tick, _, message in sorted(events[voice], key=lambda e: (e[0], e[1])):
            track.append(message.copy(time=int(tick - now)))
            now = tick
        midi.tracks.append(track)
    return _save_atomically(midi, Path(path))


def _save_atomically(midi, path: Path) -> Path:
    # a new file made by open() gets the user's umask (tempfile.mkstemp's would be 0600)
    tmp = path.with_name(f".partial-{secrets.token_hex(4)}-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as file:
            midi.save(file=file)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # under a file, not a folder: nothing was made
            tmp.unlink()
        raise ScoreFileError(f"cannot write MIDI file {str(path)!r}: {exc.strerror}; choose a "
                             "folder you can write to") from None
    return path


def open_midi(path: str | Path):
    """Open a Standard MIDI File for reading, refusing what no reader here can play.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.mid``/``.midi`` file.

    Returns
    -------
    mido.MidiFile
        Format 0 or 1, with a positive division in ticks per quarter note.

    Raises
    ------
    ScoreFileError
        Naming the file: missing, over :data:`MAX_MIDI_BYTES`, not parseable as MIDI, format 2
        (independent sequences, which have no common time line), a division of 0 or in
        SMPTE frames (times in seconds would divide by zero or be meaningless), a time
        signature of 0 beats or a denominator over 128, or a track longer than
        :data:`MAX_MIDI_BEATS` quarter notes.
    """
    import mido

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ScoreFileError(f"cannot read MIDI file {str(path)!r}: {exc.strerror}") from None
    if size > MAX_MIDI_BYTES:
        raise ScoreFileError(f"MIDI file {str(path)!r} is {size} bytes, over the limit of "
                             f"{MAX_MIDI_BYTES}")
    try:
        midi = mido.MidiFile(path)
    except Exception as exc:  # mido's parser raises OSError, EOFError, ValueError, KeyError...
        raise ScoreFileError(f"{str(path)!r} is not a readable MIDI file: "
                             f"{type(exc).__name__}: {exc}") from None
    if midi.type == 2:
        raise ScoreFileError(f"{str(path)!r} is a format 2 MIDI file (independent sequences); "
                             "save it as format 0 or 1")
    if not 0 < midi.ticks_per_beat < 0x8000:
        raise ScoreFileError(f"{str(path)!r} has a division of {midi.ticks_per_beat}: only a "
                             "positive number of ticks per quarter note (below 32768) is read")
    for number, track in enumerate(midi.tracks):
        ticks = 0
        for message in track:
            ticks += message.time
            if message.type == "time_signature" and not (
                    1 <= message.numerator <= 64 and message.denominator <= 128):
                raise ScoreFileError(f"{str(path)!r}, track {number}: a time signature of "
                                     f"{message.numerator}/{message.denominator} cannot be read "
                                     "(score readers would loop on its empty bars)")
        if ticks > MAX_MIDI_BEATS * midi.ticks_per_beat:
            raise ScoreFileError(f"{str(path)!r}, track {number}: lasts {ticks} ticks, over "
                                 f"{MAX_MIDI_BEATS} quarter notes; is the file damaged?")
    return midi
