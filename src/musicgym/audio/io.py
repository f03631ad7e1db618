"""Audio files: read any format soundfile reads; write WAV, FLAC or OGG atomically.

Audio arrays in musicgym are float32, shaped (channels, n) (one clip) or (B, channels, n).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np

from musicgym.errors import AudioFileError


def read_audio(path: str | os.PathLike, *, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as (channels, n) float32 and its sample rate.

    Parameters
    ----------
    path : path-like
        WAV, FLAC, OGG or any other format libsndfile reads.
    sr : int, keyword-only
        Resample to this rate (polyphase, scipy) if given and different.

    Raises
    ------
    AudioFileError
        The file does not exist or cannot be decoded (the message names it).
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file {str(path)!r} does not exist")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types for unreadable files
        raise AudioFileError(f"cannot read audio file {str(path)!r}: {exc}") from exc
    audio = np.ascontiguousarray(data.T)
    if sr is not None and sr != file_sr:
        audio = resample(audio, file_sr, sr)
        file_sr = sr
    return audio, int(file_sr)


def resample(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample along the last axis with a polyphase filter; float32 out."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sr_from), int(sr_to))
    return resample_poly(audio, sr_to // g, sr_from // g, axis=-1).astype(np.float32)


# what write_audio writes, by file suffix: (soundfile format, subtype); FLAC and OGG are
# clipped to [-1, 1], a float WAV keeps the engine's float32 as it is
AUDIO_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24"),
                 ".ogg": ("OGG", "VORBIS")}


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int, *,
              subtype: str = "FLOAT") -> Path:
    """Write (channels, n) or (n,) audio to a WAV file atomically (never a half-written file).

    The file gets the permissions of any new file (0666 less the umask), as ``open`` gives.

    Parameters
    ----------
    path : path-like
        Destination; its folder is created if missing.
    audio : numpy.ndarray, shape (channels, n) or (n,)
    sr : int
        Sample rate in Hz.
    subtype : str, keyword-only
        soundfile subtype: ``"FLOAT"`` (default, lossless for the engine's float32) or
        ``"PCM_16"`` (clipped to [-1, 1]).
    """
    return _write_atomically(Path(path), audio, sr, "WAV", subtype)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int) -> Path:
    """Write audio in the format its suffix names (:data:`AUDIO_FORMATS`), atomically.

    ``.wav``: 32-bit float; ``.flac``: 24-bit, clipped to [-1, 1]; ``.ogg``: Vorbis.

    Raises
    ------
    AudioFileError
        If the suffix names no format in :data:`AUDIO_FORMATS` (e.g. ``.mp3``), or the file
        cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() not in AUDIO_FORMATS:
        raise AudioFileError(f"cannot write {str(path)!r}: musicgym writes audio as "
                             f"{', '.join(AUDIO_FORMATS)}, not {path.suffix or 'no suffix'!r}")
    return _write_atomically(path, audio, sr, *AUDIO_FORMATS[path.suffix.lower()])


def _write_atomically(path: Path, audio: np.ndarray, sr: int, file_format: str,
                      subtype: str) -> Path:
    import soundfile as sf

    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    if audio.ndim != 2:
        raise AudioFileError(f"expected audio of shape (channels, n) to write {path}, "
                             f"got {audio.shape}")
    if subtype != "FLOAT":
        audio = np.clip(audio, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a new file made by open() gets the user's umask (tempfile.mkstemp's would be 0600)
    tmp = path.with_name(f".partial-{secrets.token_hex(4)}-{path.name}")
    try:
        with open(tmp, "xb") as file:
            sf.write(file, audio.T, int(sr), subtype=subtype, format=file_format)
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise AudioFileError(f"cannot write {path}: {exc}") from exc
    return path
