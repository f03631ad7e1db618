"""Samplers: ``sp``/``sampler`` (voices started by a trigger signal) and ``psampler`` (a pattern).

Faithful to glicol@0.4.0 (reference/glicol-spec.md §6): every input sample > 0 starts a voice
at rate r = x, lasting len/r·(sr/sample_sr) output samples; a voice at pos = elapsed/length reads
index f = pos·(len−1) with the interpolation weights swapped (s[⌊f⌋]·frac + s[⌈f⌉]·(1−frac)),
all in float32. Voices are summed in start order and dropped once pos > 1. A mono sample goes to
both channels; a stereo sample is planar data (all left frames, then all right) and the right
channel reads f = pos·(len−2) one frame late, as the engine does. ``psampler`` starts voices at
rate 1 at ``t·bar`` samples, the pattern repeating every ``span`` bars (bpm at creation).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicgym.errors import UnsupportedNodeError
from musicgym.synth import ast
from musicgym.synth.nodes.base import F32, Node, mono


@njit(cache=True, nogil=True)
def _frame_index(f):
    """floor(f), ceil(f) and the fraction, for 0 <= f (float32)."""
    lo = int(f)
    w = f - F32(lo)
    return lo, lo + 1 if w > F32(0.0) else lo, w


@njit(cache=True, nogil=True)
def _voice_add(data, off, frames, channels, pos, acc_l, acc_r):
    """Sums ``acc_l``/``acc_r`` plus one voice's frame at ``pos`` (0 <= pos <= 1).

    A mono voice sets the right sum to the left one, as the engine does; a sample with more
    than 2 channels adds nothing (the engine writes nothing for it).
    """
    if channels == 1:
        if pos == F32(0.0):
            v = data[off]
        elif pos == F32(1.0):
            v = data[off + frames - 1]
        else:
            lo, hi, w = _frame_index(pos * F32(frames - 1))
            v = data[off + lo] * w + data[off + hi] * (F32(1.0) - w)
        acc_l += v
        return acc_l, acc_l
    if channels == 2:
        right = off + frames
        if pos == F32(0.0):
            return acc_l + data[off], acc_r + data[right]
        if pos == F32(1.0):
            return acc_l + data[right - 1], acc_r + data[right + frames - 1]
        lo, hi, w = _frame_index(pos * F32(frames - 2))
        rest = F32(1.0) - w
        return (acc_l + (data[off + lo] * w + data[off + hi] * rest),
                acc_r + (data[right + 1 + lo] * w + data[right + 1 + hi] * rest))
    return acc_l, acc_r


@njit(cache=True, nogil=True)
def _mix_voices(data, off, frames, channels, clock, begin, dur, which, count, out_l, out_r, i):
    """Write the sum of one row's voices at sample ``clock`` (output index ``i``), in start
    order, and drop those past their end (pos > 1). Returns the number of voices left."""
    acc_l = F32(0.0)
    acc_r = F32(0.0)
    ended = False
    for j in range(count):
        pos = F32(clock - begin[j]) / dur[j]
        if pos <= F32(1.0):
            s = which[j]
            acc_l, acc_r = _voice_add(data, off[s], frames[s], channels[s], pos, acc_l, acc_r)
        else:
            ended = True
    out_l[i] = acc_l
    out_r[i] = acc_r
    if not ended:
        return count
    keep = 0
    for j in range(count):
        if F32(clock - begin[j]) / dur[j] <= F32(1.0):
            begin[keep] = begin[j]
            dur[keep] = dur[j]
            which[keep] = which[j]
            keep += 1
    return keep


@njit(cache=True, nogil=True)
def _sampler(x, data, off, frames, channels, scale, start, begin, dur, which, count, out,
             choke=False):
    """``sp``: wherever x > 0 start a voice at rate x, and play every row's voices
    (``choke``: a new voice ends the ones playing, as ``spmono``)."""
    B, n = x.shape
    length = F32(frames[0])
    for b in range(B):
        c = count[b]
        row_begin, row_dur, row_which = begin[b], dur[b], which[b]
        out_l, out_r = out[b, 0], out[b, 1]
        for i in range(n):
            v = x[b, i]
            if v > F32(0.0):
                if choke:
                    c = 0
                row_begin[c] = start + i
                row_dur[c] = length / v / scale
                row_which[c] = 0
                c += 1
            if c:
                c = _mix_voices(data, off, frames, channels, start + i, row_begin, row_dur,
                                row_which, c, out_l, out_r, i)
        count[b] = c


class _Voices:
    """Growable per-row voice tables (start sample, length, sample index)."""

    def __init__(self, batch: int) -> None:
        self.count = np.zeros(batch, dtype=np.int64)
        self._alloc(batch, 16)

    def _alloc(self, batch: int, cap: int) -> None:
        self.begin = np.zeros((batch, cap), dtype=np.int64)
        self.dur = np.zeros((batch, cap), dtype=F32)
        self.which = np.zeros((batch, cap), dtype=np.int64)

    def load_rows(self, rows: np.ndarray, other: _Voices) -> None:
        """Rows ``rows`` take the voices of ``other`` (one row each)."""
        self.reserve(np.where(np.isin(np.arange(len(self.count)), rows), other.begin.shape[1],
                              0))
        width = other.begin.shape[1]
        for mine, theirs in ((self.begin, other.begin), (self.dur, other.dur),
                             (self.which, other.which)):
            mine[rows] = 0
            mine[rows, :width] = theirs
        self.count[rows] = other.count

    def reserve(self, extra: np.ndarray | int) -> None:
        """Make room for ``extra`` more voices per row."""
        need = int(np.max(self.count + extra))
        cap = self.begin.shape[1]
        if need <= cap:
            return
        old = (self.begin, self.dur, self.which)
        self._alloc(self.count.shape[0], max(need, 2 * cap))
        for new, arr in zip((self.begin, self.dur, self.which), old, strict=True):
            new[:, :cap] = arr


def _sample_tables(ctx, names: list[str]) -> tuple[np.ndarray, ...]:
    """Loaded samples packed for the kernels: planar data of all of them, then per sample its
    offset in it, frames, channels and sample_sr/sr (float32, as the engine computes it)."""
    datas, frames, channels, scale = [], [], [], []
    for name in names:
        audio, sample_sr = ctx.samples[name]
        ch, n_frames = audio.shape
        if ch == 2 and n_frames < 2:
            raise UnsupportedNodeError(
                f"the stereo sample {name} has {n_frames} frame(s): glicol@0.4.0 crashes on "
                "stereo samples shorter than 2 frames", suggestion="give it at least 2 frames")
        datas.append(np.ascontiguousarray(audio, dtype=F32).reshape(-1))
        frames.append(n_frames)
        channels.append(ch)
        scale.append(F32(sample_sr) / F32(ctx.sr))
    sizes = np.array([d.size for d in datas], dtype=np.int64)
    off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return (np.concatenate(datas), off, np.array(frames, dtype=np.int64),
            np.array(channels, dtype=np.int64), np.array(scale, dtype=F32))


class Sampler(Node):
    """sp \\NAME: play sample NAME from each input sample > 0, at rate = that value (polyphonic)."""

    name = "sp"
    channels = 2
    state_attrs = ("voices",)
    choke = False

    def load_rows(self, rows, other) -> None:
        self.voices.load_rows(rows, other.voices)

    def setup(self) -> None:
        self.data, self.off, self.frames, self.chans, self.scale = \
            _sample_tables(self.ctx, [self.args[0].name])
        self.voices = _Voices(self.ctx.batch)

    def process(self, inputs, start, n):
        out = self.zeros(n)
        if self.n_inputs != 1:
            return out
        x = np.ascontiguousarray(mono(inputs[0]))
        v = self.voices
        v.reserve(1 if self.choke else np.count_nonzero(x > 0, axis=1))
        _sampler(x, self.data, self.off, self.frames, self.chans, self.scale[0], start,
                 v.begin, v.dur, v.which, v.count, out, self.choke)
        return out


class MonoSampler(Sampler):
    """spmono \\NAME: sp, one voice at a time (each trigger ends it); musicgym only, not Glicol.

    A musicgym extension (the NumPy backend only; glicol@0.4.0 has no such node). ``sp``'s
    voices play their whole sample whatever follows them, so under an envelope retriggered by
    the same impulses (a granular patch: ``imp >> sp >> mul ~env``) every grain re-opens all
    the voices still playing: a stream that plays on piles up as many as density x sample
    length / rate of them (hundreds, tens of dB louder than one grain) and keeps an old rate's
    voices for seconds after a change. With ``spmono`` what sounds is the last grain only.
    """

    name = "spmono"
    choke = True


@njit(cache=True, nogil=True)
def _psampler(data, off, frames, channels, scale, ev_sample, ev_offset, bar, start, n,
              begin, dur, which, count, out_l, out_r):
    """``psampler`` for one row: start the pattern's voices at rate 1, and play them."""
    c = count
    for i in range(n):
        step = start + i
        phase = step % bar
        for e in range(ev_sample.shape[0]):
            if phase == ev_offset[e]:
                s = ev_sample[e]
                begin[c] = step
                dur[c] = F32(frames[s]) / F32(1.0) / scale[s]
                which[c] = s
                c += 1
        if c:
            c = _mix_voices(data, off, frames, channels, step, begin, dur, which, c, out_l,
                            out_r, i)
    return c


