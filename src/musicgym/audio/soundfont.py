"""Real sampled instruments: notes rendered offline through a General MIDI SoundFont.

FluidSynth (Debian's ``libfluidsynth3`` through the ``pyfluidsynth`` package) plays a SoundFont
(Debian's 6 MB ``timgm6mb-soundfont`` by default) faster than real time with no audio device.
The corpus of sustained melodies (flute, violin, clarinet, saxophone, voice), the accompanist's
orchestra and the audio-input tests render through :func:`render_notes`.

A note is ``(onset_s, offset_s, midi_pitch, velocity)``; a part is a list of notes with one
General MIDI program (0-127, zero-based: 73 is the flute). A drum part (``drums=True``) plays
on MIDI channel 10 (index 9), the General MIDI percussion channel: its ``program`` is a kit
of the SoundFont's bank 128 (0 standard, 25 TR-808, see :data:`GM_DRUM_KITS`) and its pitches
are percussion keys (35 acoustic bass drum, 38 snare, 42 closed hi-hat, ... 81).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgym.errors import AudioFileError, ParameterError

# Debian's packages, smallest first: timgm6mb-soundfont, fluid-soundfont-gm (default-GM is a link)
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
)
# General MIDI programs (zero-based) of the instruments the corpus and the orchestra use
GM_PROGRAMS = {
    "piano": 0, "violin": 40, "viola": 41, "cello": 42, "contrabass": 43, "strings": 48,
    "choir": 52, "voice": 53, "trumpet": 56, "trombone": 57, "horn": 60, "alto_sax": 65,
    "tenor_sax": 66, "oboe": 68, "bassoon": 70, "clarinet": 71, "flute": 73,
}
# General MIDI drum kits (bank 128) that both Debian SoundFonts have: standard, room, power,
# electronic, TR-808, jazz, brush, orchestra
GM_DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)
DRUM_CHANNEL = 9
DRUM_BANK = 128
# a render is refused beyond this many seconds (one hour), before any audio is made
MAX_RENDER_SECONDS = 3600.0


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """The SoundFont to play: ``path``, else ``$MUSICGYM_SOUNDFONT``, else Debian's packages.

    Raises
    ------
    AudioFileError
        The file named does not exist, or no SoundFont is installed (the message says which
        Debian package to install).
    """
    named = path if path is not None else os.environ.get("MUSICGYM_SOUNDFONT")
    if named:
        p = Path(named)
        if not p.is_file():
            raise AudioFileError(f"SoundFont {str(p)!r} does not exist: give an .sf2/.sf3 file "
                                 "or unset MUSICGYM_SOUNDFONT to use Debian's")
        return p
    for candidate in SOUNDFONT_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise AudioFileError("no General MIDI SoundFont found: `apt-get install timgm6mb-soundfont` "
                         "(or set MUSICGYM_SOUNDFONT to an .sf2 file)")


def soundfont_available() -> bool:
    """Whether :func:`render_notes` can run here (pyfluidsynth, its library and a SoundFont)."""
    try:
        _fluidsynth()
        find_soundfont()
    except AudioFileError:
        return False
    return True


def _fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as exc:  # OSError: the package is there, libfluidsynth is not
        raise AudioFileError("SoundFont rendering needs pyfluidsynth and Debian's "
                             "libfluidsynth3: `pip install pyfluidsynth` and `apt-get install "
                             f"libfluidsynth3` ({exc})") from None
    return fluidsynth


@dataclass
class Part:
    """One instrument's notes: ``(onset_s, offset_s, midi_pitch, velocity)`` each."""

    notes: Sequence[tuple[float, float, int, int]]
    program: int | str = 0
    gain: float = 1.0
    pan: float = 0.0  # -1 left ... 1 right (stereo renders only)
    drums: bool = False  # GM percussion: channel 10, ``program`` is a kit of bank 128

    def checked(self, where: str) -> tuple[int, list[tuple[float, float, int, int]]]:
        program = GM_PROGRAMS.get(self.program, None) if isinstance(self.program, str) \
            else self.program
        if program is None or not isinstance(program, (int, np.integer)) \
                or not 0 <= int(program) <= 127:
            raise ParameterError(f"{where}: program {self.program!r} is not a General MIDI "
                                 f"program 0-127 or one of {sorted(GM_PROGRAMS)}")
        out = []
        for i, note in enumerate(self.notes):
            try:
                onset, offset, pitch, velocity = note
                onset, offset = float(onset), float(offset)
                pitch, velocity = int(pitch), int(velocity)
            except (TypeError, ValueError):
                raise ParameterError(f"{where}, note {i}: {note!r} is not (onset_s, offset_s, "
                                     "midi_pitch, velocity)") from None
            if not (math.isfinite(onset) and math.isfinite(offset)
                    and 0.0 <= onset <= offset <= MAX_RENDER_SECONDS):
                raise ParameterError(f"{where}, note {i}: onset {onset} and offset {offset} "
                                     f"must be finite, 0 <= onset <= offset <= "
                                     f"{MAX_RENDER_SECONDS:g} s")
            if not (0 <= pitch <= 127 and 0 <= velocity <= 127):
                raise ParameterError(f"{where}, note {i}: pitch {pitch} and velocity "
                                     f"{velocity} must be MIDI values 0-127")
            out.append((onset, offset, pitch, velocity))
        return int(program), out


