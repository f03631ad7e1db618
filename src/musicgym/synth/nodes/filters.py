"""Filters: lpf, hpf/rhpf (resonant biquads), onepole, apfmsgain/apfgain (Schroeder allpass).

Faithful to glicol@0.4.0 (reference/glicol-spec.md §5.3-5.5). The engine's biquads have a bug:
the a0 term multiplies a state variable that is never updated, so the recursion is
``y[n] = a1 x[n-1] + a2 x[n-2] - b1 y[n-1] - b2 y[n-2]`` (for lpf: DC gain 0.75; hpf is not a
highpass). ``compat=False`` uses the textbook recursion with ``a0 x[n]`` instead. With a ``~ref``
cutoff the coefficients are recomputed from the first sample of each 128-sample block; the lpf
pattern form switches the cutoff at bar fractions (20 Hz before the first event).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from musicgym.synth import ast
from musicgym.synth.nodes.base import (
    BLOCK,
    F32,
    Node,
    column,
    left_only_buffer,
    mono,
    relayout,
    resolve,
)
from musicgym.synth.nodes.libm import cosf, sinf

_TWO_PI = F32(2.0 * math.pi)


@njit(cache=True, nogil=True)
def _coefficients(cutoff, q, sr, highpass):
    theta = _TWO_PI * cutoff / sr
    # Q = 0: the engine's 1/Q is inf (Rust floats) and its output NaN; numba would raise
    d = F32(1.0) / q if q != F32(0.0) else F32(math.copysign(math.inf, q))
    s = sinf(theta)
    beta = F32(0.5) * (F32(1.0) - d * s / F32(2.0)) / (F32(1.0) + d * s / F32(2.0))
    gamma = (F32(0.5) + beta) * cosf(theta)
    if highpass:
        a0 = (F32(0.5) + beta + gamma) / F32(2.0)
        a1 = -F32(0.5) - beta - gamma
    else:
        a0 = (F32(0.5) + beta - gamma) / F32(2.0)
        a1 = F32(0.5) + beta - gamma
    return a0, a1, a0, F32(-2.0) * gamma, F32(2.0) * beta


@njit(cache=True, nogil=True, inline="always")
def _biquad_step(x0, x1, x2, y1, y2, a0, a1, a2, b1, b2, fixed):
    """One sample of the biquad recursion. Without ``fixed`` the engine multiplies a0 by a
    state that stays 0 (a0 * 0 keeps NaN/inf faithful)."""
    head = a0 * x0 if fixed else a0 * F32(0.0)
    return head + a1 * x1 + a2 * x2 - b1 * y1 - b2 * y2


@njit(cache=True, nogil=True)
def biquad_kernel(x, cutoff, q, sr, highpass, fixed, state, out):
    """Run the biquad over x (B, n) with a per-sample cutoff (B, n); state (B, 4) x1 x2 y1 y2."""
    B, n = out.shape
    for b in range(B):
        x1 = state[b, 0]
        x2 = state[b, 1]
        y1 = state[b, 2]
        y2 = state[b, 3]
        last = F32(np.nan)
        a0 = a1 = a2 = b1 = b2 = F32(0.0)
        qb = q[b]
        for i in range(n):
            c = cutoff[b, i]
            if c != last:
                a0, a1, a2, b1, b2 = _coefficients(c, qb, sr, highpass)
                last = c
            x0 = x[b, i]
            y = _biquad_step(x0, x1, x2, y1, y2, a0, a1, a2, b1, b2, fixed)
            out[b, i] = y
            x2 = x1
            x1 = x0
            y2 = y1
            y1 = y
        state[b, 0] = x1
        state[b, 1] = x2
        state[b, 2] = y1
        state[b, 3] = y2


@njit(cache=True, nogil=True, boundscheck=False)
def biquad_const_kernel(x, cutoff, q, sr, highpass, fixed, state, out):
    """:func:`biquad_kernel` for a cutoff constant over the chunk, ``cutoff`` (B,): the
    coefficients once per row, then the recursions of 4 rows side by side (each is a serial
    chain through y[n-1], y[n-2]: one row at a time waited on its latency). The same
    operations sample by sample, so the same bits (tests/synth/test_fast_kernels.py)."""
    B, n = out.shape
    coef = np.empty((B, 5), dtype=F32)
    for b in range(B):
        a0, a1, a2, b1, b2 = _coefficients(cutoff[b], q[b], sr, highpass)
        coef[b, 0], coef[b, 1], coef[b, 2], coef[b, 3], coef[b, 4] = a0, a1, a2, b1, b2
    b0 = 0
    while b0 + 4 <= B:
        xa, xb, xc, xd = x[b0], x[b0 + 1], x[b0 + 2], x[b0 + 3]
        oa, ob, oc, od = out[b0], out[b0 + 1], out[b0 + 2], out[b0 + 3]
        ca, cb, cc, cd = coef[b0], coef[b0 + 1], coef[b0 + 2], coef[b0 + 3]
        sa, sb, sc, sd = state[b0], state[b0 + 1], state[b0 + 2], state[b0 + 3]
        a1x, a2x, a1y, a2y = sa[0], sa[1], sa[2], sa[3]
        b1x, b2x, b1y, b2y = sb[0], sb[1], sb[2], sb[3]
        c1x, c2x, c1y, c2y = sc[0], sc[1], sc[2], sc[3]
        d1x, d2x, d1y, d2y = sd[0], sd[1], sd[2], sd[3]
        for i in range(n):
            v = xa[i]
            y = _biquad_step(v, a1x, a2x, a1y, a2y, ca[0], ca[1], ca[2], ca[3], ca[4], fixed)
            oa[i] = y
            a2x, a1x, a2y, a1y = a1x, v, a1y, y
            v = xb[i]
            y = _biquad_step(v, b1x, b2x, b1y, b2y, cb[0], cb[1], cb[2], cb[3], cb[4], fixed)
            ob[i] = y
            b2x, b1x, b2y, b1y = b1x, v, b1y, y
            v = xc[i]
            y = _biquad_step(v, c1x, c2x, c1y, c2y, cc[0], cc[1], cc[2], cc[3], cc[4], fixed)
            oc[i] = y
            c2x, c1x, c2y, c1y = c1x, v, c1y, y
            v = xd[i]
            y = _biquad_step(v, d1x, d2x, d1y, d2y, cd[0], cd[1], cd[2], cd[3], cd[4], fixed)
            od[i] = y
            d2x, d1x, d2y, d1y = d1x, v, d1y, y
        sa[0], sa[1], sa[2], sa[3] = a1x, a2x, a1y, a2y
        sb[0], sb[1], sb[2], sb[3] = b1x, b2x, b1y, b2y
        sc[0], sc[1], sc[2], sc[3] = c1x, c2x, c1y, c2y
        sd[0], sd[1], sd[2], sd[3] = d1x, d2x, d1y, d2y
        b0 += 4
    for b in range(b0, B):  # the last rows one by one
        xr, o, c, st = x[b], out[b], coef[b], state[b]
        x1, x2, y1, y2 = st[0], st[1], st[2], st[3]
        for i in range(n):
            v = xr[i]
            y = _biquad_step(v, x1, x2, y1, y2, c[0], c[1], c[2], c[3], c[4], fixed)
            o[i] = y
            x2, x1, y2, y1 = x1, v, y1, y
        st[0], st[1], st[2], st[3] = x1, x2, y1, y2


@njit(cache=True, nogil=True)
def _pattern_cutoff(ev_pos, ev_val, bar_len, start, current, out):
    """Per-sample cutoff of the lpf pattern form: an event sets it when step % bar == pos."""
    B, n = out.shape
    n_ev = ev_pos.shape[0]
    for b in range(B):
        c = current[b]
        for i in range(n):
            s = (start + i) % bar_len
            for e in range(n_ev):
                if s == ev_pos[e]:
                    c = ev_val[b, e]
            out[b, i] = c
        current[b] = c


class _Biquad(Node):
    channels = 1
    highpass = False
    state_attrs = ("state",)

    def setup(self) -> None:
        B = self.ctx.batch
        self.q = column(self.args[1], B, F32)
        self.state = np.zeros((B, 4), dtype=F32)
        self.pattern = self.args[0] if isinstance(self.args[0], ast.Pattern) else None
        if self.pattern is not None:
            self._setup_pattern()
        elif self.args[0] is not None:
            self.cutoff = column(self.args[0], B, F32)

    def _setup_pattern(self) -> None:
        ctx = self.ctx
        sr = F32(ctx.sr)
        cycle = F32(60.0) / F32(ctx.bpm) * F32(4.0)
        span = F32(self.pattern.span if self.pattern.span is not None else 1.0)
        self.bar_len = max(1, int(cycle * span * sr))
        self.ev_pos = np.array([int(F32(t) * cycle * sr) for _, t in self.pattern.events],
                               dtype=np.int64)
        self.ev_val = np.stack([np.asarray(resolve(v, ctx), dtype=F32)
                                for v, _ in self.pattern.events], axis=1) \
            if self.pattern.events else np.zeros((ctx.batch, 0), F32)
        self.current = np.full(ctx.batch, F32(20.0), dtype=F32)
        self.state_attrs = ("state", "current")   # the pattern's value held between events

    def process(self, inputs, start, n):
        B = self.ctx.batch
        out = self.zeros(n)
        if self.n_inputs == 1 and self.has_main and self.pattern is None and \
                self.args[0] is not None:
            biquad_const_kernel(np.ascontiguousarray(mono(inputs[0])), self.cutoff, self.q,
                                F32(self.ctx.sr), self.highpass, not self.ctx.compat,
                                self.state, out[:, 0, :])
            return out
        if self.n_inputs == 1 and self.has_main:
            if self.pattern is not None:
                cutoff = np.empty((B, n), dtype=F32)
                _pattern_cutoff(self.ev_pos, self.ev_val, self.bar_len, start, self.current,
                                cutoff)
            else:
                cutoff = np.broadcast_to(self.cutoff[:, None], (B, n))
        elif self.n_inputs == 2:
            cutoff = block_rate(mono(inputs[1]), start)
        else:
            return out
        biquad_kernel(np.ascontiguousarray(mono(inputs[0])), np.ascontiguousarray(cutoff),
                      self.q, F32(self.ctx.sr), self.highpass, not self.ctx.compat,
                      self.state, out[:, 0, :])
        return out


def block_rate(signal: np.ndarray, start: int) -> np.ndarray:
    """Hold each 128-sample block's first value (blocks aligned to absolute sample 0)."""
    n = signal.shape[-1]
    k = np.arange(start, start + n)
    first = k - (k % BLOCK)
    idx = np.clip(first - start, 0, None)
    held = signal[:, idx]
    # a chunk starting mid-block is not produced by the graph runner (chunks are whole blocks)
    return np.ascontiguousarray(held)


