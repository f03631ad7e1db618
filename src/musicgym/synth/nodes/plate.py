"""plate MIX: glicol@0.4.0's Dattorro-style plate reverb, as one batched numba kernel.

The engine builds the plate as a private sub-graph of about fifty nodes (delays, allpasses,
onepoles, a 0.1 Hz sine modulating two allpasses, sums) and runs it one 128-sample block at a
time in depth-first post-order from its output (reference/glicol-spec.md §1 and §5.7). Every
edge of that sub-graph delivers the current block except one: the tank stage ``ab`` (the
2800-sample delay after ``aa``) is visited while ``aa`` is still on the traversal stack, so it
reads ``aa``'s *previous* block. A node reading sample ``i`` of the previous block of a signal
reads that signal 128 samples ago, so this is exactly an extra 128-sample delay, and everything
else is sample-by-sample causal: the kernel runs the sub-graph one sample at a time, in the same
order, with the same float32 arithmetic, and reproduces the blocks without modelling them (so
chunks of any length work).

Every delay element is a ring buffer of its own length L read before it is written, as the
engine's fixed ring buffers are: at sample n its slot is n mod L and reading it gives the input
of n - L. Sizes are fixed for 44.1 kHz whatever the engine's rate (the sub-nodes keep their
default rate). The wet path does not depend on MIX; MIX only weighs dry and wet per batch row:
out = (1 - mix)·x + mix·wet on each channel, from channel 0 of the input.

The batch runs in groups of up to 16 rows: for each group the kernel loops over time and, inside,
over the group's rows, whose state lies contiguous per ring slot (memory (groups, slots, rows)),
so the inner loops are short vector loops and a group's rings (about 4 MB) are walked in order.
The modulator is the same for every row and is computed once per chunk.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from musicgym.synth.nodes.base import F32, Node, column, mono
from musicgym.synth.nodes.libm import sinf

_SR = F32(44100.0)  # the plate's sub-nodes run at their default rate, not the engine's


def _ms_to_samples(ms: float) -> int:
    """An allpass length: ``(ms / 1000 * 44100) as usize`` evaluated in float32, as the engine."""
    return int(np.trunc(F32(ms) / F32(1000.0) * _SR))


def _onepole_coefs(rate: float) -> tuple[np.float32, np.float32]:
    """(a, b) of y = a·x + b·y1 with b = exp(-2π·rate), a = 1 - b, the engine's f32 onepole."""
    arg = F32(-2.0) * F32(math.pi) * F32(rate)
    b = F32(math.exp(float(arg)))
    return F32(1.0) - b, b


# The rings, in the order the kernel lays them out in memory: (name, length in samples); the
# kernel refers to them by position (its comments name the stages). Stage names follow the
# spec's tank (aa, ab, ... fb). Allpasses own two rings (past inputs "x", past outputs "y").
_PRE = 2205                       # 50 ms pre-delay (delayms: (50/1000*44100) as usize)
_MOD_LEN = _ms_to_samples(100.0)  # 4410: the buffer of both modulated allpasses
_BLOCK_LAG = 128                  # ab reads aa one engine block late (see the module docstring)
_RINGS: list[tuple[str, int]] = [
    ("pre", _PRE),
    ("in1x", _ms_to_samples(4.771)), ("in1y", _ms_to_samples(4.771)),
    ("in2x", _ms_to_samples(3.595)), ("in2y", _ms_to_samples(3.595)),
    ("in3x", _ms_to_samples(12.72)), ("in3y", _ms_to_samples(12.72)),
    ("in4x", _ms_to_samples(9.307)), ("in4y", _ms_to_samples(9.307)),
    ("m1x", _MOD_LEN), ("m1y", _MOD_LEN),
    ("aa", 394),
    ("ab", 2800 + _BLOCK_LAG),
    ("ac", 1204),
    ("ba", 2000),
    ("bax", _ms_to_samples(7.596)), ("bay", _ms_to_samples(7.596)),
    ("bbx", _ms_to_samples(35.78)), ("bby", _ms_to_samples(35.78)),
    ("m2x", _MOD_LEN), ("m2y", _MOD_LEN),
    ("ca", 179),
    ("cb", 2679),
    ("cc", 3500),
    ("dax", _ms_to_samples(30.0)), ("day", _ms_to_samples(30.0)),
    ("da", 522),
    ("db", 2400),
    ("dc", 2400),
    ("eax", _ms_to_samples(6.2)), ("eay", _ms_to_samples(6.2)),
    ("ebx", _ms_to_samples(34.92)), ("eby", _ms_to_samples(34.92)),
    ("fax", _ms_to_samples(20.4)), ("fay", _ms_to_samples(20.4)),
    ("fa", 1578),
    ("fb", 2378),
    ("fc", 2500),
]
_LENGTHS = np.array([length for _, length in _RINGS], dtype=np.int64)
_OFFSETS = np.concatenate([[0], np.cumsum(_LENGTHS)[:-1]]).astype(np.int64)
_SLOTS = int(_LENGTHS.sum())