def render_notes(parts: Part | Sequence[Part], *, sr: int = 44100, tail: float = 1.0,
                 duration: float | None = None, soundfont: str | os.PathLike | None = None,
                 stereo: bool = False, gain: float = 0.5) -> np.ndarray:
    """Render parts to audio through a SoundFont, offline and deterministically.

    Parameters
    ----------
    parts : Part or sequence of Part
        Up to 15 parts, one MIDI channel each, and at most one drum part
        (``Part(..., drums=True)``), which plays on channel 9 (GM percussion).
    sr : int
        Sample rate.
    tail : float
        Seconds rendered after the last note-off (the release and reverb), unless ``duration``.
    duration : float, optional
        Length of the render in seconds (notes beyond it are cut).
    soundfont : path-like, optional
        See :func:`find_soundfont`.
    stereo : bool
        Return (2, n) instead of (1, n).
    gain : float
        FluidSynth's master gain (0.5 keeps a few simultaneous voices below clipping).

    Returns
    -------
    numpy.ndarray
        float32, (1, n) or (2, n), in [-1, 1].

    Raises
    ------
    ParameterError
        A bad note, program, sample rate or length (the message names the part and note), a
        program (a drum kit) the SoundFont does not have, or more than one drum part.
    AudioFileError
        FluidSynth or the SoundFont is missing or cannot be loaded.
    """
    if isinstance(parts, Part):
        parts = [parts]
    parts = list(parts)
    n_drums = sum(bool(p.drums) for p in parts)
    if len(parts) - n_drums > 15 or n_drums > 1:
        raise ParameterError(f"{len(parts) - n_drums} parts and {n_drums} drum parts: a "
                             "SoundFont render plays at most 15 parts and 1 drum part")
    if not (isinstance(sr, (int, np.integer)) and 8000 <= sr <= 192000):
        raise ParameterError(f"sr={sr!r}: give an integer sample rate from 8000 to 192000 Hz")
    checked = [p.checked(f"part {i}") for i, p in enumerate(parts)]
    end = max((n[1] for _, notes in checked for n in notes), default=0.0)
    total = float(duration) if duration is not None else end + float(tail)
    if not (math.isfinite(total) and 0.0 < total <= MAX_RENDER_SECONDS):
        raise ParameterError(f"render length {total!r} s: must be in (0, "
                             f"{MAX_RENDER_SECONDS:g}]")
    n_total = int(round(total * sr))
    fluidsynth = _fluidsynth()
    sf_path = find_soundfont(soundfont)
    synth = fluidsynth.Synth(samplerate=float(sr), gain=float(gain))
    try:
        sfid = synth.sfload(str(sf_path))
        if sfid < 0:
            raise AudioFileError(f"FluidSynth could not load the SoundFont {str(sf_path)!r}")
        events = []  # (sample, order, kind, channel, pitch, velocity); offs before ons
        melodic = 0
        for i, (program, notes) in enumerate(checked):
            part = parts[i]
            if part.drums:
                channel, bank = DRUM_CHANNEL, DRUM_BANK
            else:  # channels 0-8, 10-15 in the parts' order
                channel, bank = (melodic if melodic < 9 else melodic + 1), 0
                melodic += 1
            if synth.program_select(channel, sfid, bank, program) != 0:
                raise ParameterError(f"part {i}: {str(sf_path)!r} has no preset {program} in "
                                     f"bank {bank}" + (f" (drum kits: {GM_DRUM_KITS})"
                                                       if part.drums else ""))
            synth.cc(channel, 7, int(np.clip(round(100 * part.gain), 0, 127)))
            synth.cc(channel, 10, int(np.clip(round(64 + 63 * part.pan), 0, 127)))
            for onset, offset, pitch, velocity in notes:
                events.append((int(round(onset * sr)), 1, "on", channel, pitch, velocity))
                events.append((int(round(offset * sr)), 0, "off", channel, pitch, 0))
        events.sort(key=lambda e: (e[0], e[1]))
        chunks, pos = [], 0
        for sample, _, kind, channel, pitch, velocity in events:
            sample = min(sample, n_total)
            if sample > pos:
                chunks.append(synth.get_samples(sample - pos))
                pos = sample
            if kind == "on" and velocity > 0:
                synth.noteon(channel, pitch, velocity)
            else:
                synth.noteoff(channel, pitch)
        if n_total > pos:
            chunks.append(synth.get_samples(n_total - pos))
    finally:
        synth.delete()
    raw = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    audio = (raw.reshape(-1, 2).T.astype(np.float32) / 32768.0)[:, :n_total]
    if not stereo:
        audio = audio.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(audio)
