"""Value patterns ``"v@t v@t"(span)`` of ``sig`` and ``lpf`` (reference/glicol-spec.md §4, §5.4).

Faithful to glicol@0.4.0: the node holds a value; each event sets it at the sample where
``n mod P == floor(t * bar)``, with the bar ``60 / bpm * 4 * sr`` and the period
``P = floor(bar * span)`` computed in float32. ``t`` is a fraction of one bar (not of the span),
so an event with ``t * bar >= P`` never fires. The value then holds, across the loop point too:
before the first event of a cycle the previous cycle's last value still sounds; only before the
very first event is it the node's initial value (0 for ``sig``, 20 Hz for ``lpf``). Where two
events fall on one sample the later one in the pattern wins.
"""

from __future__ import annotations

import numpy as np

from musicgym.errors import UnsupportedNodeError
from musicgym.synth import ast
from musicgym.synth.nodes.base import F32, Context, resolve


def bar_seconds(bpm: float) -> np.float32:
    """One bar in seconds as the engine computes it: ``60 / bpm * 4`` in float32."""
    return F32(F32(60.0) / F32(bpm)) * F32(4.0)


class PatternClock:
    """Evaluate a value pattern per sample for every batch row.

    Parameters
    ----------
    pattern : ast.Pattern
        The parsed pattern (values may be template holes).
    ctx : Context
        The render's settings (bar length from bpm and sr).
    before_first : float
        The value before the first event of the first cycle.

    Raises
    ------
    UnsupportedNodeError
        The pattern has no ``(span)`` (glicol@0.4.0 crashes on it; with ``compat=False`` the span
        defaults to 1 bar), or its period is shorter than one sample.
    """

    def __init__(self, pattern: ast.Pattern, ctx: Context, before_first: float = 0.0) -> None:
        self.ctx = ctx
        span = pattern.span
        if span is None:
            if ctx.compat:
                raise UnsupportedNodeError(
                    "a value pattern without its (span) is not supported: glicol@0.4.0 crashes "
                    "on it", line=pattern.pos.line, column=pattern.pos.column,
                    suggestion='write the span in bars after the quotes, e.g. "1@0 2@0.5"(1)')
            span = 1.0
        sr = F32(ctx.sr)
        bar = bar_seconds(ctx.bpm)
        period_f = F32(F32(bar * F32(span)) * sr)
        if not period_f >= 1.0:
            raise UnsupportedNodeError(
                f"a value pattern's span must last at least one sample, got {span} bars",
                line=pattern.pos.line, column=pattern.pos.column)
        self.period = int(period_f)
        # each event's sample within the period; later events win ties; unreachable ones drop
        winner: dict[int, int] = {}
        for j, (_, t) in enumerate(pattern.events):
            pos = F32(F32(F32(t) * bar) * sr)
            if 0.0 <= pos and int(pos) < self.period:
                winner[int(pos)] = j
        self.positions = np.array(sorted(winner), dtype=np.int64)
        order = [winner[p] for p in self.positions]
        # column 0: the initial value; column k + 1: the value set at positions[k]
        columns = [np.full(ctx.batch, before_first, dtype=F32)]
        columns += [np.asarray(resolve(pattern.events[j][0], ctx), dtype=F32) for j in order]
        self.table = np.ascontiguousarray(np.stack(columns, axis=1))

    def values_at(self, start: int, n: int) -> np.ndarray:
        """(B, n) float32 values of samples ``start .. start + n``."""
        k = np.arange(start, start + n, dtype=np.int64)
        m = len(self.positions)
        if m == 0:
            col = np.zeros(n, dtype=np.int64)
        else:
            cycle, r = np.divmod(k, self.period)
            col = np.searchsorted(self.positions, r, side="right")
            # before this cycle's first event the previous cycle's last value holds
            col = np.where((col == 0) & (cycle > 0), m, col)
        return self.table[:, col]
