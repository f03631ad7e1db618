"""Audio distances for sound-matching rewards: ``reward = -distance``, bounded.

Each distance prepares a target's features once (``prepare``) and then scores a batch of
renders against them (``__call__``), returning float32 distances >= 0, clipped at the distance's
``bound`` so that a reward is always in ``[-bound, 0]`` and never NaN or inf.

=========  =====================================================================  ======
name       definition                                                             bound
=========  =====================================================================  ======
mse        mean squared error of the waveforms (RaveForce's criterion)            100
mrstft     mean over FFT sizes 2048/1024/512 (hop n/2) of spectral convergence    50
           ``||T - X||_F / ||T||_F`` plus mean ``|ln(X + 1e-5) - ln(T + 1e-5)|``
logmel     mean ``|log10 mel(X) - log10 mel(T)|`` (64 bands, FFT 1024, hop 256)  20
mfcc       mean absolute error of 13 MFCC (FFT 2048, hop 512): spiegelib's metric 1000
=========  =====================================================================  ======

Weighted combinations: ``make_distance({"mrstft": 1.0, "mfcc": 0.01})`` (bound: weighted sum).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numba import njit

from musicgym.audio.features import _FASTMATH, EPS, _ln, log_mel, mfcc, n_frames
from musicgym.errors import RewardConfigError
from musicgym.threads import num_threads, row_blocks, run_blocks


class Distance:
    """Base class: ``prepare(target)`` once, then ``self(batch, prepared)`` per step."""

    name = "distance"
    bound = 1.0

    def __init__(self, sr: int = 44100) -> None:
        self.sr = int(sr)

    def prepare(self, target: np.ndarray):
        return np.asarray(target, dtype=np.float32)

    def compute(self, audio: np.ndarray, prepared, cache: dict | None) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, audio: np.ndarray, prepared, *, cache: dict | None = None,
                 finite: bool = False) -> np.ndarray:
        """Distances of a batch ``audio`` (B, n) to the prepared target: (B,) float32.

        ``cache``: a dict that receives STFT magnitudes of this same audio by (n_fft, hop),
        shared with other features (see ``features.stft_magnitude``); when it holds a
        ``"keep"`` set of such keys, only those are stored; a ``"buffers"`` dict lets the
        magnitudes reuse the arrays of the caller's previous call (overwritten).
        ``finite``: the caller has made every sample finite (no second check)."""
        audio = np.asarray(audio, dtype=np.float32)
        if not finite and not all_finite(audio):  # one cheap pass; copy only when needed
            audio = np.nan_to_num(audio, nan=0.0, posinf=1e6, neginf=-1e6)
        with np.errstate(all="ignore"):
            d = self.compute(audio, prepared, cache)
        return self.finish(d)

    def finish(self, d) -> np.ndarray:
        """Raw distances as float32 in ``[0, bound]``: NaN and +inf become ``bound``."""
        d = np.asarray(d, dtype=np.float64)
        if d.ndim == 0:
            d = np.nan_to_num(d, nan=self.bound, posinf=self.bound)
        else:  # the same values without nan_to_num's Python overhead (80 us at B = 64)
            d = np.where((d != d) | (d == np.inf), self.bound, d)  # -inf: clipped to 0
        return np.clip(d, 0.0, self.bound).astype(np.float32)


@njit(cache=True, nogil=True, boundscheck=False)
def _all_finite32(flat) -> bool:
    bad = np.int32(0)
    for i in range(flat.size):  # v - v is 0 for a finite v, NaN for inf and NaN: vectorises
        v = flat[i]
        bad |= np.int32(not (v - v == np.float32(0.0)))
    return bad == 0


def all_finite(audio: np.ndarray) -> bool:
    """Whether every sample is finite: ``np.isfinite(audio).all()`` in one compiled pass with
    no boolean temporary, for contiguous float32 arrays (others go to NumPy)."""
    if audio.dtype == np.float32 and audio.flags.c_contiguous:
        return bool(_all_finite32(audio.reshape(-1)))
    return bool(np.isfinite(audio).all())


class MSE(Distance):
    name = "mse"
    bound = 100.0

    def compute(self, audio, target, cache):
        return np.mean((audio.astype(np.float64) - target) ** 2, axis=-1)


try:  # scipy.fft's pocketfft binding: its r2c takes an output array (scipy.fft.rfft does not)
    from scipy.fft._pocketfft.pypocketfft import r2c as _r2c
except ImportError:  # pragma: no cover - other scipy layouts: allocate per call
    _r2c = None
_EPS32 = np.float32(EPS)


@njit(cache=True, nogil=True, fastmath=_FASTMATH, boundscheck=False, error_model="numpy")
def _frame_sums(spec, t_mag, t_log, t0, mags, keep, sums, out_rows, f_out):
    """Per-frame sums of the MR-STFT terms for one resolution, in one pass over the spectra.

    ``spec`` (R, F, K) complex64: ``rfft`` of R x F *unwindowed* frames. The periodic Hann
    window is applied here, in the frequency domain, where it is exact:
    ``Y[k] = X[k] / 2 - (X[k - 1] + X[k + 1]) / 4`` (``X[-k] = conj X[k]``). Spectrum
    ``(r, f)`` is compared with target frame ``t0 + f`` (rows of ``t_mag`` and
    ``t_log = ln(t_mag + EPS)``) and its results go to row ``out_rows[r]``, frame
    ``f_out + f`` of ``sums`` (R', F', 2) float32: ``(sum_k (|Y| - T)^2,
    sum_k |ln(|Y| + EPS) - ln(T + EPS)|)``, and of ``mags`` (``|Y|``) when ``keep``
    (otherwise ``mags[0, 0]`` is scratch).
    """
    n_rows, n_frames, n_bins = spec.shape
    v = spec.view(np.float32)  # (re, im) pairs: the window is the same stencil on both
    w = np.empty(2 * n_bins, np.float32)
    z = np.empty(n_bins, np.float32)
    ibuf = np.empty(n_bins, np.int32)
    ebuf = np.empty(n_bins, np.float32)
    logs = np.empty(n_bins, np.float32)
    half, quarter = np.float32(0.5), np.float32(0.25)
    n_floats, last = 2 * n_bins, n_bins - 1
    for r in range(n_rows):
        row = out_rows[r]
        for f in range(n_frames):
            x = v[r, f]
            m = mags[row, f_out + f] if keep else mags[0, 0]
            for j in range(2, n_floats - 2):  # squared windowed re and im, in one stencil
                y = half * x[j] - quarter * (x[j - 2] + x[j + 2])
                w[j] = y * y
            re, im = half * (x[0] - x[2]), half * x[1]  # X[-1] = conj X[1]
            w[0], w[1] = re * re, im * im
            re, im = half * (x[2 * last] - x[2 * last - 2]), half * x[2 * last + 1]
            w[n_floats - 2], w[n_floats - 1] = re * re, im * im
            t = t_mag[t0 + f]
            sq = np.float32(0.0)
            for k in range(n_bins):
                y = np.sqrt(w[2 * k] + w[2 * k + 1])
                m[k] = y
                d = y - t[k]
                sq += d * d
                z[k] = y + _EPS32
            _ln(z, ibuf, ebuf, logs)
            tl = t_log[t0 + f]
            la = np.float32(0.0)
            for k in range(n_bins):
                la += abs(logs[k] - tl[k])
            sums[row, f_out + f, 0] = sq
            sums[row, f_out + f, 1] = la


@njit(cache=True, nogil=True, fastmath=_FASTMATH, boundscheck=False, error_model="numpy")
def _log_eps(mag, out):
    """``out = ln(mag + EPS)`` with :func:`_frame_sums`' logarithm (targets use the same)."""
    z = mag.reshape(-1) + _EPS32
    _ln(z, np.empty(z.size, np.int32), np.empty(z.size, np.float32), out.reshape(-1))


