"""Audio descriptors as FluCoMa defines them, batched over signals and framed one way everywhere.

Every function takes signals shaped ``(n,)`` or ``(B, n)`` and returns one row per analysis
frame: ``(frames, k)`` or ``(B, frames, k)``. All of them cut frames the same way (a periodic
Hann window of ``frame_length`` samples every ``hop_length`` samples; with ``center=True`` the
signal is zero-padded by half a frame at both ends, so frame ``t`` is centred on sample
``t * hop_length`` and there are ``1 + n // hop_length`` frames), so descriptors of a corpus track
and of a synth line up frame by frame. The definitions follow flucoma-core:

- loudness: K-weighting (ITU-R BS.1770), then ``-0.691 + 10 log10(mean square)`` per frame, no
  gating; true peak in dBTP by 4x oversampling (2x from 96 kHz);
- spectral shape of the magnitude spectrum: centroid, spread (std), skewness, kurtosis (not
  excess) in Hz, 95% rolloff (interpolated) in Hz, flatness and crest (max/mean) in dB;
- MFCC: 40 HTK-mel triangles (20 Hz - 20 kHz) on the magnitude spectrum, 20 log10, DCT-II
  (orthonormal), 13 coefficients from the 0th;
- chroma: Ellis' Gaussian filterbank (A440, no octave weighting) on the power spectrum, each FFT
  bin's weights L2-normalised, no output normalisation, bins from A;
- pitch: YIN computed from the power spectrum (FluCoMa's YinFFT), the deepest dip of the
  cumulative-mean-normalised difference between ``min_freq_hz`` and ``max_freq_hz``, with
  confidence ``1 - dip``.

Known differences from FluCoMa: its K-weighting filter runs over overlapping frames with its
state carried from one frame to the next; here the whole signal is filtered once. Its spectral
shape spaces bin frequencies by ``(max - min) / (size - 1)``; here bin ``k`` is ``k * sr / N``.
This module analyses; smoothing over time is the caller's choice.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.fft import dct, irfft, rfft
from scipy.signal import get_window, lfilter, resample_poly

from musicgym.errors import DescriptorError

EPS = float(np.finfo(np.float64).eps)
CHROMA_NAMES = ("A", "A#", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#")
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "loudness": ("loudness-dBFS", "loudness-TP", "loudness-amp"),
    "mfcc": tuple(f"mfcc-{i}" for i in range(13)),
    "chroma": tuple(f"chroma-{c}" for c in CHROMA_NAMES),
    "specshape": tuple(f"specshape-{s}" for s in (
        "centroid", "spread", "skewness", "kurtosis", "rolloff", "flatness", "crest")),
    "pitch": ("pitch", "pitch-confidence"),
}
FEATURE_NAMES: tuple[str, ...] = tuple(n for g in FEATURE_GROUPS.values() for n in g)
# RL-impro's "loudness-dB" is Pd's dbtorms(L + 100): a linear amplitude, here honestly named
ALIASES = {"loudness-dB": "loudness-amp"}


def feature_names(names: list[str] | tuple[str, ...] | str = "all") -> tuple[str, ...]:
    """Expand group names and RL-impro's column names into descriptor names, in global order.

    Parameters
    ----------
    names : str or sequence of str
        Descriptor names (``"specshape-centroid"``), groups (``"loudness"``, ``"mfcc"``,
        ``"chroma"``, ``"specshape"``, ``"pitch"``) or ``"all"``; RL-impro's ``"loudness-dB"``
        means ``"loudness-amp"``.

    Returns
    -------
    tuple of str, in the order of ``FEATURE_NAMES``.

    Raises
    ------
    DescriptorError
        An unknown name (RL-impro's sine-peak groups are not computed).
    """
    if isinstance(names, str):
        names = (names,)
    try:
        return _feature_names(tuple(names))
    except TypeError as exc:   # an unhashable name (a list, a dict...) names no descriptor
        raise DescriptorError(f"descriptor names must be strings, got {names!r}") from exc


@lru_cache(maxsize=256)
def _feature_names(names: tuple) -> tuple[str, ...]:
    """:func:`feature_names` of a tuple, memoised (live analysis asks once per message)."""
    wanted: set[str] = set()
    for name in names:
        if name == "all":
            wanted.update(FEATURE_NAMES)
        elif name in FEATURE_GROUPS:
            wanted.update(FEATURE_GROUPS[name])
        elif ALIASES.get(name, name) in FEATURE_NAMES:
            wanted.add(ALIASES.get(name, name))
        else:
            hint = ("RL-impro's sine-peak features are not computed by musicgym"
                    if str(name).startswith("sinefeature") else
                    f"use a group {sorted(FEATURE_GROUPS)}, 'all', or one of {FEATURE_NAMES}")
            raise DescriptorError(f"unknown descriptor {name!r}: {hint}")
    if not wanted:
        raise DescriptorError("no descriptors asked for: give at least one name or group")
    return tuple(n for n in FEATURE_NAMES if n in wanted)


# -- framing and spectra ------------------------------------------------------------------------
def _check(y, sr: int, frame_length: int, hop_length: int) -> np.ndarray:
    if not isinstance(sr, (int, np.integer)) or sr < 1000:
        raise DescriptorError(f"sr must be an integer sample rate >= 1000 Hz, got {sr!r}")
    if not isinstance(frame_length, (int, np.integer)) or frame_length < 32:
        raise DescriptorError(f"frame_length must be an integer >= 32 samples, got "
                              f"{frame_length!r}")
    if not isinstance(hop_length, (int, np.integer)) or not 1 <= hop_length <= frame_length:
        raise DescriptorError(f"hop_length must be an integer between 1 and frame_length="
                              f"{frame_length}, got {hop_length!r}")
    x = np.asarray(y, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise DescriptorError(f"signals must be shaped (n,) or (B, n) with n > 0, got shape "
                              f"{x.shape}; mix stereo to mono first (e.g. audio.mean(axis=1))")
    if not np.isfinite(x).all():
        raise DescriptorError("signals contain NaN or inf: clean the audio before analysing it")
    return x


def frame(y, *, frame_length: int = 1024, hop_length: int = 512,
          center: bool = True) -> np.ndarray:
    """Cut signals into overlapping frames (a read-only view where possible).

    Parameters
    ----------
    y : ndarray, shape (B, n)
    frame_length, hop_length : int, keyword-only
    center : bool, keyword-only
        Zero-pad half a frame at both ends (``1 + n // hop_length`` frames); without padding,
        ``1 + (n - frame_length) // hop_length`` frames (the signal must be one frame long).

    Returns
    -------
    ndarray, shape (B, frames, frame_length)
    """
    if center:
        half = frame_length // 2
        y = np.pad(y, ((0, 0), (half, half)))
    elif y.shape[-1] < frame_length:
        raise DescriptorError(f"a signal of {y.shape[-1]} samples is shorter than one frame "
                              f"({frame_length}): pass center=True or a shorter frame_length")
    n_frames = 1 + (y.shape[-1] - frame_length) // hop_length
    if hop_length == frame_length:   # back-to-back frames: a reshape, much cheaper per call
        frames = y[..., :n_frames * frame_length].reshape(*y.shape[:-1], n_frames,
                                                          frame_length)
        frames.flags.writeable = False
        return frames
    windows = np.lib.stride_tricks.sliding_window_view(y, frame_length, axis=-1)
    return windows[:, : (n_frames - 1) * hop_length + 1 : hop_length]


@lru_cache(maxsize=16)
def _hann(n: int) -> np.ndarray:
    """The periodic Hann window of n samples, built once per size (read-only)."""
    window = get_window("hann", n, fftbins=True)
    window.flags.writeable = False
    return window


def magnitude(frames: np.ndarray) -> np.ndarray:
    """Magnitude spectra of Hann-windowed frames: (..., frame_length // 2 + 1)."""
    return np.abs(rfft(frames * _hann(frames.shape[-1]), axis=-1))


def _batched(func):
    """Let a (B, n) -> (B, T, k) function also take (n,) -> (T, k)."""
    def wrapper(y, **kwargs):
        one = np.ndim(y) == 1
        out = func(np.atleast_2d(y) if one else y, **kwargs)
        return out[0] if one else out
    wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
    wrapper.__wrapped__ = func
    return wrapper


# -- loudness --------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def k_weighting(sr: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """BS.1770's two K-weighting biquads at any rate, as ((b, a) shelf, (b, a) highpass).

    The analog prototypes (a +4 dB shelf at 1682 Hz, a highpass at 38.1 Hz) are mapped with the
    bilinear transform; at 48 kHz this gives the coefficients tabulated in ITU-R BS.1770.
    Computed once per rate (the arrays are read-only).
    """
    k = np.tan(np.pi * 1681.974450955533 / sr)
    q = 0.7071752369554196
    vh = 10.0 ** (3.999843853973347 / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = (np.array([vh + vb * k / q + k * k, 2.0 * (k * k - vh), vh - vb * k / q + k * k]) / a0,
             np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]))
    k = np.tan(np.pi * 38.13547087602444 / sr)
    q = 0.5003270373238773
    a0 = 1.0 + k / q + k * k
    highpass = (np.array([1.0, -2.0, 1.0]),
                np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]))
    for array in (*shelf, *highpass):
        array.flags.writeable = False
    return shelf, highpass


def _loudness(y: np.ndarray, sr: int, frame_length: int, hop_length: int, center: bool,
              true_peak: bool) -> np.ndarray:
    (b1, a1), (b2, a2) = k_weighting(sr)
    weighted = lfilter(b2, a2, lfilter(b1, a1, y, axis=-1), axis=-1)
    mean_square = np.mean(frame(weighted, frame_length=frame_length, hop_length=hop_length,
                                center=center) ** 2, axis=-1)
    # oversample the signal, not each frame: a frame's abrupt edges would ring
    factor = (4 if sr < 96000 else 2 if sr < 192000 else 1) if true_peak else 1
    up = resample_poly(y, factor, 1, axis=-1) if factor > 1 else y
    peak = np.max(np.abs(frame(up, frame_length=factor * frame_length,
                               hop_length=factor * hop_length, center=center)), axis=-1)
    lufs = -0.691 + 10.0 * np.log10(mean_square + EPS)
    return np.stack([lufs, 20.0 * np.log10(peak + EPS), 10.0 ** (lufs / 20.0)], axis=-1)


@_batched
def loudness(y, *, sr: int, frame_length: int = 1024, hop_length: int = 512,
             center: bool = True, true_peak: bool = True) -> np.ndarray:
    """K-weighted loudness and peak per frame (FluCoMa's ``loudness``).

    Parameters
    ----------
    y : array_like, shape (n,) or (B, n)
    sr : int, keyword-only
    frame_length, hop_length : int, keyword-only
        Window and hop in samples (defaults 1024, 512).
    center : bool, keyword-only
        Pad half a frame at both ends (default True).
    true_peak : bool, keyword-only
        Oversample before taking the peak (default True).

    Returns
    -------
    ndarray, shape (..., frames, 3)
        Loudness in dB (LUFS-like, no gating), peak in dBFS, and the loudness as a linear
        amplitude ``10 ** (dB / 20)`` (RL-impro's ``loudness-dB``).

    Examples
    --------
    >>> t = np.arange(48000) / 48000
    >>> round(float(loudness(np.sin(2 * np.pi * 997 * t), sr=48000,
    ...                      frame_length=4096, center=False)[5, 0]), 1)
    -3.0
    """
    y = _check(y, sr, frame_length, hop_length)
    return _loudness(y, sr, frame_length, hop_length, center, true_peak)


# -- spectral shape ------------------------------------------------------------------------
def _spectral_shape(mag: np.ndarray, sr: int, rolloff_percent: float) -> np.ndarray:
    amp = np.maximum(mag, EPS)
    freqs = np.arange(amp.shape[-1]) * (sr / (2.0 * (amp.shape[-1] - 1)))
    total = amp.sum(axis=-1)
    centroid = (amp * freqs).sum(axis=-1) / total
    dev = freqs - centroid[..., None]
    weighted = amp * dev * dev
    var = weighted.sum(axis=-1) / total
    weighted *= dev
    skewness = weighted.sum(axis=-1) / (var * np.sqrt(var) * total)
    kurtosis = (weighted * dev).sum(axis=-1) / (var * var * total)
    mean = amp.mean(axis=-1)
    flatness = np.exp(np.log(amp).mean(axis=-1)) / mean
    crest = amp.max(axis=-1) / mean
    cum = np.cumsum(amp, axis=-1)
    target = total * rolloff_percent / 100.0
    i = np.argmax(cum >= target[..., None], axis=-1)
    over = (np.take_along_axis(cum, i[..., None], -1)[..., 0] - target)
    step = freqs[1] - freqs[0]
    rolloff = np.where(i == 0, 0.0, freqs[i] - step * over /
                       np.take_along_axis(amp, i[..., None], -1)[..., 0])
    return np.stack([centroid, np.sqrt(var), skewness, kurtosis, rolloff,
                     20.0 * np.log10(np.maximum(flatness, EPS)),
                     20.0 * np.log10(np.maximum(crest, EPS))], axis=-1)


@_batched
def spectral_shape(y, *, sr: int, frame_length: int = 1024, hop_length: int = 512,
                   center: bool = True, rolloff_percent: float = 95.0) -> np.ndarray:
    """Seven spectral-shape descriptors per frame (FluCoMa's ``spectralshape``).

    Returns
    -------
    ndarray, shape (..., frames, 7)
        centroid (Hz), spread (Hz), skewness, kurtosis (3 for a Gaussian), rolloff (Hz, the
        interpolated point under which ``rolloff_percent`` of the magnitude lies), flatness (dB,
        geometric over arithmetic mean; 0 for a flat spectrum), crest (dB, max over mean).

    Examples
    --------
    >>> click = np.zeros(1024); click[512] = 1.0   # a flat spectrum
    >>> spectral_shape(click, sr=44100, center=False)[0, [0, 5, 6]].round(3)
    array([11025.,     0.,     0.])
    """
    y = _check(y, sr, frame_length, hop_length)
    if not 0.0 < rolloff_percent <= 100.0:
        raise DescriptorError(f"rolloff_percent must be in (0, 100], got {rolloff_percent!r}")
    mag = magnitude(frame(y, frame_length=frame_length, hop_length=hop_length, center=center))
    return _spectral_shape(mag, sr, rolloff_percent)


# -- MFCC ------------------------------------------------------------------------------------
def mel_filterbank(*, sr: int, n_fft: int, n_bands: int = 40, fmin_hz: float = 20.0,
                   fmax_hz: float = 20000.0) -> np.ndarray:
    """Triangular HTK-mel filters with unit peaks, shape (n_bands, n_fft // 2 + 1).

    The same construction as ``librosa.filters.mel(htk=True, norm=None)``; ``fmax_hz`` is
    clipped to the Nyquist frequency.
    """
    fmax_hz = min(fmax_hz, sr / 2.0)
    mel_edges = np.linspace(2595.0 * np.log10(1.0 + fmin_hz / 700.0),
                            2595.0 * np.log10(1.0 + fmax_hz / 700.0), n_bands + 2)
    hz_edges = 700.0 * (10.0 ** (mel_edges / 2595.0) - 1.0)
    bins = np.arange(n_fft // 2 + 1) * (sr / n_fft)
    lower, centre, upper = hz_edges[:-2, None], hz_edges[1:-1, None], hz_edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def _mfcc(mag: np.ndarray, bank: np.ndarray, n_mfcc: int) -> np.ndarray:
    bands = mag @ bank.T
    return dct(20.0 * np.log10(np.maximum(bands, EPS)), type=2, norm="ortho",
               axis=-1)[..., :n_mfcc]


@_batched
def mfcc(y, *, sr: int, frame_length: int = 1024, hop_length: int = 512, center: bool = True,
         n_mfcc: int = 13, n_bands: int = 40, fmin_hz: float = 20.0,
         fmax_hz: float = 20000.0) -> np.ndarray:
    """Mel-frequency cepstral coefficients per frame (FluCoMa's ``mfcc``).

    Returns
    -------
    ndarray, shape (..., frames, n_mfcc)
        Coefficient 0 first; in dB units (DCT of 20 log10 band magnitudes).
    """
    y = _check(y, sr, frame_length, hop_length)
    if not 1 <= n_mfcc <= n_bands:
        raise DescriptorError(f"n_mfcc must be between 1 and n_bands={n_bands}, got {n_mfcc!r}")
    mag = magnitude(frame(y, frame_length=frame_length, hop_length=hop_length, center=center))
    bank = mel_filterbank(sr=sr, n_fft=frame_length, n_bands=n_bands, fmin_hz=fmin_hz,
                          fmax_hz=fmax_hz)
    return _mfcc(mag, bank, n_mfcc)


@lru_cache(maxsize=16)
def _default_bank(kind: str, sr: int, n_fft: int) -> np.ndarray:
    """The default mel or chroma filterbank, built once per rate and size (read-only): building
    the chroma bank costs more than analysing one frame, which live analysis does per message."""
    bank = mel_filterbank(sr=sr, n_fft=n_fft) if kind == "mel" else \
        chroma_filterbank(sr=sr, n_fft=n_fft)
    bank.flags.writeable = False
    return bank


# -- chroma ------------------------------------------------------------------------------------
def chroma_filterbank(*, sr: int, n_fft: int, n_chroma: int = 12, ref_hz: float = 440.0,
                      center_octave: float = 5.0, octave_width: float | None = None
                      ) -> np.ndarray:
    """Ellis' Gaussian chroma filters, shape (n_chroma, n_fft // 2 + 1), row 0 = ``ref_hz``.

    Each FFT bin spreads its energy over the chroma bins with a Gaussian (width one chroma bin)
    around its own pitch class, each column L2-normalised; ``octave_width`` (octaves) adds a
    Gaussian weighting around ``center_octave`` (None: no weighting, FluCoMa's choice).
    """
    freqs = np.arange(1, n_fft) * (sr / n_fft)
    octs = np.log2(freqs / (ref_hz / 16.0))
    frqbins = n_chroma * octs
    # bin 0 (DC) takes the pitch 1.5 octaves below bin 1
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    widths = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1.0]))
    half = round(n_chroma / 2.0)
    dist = np.remainder(frqbins[None, :] - np.arange(n_chroma)[:, None] + 10 * n_chroma + half,
                        n_chroma) - half
    weights = np.exp(-0.5 * (2.0 * dist / widths[None, :]) ** 2)
    weights /= np.maximum(np.linalg.norm(weights, axis=0, keepdims=True), np.finfo(float).tiny)
    if octave_width is not None:
        weights *= np.exp(-0.5 * (((frqbins / n_chroma - center_octave) / octave_width) ** 2))
    return np.ascontiguousarray(weights[:, : n_fft // 2 + 1])


@_batched
def chroma(y, *, sr: int, frame_length: int = 1024, hop_length: int = 512, center: bool = True,
           ref_hz: float = 440.0) -> np.ndarray:
    """Twelve pitch-class energies per frame, from A (FluCoMa's ``chroma``, unnormalised).

    Returns
    -------
    ndarray, shape (..., frames, 12)
        Power (squared magnitude) per pitch class A, A#, ..., G#.
    """
    y = _check(y, sr, frame_length, hop_length)
    mag = magnitude(frame(y, frame_length=frame_length, hop_length=hop_length, center=center))
    return (mag**2) @ chroma_filterbank(sr=sr, n_fft=frame_length, ref_hz=ref_hz).T


# -- pitch ------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def _window_acf_gain(n_fft: int) -> np.ndarray:
    """r_w(0) / r_w(tau) for the Hann window of ``n_fft`` (lags 0 .. n_fft / 2), read-only."""
    window = np.abs(rfft(_hann(n_fft))) ** 2
    window_acf = irfft(window, n=n_fft)[: n_fft // 2 + 1]
    gain = window_acf[0] / np.maximum(window_acf, EPS)
    gain.flags.writeable = False
    return gain


def _pitch(mag: np.ndarray, sr: int, min_freq_hz: float, max_freq_hz: float,
           threshold: float = 0.1) -> np.ndarray:
    power = mag**2
    n_fft = 2 * (power.shape[-1] - 1)
    # YIN's difference d(tau) = 2 (r(0) - r(tau)), r the (circular) autocorrelation
    acf = irfft(power, n=n_fft, axis=-1)[..., : power.shape[-1]]
    # divided by the Hann window's own autocorrelation (Boersma 1993), else the taper biases
    # the dip towards short lags (sharp pitches); FluCoMa leaves the bias in
    acf = acf * _window_acf_gain(n_fft)
    diff = np.maximum(2.0 * (acf[..., :1] - acf), 0.0)
    lags = np.arange(1, diff.shape[-1])
    running = np.cumsum(diff[..., 1:], axis=-1)
    cmnd = np.ones_like(diff)
    silent = acf[..., 0] <= EPS
    cmnd[..., 1:] = diff[..., 1:] * lags / np.where(running > 0.0, running, 1.0)
    lo = int(min(max(2, round(sr / max_freq_hz)), diff.shape[-1] - 3))
    hi = int(min(max(lo + 2, round(sr / min_freq_hz)), diff.shape[-1] - 2))
    seg = cmnd[..., lo:hi + 1]
    # YIN's rule: the first dip under the threshold (else the deepest), so that multiples of
    # the period, which dip as deep, do not win
    under = seg < threshold
    first = np.where(under.any(axis=-1), np.argmax(under, axis=-1), seg.shape[-1])
    idx = np.arange(seg.shape[-1])
    run = np.logical_and.accumulate(under | (idx < first[..., None]), axis=-1)
    run &= idx >= first[..., None]
    k = np.where(first < seg.shape[-1], np.argmin(np.where(run, seg, np.inf), axis=-1),
                 np.argmin(seg, axis=-1))
    k = np.clip(k, 1, seg.shape[-1] - 2)
    left, mid, right = (np.take_along_axis(seg, (k + d)[..., None], -1)[..., 0]
                        for d in (-1, 0, 1))
    curve = left - 2.0 * mid + right
    shift = np.where(curve > 0, 0.5 * (left - right) / np.where(curve > 0, curve, 1.0), 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    best = mid - 0.25 * (left - right) * shift
    hz = sr / (lo + k + shift)
    confidence = np.clip(1.0 - best, 0.0, 1.0)
    return np.stack([np.where(silent, min_freq_hz, hz),
                     np.where(silent, 0.0, confidence)], axis=-1)


@_batched
def pitch(y, *, sr: int, frame_length: int = 1024, hop_length: int = 512, center: bool = True,
          min_freq_hz: float = 20.0, max_freq_hz: float = 10000.0) -> np.ndarray:
    """Fundamental frequency and its confidence per frame (FluCoMa's ``pitch``, YinFFT).

    The lowest pitch a frame can show is about ``sr / (frame_length / 2)`` (86 Hz at 1024
    samples, 44.1 kHz), whatever ``min_freq_hz`` says.

    Returns
    -------
    ndarray, shape (..., frames, 2)
        Pitch in Hz (``min_freq_hz`` in silence) and confidence in [0, 1] (0 in silence).
    """
    y = _check(y, sr, frame_length, hop_length)
    if not 0.0 < min_freq_hz < max_freq_hz:
        raise DescriptorError(f"need 0 < min_freq_hz < max_freq_hz, got {min_freq_hz!r} and "
                              f"{max_freq_hz!r}")
    mag = magnitude(frame(y, frame_length=frame_length, hop_length=hop_length, center=center))
    return _pitch(mag, sr, min_freq_hz, max_freq_hz)


# -- all at once ----------------------------------------------------------------------------
@_batched
def descriptors(y, *, sr: int, features: list[str] | tuple[str, ...] | str = "all",
                frame_length: int = 1024, hop_length: int = 512,
                center: bool = True) -> np.ndarray:
    """The descriptors named in ``features`` per frame, from one framing and one FFT.

    Parameters
    ----------
    y : array_like, shape (n,) or (B, n)
    sr : int, keyword-only
    features : str or sequence of str, keyword-only
        Names or groups (see :func:`feature_names`); columns come in ``feature_names`` order.
    frame_length, hop_length, center : keyword-only
        As in every function of this module.

    Returns
    -------
    ndarray, shape (..., frames, F) float64

    Examples
    --------
    >>> t = np.arange(44100) / 44100
    >>> d = descriptors(np.sin(2 * np.pi * 440 * t), sr=44100, features=["pitch", "chroma-A"])
    >>> d.shape, round(float(d[10, 1]))
    ((87, 3), 440)
    """
    y = _check(y, sr, frame_length, hop_length)
    names = feature_names(features)
    groups = {g for g, members in FEATURE_GROUPS.items() if set(members) & set(names)}
    mag = magnitude(frame(y, frame_length=frame_length, hop_length=hop_length,
                          center=center)) if groups - {"loudness"} else None
    columns: dict[str, np.ndarray] = {}
    for group in groups:
        if group == "loudness":
            # oversampling is the costliest step: only when the true peak is asked for
            values = _loudness(y, sr, frame_length, hop_length, center, "loudness-TP" in names)
        elif group == "specshape":
            values = _spectral_shape(mag, sr, 95.0)
        elif group == "mfcc":
            values = _mfcc(mag, _default_bank("mel", int(sr), int(frame_length)), 13)
        elif group == "chroma":
            values = (mag**2) @ _default_bank("chroma", int(sr), int(frame_length)).T
        else:
            values = _pitch(mag, sr, 20.0, 10000.0)
        for k, name in enumerate(FEATURE_GROUPS[group]):
            columns[name] = values[..., k]
    return np.stack([columns[n] for n in names], axis=-1)