class Lpf(_Biquad):
    """lpf CUTOFF_HZ Q: resonant lowpass (cutoff: number, ~ref, or pattern "f@t"(span)).

    Q = 0 gives NaN, as the real engine does (its 1/Q is infinite); so do rhpf and hpf.
    """

    name = "lpf"


class Hpf(_Biquad):
    """hpf CUTOFF_HZ Q: resonant 'highpass' (faithful: not a highpass, see the engine's bug)."""

    name = "hpf"
    highpass = True


@njit(cache=True, nogil=True)
def _onepole(x, rate, coef_from_input, state, out):
    B, n = out.shape
    for b in range(B):
        y1 = state[b]
        if not coef_from_input:
            bb = math.exp(-_TWO_PI * rate[b, 0])
            a = F32(1.0) - bb
        for i in range(n):
            if coef_from_input:
                bb = math.exp(-_TWO_PI * rate[b, i])
                a = F32(1.0) - bb
            y = x[b, i] * a + bb * y1
            out[b, i] = y
            y1 = y
        state[b] = y1


class OnePole(Node):
    """onepole RATE: one-pole lowpass, RATE a normalised frequency (about cutoff / sr)."""

    name = "onepole"
    channels = 1
    state_attrs = ("state",)

    def setup(self) -> None:
        self.state = np.zeros(self.ctx.batch, dtype=F32)
        if self.args[0] is not None:
            self.rate = column(self.args[0], self.ctx.batch, F32)[:, None]

    def process(self, inputs, start, n):
        out = self.zeros(n)
        if self.n_inputs == 1 and self.has_main:
            _onepole(np.ascontiguousarray(mono(inputs[0])), self.rate, False, self.state,
                     out[:, 0, :])
        elif self.n_inputs == 2:
            # the engine swaps roles here: the chain input is the coefficient, the ref the signal
            _onepole(np.ascontiguousarray(mono(inputs[1])),
                     np.ascontiguousarray(mono(inputs[0])), True, self.state, out[:, 0, :])
        return out