@njit(cache=True, nogil=True, boundscheck=False)
def _sound_spans(audio, out):
    """``out[r] = (first, last + 1)`` of row r's non-zero samples (``(0, 0)``: all zero)."""
    n_rows, n = audio.shape
    for r in range(n_rows):
        lo = 0
        while lo < n and audio[r, lo] == 0:
            lo += 1
        hi = n
        while hi > lo and audio[r, hi - 1] == 0:
            hi -= 1
        out[r, 0] = lo if hi > lo else 0
        out[r, 1] = hi if hi > lo else 0


@njit(cache=True, nogil=True, boundscheck=False)
def _finite_sound_spans(audio, out) -> bool:
    """:func:`_sound_spans` of (R, n) float32 ``audio`` and whether every sample is finite
    (:func:`all_finite`), in one pass the compiler vectorises: each row's first and last
    non-zero index are a masked minimum and maximum over the row (NaN counts as sound, -0.0
    as silence, as in :func:`_sound_spans`). The two scans of :func:`_sound_spans` go sample by
    sample, over each row's whole silent tail (0.66 against 0.19 ms for 64 kick rows of 0.5 s);
    a rendered block is read once. ``out`` holds the spans of ``audio`` as given (a caller
    that then sanitises non-finite samples must scan again). Rows shorter than 2**31
    samples (int32 indices: twice the vector lanes)."""
    n_rows, n = audio.shape
    bad = np.int32(0)
    for r in range(n_rows):
        row = audio[r]
        lo = np.int32(n)
        hi = np.int32(-1)
        for i in range(n):
            v = row[i]
            bad |= np.int32(not (v - v == np.float32(0.0)))  # as _all_finite32
            k = np.int32(i)
            sound = v != np.float32(0.0)
            lo = min(lo, k if sound else np.int32(n))
            hi = max(hi, k if sound else np.int32(-1))
        out[r, 0] = lo if hi >= 0 else 0
        out[r, 1] = hi + 1 if hi >= 0 else 0
    return bad == 0


