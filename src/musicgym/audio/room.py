"""A room around a dry recording: a synthetic reverb and background noise, seeded.

The impulse response is Gaussian noise under an exponential decay reaching -60 dB at ``rt60_s``
(late reverberation, the statistical model of a diffuse room), after the direct sound; the
noise is pink (1/f power, as a room's hum and air handling are, more than white), scaled to
``snr_db`` below the signal's RMS. Used to make test takes closer to a microphone's.
"""

from __future__ import annotations

import numpy as np

from musicgym.errors import ParameterError


def reverb_ir(sr: int, *, rt60_s: float = 0.5, wet: float = 0.3,
              seed: int | None = 0) -> np.ndarray:
    """A synthetic room impulse response, shape (n,), float32: 1 then the decaying tail.

    ``wet`` is the tail's energy relative to the direct sound's.
    """
    if not (rt60_s > 0 and 0 <= wet <= 10 and sr > 0):
        raise ParameterError(f"reverb needs rt60_s > 0, 0 <= wet <= 10 and sr > 0 (got "
                             f"rt60_s={rt60_s!r}, wet={wet!r}, sr={sr!r})")
    rng = np.random.default_rng(seed)
    n = int(rt60_s * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-3.0 * np.log(10.0) * t / rt60_s)
    tail[: int(0.005 * sr)] = 0.0  # the first reflections arrive a few ms after the direct sound
    tail *= np.sqrt(wet / max(np.sum(tail**2), 1e-12))
    tail[0] = 1.0
    return tail.astype(np.float32)


def pink_noise(n: int, *, seed: int | None = 0) -> np.ndarray:
    """Unit-RMS pink noise (1/f power), shape (n,), float32."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=float)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return (noise / max(np.sqrt(np.mean(noise**2)), 1e-12)).astype(np.float32)


def add_room(audio: np.ndarray, sr: int, *, rt60_s: float = 0.5, wet: float = 0.3,
             snr_db: float = 30.0, seed: int | None = 0) -> np.ndarray:
    """``audio`` (mono (n,) or (1, n)) through a synthetic room plus pink noise; same shape.

    Raises
    ------
    ParameterError
        A bad room setting, or audio that is not mono.
    """
    from scipy.signal import fftconvolve

    x = np.asarray(audio, dtype=np.float32)
    shape = x.shape
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise ParameterError(f"add_room takes mono audio, (n,) or (1, n), got shape {shape}")
    if not np.isfinite(snr_db):
        raise ParameterError(f"snr_db must be finite, got {snr_db!r}")
    wet_audio = fftconvolve(x, reverb_ir(sr, rt60_s=rt60_s, wet=wet, seed=seed))[: x.size]
    rms = float(np.sqrt(np.mean(wet_audio**2))) if x.size else 0.0
    noise = pink_noise(x.size, seed=None if seed is None else seed + 1) * rms \
        * 10.0 ** (-snr_db / 20.0)
    out = (wet_audio + noise).astype(np.float32)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 1.0:
        out /= peak
    return out.reshape(shape)