class PSampler(Node):
    """psampler "\\A@T \\B@T"(SPAN): play samples at bar fractions T, repeating every SPAN bars."""

    name = "psampler"
    channels = 2
    state_attrs = ("voices",)
    rows_shared = True

    def setup(self) -> None:
        pattern: ast.Pattern = self.args[0]
        where = {"line": pattern.pos.line, "column": pattern.pos.column}
        if pattern.span is None:
            raise UnsupportedNodeError(
                "psampler needs a span: glicol@0.4.0 crashes on a pattern without one", **where,
                suggestion='write the span in bars after the pattern, e.g. "\\bd@0"(1)')
        names = list(dict.fromkeys(sym.name for sym, _ in pattern.events))
        self.data, self.off, self.frames, self.chans, self.scale = \
            _sample_tables(self.ctx, names)
        # float32 as the engine: cycle = 60/bpm*4 s, bar = cycle*span*sr, event at t*cycle*sr
        cycle = F32(60.0) / F32(self.ctx.bpm) * F32(4.0)
        sr = F32(self.ctx.sr)
        self.bar = int(cycle * F32(pattern.span) * sr)
        if self.bar < 1:
            raise UnsupportedNodeError(
                f"psampler span {pattern.span} is shorter than one sample: glicol@0.4.0 "
                "crashes on it", **where)
        self.ev_sample = np.array([names.index(sym.name) for sym, _ in pattern.events],
                                  dtype=np.int64)
        self.ev_offset = np.array([max(0, int(F32(t) * cycle * sr)) for _, t in pattern.events],
                                  dtype=np.int64)
        # a pattern holds no template holes, so every row plays the same: run one, copy it
        self.voices = _Voices(1)

    def process(self, inputs, start, n):
        v = self.voices
        v.reserve(len(self.ev_sample) * (n // self.bar + 1))
        row = np.zeros((2, n), dtype=F32)
        v.count[0] = _psampler(self.data, self.off, self.frames, self.chans, self.scale,
                               self.ev_sample, self.ev_offset, self.bar, start, n, v.begin[0],
                               v.dur[0], v.which[0], v.count[0], row[0], row[1])
        return np.repeat(row[None], self.ctx.batch, axis=0)
