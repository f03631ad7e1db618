"""Delays: delayn (whole samples) and delayms (milliseconds, or modulated by a ~ref).

Faithful to glicol@0.4.0 (reference/glicol-spec.md §5.6): ``delayn`` copies a mono input to
both channels, and with a stereo input delays only the left; ``delayms`` delays a mono input into
the left channel only and a stereo input per channel; ``delayms ~ref`` reads a 2-second ring
buffer with swapped interpolation weights before writing, so an integer delay of D samples comes
out as D - 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicgym.synth.nodes.base import F32, Node, column, copy_rows, relayout
from musicgym.synth.nodes.filters import modulated_read


@njit(cache=True, nogil=True)
def ring_delay(x, lengths, ring, first, out):
    """Fixed ring buffers per row: out = the value pushed ``lengths[b]`` samples ago."""
    B, n = out.shape
    for b in range(B):
        L = lengths[b]
        f = first[b]
        for i in range(n):
            out[b, i] = ring[b, f]
            ring[b, f] = x[b, i]
            f += 1
            if f == L:
                f = 0
        first[b] = f


@njit(cache=True, nogil=True)
def _modulated_delay(x, delay_ms, sr, L, ring, first, out):
    B, n = out.shape
    for b in range(B):
        f = first[b]
        for i in range(n):
            pos = -delay_ms[b, i] / F32(1000.0) * sr
            out[b, i] = modulated_read(ring[b], L, f, pos)
            ring[b, f] = x[b, i]
            f += 1
            if f == L:
                f = 0
        first[b] = f


def _load_rings(target: _Rings, rows: np.ndarray, source: _Rings) -> None:
    """Rows ``rows`` of ``target`` take the delay lines of ``source`` (same lengths)."""
    for t, f, s, g in zip(target.ring, target.first, source.ring, source.first, strict=True):
        lines = relayout(s, g, source.lengths, target.lengths[rows])
        t[rows] = 0
        t[rows, :lines.shape[1]] = lines
        f[rows] = 0


class _Rings:
    """One ring buffer per (row, channel) with per-row lengths."""

    def __init__(self, batch: int, lengths: np.ndarray, channels: int) -> None:
        self.lengths = np.maximum(lengths, 1).astype(np.int64)
        size = int(self.lengths.max())
        self.ring = [np.zeros((batch, size), dtype=F32) for _ in range(channels)]
        self.first = [np.zeros(batch, dtype=np.int64) for _ in range(channels)]

    def resized(self, lengths: np.ndarray) -> _Rings:
        """These delay lines at new lengths: each keeps its most recent samples (a longer line
        starts with silence), so a changed delay reads the input ``lengths`` samples ago."""
        out = _Rings.__new__(_Rings)
        out.lengths = np.maximum(lengths, 1).astype(np.int64)
        out.ring = [relayout(r, f, self.lengths, out.lengths) for r, f in
                    zip(self.ring, self.first, strict=True)]
        out.first = [np.zeros_like(f) for f in self.first]
        return out

    def push(self, ch: int, x: np.ndarray, out: np.ndarray) -> None:
        ring_delay(np.ascontiguousarray(x), self.lengths, self.ring[ch], self.first[ch], out)


class DelayN(Node):
    """delayn SAMPLES: delay by a whole number of samples (mono input to both channels)."""

    name = "delayn"
    channels = 2
    state_attrs = ("rings",)

    def set_args(self, args: list) -> None:
        rings = self.rings
        self.args = args
        self.delay = self._samples(args, self.ctx.batch).astype(np.int64)
        same = np.array_equal(np.maximum(self.delay, 1), rings.lengths)
        self.rings = rings if same else rings.resized(self.delay)

    def load_rows(self, rows, other) -> None:
        _load_rings(self.rings, rows, other.rings)

    @staticmethod
    def _samples(args: list, batch: int) -> np.ndarray:
        n = column(args[0], batch) if args[0] is not None else np.zeros(batch)
        return np.maximum(np.nan_to_num(np.trunc(n)), 0)

    @classmethod
    def state_bytes(cls, ctx, args) -> float:
        return ctx.batch * max(1.0, float(cls._samples(args, ctx.batch).max())) * 4.0

    def setup(self) -> None:
        B = self.ctx.batch
        self.delay = self._samples(self.args, B).astype(np.int64)
        self.rings = _Rings(B, self.delay, 1)

    def process(self, inputs, start, n):
        out = self.zeros(n)
        if self.n_inputs != 1 or not self.has_main:
            return out
        x = inputs[0]
        passthrough = self.delay == 0
        if (~passthrough).any():
            self.rings.push(0, x[:, 0, :], out[:, 0, :])
            if x.shape[1] == 1:
                out[:, 1, :] = out[:, 0, :]
        if passthrough.any():
            rows = np.nonzero(passthrough)[0]
            out[rows] = x[rows] if x.shape[1] == 2 else x[rows][:, [0, 0], :]
        return out


class DelayMs(Node):
    """delayms DELAY_MS: delay in milliseconds, or modulated by a ~ref (2 s buffer)."""

    name = "delayms"
    channels = 2

    def set_args(self, args: list) -> None:
        if self.args[0] is None:   # modulated by a ~ref: a fixed 2 s line, nothing to change
            self.args = args
            return
        rings = self.rings
        self.args = args
        self.delay = self._samples(args, self.ctx.batch, self.ctx.sr).astype(np.int64)
        same = np.array_equal(np.maximum(self.delay, 1), rings.lengths)
        self.rings = rings if same else rings.resized(self.delay)

    def load_rows(self, rows, other) -> None:
        if self.args[0] is None:
            copy_rows(self.mod_ring, rows, other.mod_ring)
            copy_rows(self.mod_first, rows, other.mod_first)
        else:
            _load_rings(self.rings, rows, other.rings)
    MOD_BUFFER_S = 2

    @staticmethod
    def _samples(args: list, batch: int, sr: int) -> np.ndarray:
        ms = column(args[0], batch, F32)
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.trunc(ms / F32(1000.0) * F32(sr))
        return np.maximum(np.nan_to_num(d), 0)

    @classmethod
    def state_bytes(cls, ctx, args) -> float:
        length = cls.MOD_BUFFER_S * ctx.sr if args[0] is None else \
            max(1.0, float(cls._samples(args, ctx.batch, ctx.sr).max()))
        return 2 * ctx.batch * float(length) * 4.0

    def setup(self) -> None:
        B, sr = self.ctx.batch, self.ctx.sr
        if self.args[0] is None:
            self.mod_len = self.MOD_BUFFER_S * sr
            self.mod_ring = [np.zeros((B, self.mod_len), dtype=F32) for _ in range(2)]
            self.mod_first = [np.zeros(B, dtype=np.int64) for _ in range(2)]
            return
        self.delay = self._samples(self.args, B, sr).astype(np.int64)
        self.rings = _Rings(B, self.delay, 2)

    def process(self, inputs, start, n):
        out = self.zeros(n)
        if not self.has_main:
            return out
        x = inputs[0]
        if self.n_inputs == 1 and self.args[0] is not None:
            for ch in range(x.shape[1]):
                self.rings.push(ch, x[:, ch, :], out[:, ch, :])
            passthrough = np.nonzero(self.delay == 0)[0]
            if passthrough.size:
                out[passthrough, 0, :] = x[passthrough, 0, :]
                out[passthrough, 1, :] = 0.0
        elif self.n_inputs == 2:
            mod = np.ascontiguousarray(inputs[1][:, 0, :])
            for ch in range(x.shape[1]):
                _modulated_delay(np.ascontiguousarray(x[:, ch, :]), mod, F32(self.ctx.sr),
                                 self.mod_len, self.mod_ring[ch], self.mod_first[ch],
                                 out[:, ch, :])
        return out
