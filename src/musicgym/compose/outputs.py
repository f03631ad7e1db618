"""The files written for each composed piece, in the piece's own tuning.

:func:`write_piece` writes, into one folder with a portable name (ASCII letters, digits,
``_``, ``-`` and ``.``, nothing Windows refuses):

* ``piece.mid``: tempo and time signature as written, one track per voice, other tunings by
  pitch bend (``musicgym.music.midi``);
* ``notes.tsv``: one row per note (onset and duration in beats and seconds, voice, spelled
  name, tuning step, frequency, MIDI key and bend in cents);
* ``piece.musicxml`` and ``piece.ly``: notation (``musicgym.music.notation``); in a tuning
  other than 12-TET each note is marked with its deviation in cents from its written note
  in 12-TET at A4 = 440 Hz (``+14c``; :func:`note_cents`);
* ``piece.wav``: 16-bit PCM, rendered by musicgym's own engine at each note's exact frequency;
* ``piano_roll.png``: the notes on a log-frequency axis, so microtones show;
* ``piece.json``: the piece and its exercise, read back by :func:`~musicgym.compose.piece.
  piece_from_json` to judge it again.

This module writes files; composing is ``musicgym.compose.search`` and ``.ppo``.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from pathlib import Path

import numpy as np

from musicgym.compose.piece import Piece, piece_to_json
from musicgym.envs.rendering import RELEASE_S, VOICE_PATCHES  # the envs' episode_audio() sound
from musicgym.errors import OutputError
from musicgym.music.midi import key_and_bend, write_midi
from musicgym.music.notation import write_lilypond, write_musicxml
from musicgym.music.pitch import parse_pitch
from musicgym.music.tunings import cents_between, midi_to_hz

GM_PROGRAMS = (19, 40)  # church organ for the cantus, violin for the counterpoint
_TICK_NAMES = {0: "C", 4: "E", 7: "G"}
# names Windows refuses for a file or folder, whatever the extension
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}
FILE_NAMES = ("piece.mid", "notes.tsv", "piece.musicxml", "piece.ly", "piece.wav",
              "piano_roll.png", "piece.json")


def portable_name(text: str, *, fallback: str = "piece") -> str:
    """A file or folder name any OS accepts: ASCII letters, digits, ``_ - .`` only.

    Examples
    --------
    >>> portable_name("Fux: dorian / 2nd species")
    'Fux_dorian_2nd_species'
    >>> portable_name("con.txt")
    'con_.txt'
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", ascii_text).strip("._-")[:100].rstrip("._-")
    if not name:
        return fallback
    stem, dot, rest = name.partition(".")
    if stem.upper() in _RESERVED:
        name = f"{stem}_{dot}{rest}"
    return name


def note_cents(piece: Piece) -> np.ndarray | None:
    """Each note's deviation in cents from its written (spelled) note in 12-TET at A4 = 440
    Hz, the marks of the notation; ``None`` for a 12-TET piece (no marks)."""
    if piece.tuning.is_12tet:
        return None
    written_hz = midi_to_hz(np.array([parse_pitch(n).midi for n in piece.names]))
    return cents_between(piece.frequencies_hz, written_hz)


def write_notes_tsv(path: Path, piece: Piece) -> Path:
    """One row per note, tab-separated, with a header line."""
    keys, bends = key_and_bend(piece.frequencies_hz, bend_range_semitones=1.0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["onset_beat", "duration_beat", "onset_sec", "duration_sec", "voice",
                         "name", "step", "frequency_hz", "midi_key", "bend_cents", "velocity"])
        for note, name, freq, key, bend in zip(piece.notes, piece.names, piece.frequencies_hz,
                                               keys, bends, strict=True):
            writer.writerow([f"{note['onset_beat']:g}", f"{note['duration_beat']:g}",
                             f"{note['onset_sec']:.6f}", f"{note['duration_sec']:.6f}",
                             int(note["voice"]), name, int(note["pitch"]), f"{freq:.4f}",
                             int(key), f"{bend / 8192 * 100:.2f}", int(note["velocity"])])
    return path


def render_piece(piece: Piece, *, sr: int = 44100) -> np.ndarray:
    """Audio of a piece through musicgym's engine: (2, n) float32, peak 0.9 at most.

    Each voice's notes are one batch of its patch in :data:`VOICE_PATCHES` (frequency and
    length per row), placed at their onsets and summed.
    """
    from musicgym.synth import Patch

    n_total = int(np.ceil((piece.seconds + RELEASE_S) * sr)) + 1
    out = np.zeros((2, n_total), dtype=np.float32)
    for voice in np.unique(piece.notes["voice"]):
        rows = np.flatnonzero(piece.notes["voice"] == voice)
        patch = Patch(VOICE_PATCHES[int(voice) % len(VOICE_PATCHES)], sr=sr, bpm=piece.bpm)
        lengths = piece.notes["duration_sec"][rows] + RELEASE_S
        params = np.column_stack([piece.frequencies_hz[rows], lengths])
        audio = patch.render(params[:, [patch.params.index("freq_hz"),
                                        patch.params.index("decay_s")]],
                             seconds=float(lengths.max()), progress=False)
        for row, clip, length in zip(rows, audio, lengths, strict=True):
            start = int(round(piece.notes["onset_sec"][row] * sr))
            n = min(int(round(length * sr)), clip.shape[-1], n_total - start)
            out[:, start:start + n] += clip[:, :n]
    peak = float(np.abs(out).max())
    return out * (0.9 / peak) if peak > 0.9 else out