@njit(cache=True, nogil=True, boundscheck=False)
def _sum_frames(sums):
    """``sums.sum(axis=1, dtype=np.float64)`` of (R, F, 2) float32 per-frame sums, to the
    bit: NumPy adds the frames of each (row, column) one after the other in float64 (the
    reduced axis is not the inner one), and so does this loop, without NumPy's buffered
    casting (20 against 290 us for the three resolutions at B = 64; test against NumPy)."""
    R, F, C = sums.shape
    out = np.empty((R, C), np.float64)
    for r in range(R):
        a = 0.0
        b = 0.0
        for f in range(F):
            a += np.float64(sums[r, f, 0])
            b += np.float64(sums[r, f, 1])
        out[r, 0] = a
        out[r, 1] = b
    return out


@njit(cache=True, nogil=True, boundscheck=False)
def _fill_silent(silent, first, f0, f1, count, keep, sums, mags, dest):
    """Frames outside ``f0 .. f1 - 1`` of rows ``dest`` are silent: their sums are the
    target's ``silent`` ones (from ``first``), their kept magnitudes zeros."""
    for r in range(dest.size):
        row = dest[r]
        for f in range(count):
            if f0 <= f < f1:
                continue
            sums[row, f, 0] = silent[first + f, 0]
            sums[row, f, 1] = silent[first + f, 1]
            if keep:
                mags[row, f, :] = np.float32(0.0)


@njit(cache=True, nogil=True, boundscheck=False)
def _gather_padded(audio, order, padded):
    """``padded[i] = audio[order[i]]`` followed by zeros."""
    n = audio.shape[1]
    for i in range(order.size):
        src = audio[order[i]]
        dst = padded[i]
        for k in range(n):
            dst[k] = src[k]
        for k in range(n, dst.size):
            dst[k] = np.float32(0.0)


