"""Spectral features for rewards and observations: STFT magnitudes, log-mel, MFCC.

Plain functions over batched float32 audio ``(..., n)``, librosa-style (keyword-only options with
documented defaults), computed with NumPy's real FFT in float32. Mel filters and DCT matrices
are cached per configuration, so computing a target's features once and a batch of renders per
step costs a handful of FFTs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from musicgym.threads import num_threads

EPS = 1e-5
_MEL_ROWS = 8  # rows of a batch squared and projected at a time in log_mel
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}  # no nnan/ninf: NaN/inf must stay visible
_LN2 = np.float32(np.log(2.0))
_I32 = np.int32
_SQRT2 = np.float32(np.sqrt(2.0))


@njit(cache=True, nogil=True, fastmath=_FASTMATH, boundscheck=False, error_model="numpy")
def _ln(z, ibuf, ebuf, out):
    """``out = ln z`` for float32 z > 0, vectorisable (NumPy's float32 log has no SIMD path on
    AVX2 machines): the exponent from the float's bits, then ``ln m = 2 atanh s`` with
    ``s = (m - 1) / (m + 1)``, |s| < 0.172, on the mantissa m in [sqrt(1/2), sqrt(2)):
    float32 precision (tests/audio/test_mrstft_fast.py)."""
    zi = z.view(np.int32)
    mf = ibuf.view(np.float32)
    mant, one = _I32(0x7FFFFF), _I32(0x3F800000)
    for k in range(z.size):
        b = zi[k]
        ebuf[k] = np.float32(b >> 23)  # biased exponent (z > 0: no sign bit)
        ibuf[k] = (b & mant) | one  # the mantissa as a float in [1, 2)
    for k in range(z.size):
        m = mf[k]
        big = m > _SQRT2  # use m / 2 in [sqrt(1/2), 1) and exponent + 1
        m = m * np.float32(0.5) if big else m
        e = ebuf[k] - np.float32(127.0) + (np.float32(1.0) if big else np.float32(0.0))
        s = (m - np.float32(1.0)) / (m + np.float32(1.0))
        s2 = s * s
        p = np.float32(1.0) + s2 * (np.float32(1.0 / 3.0) + s2 * (
            np.float32(1.0 / 5.0) + s2 * (np.float32(1.0 / 7.0) + s2 * np.float32(1.0 / 9.0))))
        out[k] = e * _LN2 + np.float32(2.0) * s * p


@lru_cache(maxsize=16)
def _window(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)


def n_frames(n: int, n_fft: int, hop: int) -> int:
    """How many frames :func:`frames` cuts ``n`` samples into:
    ``1 + ceil(max(n - n_fft, 0) / hop)``."""
    return 1 + max(0, -(-(n - n_fft) // hop))


def frames(audio: np.ndarray, *, n_fft: int, hop: int) -> np.ndarray:
    """Frame ``audio`` (..., n) into (..., n_frames, n_fft), zero-padded so that every sample
    falls in a frame (``n_frames = 1 + ceil(max(n - n_fft, 0) / hop)``)."""
    audio = np.asarray(audio, dtype=np.float32)
    n = audio.shape[-1]
    count = n_frames(n, n_fft, hop)
    total = (count - 1) * hop + n_fft
    if total > n:
        padded = np.zeros(audio.shape[:-1] + (total,), dtype=np.float32)
        padded[..., :n] = audio
        audio = padded
    view = np.lib.stride_tricks.sliding_window_view(audio, n_fft, axis=-1)
    return view[..., ::hop, :][..., :count, :]


def stft_magnitude(audio: np.ndarray, *, n_fft: int = 1024, hop: int | None = None,
                   cache: dict | None = None) -> np.ndarray:
    """Magnitude spectrogram (its FFTs on ``MUSICGYM_NUM_THREADS`` threads, default 1: the
    same values whatever the number; see :mod:`musicgym.threads`).

    Parameters
    ----------
    audio : numpy.ndarray, shape (..., n)
    n_fft : int, keyword-only
        FFT size (Hann window), default 1024.
    hop : int, keyword-only
        Hop in samples (default ``n_fft // 4``).
    cache : dict, keyword-only
        Results by (n_fft, hop): pass the same dict with the same audio to compute it once
        (an env step shares one STFT between its reward and its observation).

    Returns
    -------
    numpy.ndarray, shape (..., n_frames, n_fft // 2 + 1), float32
    """
    import scipy.fft

    hop = hop or n_fft // 4
    if cache is not None and (n_fft, hop) in cache:
        return cache[(n_fft, hop)]
    x = frames(audio, n_fft=n_fft, hop=hop) * _window(n_fft)
    # pocketfft shares the frames' transforms among its workers: the same values as one
    mag = np.abs(scipy.fft.rfft(x, axis=-1, workers=num_threads())).astype(np.float32,
                                                                          copy=False)
    if cache is not None:
        cache[(n_fft, hop)] = mag
    return mag


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters (HTK mel scale, area-normalised), shape (n_fft // 2 + 1, n_mels)."""
    fmax = fmax or sr / 2.0
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    up = (freqs[:, None] - lower) / np.maximum(centre - lower, 1e-9)
    down = (upper - freqs[:, None]) / np.maximum(upper - centre, 1e-9)
    weights = np.maximum(0.0, np.minimum(up, down))
    weights *= 2.0 / np.maximum(upper - lower, 1e-9)
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray, *, sr: int = 44100, n_fft: int = 1024, hop: int | None = None,
            n_mels: int = 64, cache: dict | None = None) -> np.ndarray:
    """Log-mel spectrogram, ``log10(mel power + 1e-5)``.

    Parameters
    ----------
    audio : numpy.ndarray, shape (..., n)
    sr, n_fft, hop, n_mels : keyword-only
        Sample rate, FFT size, hop (default n_fft // 4), mel bands (default 64).
    cache : dict, keyword-only
        Shared STFT results for the same audio (see :func:`stft_magnitude`).

    Returns
    -------
    numpy.ndarray, shape (..., n_frames, n_mels), float32
    """
    mag = stft_magnitude(audio, n_fft=n_fft, hop=hop, cache=cache)
    return log_mel_of(mag, sr=sr, n_mels=n_mels)


def log_mel_of(mag: np.ndarray, *, sr: int = 44100, n_mels: int = 64) -> np.ndarray:
    """:func:`log_mel` from STFT magnitudes (..., n_frames, n_fft // 2 + 1) float32."""
    n_fft = 2 * (mag.shape[-1] - 1)
    bank = mel_filterbank(int(sr), n_fft, n_mels)
    if mag.ndim != 3 or mag.shape[0] <= _MEL_ROWS:
        mel = (mag * mag) @ bank
    else:  # 8 rows at a time: no multi-megabyte temporary (matmul is per row: same values)
        mel = np.empty(mag.shape[:-1] + (bank.shape[1],), np.float32)
        for lo in range(0, mag.shape[0], _MEL_ROWS):
            part = mag[lo:lo + _MEL_ROWS]
            np.matmul(part * part, bank, out=mel[lo:lo + _MEL_ROWS])
    return np.log10(mel + EPS).astype(np.float32)


@lru_cache(maxsize=8)
def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis.T.astype(np.float32)  # orthonormal DCT-II, (n_in, n_out)


def mfcc(audio: np.ndarray, *, sr: int = 44100, n_mfcc: int = 13, n_fft: int = 2048,
         hop: int = 512, n_mels: int = 128) -> np.ndarray:
    """Mel-frequency cepstral coefficients (orthonormal DCT-II of the dB log-mel spectrum).

    The defaults are spiegelib's sound-matching metric: 13 coefficients, FFT 2048, hop 512.

    Returns
    -------
    numpy.ndarray, shape (..., n_frames, n_mfcc), float32
    """
    db = 10.0 * log_mel(audio, sr=sr, n_fft=n_fft, hop=hop, n_mels=n_mels)
    return (db @ _dct_matrix(n_mels, n_mfcc)).astype(np.float32)


def pool_frames(features: np.ndarray, n_out: int) -> np.ndarray:
    """Average (..., n_frames, d) features into (..., n_out, d) equal time slices (empty slices
    repeat the nearest frame), for fixed-size observations of any clip length."""
    n = features.shape[-2]
    edges = np.linspace(0, n, n_out + 1)
    lo = np.minimum(np.floor(edges[:-1]).astype(int), n - 1)
    hi = np.maximum(np.ceil(edges[1:]).astype(int), lo + 1)
    csum = np.concatenate([np.zeros_like(features[..., :1, :]), np.cumsum(features, axis=-2)],
                          axis=-2)
    return ((csum[..., hi, :] - csum[..., lo, :]) / (hi - lo)[:, None]).astype(np.float32)



@njit(cache=True, nogil=True, boundscheck=False)
def _pool_clip(features, lo, hi, low, high, out):
    """``out[r] = clip(nan_to_num(pool_frames(features[r]), nan=low), low, high)``, flat,
    with :func:`pool_frames`' arithmetic (a float32 running sum, a float64 division): the
    same bits, without its temporaries (no fastmath: the order of the sums is kept)."""
    n_rows, n_frames_, n_cols = features.shape
    csum = np.empty((n_frames_ + 1, n_cols), np.float32)
    for r in range(n_rows):
        csum[0] = np.float32(0.0)
        for f in range(n_frames_):
            for c in range(n_cols):
                csum[f + 1, c] = csum[f, c] + features[r, f, c]
        for i in range(lo.size):
            width = np.float64(hi[i] - lo[i])
            for c in range(n_cols):
                v = np.float32(np.float64(csum[hi[i], c] - csum[lo[i], c]) / width)
                if v != v:
                    v = low
                out[r, i * n_cols + c] = min(max(v, low), high)


def pooled_features(features: np.ndarray, n_out: int, low: float, high: float) -> np.ndarray:
    """``clip(nan_to_num(pool_frames(features, n_out), nan=low), low, high)`` of (B, F, d)
    features, flattened to (B, n_out * d) float32: the sound-matching envs' observation, the
    same bits as that composition in one compiled pass."""
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim != 3 or features.shape[1] < 1:
        raise ValueError(f"pooled_features: need (rows, frames, features) with a frame, got "
                         f"shape {features.shape}")
    lo, hi = _pool_edges(features.shape[1], int(n_out))
    out = np.empty((features.shape[0], int(n_out) * features.shape[2]), np.float32)
    _pool_clip(features, lo, hi, np.float32(low), np.float32(high), out)
    return out


@lru_cache(maxsize=16)
def _pool_edges(n: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pool_frames`' slices: output i averages frames ``lo[i] .. hi[i] - 1``."""
    edges = np.linspace(0, n, n_out + 1)
    lo = np.minimum(np.floor(edges[:-1]).astype(np.int64), n - 1)
    hi = np.maximum(np.ceil(edges[1:]).astype(np.int64), lo + 1)
    return lo, hi
