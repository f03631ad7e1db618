"""Arithmetic and routing: mul, add, mix, get, balance (reference/glicol-spec.md §4).

All write two channels. ``mul``/``add`` at the start of a chain are silent (no main input), as
in the real engine; with a ``~ref``, ``mul`` uses the ref's left channel and ``add`` adds the
ref's right channel to the right when both signals are stereo.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicgym.synth.nodes.base import F32, Node, column, dual, is_dual, to_stereo


@njit(cache=True, nogil=True, boundscheck=False)
def _binary_into(x, r, multiply, out):
    """``out[:, c] = x * r`` (or ``x + r``) for every channel c of out (B, C, n): x and r
    (B, n) float32 (r may be a broadcast view). The same float32 operation as NumPy's."""
    B, C, n = out.shape
    for b in range(B):
        xb = x[b]
        rb = r[b]
        left = out[b, 0]
        right = out[b, C - 1]
        if multiply:
            for i in range(n):
                v = xb[i] * rb[i]
                left[i] = v
                right[i] = v
        else:
            for i in range(n):
                v = xb[i] + rb[i]
                left[i] = v
                right[i] = v


class _Binary(Node):
    channels = 2

    def setup(self) -> None:
        if self.args[0] is not None:
            self.value = column(self.args[0], self.ctx.batch, np.float32)[:, None, None]

    def _operands(self, inputs):
        x = inputs[0]
        if self.n_refs == 0:
            ref = self.value
        else:
            ref = inputs[1]
            if x.shape[1] == 1 or self.left_ref:
                ref = ref[:, :1, :]  # a mono main input takes the ref's left on both sides
        return x, ref

    def process(self, inputs, start, n):
        if not self.has_main:
            return self.zeros(n)
        x, ref = self._operands(inputs)
        if is_dual(x) and is_dual(ref):
            # both channels equal: compute one, return a stereo view of it
            return dual(self.op(x[:, :1, :], ref[:, :1, :]))
        return self.op(to_stereo(x), ref)

    def process_into(self, inputs, start, n, out):
        if not self.has_main or out.shape[1] > 2:
            return False
        x, ref = self._operands(inputs)
        if not (is_dual(x) and is_dual(ref)) or x.dtype != F32 or ref.dtype != F32:
            return False
        # both channels equal: one pass computes the left and writes it to every channel
        # of the result (no temporary, no broadcast copy)
        r = np.broadcast_to(ref[:, 0, :], (x.shape[0], n))
        _binary_into(x[:, 0, :], r, self.op is np.multiply, out)
        return True


class Mul(_Binary):
    """mul GAIN: multiply by a number, or by ~ref (its left channel)."""

    name = "mul"
    left_ref = True
    op = staticmethod(np.multiply)


class Add(_Binary):
    """add VALUE: add a number, or ~ref (right channel to right when both are stereo)."""

    name = "add"
    left_ref = False
    op = staticmethod(np.add)


class Mix(Node):
    """mix ~a ~b ..: sum of chains (~name.. matches every chain starting with ~name)."""

    name = "mix"
    channels = 2

    def process(self, inputs, start, n):
        out = self.zeros(n)
        for x in inputs:
            out += x if x.shape[1] == 2 else x[:, :1, :]
        return out


class Get(Node):
    """get ~a: the signal of chain ~a (a bare ~a or name as a node means the same)."""

    name = "get"
    channels = 2

    def process(self, inputs, start, n):
        if not inputs:
            return self.zeros(n)
        return to_stereo(inputs[-1])


class Balance(Node):
    """balance ~l ~r: left from ~l, right from ~r (each its left channel); starts a chain."""

    name = "balance"
    channels = 2

    def process(self, inputs, start, n):
        out = self.zeros(n)
        if self.n_inputs == 2:
            out[:, 0, :] = inputs[0][:, 0, :]
            out[:, 1, :] = inputs[1][:, 0, :]
        return out