def _spectra(padded: np.ndarray, n_fft: int, hop: int, first: int, count: int,
             out: np.ndarray | None = None) -> np.ndarray:
    """``rfft`` of unwindowed frames ``first .. first + count - 1`` of (R, m) audio, read in
    place through a strided view (pocketfft copies each frame into its own buffer anyway);
    into ``out`` when given (fresh multi-megabyte arrays cost page faults)."""
    rows, m = padded.shape
    if count < 1 or first < 0 or (first + count - 1) * hop + n_fft > m:
        raise ValueError(f"mrstft: frames {first}..{first + count - 1} of {n_fft} samples "
                         f"(hop {hop}) do not fit in {m} samples")
    s0, s1 = padded.strides
    shape, strides = (rows, count, n_fft), (s0, hop * s1, s1)
    if padded.flags.c_contiguous:  # the frames as a view, built directly (no checks: fast)
        view = np.ndarray(shape, padded.dtype, padded, first * hop * s1, strides)
    else:
        view = np.lib.stride_tricks.as_strided(padded[:, first * hop:], shape, strides,
                                               writeable=False)
    if _r2c is None or out is None:
        import scipy.fft

        return scipy.fft.rfft(view, axis=-1)
    return _r2c(view, (2,), True, 0, out, 1)


class _Resolution:
    """One STFT resolution of a prepared target: sizes, magnitudes ``mag`` (F, K), their
    logs ``ln(mag + EPS)``, Frobenius norm, and ``silent`` (F, 2): the per-frame sums of an
    all-zero frame against each target frame."""

    __slots__ = ("n_fft", "hop", "n_frames", "n_bins", "mag", "log", "norm", "silent")

    def __init__(self, n_fft: int, hop: int, padded: np.ndarray) -> None:
        self.n_fft, self.hop = n_fft, hop
        self.n_frames = (padded.shape[-1] - n_fft) // hop + 1
        self.n_bins = n_fft // 2 + 1
        shape = (1, self.n_frames, self.n_bins)
        zeros = np.zeros(shape[1:], np.float32)
        mags = np.empty(shape, np.float32)
        one = np.zeros(1, np.int64)
        _frame_sums(_spectra(padded, n_fft, hop, 0, self.n_frames), zeros, zeros, 0, mags,
                    True, np.empty((1, self.n_frames, 2), np.float32), one, 0)
        self.mag = mags[0]
        self.log = np.empty_like(self.mag)
        _log_eps(self.mag, self.log)
        self.norm = float(np.sqrt(np.sum(self.mag.astype(np.float64) ** 2))) + EPS
        # the same kernel on silence: skipping silent frames gives bit-identical sums
        silent = np.empty((1, self.n_frames, 2), np.float32)
        _frame_sums(np.zeros(shape, np.complex64), self.mag, self.log, 0,
                    np.empty((1, 1, self.n_bins), np.float32), False, silent, one, 0)
        self.silent = silent[0]


class MRSTFTTarget:
    """A target prepared for :class:`MultiResolutionSTFT`: its length and one
    :class:`_Resolution` per FFT size."""

    def __init__(self, length: int, resolutions: list[_Resolution], padded: int) -> None:
        self.length = length
        self.resolutions = resolutions
        self.padded = padded  # every frame of every resolution fits in this many samples