@njit(cache=True, nogil=True)
def _allpass(x, lengths, gain, bufx, bufy, first, out):
    B, n = out.shape
    for b in range(B):
        L = lengths[b]
        f = first[b]
        g = gain[b]
        for i in range(n):
            xn = x[b, i]
            yn = -g * xn + bufx[b, f] + g * bufy[b, f]
            bufx[b, f] = xn
            bufy[b, f] = yn
            f += 1
            if f == L:
                f = 0
            out[b, i] = yn
        first[b] = f


@njit(cache=True, nogil=True)
def modulated_read(ring, L, first, pos):
    """The engine's modulated ring-buffer read, weights swapped: get(k)·fr + get(k+1)·(1−fr)."""
    while pos < F32(0.0):
        pos += F32(L)
    k = int(math.floor(pos))
    fr = pos - F32(math.floor(pos))
    return ring[(first + k) % L] * fr + ring[(first + k + 1) % L] * (F32(1.0) - fr)


@njit(cache=True, nogil=True)
def _allpass_mod(x, delay_ms, sr, lengths, gain, bufx, bufy, first, out):
    B, n = out.shape
    for b in range(B):
        L = lengths[b]
        f = first[b]
        g = gain[b]
        for i in range(n):
            pos = -delay_ms[b, i] / F32(1000.0) * sr
            xd = modulated_read(bufx[b], L, f, pos)
            yd = modulated_read(bufy[b], L, f, pos)
            yn = -g * x[b, i] + xd + g * yd
            bufx[b, f] = x[b, i]
            bufy[b, f] = yn
            f += 1
            if f == L:
                f = 0
            out[b, i] = yn
        first[b] = f


