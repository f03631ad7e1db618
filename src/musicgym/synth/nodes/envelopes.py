"""Envelopes: envperc (attack-decay, retriggered by positive input) and adsr (gated).

Faithful to glicol@0.4.0 (reference/glicol-spec.md §5.1-5.2): lengths are ``int(seconds * sr)``
in float32; envperc starts at position 0 with scale 1, so it fires once at creation even without
a trigger, and writes the left channel only; adsr restarts its attack from 0 on a rising edge
and writes both channels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicgym.synth.nodes.base import F32, Node, column, dual, held_elsewhere, mono


def seconds_to_samples(seconds: np.ndarray, sr: int) -> np.ndarray:
    """``(seconds * sr as f32) as usize``: float32 product, truncated, negatives to 0."""
    prod = column(seconds, seconds.shape[0], F32) * F32(sr)
    prod = np.where(np.isfinite(prod), prod, 0)
    return np.maximum(np.trunc(prod), 0).astype(np.int64)


@njit(cache=True, nogil=True, boundscheck=False)
def _next_trigger(x, j, n):
    """The first index >= j where ``x > 0`` (a trigger), else n: 64 samples at a time
    counted in a loop the compiler vectorises, then sample by sample in the block found.
    (Loops index views from 0: an index the compiler cannot prove >= 0 gets numba's
    negative-index fix-up, which keeps a loop from vectorising.)"""
    zero = F32(0.0)
    while j + 64 <= n:
        block = x[j:j + 64]  # indices from 0: no negative-index fix-up, so vectorised
        c = np.int32(0)
        for t in range(64):
            c += np.int32(block[t] > zero)
        if c != 0:
            break
        j += 64
    while j < n and not (x[j] > zero):
        j += 1
    return j


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def envperc_kernel(x, attack, decay, pos, scale, out):  # out: (B, C, n), writes channel 0
    """The envelope sample by sample is ``p <= A: p / A``, ``p <= A + D: (A + D - p) / D``,
    else 0, times the scale; a trigger (input > 0) sets p to 0 and the scale to the input.
    Between two triggers p just counts up, so each such run splits into its attack part
    (only ``p / A`` computed), its decay part (only ``(A + D - p) / D``) and its tail (one
    value, ``0 * scale``, filled), each a loop the compiler vectorises: the same float32
    operations for every sample as the sample-by-sample loop, so the same bits
    (tests/synth/test_fast_kernels.py). ``out`` is the whole contiguous (B, C, n) buffer, so
    the compiler knows channel 0's samples are adjacent (a ``[:, 0, :]`` view of it would
    have unknown strides: no vector stores)."""
    B, _, n = out.shape
    zero = F32(0.0)
    for b in range(B):
        xr = x[b]
        y = out[b, 0]
        A = attack[b]
        D = decay[b]
        dur = A + D
        fA, fD = F32(A), F32(D)
        p = pos[b]
        s = scale[b]
        i = 0
        while i < n:
            v = xr[i]
            if v > zero:
                p = 0
                s = v
            j = _next_trigger(xr, i + 1, n)  # the run [i, j) has no trigger after i
            # sample i + k is at position p + k: attack while p + k <= A, decay to A + D
            n_up = min(j - i, max(0, A - p + 1))
            n_down = min(j - i - n_up, max(0, dur - max(p, A + 1) + 1))
            run = y[i:i + n_up]
            if A == 0:  # only p = 0 is in the attack: the value 0
                for k in range(n_up):
                    run[k] = zero * s
            else:
                for k in range(n_up):
                    run[k] = (F32(p + k) / fA) * s
            run = y[i + n_up:i + n_up + n_down]
            q0 = p + n_up  # (D = 0: no sample, no position is in (A, A + D])
            for k in range(n_down):
                run[k] = (F32(dur - (q0 + k)) / fD) * s
            tail = zero * s
            run = y[i + n_up + n_down:j]
            for k in range(j - i - n_up - n_down):
                run[k] = tail
            p += j - i
            i = j
        pos[b] = p
        scale[b] = s


class EnvPerc(Node):
    """envperc ATTACK_S DECAY_S: linear attack-decay envelope, retriggered by input > 0."""

    name = "envperc"
    channels = 2
    state_attrs = ("pos", "scale")

    def setup(self) -> None:
        B = self.ctx.batch
        self.attack = seconds_to_samples(self.args[0], self.ctx.sr)
        self.decay = seconds_to_samples(self.args[1], self.ctx.sr)
        self.pos = np.zeros(B, dtype=np.int64)
        self.scale = np.ones(B, dtype=F32)
        self._out = None  # the output buffer, reused from chunk to chunk

    def process(self, inputs, start, n):
        if self.n_inputs != 1:
            return self.zeros(n)
        out = self._out
        # the last chunk's buffer again when nothing but this node holds it any more (no
        # consumer kept it or a view of it: a feedback edge's previous block, a caller), so
        # its right channel, zeroed once, stays silent: the kernel writes only the left,
        # every sample of it
        if out is None or out.shape[2] != n or held_elsewhere(out):
            out = np.empty((self.ctx.batch, 2, n), dtype=F32)
            out[:, 1, :] = 0.0
            self._out = out
        envperc_kernel(np.ascontiguousarray(mono(inputs[0])), self.attack, self.decay,
                       self.pos, self.scale, out)
        return out


@njit(cache=True, nogil=True)
def _adsr(x, A, D, S, R, state_i, state_f, out):
    # state_i: pos, phase; state_f: lastx, lasty, change_y
    B, n = out.shape
    for b in range(B):
        pos = state_i[b, 0]
        phase = state_i[b, 1]
        lastx = state_f[b, 0]
        lasty = state_f[b, 1]
        cy = state_f[b, 2]
        a = A[b]
        d = D[b]
        r = R[b]
        s = S[b]
        for i in range(n):
            v = x[b, i]
            if v > F32(0.0) and lastx == F32(0.0):
                phase = 1
                pos = 0
                cy = lasty
            elif v == F32(0.0) and lastx > F32(0.0):
                phase = 2
                pos = 0
                cy = lasty
            if phase == 1:
                if pos <= a:
                    y = F32(0.0) if a == 0 else F32(pos) / F32(a) * (F32(1.0) - cy)
                elif pos <= a + d:
                    y = s if d == 0 else F32(a + d - pos) / F32(d) * (F32(1.0) - s) + s
                else:
                    y = s
            elif phase == 2:
                y = F32(0.0) if pos >= r else F32(r - pos) / F32(r) * cy
            else:
                y = F32(0.0)
            out[b, i] = y
            lasty = y
            lastx = v
            pos += 1
        state_i[b, 0] = pos
        state_i[b, 1] = phase
        state_f[b, 0] = lastx
        state_f[b, 1] = lasty
        state_f[b, 2] = cy


class Adsr(Node):
    """adsr ATTACK_S DECAY_S SUSTAIN RELEASE_S: envelope of a held gate (rising edge > 0)."""

    name = "adsr"
    channels = 2
    state_attrs = ("state_i", "state_f")

    def setup(self) -> None:
        B = self.ctx.batch
        sr = self.ctx.sr
        self.a = seconds_to_samples(self.args[0], sr)
        self.d = seconds_to_samples(self.args[1], sr)
        self.s = column(self.args[2], B, F32)
        self.r = seconds_to_samples(self.args[3], sr)
        self.state_i = np.zeros((B, 2), dtype=np.int64)
        self.state_f = np.zeros((B, 3), dtype=F32)

    def process(self, inputs, start, n):
        if self.n_inputs != 1:
            return self.zeros(n)
        out = np.empty((self.ctx.batch, n), dtype=F32)
        _adsr(np.ascontiguousarray(mono(inputs[0])), self.a, self.d, self.s, self.r,
              self.state_i, self.state_f, out)
        return dual(out[:, None, :])
