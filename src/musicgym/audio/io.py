"""Audio files: read any format soundfile reads; write WAV, FLAC or OGG atomically.

Audio arrays in musicgym are float32, shaped (channels, n) (one clip) or (B, channels, n).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import numpy as np

from musicgym.errors import AudioFileError

# (channels x samples) a read may return, after resampling: 512 MiB of float32 (resampling
# works in float64, so about 1.5 GiB at the peak), 25 minutes of stereo at 44.1 kHz. A 200 KB
# WAV that says 1 Hz would otherwise be resampled to 4.4e9 samples.
MAX_AUDIO_SAMPLES = 2**27
# a WAV header may claim 65535 channels; a block is this many samples over all channels
_READ_BLOCK = 1 << 18
MAX_CHANNELS = 64
MAX_SAMPLE_RATE = 768_000


def read_audio(path: str | os.PathLike, *, sr: int | None = None,
               max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as (channels, n) float32 and its sample rate.

    Parameters
    ----------
    path : path-like
        WAV, FLAC, OGG or any other format libsndfile reads.
    sr : int, keyword-only
        Resample to this rate (polyphase, scipy) if given and different.
    max_seconds : float, keyword-only
        Refuse a file longer than this (checked from its header, before decoding).

    Raises
    ------
    AudioFileError
        The file does not exist or cannot be decoded, is longer than ``max_seconds``, or would
        be more than :data:`MAX_AUDIO_SAMPLES` samples at ``sr`` (the message names it). Both
        lengths are checked before anything is decoded or resampled.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file {str(path)!r} does not exist")
    if sr is not None and not (isinstance(sr, (int, np.integer)) and 0 < sr <= MAX_SAMPLE_RATE):
        raise AudioFileError(f"cannot read {str(path)!r} at sr={sr!r}: give an integer sample "
                             f"rate from 1 to {MAX_SAMPLE_RATE} Hz")
    try:
        with sf.SoundFile(str(path)) as f:
            file_sr, n_channels = int(f.samplerate), int(f.channels)
            _check_length(path, file_sr, int(f.frames), n_channels, sr, max_seconds)
            # read block by block: the header's frame count may lie, and soundfile would
            # allocate for it; what is really there is bounded by the checks above
            blocks = []
            while True:
                block = f.read(_READ_BLOCK // n_channels, dtype="float32", always_2d=True)
                if not len(block):
                    break
                blocks.append(block.T)
    except AudioFileError:
        raise
    except Exception as exc:  # libsndfile raises several types for unreadable files
        raise AudioFileError(f"cannot read audio file {str(path)!r}: {exc}") from exc
    audio = np.concatenate(blocks, axis=1) if blocks else np.zeros((n_channels, 0), np.float32)
    if sr is not None and sr != file_sr:
        audio = resample(audio, file_sr, sr)
        file_sr = sr
    return audio, int(file_sr)


def _check_length(path: Path, file_sr: int, n_frames: int, n_channels: int, sr: int | None,
                  max_seconds: float | None) -> None:
    if not 0 < n_channels <= MAX_CHANNELS:
        raise AudioFileError(f"audio file {str(path)!r} has {n_channels} channels; at most "
                             f"{MAX_CHANNELS} are read")
    if not 0 < file_sr <= MAX_SAMPLE_RATE:
        # resampling's filter grows with the rates' ratio: 1 GHz to 8 kHz would need 10^10 taps
        raise AudioFileError(f"audio file {str(path)!r} has a sample rate of {file_sr} Hz; "
                             f"rates from 1 to {MAX_SAMPLE_RATE} Hz are read")
    seconds = n_frames / file_sr
    if max_seconds is not None and seconds > max_seconds:
        raise AudioFileError(f"audio file {str(path)!r} is {seconds:.1f} s long (at "
                             f"{file_sr} Hz), over the limit of {max_seconds} s: trim it")
    n_out = -(-n_frames * (sr or file_sr) // file_sr) * n_channels
    if n_out > MAX_AUDIO_SAMPLES:
        raise AudioFileError(f"audio file {str(path)!r} would be {n_out} samples at "
                             f"{sr or file_sr} Hz ({n_frames} frames at {file_sr} Hz, "
                             f"{n_channels} channels), over the limit of {MAX_AUDIO_SAMPLES}")


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
    # a new file made by open() gets the user's umask (tempfile.mkstemp's would be 0600)
    tmp = path.with_name(f".partial-{secrets.token_hex(4)}-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as file:
            sf.write(file, audio.T, int(sr), subtype=subtype, format=file_format)
        os.replace(tmp, path)
    except Exception as exc:
        with contextlib.suppress(OSError):  # under a file, not a folder: nothing was made
            tmp.unlink()
        raise AudioFileError(f"cannot write {path}: {exc}") from exc
    return path