# Allpass gains, in kernel order: the four input diffusers, the modulated input allpass, then
# the tank's ba, bb, bc (modulated), da, ea, eb, fa.
_GAINS = np.array([0.75, 0.75, 0.625, 0.625, 0.7, 0.5, 0.5, 0.5, 0.7, 0.7, 0.7, 0.7], dtype=F32)
# Onepoles: the input's (0.7) and the tank's two (0.1), as rows (a, b).
_ONEPOLES = np.array([_onepole_coefs(0.7), _onepole_coefs(0.1), _onepole_coefs(0.1)], dtype=F32)
_FEEDBACK = F32(0.3)
_MOD_FREQ = F32(0.1)           # Hz, sine modulating both modulated allpasses
_MOD_DEPTH = F32(5.5)          # ms
_MOD_CENTRE = F32(29.5)        # ms
_MAX_LANES = 16  # rows per group run in lock step (measured: 16 and 32 fastest for B = 64)


def _lanes(batch: int) -> int:
    """Rows per group: the batch rounded up to a power of two, at most _MAX_LANES."""
    lanes = 1
    while lanes < min(batch, _MAX_LANES):
        lanes *= 2
    return lanes


@njit(cache=True, inline="always")
def _delay(mem, slot, s, i, o):
    """s[o] = the ring's value from L samples ago; the ring takes s[i]."""
    for w in range(s.shape[1]):
        v = mem[slot, w]
        mem[slot, w] = s[i, w]
        s[o, w] = v


@njit(cache=True, inline="always")
def _allpass(mem, sx, sy, g, s, i, o):
    """Schroeder allpass y = -g·x + x[n-D] + g·y[n-D], in the engine's f32 evaluation order."""
    ng = -g
    for w in range(s.shape[1]):
        xn = s[i, w]
        yn = ng * xn + mem[sx, w] + g * mem[sy, w]
        mem[sx, w] = xn
        mem[sy, w] = yn
        s[o, w] = yn


@njit(cache=True, inline="always")
def _allpass_mod(mem, ox, oy, length, pos, k, frac, g, s, i, o):
    """The allpass with a modulated read: the ring's slots k and k+1 after its oldest, with the
    engine's swapped interpolation weights (frac on slot k, 1 - frac on slot k+1)."""
    r0 = pos + k
    if r0 >= length:
        r0 -= length
    r1 = r0 + 1
    if r1 >= length:
        r1 -= length
    c = F32(1.0) - frac
    ng = -g
    for w in range(s.shape[1]):
        xn = s[i, w]
        xd = mem[ox + r0, w] * frac + mem[ox + r1, w] * c
        yd = mem[oy + r0, w] * frac + mem[oy + r1, w] * c
        yn = ng * xn + xd + g * yd
        mem[ox + pos, w] = xn
        mem[oy + pos, w] = yn
        s[o, w] = yn