class ApfMsGain(Node):
    """apfmsgain DELAY_MS GAIN: Schroeder allpass (DELAY_MS may be a ~ref); left channel only."""

    name = "apfmsgain"
    channels = 2
    state_attrs = ("bufx", "bufy", "first")

    def set_args(self, args: list) -> None:
        old_lengths, bufs, first = self.lengths, (self.bufx, self.bufy), self.first
        super().set_args(args)
        if not np.array_equal(old_lengths, self.lengths):
            self.bufx, self.bufy = (relayout(b, first, old_lengths, self.lengths) for b in bufs)
            self.first = np.zeros_like(first)

    @staticmethod
    def _lengths(args: list, batch: int, sr: int) -> np.ndarray:
        delay = column(args[0], batch, F32) if args[0] is not None else np.zeros(batch, F32)
        with np.errstate(invalid="ignore", over="ignore"):
            size = np.where(delay == 0, F32(3.0) * F32(sr), delay / F32(1000.0) * F32(sr))
        return np.maximum(np.nan_to_num(np.trunc(size), nan=1.0), 1)

    @classmethod
    def state_bytes(cls, ctx, args) -> float:
        return 2 * ctx.batch * float(cls._lengths(args, ctx.batch, ctx.sr).max()) * 4.0

    def setup(self) -> None:
        B, sr = self.ctx.batch, self.ctx.sr
        self.gain = column(self.args[1], B, F32)
        self.lengths = self._lengths(self.args, B, sr).astype(np.int64)
        L = int(self.lengths.max())
        self.bufx = np.zeros((B, L), dtype=F32)
        self.bufy = np.zeros((B, L), dtype=F32)
        self.first = np.zeros(B, dtype=np.int64)

    def process(self, inputs, start, n):
        out = left_only_buffer(self.ctx.batch, n)
        if self.n_inputs == 1 and self.has_main:
            _allpass(np.ascontiguousarray(mono(inputs[0])), self.lengths, self.gain, self.bufx,
                     self.bufy, self.first, out[:, 0, :])
        elif self.n_inputs == 2:
            _allpass_mod(np.ascontiguousarray(mono(inputs[0])),
                         np.ascontiguousarray(mono(inputs[1])), F32(self.ctx.sr), self.lengths,
                         self.gain, self.bufx, self.bufy, self.first, out[:, 0, :])
        return out
