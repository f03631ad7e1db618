"""Sequencing: seq (note impulses), speed, choose (random notes), arrange, points (automation).

Faithful to glicol@0.4.0 (reference/glicol-spec.md §3, §6):

* ``seq`` fires a single-sample impulse of height 2^((m-60)/12) at the sample where
  ``n mod floor(B) == floor(t * B)``, with the bar ``B = 240 / bpm * sr / speed`` in float64 and
  the event time ``t`` in float32; MIDI 0 gives nothing; a ``~x`` note reads the MIDI number from
  an input. The first input counts as a speed signal in a 128-sample block whose first sample is
  positive and whose second is 0 (what ``speed k`` emits); that speed then stays. The engine
  indexes ``~x`` notes among its inputs *after* the first one only when the block has a speed, so
  without one the first ``~x`` reads the chain input (``sig 67 >> seq ~a`` plays 67); where the
  index runs past the inputs the real engine crashes, and so does this node (EngineTrapError).
* ``choose`` draws once per 128-sample block from the engine-seeded integer-hash noise.
* ``arrange`` switches between its inputs after the given numbers of bars (float32 bar
  arithmetic) and loops.
* ``points`` interpolates linearly between points placed at ``floor(bars * bar * span)`` plus
  ``floor(offset * sr)`` samples (float32), with (0, 0) prepended when the first point is not at
  sample 0. The engine truncates a negative offset to 0 and, without ``*k``/``/k``, uses a span of
  -1 (every point lands on sample 0: NaN at n = 0, then the last value; with ``!`` it crashes).
  ``compat=False`` fixes both: the span defaults to 1 bar and negative offsets count.

``seq``, ``choose`` and ``arrange`` write the left channel only, as the engine does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicgym.errors import EngineTrapError, UnsupportedNodeError
from musicgym.synth import ast
from musicgym.synth.nodes.base import BLOCK, F32, Node, column, mono, resolve
from musicgym.synth.nodes.patterns import bar_seconds

# kinds of seq events
_NOTE, _REF = 0, 1


def _stack_inputs(inputs: list[np.ndarray], batch: int, n: int) -> np.ndarray:
    """Channel 0 of every input as one (K, B, n) float32 array (K >= 1 for numba's typing)."""
    if not inputs:
        return np.zeros((1, batch, n), dtype=F32)
    return np.ascontiguousarray(np.stack([mono(x) for x in inputs]), dtype=F32)


@njit(cache=True, nogil=True)
def _midi_height(m):
    """2^((m - 60) / 12) as the engine's float32 ``powf``; MIDI 0 is silence."""
    if m == F32(0.0):
        return F32(0.0)
    return F32(2.0 ** np.float64((m - F32(60.0)) / F32(12.0)))


@njit(cache=True, nogil=True)
def _seq(times, kinds, slots, heights, ins, n_inputs, start, bar0, speed, out):
    """Write the impulses into ``out`` (B, n), zero on entry; ``speed`` (B,) float32 is updated.
    Returns -1, the first sample where a ``~x`` note indexes past the inputs, or -2 minus the
    first block's sample where the speed leaves a bar of 0 samples (the engine crashes there)."""
    B, n = out.shape
    E = times.shape[0]
    for b in range(B):
        for s in range(0, n, BLOCK):
            blen = min(BLOCK, n - s)
            has_speed = 0
            if n_inputs > 0:
                x0 = ins[0, b, s]
                x1 = ins[0, b, s + 1] if blen > 1 else F32(0.0)
                if x0 > F32(0.0) and x1 == F32(0.0):
                    has_speed = 1
                    speed[b] = x0
            bar = bar0 / np.float64(speed[b])
            period = np.int64(bar)
            if period <= 0:  # a bar shorter than a sample: the engine's `% 0` panics
                return -2 - s
            r0 = (start + s) % period
            for e in range(E):
                pos = np.int64(np.float64(times[e]) * bar)
                if pos >= period:
                    continue
                i = (pos - r0) % period
                while i < blen:
                    if kinds[e] == _NOTE:
                        out[b, s + i] = heights[e, b]
                    else:
                        k = slots[e] + has_speed
                        if k >= n_inputs:
                            return s + i
                        out[b, s + i] = _midi_height(ins[k, b, s + i])
                    i += period
    return -1


class Seq(Node):
    """seq NOTES: one-sample impulses of height 2^((m-60)/12) per note (MIDI, _ rest, ~x ref)."""

    name = "seq"
    channels = 2
    state_attrs = ("speed",)

    def setup(self) -> None:
        notes: ast.SeqNotes = self.args[0]
        B = self.ctx.batch
        C = F32(len(notes.compounds))
        times, kinds, slots, heights = [], [], [], []
        ref_slot: dict[str, int] = {}
        for i, compound in enumerate(notes.compounds):
            E = F32(len(compound))
            for j, elem in enumerate(compound):
                if isinstance(elem, ast.Rest):
                    continue
                times.append(F32(F32(F32(F32(1.0) / C) * F32(j)) / E) + F32(F32(i) / C))
                if isinstance(elem, ast.Ref):
                    kinds.append(_REF)
                    slots.append(ref_slot.setdefault(elem.name, len(ref_slot)))
                    heights.append(np.zeros(B, dtype=F32))
                else:
                    midi = column(resolve(elem, self.ctx), B, F32)
                    kinds.append(_NOTE)
                    slots.append(0)
                    heights.append(np.array([_midi_height(m) for m in midi], dtype=F32))
        self.times = np.array(times, dtype=F32)
        self.kinds = np.array(kinds, dtype=np.int64)
        self.slots = np.array(slots, dtype=np.int64)
        self.heights = np.array(heights, dtype=F32).reshape(len(times), B)
        self.bar0 = 240.0 / np.float64(F32(self.ctx.bpm)) * np.float64(self.ctx.sr)
        self.speed = np.ones(B, dtype=F32)

    def process(self, inputs, start, n):
        out = self.zeros(n)
        ins = _stack_inputs(inputs, self.ctx.batch, n)
        bad = _seq(self.times, self.kinds, self.slots, self.heights, ins, len(inputs), start,
                   self.bar0, self.speed, out[:, 0, :])
        if bad <= -2:
            raise EngineTrapError(
                f"seq: at sample {start - 2 - bad} the speed ({float(self.speed.max()):g}) "
                f"makes a bar shorter than one sample (speed must stay below "
                f"{self.bar0:g}); glicol@0.4.0 crashes here too")
        if bad >= 0:
            raise EngineTrapError(
                f"seq: at sample {start + bad} a ~x note reads past the node's inputs, because "
                "the first input looked like a speed signal (positive, then 0); glicol@0.4.0 "
                "crashes here too")
        return out


class Speed(Node):
    """speed K: K at the first sample of every 128-sample block, else 0 (sets a seq's tempo)."""

    name = "speed"
    channels = 1

    def setup(self) -> None:
        self.value = column(self.args[0], self.ctx.batch, F32)

    def process(self, inputs, start, n):
        out = self.zeros(n)
        first = (-start) % BLOCK
        out[:, 0, first::BLOCK] = self.value[:, None]
        return out


def hash_noise(k: np.ndarray) -> np.ndarray:
    """dasp's integer-hash noise (the engine's ``noise(seed)``) at counters ``k``, float64."""
    x = k.astype(np.uint64)
    x = (x << np.uint64(13)) ^ x
    v = (x * (x * x * np.uint64(15731) + np.uint64(789221)) + np.uint64(1376312589)) \
        & np.uint64(0x7FFFFFFF)
    return 1.0 - v.astype(np.float64) / 1073741824.0


class Choose(Node):
    """choose I1 I2 ...: one of the integers, drawn once per 128-sample block (engine seed)."""

    name = "choose"
    channels = 2

    def setup(self) -> None:
        self.values = np.stack([column(v, self.ctx.batch, F32) for v in self.args], axis=1)

    def process(self, inputs, start, n):
        first, last = start // BLOCK, (start + n - 1) // BLOCK
        u = hash_noise(np.arange(first, last + 1, dtype=np.int64) + self.ctx.seed)
        count = self.values.shape[1]
        idx = ((u * 0.5 + 0.5) * count).astype(np.int64)
        idx[idx >= count] = 0
        out = self.zeros(n)
        for k, value in enumerate(self.values[:, idx].T):
            out[:, 0, k * BLOCK:(k + 1) * BLOCK] = value[:, None]
        return out


@njit(cache=True, nogil=True)
def _arrange_sections(ends, bar, step, sections):
    """Which section sounds at each sample: ``ends`` (G, J) float32 cumulative bars, ``step``
    (G,) the engine's counters (updated), ``sections`` (G, n) written."""
    G, n = sections.shape
    J = ends.shape[1]
    for g in range(G):
        st = step[g]
        for i in range(n):
            pos = F32(st) / bar
            k = 0
            for j in range(J):
                if pos < ends[g, j]:
                    k = j
                    break
                if j == J - 1:  # past the end: this sample restarts the loop
                    st = 0
            sections[g, i] = k
            st += 1
        step[g] = st


class Arrange(Node):
    """arrange ~A BARS ~B BARS ...: play ~A for BARS bars, then ~B ..., looping (left only)."""

    name = "arrange"
    channels = 2
    state_attrs = ("step",)
    rows_shared = True

    def setup(self) -> None:
        sections = len(self.args) // 2
        if self.n_refs < sections:
            # the graph merges a repeated ~ref into one input, the engine does not
            raise UnsupportedNodeError(
                "arrange naming the same ~ref twice is not supported by the NumPy backend",
                suggestion="render this code with backend='glicol' (the real Glicol engine)")
        # the engine's j-th section plays its j-th input (the chain input first, if any)
        bars = np.stack([column(self.args[2 * j + 1], self.ctx.batch, F32)
                         for j in range(sections)], axis=1)
        ends = np.cumsum(bars, axis=1, dtype=F32)
        # rows with the same bars share one clock
        self.ends, self.group = np.unique(ends, axis=0, return_inverse=True)
        self.group = self.group.reshape(-1)
        self.bar = F32(F32(F32(240.0) / F32(self.ctx.bpm)) * F32(self.ctx.sr))
        self.step = np.zeros(len(self.ends), dtype=np.int64)

    def process(self, inputs, start, n):
        out = self.zeros(n)
        sections = np.empty((len(self.ends), n), dtype=np.int64)
        _arrange_sections(self.ends, self.bar, self.step, sections)
        for g, sec in enumerate(sections):
            rows = np.flatnonzero(self.group == g) if len(self.ends) > 1 else slice(None)
            cuts = [0, *(np.flatnonzero(np.diff(sec)) + 1), n]
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                out[rows, 0, a:b] = inputs[sec[a]][rows, 0, a:b]
        return out


@njit(cache=True, nogil=True, error_model="numpy")  # 0/0 is NaN, as in the engine
def _points(pos, vals, loop, period, start, out):
    """``pos`` (P,) sample positions, ``vals`` (B, P) float32 values."""
    B, n = out.shape
    P = pos.shape[0]
    prev = np.empty(n, dtype=np.int64)
    nxt = np.empty(n, dtype=np.int64)
    frac = np.empty(n, dtype=np.float32)
    for i in range(n):
        step = start + i
        if loop:
            step = step % period
        j = 0
        while j < P - 1 and step > pos[j + 1]:
            j += 1
        prev[i] = j
        if j < P - 1:
            nxt[i] = j + 1
            frac[i] = (F32(step) - F32(pos[j])) / (F32(pos[j + 1]) - F32(pos[j]))
        elif loop:
            nxt[i] = 0
            frac[i] = (F32(step) - F32(pos[j])) / (F32(period) - F32(pos[j]) + F32(pos[0]))
        else:  # after the last point: hold it
            nxt[i] = -1
    for b in range(B):
        for i in range(n):
            j = prev[i]
            if nxt[i] < 0:
                out[b, i] = vals[b, j]
            else:
                out[b, i] = vals[b, j] + frac[i] * (vals[b, nxt[i]] - vals[b, j])


_USIZE_MAX = 2**32 - 1  # usize is 32-bit in the wasm engine


def _to_samples(x: np.float32) -> int:
    """Rust's ``f32 as usize`` on wasm32: truncation, saturating; NaN to 0."""
    if not x > 0:
        return 0
    return _USIZE_MAX if not np.isfinite(x) else min(int(x), _USIZE_MAX)


class Points(Node):
    """[T=>V, ...]*SPAN!: points, piecewise-linear automation over bars (+ms/s), ! loops."""

    name = "points"
    channels = 1

    def setup(self) -> None:
        spec: ast.Points = self.args[0]
        compat = self.ctx.compat
        span = spec.span if spec.span is not None else (-1.0 if compat else 1.0)
        sr = F32(self.ctx.sr)
        bar = F32(F32(bar_seconds(self.ctx.bpm) * F32(span)) * sr)
        positions, values = [], []
        for point in spec.points:
            at = F32(F32(point.bars) * bar)
            offset = F32(F32(point.offset_s) * sr)
            if compat:
                pos = _to_samples(at) + _to_samples(offset)
            else:
                pos = _to_samples(F32(at + offset))
            positions.append(pos)
            values.append(column(resolve(point.value, self.ctx), self.ctx.batch, F32))
        if positions[0] != 0:
            positions.insert(0, 0)
            values.insert(0, np.zeros(self.ctx.batch, dtype=F32))
        self.positions = np.array(positions, dtype=np.int64)
        self.values = np.ascontiguousarray(np.stack(values, axis=1))
        self.loop = spec.loop
        self.period = _to_samples(bar)
        if self.loop and self.period == 0:
            raise UnsupportedNodeError(
                "looping points need a span of at least one sample"
                + (" (glicol@0.4.0 crashes on '!' without *k or /k)" if compat else ""),
                line=spec.pos.line, column=spec.pos.column,
                suggestion="write the span, e.g. [0=>0, 1/2=>1]*1!")

    def process(self, inputs, start, n):
        out = self.zeros(n)
        _points(self.positions, self.values, self.loop, max(self.period, 1), start,
                out[:, 0, :])
        return out
