"""Sources: oscillators (sin saw squ tri), impulses (imp), noise, constants and patterns (sig).

Faithful to glicol@0.4.0 (reference/glicol-spec.md §4): float32 phase accumulators that wrap
once, computed before the increment; an oscillator with a chain input takes its frequency from
it, with two inputs it is silent; saw/squ/tri with an input keep the last non-zero frequency.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from musicgym.synth import ast
from musicgym.synth.nodes.base import F32, Node, column, mono
from musicgym.synth.nodes.libm import sin_block, sin_turn, sinf
from musicgym.synth.nodes.patterns import PatternClock

SIN, SAW, SQU, TRI = 0, 1, 2, 3
_TWO_PI = F32(2.0 * math.pi)


@njit(cache=True, nogil=True, fastmath=False)
def _wave(kind, p):
    if kind == SIN:
        x = p * _TWO_PI
        return sin_turn(x) if x >= F32(0.0) else sinf(x)
    if kind == SAW:
        return p * F32(2.0) - F32(1.0)
    if kind == SQU:
        return F32(1.0) if p <= F32(0.5) else F32(-1.0)
    return F32(2.0) * abs(F32(2.0) * p - F32(1.0)) - F32(1.0)


@njit(cache=True, nogil=True)
def _osc_const(kind, inc, phase, out):
    """Constant frequency per row: ``inc`` (B,) f32 = f/sr; ``phase`` (B,) f32 updated.

    """
    B, n = out.shape
    for b in range(B):
        p = phase[b]
        d = inc[b]
        for i in range(n):
            out[b, i] = _wave(kind, p)
            p = p + d
            if p > F32(1.0):
                p = p - F32(1.0)
        phase[b] = p


@njit(cache=True, nogil=True)
def _osc_input(kind, freq, sr, sticky, phase, last, out):
    """Frequency from a signal (B, n); sticky: a 0 sample keeps the last non-zero frequency."""
    B, n = out.shape
    for b in range(B):
        p = phase[b]
        f_last = last[b]
        for i in range(n):
            f = freq[b, i]
            if sticky:
                if f != F32(0.0):
                    f_last = f
                f = f_last
            out[b, i] = _wave(kind, p)
            p = p + f / sr
            if p > F32(1.0):
                p = p - F32(1.0)
        phase[b] = p
        last[b] = f_last


_PHASE_ROWS = 8  # rows whose phases advance side by side in the fast kernels (written out)


@njit(cache=True, nogil=True, inline="always")
def _next_phase(p, d):
    """One step of the float32 phase accumulator: add, wrap once."""
    p = p + d
    return p - F32(1.0) if p > F32(1.0) else p


@njit(cache=True, nogil=True, boundscheck=False)
def _osc_input_fast(kind, freq, sr, sticky, phase, last, out):
    """:func:`_osc_input` in passes per block of 8 rows: the increments ``freq / sr``
    (vectorised: in the serial loop the division bounded the speed; sticky: a 0 sample
    takes the increment of the last non-zero frequency, the same quotient), the phases (8
    float32 chains side by side, as in :func:`_osc_const_fast`) into ``out``, then the waveform
    of every phase in place (vectorised; :func:`sin_block` for sin). The same operations
    sample by sample, so the same bits (tests/synth/test_fast_kernels.py)."""
    B, n = out.shape
    W = _PHASE_ROWS
    ds = np.empty((W, n), dtype=F32)
    xs = np.empty(n, dtype=F32)
    for b0 in range(0, B, W):
        m = min(W, B - b0)
        for j in range(m):
            f_row = freq[b0 + j]
            d = ds[j]
            for i in range(n):
                d[i] = f_row[i] / sr
            if sticky:
                f_last = last[b0 + j]
                d_last = f_last / sr
                for i in range(n):
                    if f_row[i] != F32(0.0):
                        f_last = f_row[i]
                        d_last = d[i]
                    else:
                        d[i] = d_last
                last[b0 + j] = f_last
        if m < W:  # the last rows one by one
            for j in range(m):
                q = phase[b0 + j]
                y = out[b0 + j]
                d = ds[j]
                for i in range(n):
                    y[i] = q
                    q = _next_phase(q, d[i])
                phase[b0 + j] = q
        else:
            p0, p1, p2, p3 = phase[b0], phase[b0 + 1], phase[b0 + 2], phase[b0 + 3]
            p4, p5, p6, p7 = phase[b0 + 4], phase[b0 + 5], phase[b0 + 6], phase[b0 + 7]
            d0, d1, d2, d3, d4, d5, d6, d7 = (ds[0], ds[1], ds[2], ds[3], ds[4], ds[5], ds[6],
                                              ds[7])
            y0, y1, y2, y3 = out[b0], out[b0 + 1], out[b0 + 2], out[b0 + 3]
            y4, y5, y6, y7 = out[b0 + 4], out[b0 + 5], out[b0 + 6], out[b0 + 7]
            for i in range(n):  # eight independent chains
                y0[i] = p0
                p0 = _next_phase(p0, d0[i])
                y1[i] = p1
                p1 = _next_phase(p1, d1[i])
                y2[i] = p2
                p2 = _next_phase(p2, d2[i])
                y3[i] = p3
                p3 = _next_phase(p3, d3[i])
                y4[i] = p4
                p4 = _next_phase(p4, d4[i])
                y5[i] = p5
                p5 = _next_phase(p5, d5[i])
                y6[i] = p6
                p6 = _next_phase(p6, d6[i])
                y7[i] = p7
                p7 = _next_phase(p7, d7[i])
            phase[b0], phase[b0 + 1], phase[b0 + 2], phase[b0 + 3] = p0, p1, p2, p3
            phase[b0 + 4], phase[b0 + 5], phase[b0 + 6], phase[b0 + 7] = p4, p5, p6, p7
        for j in range(m):
            _wave_in_place(kind, out[b0 + j], xs)


@njit(cache=True, nogil=True, boundscheck=False)
def _wave_in_place(kind, y, xs):
    """``y[i] = _wave(kind, y[i])`` for a row of phases, vectorised (sin: through the
    scratch row xs and :func:`sin_block`, whose second pass rereads its input)."""
    n = y.size
    if kind == SIN:
        for i in range(n):
            xs[i] = y[i] * _TWO_PI
        sin_block(xs, y)
    elif kind == SAW:
        for i in range(n):
            y[i] = y[i] * F32(2.0) - F32(1.0)
    elif kind == SQU:
        for i in range(n):
            y[i] = F32(1.0) if y[i] <= F32(0.5) else F32(-1.0)
    else:
        for i in range(n):
            y[i] = F32(2.0) * abs(F32(2.0) * y[i] - F32(1.0)) - F32(1.0)


@njit(cache=True, nogil=True, boundscheck=False)
def _osc_const_fast(kind, inc, phase, out):
    """:func:`_osc_const` (every waveform; sin is the hot path of most patches) in two
    passes per block of 8 rows: the phases (float32 accumulators, a serial chain per row: 8
    rows side by side hide its latency) into ``out``, then the waveform in place
    (:func:`_wave_in_place`; sin vectorised by :func:`sin_block`). The same operations sample
    by sample, so the same bits (tests/synth/test_fast_kernels.py). The 8 phases are 8 local
    variables, written out: kept in an array, each step went through memory (the compiler
    cannot prove the stores leave it alone), and the phase pass took 1.8x as long."""
    B, n = out.shape
    W = _PHASE_ROWS
    xs = np.empty(n, dtype=F32)
    for b0 in range(0, B, W):
        m = min(W, B - b0)
        if m < W:  # the last rows one by one
            for j in range(m):
                q = phase[b0 + j]
                dq = inc[b0 + j]
                y = out[b0 + j]
                for i in range(n):
                    y[i] = q
                    q = _next_phase(q, dq)
                phase[b0 + j] = q
        else:
            p0, p1, p2, p3 = phase[b0], phase[b0 + 1], phase[b0 + 2], phase[b0 + 3]
            p4, p5, p6, p7 = phase[b0 + 4], phase[b0 + 5], phase[b0 + 6], phase[b0 + 7]
            d0, d1, d2, d3 = inc[b0], inc[b0 + 1], inc[b0 + 2], inc[b0 + 3]
            d4, d5, d6, d7 = inc[b0 + 4], inc[b0 + 5], inc[b0 + 6], inc[b0 + 7]
            y0, y1, y2, y3 = out[b0], out[b0 + 1], out[b0 + 2], out[b0 + 3]
            y4, y5, y6, y7 = out[b0 + 4], out[b0 + 5], out[b0 + 6], out[b0 + 7]
            for i in range(n):  # eight independent chains
                y0[i] = p0
                p0 = _next_phase(p0, d0)
                y1[i] = p1
                p1 = _next_phase(p1, d1)
                y2[i] = p2
                p2 = _next_phase(p2, d2)
                y3[i] = p3
                p3 = _next_phase(p3, d3)
                y4[i] = p4
                p4 = _next_phase(p4, d4)
                y5[i] = p5
                p5 = _next_phase(p5, d5)
                y6[i] = p6
                p6 = _next_phase(p6, d6)
                y7[i] = p7
                p7 = _next_phase(p7, d7)
            phase[b0], phase[b0 + 1], phase[b0 + 2], phase[b0 + 3] = p0, p1, p2, p3
            phase[b0 + 4], phase[b0 + 5], phase[b0 + 6], phase[b0 + 7] = p4, p5, p6, p7
        for j in range(m):
            _wave_in_place(kind, out[b0 + j], xs)


class Oscillator(Node):
    kind = SIN
    channels = 1
    state_attrs = ("phase", "last")

    def setup(self) -> None:
        B = self.ctx.batch
        self.phase = np.zeros(B, dtype=F32)
        self.last = np.zeros(B, dtype=F32)
        if self.args[0] is not None:
            self.inc = (column(self.args[0], B, F32) / F32(self.ctx.sr)).astype(F32)

    def process(self, inputs, start, n):
        out = np.empty((self.ctx.batch, 1, n), dtype=F32) if self.n_inputs == 0 else self.zeros(n)
        if self.n_inputs == 0:
            _osc_const_fast(self.kind, self.inc, self.phase, out[:, 0, :])
        elif self.n_inputs == 1:
            freq = np.ascontiguousarray(mono(inputs[0]))
            _osc_input_fast(self.kind, freq, F32(self.ctx.sr), self.kind != SIN, self.phase,
                            self.last, out[:, 0, :])
        return out


class Sin(Oscillator):
    """sin FREQ: sine wave, FREQ in Hz (number or ~ref for FM)."""

    name = "sin"
    kind = SIN


class Saw(Oscillator):
    """saw FREQ: sawtooth from -1 rising to 1."""

    name = "saw"
    kind = SAW


class Squ(Oscillator):
    """squ FREQ: square wave, +1 for the first half of each period."""

    name = "squ"
    kind = SQU


class Tri(Oscillator):
    """tri FREQ: triangle wave starting at +1."""

    name = "tri"
    kind = TRI


@njit(cache=True, nogil=True, boundscheck=False)
def _imp(period, since, out):
    """out must be zeroed: an impulse at the first sample (since < 0) and then whenever
    ``since`` (samples since the last impulse) reaches the period (period 0: no more).
    The impulses fall every period samples from the first, so only they are visited (the
    sample-by-sample count, in closed form: tests/synth/test_fast_kernels.py)."""
    B, n = out.shape
    for b in range(B):
        P = period[b]
        s = since[b]
        if s < 0:
            i = 0
        elif P > 0:
            i = max(0, P - s)  # the count reaches P after P - s more samples
        else:
            i = n
        last = -1
        while i < n:
            out[b, i] = F32(1.0)
            last = i
            if P <= 0:
                break
            i += P
        since[b] = n - last if last >= 0 else s + n


class Imp(Node):
    """imp FREQ: a single-sample impulse every floor(sr/FREQ) samples, the first at sample 0.

    The impulse clock is a counter of the samples since the last impulse, carried over a
    parameter change like an oscillator's phase: the next impulse comes one new period after
    the last one (at once where that is past). For a constant FREQ this is the engine's
    ``clock % period == 0``; deriving the phase from the stream's clock instead would put the
    first impulse after a change anywhere in the new period, up to 0.5 s late at 2 Hz, and
    make every small change of FREQ jump the phase.
    """

    name = "imp"
    channels = 1
    state_attrs = ("since",)

    def setup(self) -> None:
        f = column(self.args[0], self.ctx.batch, F32)
        with np.errstate(divide="ignore", invalid="ignore"):
            period = np.floor(F32(self.ctx.sr) / f)
        period = np.where(np.isfinite(period) & (f > 0), period, 0)
        self.period = np.maximum(period, 0).astype(np.int64)
        self.period[(f > 0) & (self.period == 0)] = 1
        self.since = np.full(self.ctx.batch, -1, dtype=np.int64)   # -1: not started

    def process(self, inputs, start, n):
        out = self.zeros(n)
        _imp(self.period, self.since, out[:, 0, :])
        return out


@njit(cache=True, nogil=True)
def _noise(seed, start, out):
    B, n = out.shape
    for b in range(B):
        for i in range(n):
            k = np.uint64(seed[b] + start + i)
            x = (k << np.uint64(13)) ^ k
            v = (x * (x * x * np.uint64(15731) + np.uint64(789221)) + np.uint64(1376312589)) \
                & np.uint64(0x7FFFFFFF)
            out[b, i] = F32(1.0 - np.float64(v) / 1073741824.0)


class Noise(Node):
    """noise SEED: white noise in (-1, 1] from an integer hash (the engine seed does not matter)."""

    name = "noise"
    channels = 1

    def setup(self) -> None:
        self.seed = column(self.args[0], self.ctx.batch).astype(np.int64)

    def process(self, inputs, start, n):
        out = self.zeros(n)
        _noise(self.seed, start, out[:, 0, :])
        return out


class Sig(Node):
    """sig VALUE: a constant signal (or a pattern "v@t ..."(span) switching at bar fractions)."""

    name = "sig"
    channels = 1

    def setup(self) -> None:
        arg = self.args[0]
        self.pattern = PatternClock(arg, self.ctx) if isinstance(arg, ast.Pattern) else None
        if self.pattern is None and arg is not None:
            self.value = column(arg, self.ctx.batch, F32)

    def process(self, inputs, start, n):
        out = self.zeros(n)
        if self.pattern is not None:
            out[:, 0, :] = self.pattern.values_at(start, n)
        elif self.args[0] is not None:
            out[:, 0, :] = self.value[:, None]
        return out