class MultiResolutionSTFT(Distance):
    """Mean over FFT sizes 2048/1024/512 (hop n/2, periodic Hann) of spectral convergence
    ``||T - X||_F / ||T||_F`` (capped at 10) plus mean ``|ln(X + 1e-5) - ln(T + 1e-5)|``.

    The definition is that of ``features.stft_magnitude`` frames; the computation (equal to
    it to float32 precision, tests/audio/test_mrstft_fast.py) is: one real FFT per frame of
    the *unwindowed* audio, read in place; the Hann window applied in the frequency domain
    (exact for a periodic Hann); magnitudes, squared differences and a vectorised log fused
    in one compiled pass that keeps per-frame sums (:func:`_frame_sums`); frames of exact
    silence before a row's first or after its last non-zero sample are not transformed:
    their sums are the target's precomputed ``silent`` sums, which the same kernel gave
    for a zero frame. Per-frame sums also let a clip that is written segment by segment be
    rescored frame by frame (:meth:`frame_sums`, :meth:`from_frame_sums`).

    Work buffers are kept between calls: use one instance per thread. ``threads`` (default:
    ``MUSICGYM_NUM_THREADS``, else 1; see :mod:`musicgym.threads`) transforms and reduces
    blocks of :attr:`CHUNK`-row chunks side by side, with bit-identical results.
    """

    name = "mrstft"
    bound = 50.0
    FFT_SIZES = (2048, 1024, 512)
    CHUNK = 8  # rows per FFT + reduction pass (a chunk's spectra stay in cache)
    SKIP_SILENCE = True  # False: transform every frame (same results; for measurements)
    threads: int | None = None  # threads per call; None: MUSICGYM_NUM_THREADS, else 1

    def prepare(self, target):
        target = np.asarray(target, dtype=np.float32).reshape(-1)
        n = target.size
        sizes = [(n_fft, n_fft // 2, n_frames(n, n_fft, n_fft // 2)) for n_fft in self.FFT_SIZES]
        padded_len = max((f - 1) * h + n_fft for n_fft, h, f in sizes)
        resolutions = []
        for n_fft, hop, count in sizes:
            padded = np.zeros((1, (count - 1) * hop + n_fft), np.float32)
            padded[0, :n] = target[:padded.shape[1]]
            resolutions.append(_Resolution(n_fft, hop, padded))
        return MRSTFTTarget(n, resolutions, padded_len)

    def _work(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """An uninitialised work array of ``shape``: a view of one buffer per ``name`` kept
        between calls and grown when needed (fresh multi-megabyte arrays cost page faults)."""
        size = math.prod(shape)
        buffers = self.__dict__.setdefault("_buffers", {})
        flat = buffers.get(name)
        if flat is None or flat.size < size:
            flat = buffers[name] = np.empty(size, dtype)
        return flat[:size].reshape(shape)

    def _sums(self, padded: np.ndarray, res: _Resolution, first: int, count: int, keep: bool,
              out_rows: np.ndarray, spans: np.ndarray | None = None,
              mags: np.ndarray | None = None):
        """Per-frame sums (R, count, 2) of frames ``0 .. count - 1`` of (R, m) ``padded``
        audio, which are target frames ``first ..``; row r's results go to row
        ``out_rows[r]``. ``spans`` (R, 2): each row's non-zero samples (frames outside are
        silent). With ``keep``, also the magnitudes (R, count, K) (into ``mags`` if given)."""
        rows = padded.shape[0]
        sums = np.empty((rows, count, 2), np.float32)
        # kept magnitudes: every frame is written below (the skipped silent ones as zeros)
        if not keep:
            mags = self._work("scratch", (1, 1, res.n_bins), np.float32)
        elif mags is None:
            mags = np.empty((rows, count, res.n_bins), np.float32)
        n_fft, hop = res.n_fft, res.hop

        n_chunks = -(-rows // self.CHUNK)
        n_threads = len(row_blocks(n_chunks, num_threads(self.threads)))
        starts = np.arange(0, rows, self.CHUNK)
        if spans is None:
            frame_spans = [(0, count)] * n_chunks
        else:  # each chunk's frames that overlap its rows' sound [min start, max end)
            s_lo = np.minimum.reduceat(spans[:, 0], starts).tolist()
            s_hi = np.maximum.reduceat(spans[:, 1], starts).tolist()
            frame_spans = [(0, 0) if b <= a else
                           (max(0, (a - n_fft) // hop + 1), min(count, (b - 1) // hop + 1))
                           for a, b in zip(s_lo, s_hi, strict=True)]

        def chunks(k: int, *_) -> None:
            # thread k takes every n_threads-th chunk: rows are sorted by where their sound
            # ends, so neighbouring chunks have similar work and the threads stay balanced
            for c in range(k, n_chunks, n_threads):
                lo = c * self.CHUNK
                hi = min(rows, lo + self.CHUNK)
                f0, f1 = frame_spans[c]
                dest = out_rows[lo:hi]
                if f1 > f0:
                    out = self._work(f"spec{k}", (hi - lo, f1 - f0, res.n_bins), np.complex64)
                    _frame_sums(_spectra(padded[lo:hi], n_fft, hop, f0, f1 - f0, out), res.mag,
                                res.log, first + f0, mags, keep, sums, dest, f0)
                if f0 > 0 or f1 < count:
                    _fill_silent(res.silent, first, f0, f1, count, keep, sums, mags, dest)

        # chunks write disjoint rows; each thread has its own spectrum buffer
        run_blocks(chunks, [(k, 0) for k in range(n_threads)])
        return sums, (mags if keep else None)

    @staticmethod
    def _combine(totals: np.ndarray, res: _Resolution) -> np.ndarray:
        """Spectral convergence plus mean log difference from (R, 2) float64 sums over all
        frames of one resolution."""
        sc = np.minimum(np.sqrt(np.maximum(totals[:, 0], 0.0)) / res.norm, 10.0)
        return sc + totals[:, 1] / (res.n_frames * res.n_bins)

    def compute(self, audio, prepared, cache):
        return self.batch(audio, prepared, cache)

    def batch(self, audio: np.ndarray, prepared: MRSTFTTarget, cache: dict | None = None, *,
              spans: np.ndarray | None = None, on_rows=None) -> np.ndarray:
        """Raw (R,) float64 distances of (R, n) finite float32 ``audio`` (``cache`` as in
        :meth:`Distance.__call__`).

        Rows are sorted by where their sound ends and cut into :attr:`CHUNK`-row chunks; the
        threads take chunks from one queue, longest sounds first, and for each chunk copy
        its rows into a padded buffer and transform and reduce them at the three
        resolutions, so a call has one parallel region. ``spans``: the rows' non-zero
        samples if the caller found them already (``_sound_spans``). ``on_rows(rows,
        kept)``: called by the thread that finished a chunk of rows, with their kept
        magnitudes by (n_fft, hop), (len(rows), frames, bins) arrays overwritten by its next
        chunk, e.g. to compute their features on the same thread while they are in cache;
        ``cache`` then does not receive them."""
        n = audio.shape[-1]
        if n != prepared.length:
            raise ValueError(f"mrstft: audio has {n} samples but the prepared target has "
                             f"{prepared.length}; prepare a target of the same length")
        audio = audio.reshape(-1, n)
        rows = audio.shape[0]
        if not self.SKIP_SILENCE:
            spans = np.empty((rows, 2), np.int64)
            spans[:] = (0, n)
        elif spans is None:
            spans = np.empty((rows, 2), np.int64)
            _finite_sound_spans(audio, spans)  # _sound_spans' spans, one vectorised pass
        # rows sorted by where their sound ends, so that each chunk's silent frames line up
        order = np.lexsort((spans[:, 0], spans[:, 1]))
        wanted = None if cache is None else cache.get("keep")
        # "buffers": arrays the caller lets the kept magnitudes reuse from call to call (the
        # envs' step: fresh multi-megabyte arrays each step cost page faults)
        buffers = None if cache is None else cache.get("buffers")
        plan = []  # per resolution: (res, sums, kept magnitudes or scratch, keep)
        for res in prepared.resolutions:
            key = (res.n_fft, res.hop)
            keep = cache is not None and (wanted is None or key in wanted)
            mags = None if buffers is None else buffers.get(key)
            if not keep:
                mags = self._work("scratch", (1, 1, res.n_bins), np.float32)
            elif on_rows is not None:
                mags = None  # per chunk, see below
            elif mags is None or mags.shape != (rows, res.n_frames, res.n_bins):
                mags = np.empty((rows, res.n_frames, res.n_bins), np.float32)
            if keep and mags is not None:  # every frame of every row is written below
                cache[key] = mags
                if buffers is not None:
                    buffers[key] = mags
            plan.append((res, np.empty((rows, res.n_frames, 2), np.float32), mags, keep))
        starts = np.arange(0, rows, self.CHUNK)
        sorted_spans = spans[order]
        chunk_lo = np.minimum.reduceat(sorted_spans[:, 0], starts).tolist()
        chunk_hi = np.maximum.reduceat(sorted_spans[:, 1], starts).tolist()
        n_chunks = len(starts)
        n_threads = len(row_blocks(n_chunks, num_threads(self.threads)))

        # the threads take chunks in turn from one queue, the longest sounds first (rows are
        # sorted by where their sound ends), so they finish together; a chunk's results do
        # not depend on which thread computes it (next() on a range iterator is atomic)
        queue = iter(range(n_chunks - 1, -1, -1))

        def chunks(k: int, *_) -> None:
            for c in queue:
                dest = order[c * self.CHUNK:(c + 1) * self.CHUNK]
                padded = self._work(f"pad{k}", (dest.size, prepared.padded), np.float32)
                _gather_padded(audio, dest, padded)
                a, b = chunk_lo[c], chunk_hi[c]
                kept = {}
                for res, sums, mags, keep in plan:
                    n_fft, hop, count = res.n_fft, res.hop, res.n_frames
                    into, at = sums, dest
                    if mags is None:  # kept per chunk: its rows' sums and magnitudes here
                        shape = (dest.size, count)
                        mags = kept[(n_fft, hop)] = self._work(f"mags{k}.{n_fft}",
                                                               shape + (res.n_bins,),
                                                               np.float32)
                        into, at = self._work(f"sums{k}.{n_fft}", shape + (2,), np.float32), \
                            np.arange(dest.size)
                    f0, f1 = (0, 0) if b <= a else \
                        (max(0, (a - n_fft) // hop + 1), min(count, (b - 1) // hop + 1))
                    if f1 > f0:  # the frames that overlap the chunk's sound [a, b)
                        out = self._work(f"spec{k}", (dest.size, f1 - f0, res.n_bins),
                                         np.complex64)
                        _frame_sums(_spectra(padded, n_fft, hop, f0, f1 - f0, out), res.mag,
                                    res.log, f0, mags, keep, into, at, f0)
                    if f0 > 0 or f1 < count:
                        _fill_silent(res.silent, 0, f0, f1, count, keep, into, mags, at)
                    if into is not sums:
                        sums[dest] = into
                if on_rows is not None:
                    on_rows(dest, kept)

        # chunks write disjoint rows; each thread has its own buffers
        run_blocks(chunks, [(k, 0) for k in range(n_threads)])
        total = np.zeros(rows)
        for res, sums, _, _ in plan:
            total += self._combine(_sum_frames(sums), res)
        return total / len(prepared.resolutions)

    # -- running distance of a clip that is written segment by segment ------------------------
    def frame_sums(self, clips: np.ndarray, prepared: MRSTFTTarget, start: int = 0,
                   stop: int | None = None) -> list[tuple[int, np.ndarray]]:
        """Per-frame sums of the frames that overlap samples ``[start, stop)`` of (R, n)
        ``clips``: one ``(first frame, (R, frames, 2) float32)`` per resolution. Keep a
        (R, n_frames, 2) array per resolution and :meth:`from_frame_sums` gives the
        distance; after writing new samples, recompute only the frames they touch."""
        clips = np.asarray(clips, dtype=np.float32)
        stop = prepared.length if stop is None else stop
        if clips.ndim != 2 or clips.shape[1] != prepared.length or not 0 <= start < stop \
                or stop > prepared.length:
            raise ValueError(f"mrstft.frame_sums: need (rows, {prepared.length}) clips and "
                             f"0 <= start < stop <= {prepared.length}, got shape "
                             f"{clips.shape} and [{start}, {stop})")
        out = []
        identity = np.arange(clips.shape[0])
        for res in prepared.resolutions:
            first = max(0, (start - res.n_fft) // res.hop + 1)  # frame f: [f hop, f hop + n_fft)
            last = min(res.n_frames - 1, (stop - 1) // res.hop)
            lo, hi = first * res.hop, last * res.hop + res.n_fft
            window = np.zeros((clips.shape[0], hi - lo), np.float32)
            avail = min(hi, prepared.length) - lo
            window[:, :avail] = clips[:, lo:lo + avail]
            sums, _ = self._sums(window, res, first, last - first + 1, False, identity)
            out.append((first, sums))
        return out

    def from_frame_sums(self, sums: list[np.ndarray], prepared: MRSTFTTarget) -> np.ndarray:
        """(R,) float64 distances from full per-frame sums, (R, n_frames, 2) per resolution
        (raw: :meth:`Distance.finish` maps them to float32 in ``[0, bound]``)."""
        total = 0.0
        for s, res in zip(sums, prepared.resolutions, strict=True):
            total = total + self._combine(s.sum(axis=1, dtype=np.float64), res)
        return total / len(prepared.resolutions)


class LogMel(Distance):
    name = "logmel"
    bound = 20.0

    def prepare(self, target):
        return log_mel(np.asarray(target, np.float32), sr=self.sr, n_fft=1024, hop=256)

    def compute(self, audio, target_mel, cache):
        mel = log_mel(audio, sr=self.sr, n_fft=1024, hop=256, cache=cache)
        return np.mean(np.abs(mel - target_mel), axis=(-2, -1))


class MFCC(Distance):
    name = "mfcc"
    bound = 1000.0

    def prepare(self, target):
        return mfcc(np.asarray(target, np.float32), sr=self.sr)

    def compute(self, audio, target_mfcc, cache):
        return np.mean(np.abs(mfcc(audio, sr=self.sr) - target_mfcc), axis=(-2, -1))


class Weighted(Distance):
    name = "weighted"

    def __init__(self, parts: list[tuple[Distance, float]], sr: int = 44100) -> None:
        super().__init__(sr)
        self.parts = parts
        self.bound = float(sum(w * d.bound for d, w in parts))
        self.name = "+".join(f"{w:g}*{d.name}" for d, w in parts)

    def prepare(self, target):
        return [d.prepare(target) for d, _ in self.parts]

    def compute(self, audio, prepared, cache):
        return sum(w * d(audio, p, cache=cache).astype(np.float64)
                   for (d, w), p in zip(self.parts, prepared, strict=True))


DISTANCES = {cls.name: cls for cls in (MSE, MultiResolutionSTFT, LogMel, MFCC)}


def make_distance(spec: str | Mapping[str, float] | Distance, *, sr: int = 44100) -> Distance:
    """A distance from a name (``"mrstft"``), weights (``{"mrstft": 1, "mfcc": 0.01}``) or an
    existing :class:`Distance`.

    Raises
    ------
    RewardConfigError
        An unknown name or a negative/non-finite weight.
    """
    if isinstance(spec, Distance):
        return spec
    if isinstance(spec, str):
        if spec not in DISTANCES:
            raise RewardConfigError(f"unknown reward {spec!r}; choose one of "
                                    f"{sorted(DISTANCES)} or a dict of weights")
        return DISTANCES[spec](sr)
    if isinstance(spec, Mapping) and spec:
        parts = []
        for name, weight in spec.items():
            if not (isinstance(weight, (int, float)) and np.isfinite(weight) and weight >= 0):
                raise RewardConfigError(f"reward weight for {name!r} must be a finite number "
                                        f">= 0, got {weight!r}")
            parts.append((make_distance(name, sr=sr), float(weight)))
        return Weighted(parts, sr)
    raise RewardConfigError(f"reward must be a name {sorted(DISTANCES)} or a non-empty dict of "
                            f"weights, got {spec!r}")