@njit(cache=True, inline="always")
def _onepole(state, j, a, b, s, i, o):
    for w in range(s.shape[1]):
        v = s[i, w] * a + b * state[j, w]
        state[j, w] = v
        s[o, w] = v


@njit(cache=True, nogil=True)
def _modulation(phase, n, length, k, frac):
    """The modulator sin 0.1 >> mul 5.5 >> add 29.5 (ms) as a read position in a 100 ms ring,
    pos = -ms/1000*sr raised by the ring length until >= 0, split into slot k and fraction.

    The same for every row. sin is the engine's own float32 algorithm (``libm.sinf``): any
    other float32 sine moves the read position by one f32 step on some samples."""
    p = phase[0]
    inc = _MOD_FREQ / _SR
    two_pi = F32(2.0 * math.pi)
    for t in range(n):
        ms = sinf(p * two_pi) * _MOD_DEPTH + _MOD_CENTRE
        p = p + inc
        if p > F32(1.0):
            p = p - F32(1.0)
        rp = -ms / F32(1000.0) * _SR
        while rp < F32(0.0):
            rp = rp + F32(length)
        k[t] = int(math.floor(rp))
        frac[t] = rp - F32(math.trunc(rp))
    phase[0] = p


@njit(cache=True, nogil=True)
def _plate_kernel(x, mix, start, mem, offsets, lengths, poles, coefs, gains, k, frac, out):
    """Run the plate over x (G, n, W); write out (G, 2, n, W). State: mem (G, slots, W) and
    poles (G, 3, W), in place; k, frac: the modulated read per sample."""
    G, n, W = x.shape
    n_rings = offsets.shape[0]
    pos = np.empty(n_rings, dtype=np.int64)  # the slot of each ring at the current sample
    slot = np.empty(n_rings, dtype=np.int64)
    s = np.empty((24, W), dtype=F32)  # one row per intermediate signal
    mod_len = lengths[9]
    for g in range(G):
        m = mem[g]
        st = poles[g]
        mx = mix[g]
        dry_gain = np.empty(W, dtype=F32)
        for w in range(W):
            dry_gain[w] = F32(1.0) - mx[w]
        for r in range(n_rings):
            pos[r] = start % lengths[r]
        for t in range(n):
            kt = k[t]
            ft = frac[t]
            for r in range(n_rings):
                slot[r] = offsets[r] + pos[r]
            # input path: onepole 0.7, 50 ms pre-delay, four diffusing allpasses
            for w in range(W):
                s[0, w] = x[g, t, w]
            _onepole(st, 0, coefs[0, 0], coefs[0, 1], s, 0, 1)
            _delay(m, slot[0], s, 1, 2)
            _allpass(m, slot[1], slot[2], gains[0], s, 2, 3)
            _allpass(m, slot[3], slot[4], gains[1], s, 3, 4)
            _allpass(m, slot[5], slot[6], gains[2], s, 4, 5)
            _allpass(m, slot[7], slot[8], gains[3], s, 5, 6)  # s6: end of the input path

            # the tank, in the engine's visiting order, starting where it reads aa late;
            # ab's ring is written with aa at the end of the sample
            for w in range(W):
                s[7, w] = m[slot[12], w]                        # ab
            _delay(m, slot[13], s, 7, 8)                        # ac
            _delay(m, slot[14], s, 8, 9)                        # d2000
            _onepole(st, 1, coefs[1, 0], coefs[1, 1], s, 9, 9)
            _allpass(m, slot[15], slot[16], gains[5], s, 9, 10)    # ba
            _allpass(m, slot[17], slot[18], gains[6], s, 10, 11)   # bb
            _allpass_mod(m, offsets[19], offsets[20], mod_len, pos[19], kt, ft, gains[7],
                         s, 11, 12)                             # bc
            _delay(m, slot[21], s, 12, 13)                      # ca
            _delay(m, slot[22], s, 13, 14)                      # cb
            _delay(m, slot[23], s, 14, 15)                      # d3500
            for w in range(W):
                s[15, w] = s[15, w] * _FEEDBACK
            _allpass(m, slot[24], slot[25], gains[8], s, 15, 15)
            _delay(m, slot[26], s, 15, 16)                      # da
            _delay(m, slot[27], s, 16, 17)                      # db
            _delay(m, slot[28], s, 17, 18)                      # dc
            _onepole(st, 2, coefs[2, 0], coefs[2, 1], s, 18, 18)
            _allpass(m, slot[29], slot[30], gains[9], s, 18, 19)   # ea
            _allpass(m, slot[31], slot[32], gains[10], s, 19, 20)  # eb
            _allpass(m, slot[33], slot[34], gains[11], s, 20, 21)
            _delay(m, slot[35], s, 21, 22)                      # fa
            _delay(m, slot[36], s, 22, 23)                      # fb
            _delay(m, slot[37], s, 23, 0)  # d2500, into the input's row (no longer needed)
            # the "+" closing the loop, then the modulated allpass and aa
            for w in range(W):
                s[1, w] = s[6, w] + s[0, w] * _FEEDBACK
            _allpass_mod(m, offsets[9], offsets[10], mod_len, pos[9], kt, ft, gains[4],
                         s, 1, 2)
            _delay(m, slot[11], s, 2, 3)                        # aa
            for w in range(W):
                m[slot[12], w] = s[3, w]

            # output taps (L = aa + ab + cb - (bb + db + ea + fa),
            # R = da + db + fb - (eb + ab + ba + ca)) and the dry/wet mix; the engine's sums
            # add in hash-map order, which only moves the last bit
            for w in range(W):
                left = s[3, w] + s[7, w] + s[14, w] + -(s[11, w] + s[17, w] + s[19, w] + s[22, w])
                right = s[16, w] + s[17, w] + s[23, w] + -(s[20, w] + s[7, w] + s[10, w]
                                                          + s[13, w])
                dry = x[g, t, w] * dry_gain[w]
                out[g, 0, t, w] = dry + left * mx[w]
                out[g, 1, t, w] = dry + right * mx[w]

            for r in range(n_rings):
                q = pos[r] + 1
                pos[r] = 0 if q == lengths[r] else q


