"""Value patterns ``"v@t v@t"(span)`` of ``sig`` and ``lpf``: a value that switches at bar
fractions and holds, repeating every ``span`` bars (reference/glicol-spec.md §4, §5.4)."""

from __future__ import annotations

import numpy as np

from musicgym.synth import ast
from musicgym.synth.nodes.base import F32, Context


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
    """

    def __init__(self, pattern: ast.Pattern, ctx: Context, before_first: float = 0.0) -> None:
        from musicgym.synth.patch import resolve

        self.ctx = ctx
        events = sorted(pattern.events, key=lambda e: e[1])
        self.times = np.array([t for _, t in events], dtype=np.float64)
        self.values = [np.asarray(resolve(v, ctx), dtype=F32) for v, _ in events]
        self.span = pattern.span
        self.before_first = F32(before_first)

    def values_at(self, start: int, n: int) -> np.ndarray:
        """(B, n) float32 values of samples ``start .. start + n``."""
        bar = 240.0 / self.ctx.bpm * self.ctx.sr
        cycle = bar * (self.span or 1.0)
        k = np.arange(start, start + n, dtype=np.float64)
        pos = np.mod(k, cycle) / bar
        idx = np.searchsorted(self.times, pos, side="right") - 1
        out = np.empty((self.ctx.batch, n), dtype=F32)
        out[:] = self.before_first
        for j, v in enumerate(self.values):
            mask = idx == j
            out[:, mask] = v[:, None]
        return out