def plot_piano_roll(path: Path, piece: Piece, *, title: str = "") -> Path:
    """A piano-roll PNG: one bar per note at its exact (log) frequency, bar lines, voices in
    colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = 69.0 + 12.0 * np.log2(piece.frequencies_hz / 440.0)
    fig, ax = plt.subplots(figsize=(max(6.0, piece.notes["onset_beat"].max() / 3), 4), dpi=100)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for voice in np.unique(piece.notes["voice"]):
        rows = piece.notes["voice"] == voice
        label = (piece.voice_names[voice] if voice < len(piece.voice_names)
                 else f"voice {voice}")
        ax.barh(keys[rows], piece.notes["duration_beat"][rows],
                left=piece.notes["onset_beat"][rows], height=0.8,
                color=colours[int(voice) % len(colours)], label=label,
                edgecolor="black", linewidth=0.5)
    end = float((piece.notes["onset_beat"] + piece.notes["duration_beat"]).max())
    for bar in np.arange(0.0, end + 1e-9, piece.beats_per_bar):
        ax.axvline(bar, color="0.8", linewidth=0.5, zorder=0)
    low, high = int(np.floor(keys.min())) - 1, int(np.ceil(keys.max())) + 1
    ticks = [k for k in range(low, high + 1) if k % 12 in (0, 4, 7)]
    ax.set_yticks(ticks, [f"{_TICK_NAMES[k % 12]}{k // 12 - 1}" for k in ticks])
    ax.set_ylim(low, high)
    ax.set_xlabel("quarter-note beats")
    ax.set_ylabel(f"pitch ({piece.tuning.name})")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and make sure files can be written in it.

    Raises
    ------
    OutputError
        If it cannot be created or written to (the message names it).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".musicgym_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {str(folder)!r}: "
                          f"{exc.strerror}; give -o a folder you can write to") from None
    return folder


def write_piece(folder: str | Path, piece: Piece, *, title: str = "", sr: int = 44100,
                wav: bool = True, programs: tuple[int, ...] = GM_PROGRAMS) -> dict[str, Path]:
    """Write every file of one piece into ``folder`` (created; its name made portable).

    Parameters
    ----------
    folder : str or pathlib.Path
        The piece's folder; its last part is passed through :func:`portable_name`.
    piece : Piece
    title : str, keyword-only
        Title in the notation and the plot.
    sr : int, keyword-only
        Sample rate of the WAV.
    wav : bool, keyword-only
        Render the WAV (the slowest file, about a second per piece).
    programs : tuple of int, keyword-only
        General MIDI program per voice in the MIDI file.

    Returns
    -------
    dict of str to pathlib.Path
        File kind (``"midi"``, ``"tsv"``, ``"musicxml"``, ``"lilypond"``, ``"wav"``, ``"png"``,
        ``"json"``) to its path.

    Raises
    ------
    OutputError
        If the folder or a file cannot be written.
    """
    from musicgym.audio.io import write_wav
    from musicgym.errors import AudioFileError, ScoreFileError

    folder = Path(folder)
    folder = check_writable(folder.parent / portable_name(folder.name))
    notation = {"tonic": piece.tonic, "mode": piece.mode, "bpm": piece.bpm,
                "time_signature": piece.time_signature, "voice_names": piece.voice_names}
    paths = dict(zip(("midi", "tsv", "musicxml", "lilypond", "wav", "png", "json"),
                     (folder / name for name in FILE_NAMES), strict=True))
    try:
        write_midi(paths["midi"], piece.notes, frequencies_hz=piece.frequencies_hz,
                   bpm=piece.bpm, time_signature=piece.time_signature,
                   track_names=piece.voice_names, programs=programs)
        write_notes_tsv(paths["tsv"], piece)
        cents = note_cents(piece)
        comment = f"tuning: {piece.tuning.name} (notes spelled as in the tuning)"
        if cents is not None:
            comment += "; marks: cents from the written note in 12-TET at A4 = 440 Hz"
        write_musicxml(paths["musicxml"], piece.notes, piece.names, title=title, cents=cents,
                       **notation)
        write_lilypond(paths["lilypond"], piece.notes, piece.names, title=title,
                       comment=comment, cents=cents, **notation)
        if wav:
            write_wav(paths["wav"], render_piece(piece, sr=sr), sr, subtype="PCM_16")
        else:
            del paths["wav"]
        plot_piano_roll(paths["png"], piece, title=title)
        paths["json"].write_text(json.dumps(piece_to_json(piece), indent=1), encoding="utf-8")
    except (OSError, ScoreFileError, AudioFileError) as exc:
        raise OutputError(f"cannot write the files of {str(folder)!r}: {exc}") from None
    return paths