class Plate(Node):
    """plate MIX: stereo plate reverb of channel 0, out = (1 - mix)·dry + mix·wet."""

    name = "plate"
    channels = 2
    state_attrs = ("mem", "poles", "phase")
    rows_shared = True

    def setup(self) -> None:
        B = self.ctx.batch
        W = _lanes(B)
        G = -(-B // W)  # rows are padded to whole groups; padding rows carry silence
        mix = np.zeros(G * W, dtype=F32)
        mix[:B] = column(self.args[0], B, F32)
        self.mix = mix.reshape(G, W)
        self.mem = np.zeros((G, _SLOTS, W), dtype=F32)
        self.poles = np.zeros((G, 3, W), dtype=F32)
        self.phase = np.zeros(1, dtype=F32)

    def process(self, inputs: list[np.ndarray], start: int, n: int) -> np.ndarray:
        # the plate reads its chain input only; with none it has nothing to process
        if not self.has_main:
            return self.zeros(n)
        B = self.ctx.batch
        G, W = self.mix.shape
        x = np.zeros((G * W, n), dtype=F32)
        x[:B] = mono(inputs[0])
        x = np.ascontiguousarray(x.reshape(G, W, n).transpose(0, 2, 1))
        k = np.empty(n, dtype=np.int64)
        frac = np.empty(n, dtype=F32)
        _modulation(self.phase, n, _MOD_LEN, k, frac)
        out = np.empty((G, 2, n, W), dtype=F32)
        _plate_kernel(x, self.mix, start, self.mem, _OFFSETS, _LENGTHS, self.poles, _ONEPOLES,
                      _GAINS, k, frac, out)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2).reshape(G * W, 2, n)[:B])
