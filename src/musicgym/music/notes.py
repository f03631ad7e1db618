"""The one symbolic data model of musicgym: structured NumPy note arrays.

A note array has one row per note, in the shape partitura uses: score time in beats, performed
(or rendered) time in seconds, a pitch number, a velocity and a voice. Pitch numbers are MIDI key
numbers in 12-TET; under another tuning they are that tuning's step numbers and the tuning (see
``musicgym.music.tunings``) maps them to Hz.

This module holds the dtype and the constructor; reading and writing files live elsewhere.
"""

from __future__ import annotations

import numpy as np

NOTE_DTYPE = np.dtype(
    [
        ("onset_beat", "f8"),
        ("duration_beat", "f8"),
        ("onset_sec", "f8"),
        ("duration_sec", "f8"),
        ("pitch", "i4"),
        ("velocity", "i4"),
        ("voice", "i4"),
        ("id", "U32"),
    ]
)


def make_notes(
    onset_beat,
    duration_beat,
    pitch,
    *,
    velocity=64,
    voice=0,
    bpm: float = 120.0,
    onset_sec=None,
    duration_sec=None,
    ids=None,
) -> np.ndarray:
    """Build a note array (dtype :data:`NOTE_DTYPE`) sorted by onset, then pitch.

    Parameters
    ----------
    onset_beat, duration_beat, pitch : array_like, shape (n,)
        Score onsets and durations in beats, and pitch numbers.
    velocity, voice : int or array_like, keyword-only
        MIDI velocity (1..127) and voice number.
    bpm : float, keyword-only
        Tempo used to fill the seconds columns when ``onset_sec``/``duration_sec`` are not given.
    onset_sec, duration_sec : array_like or None, keyword-only
        Performed times in seconds (default: the score times at ``bpm``).
    ids : sequence of str or None, keyword-only
        Note ids (default ``n0``, ``n1``...).

    Returns
    -------
    numpy.ndarray, shape (n,), dtype NOTE_DTYPE
    """
    onset_beat = np.atleast_1d(np.asarray(onset_beat, dtype=float))
    n = onset_beat.shape[0]
    if bpm <= 0 or not np.isfinite(bpm):
        raise ValueError(f"bpm must be a positive finite number, got {bpm!r}")
    notes = np.zeros(n, dtype=NOTE_DTYPE)
    notes["onset_beat"] = onset_beat
    notes["duration_beat"] = np.broadcast_to(np.asarray(duration_beat, dtype=float), (n,))
    notes["pitch"] = np.broadcast_to(np.asarray(pitch), (n,))
    notes["velocity"] = np.broadcast_to(np.asarray(velocity), (n,))
    notes["voice"] = np.broadcast_to(np.asarray(voice), (n,))
    sec_per_beat = 60.0 / bpm
    notes["onset_sec"] = notes["onset_beat"] * sec_per_beat if onset_sec is None else onset_sec
    notes["duration_sec"] = (
        notes["duration_beat"] * sec_per_beat if duration_sec is None else duration_sec
    )
    notes["id"] = [f"n{i}" for i in range(n)] if ids is None else list(ids)
    order = np.lexsort((notes["pitch"], notes["onset_beat"]))
    return notes[order]
