"""float32 sine and cosine computed the way the real engine's libm does.

The Glicol wasm engine calls the Rust ``libm`` crate (musl's algorithms): reduce the float32
argument by multiples of pi/2 in float64, then evaluate a short float64 minimax polynomial and
round to float32. Doing the same here makes ``sin`` nodes and biquad coefficients bit-identical
to the engine, where the host's ``sinf`` differs in the last bit for some arguments, and it is
faster than a scalar ``sinf`` call. Arguments beyond 2**28·pi/2 fall back to float64 ``sin``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# minimax coefficients of sin(x)/x and cos(x) on [-pi/4, pi/4] (float64, as in musl)
_S1 = -0.166666666416265235595
_S2 = 0.0083333293858894631756
_S3 = -0.000198393348360966317347
_S4 = 0.0000027183114939898219064
_C0 = -0.499999997251031003120
_C1 = 0.0416666233237390631894
_C2 = -0.00138867637746099294692
_C3 = 0.0000243904487962774090654

_PIO2 = (1.0 * math.pi / 2, 2.0 * math.pi / 2, 3.0 * math.pi / 2, 4.0 * math.pi / 2)
_INV_PIO2 = 6.36619772367581382433e-01
_PIO2_1 = 1.57079631090164184570e+00
_PIO2_1T = 1.58932547735281966916e-08
_TOINT = 1.5 / 2.220446049250313e-16


@njit(cache=True, inline="always")
def _sindf(x):
    z = x * x
    w = z * z
    r = _S3 + z * _S4
    s = z * x
    return np.float32((x + s * (_S1 + z * _S2)) + s * w * r)


@njit(cache=True, inline="always")
def _cosdf(x):
    z = x * x
    w = z * z
    r = _C2 + z * _C3
    return np.float32(((1.0 + z * _C0) + w * _C1) + (w * z) * r)


@njit(cache=True, nogil=True)
def _reduce(x):
    """x = n·pi/2 + y for float32 x of medium size; returns (n, y) with y in float64."""
    xd = np.float64(x)
    fn = xd * _INV_PIO2 + _TOINT - _TOINT
    y = xd - fn * _PIO2_1 - fn * _PIO2_1T
    n = int(fn)
    if y < -math.pi / 4:
        n -= 1
        fn -= 1.0
        y = xd - fn * _PIO2_1 - fn * _PIO2_1T
    elif y > math.pi / 4:
        n += 1
        fn += 1.0
        y = xd - fn * _PIO2_1 - fn * _PIO2_1T
    return n, y


@njit(cache=True, nogil=True)
def sinf(x):
    """sin of a float32, as the engine computes it."""
    ax = abs(x)
    xd = np.float64(x)
    neg = x < 0
    if ax <= np.float32(0.785398125648498535):  # ~pi/4
        if ax < np.float32(2.44140625e-4):
            return np.float32(x)
        return _sindf(xd)
    if ax <= np.float32(3.92699074745178222656):  # ~5pi/4
        if ax <= np.float32(2.35619449615478515625):  # ~3pi/4
            return -_cosdf(xd + _PIO2[0]) if neg else _cosdf(xd - _PIO2[0])
        return _sindf(-(xd + _PIO2[1]) if neg else -(xd - _PIO2[1]))
    if ax <= np.float32(7.06858301162719726562):  # ~9pi/4
        if ax <= np.float32(5.49778699874877929688):  # ~7pi/4
            return _cosdf(xd + _PIO2[2]) if neg else -_cosdf(xd - _PIO2[2])
        return _sindf(xd + _PIO2[3] if neg else xd - _PIO2[3])
    if not math.isfinite(x):
        return np.float32(np.nan)
    if ax >= np.float32(421657440.0):  # beyond 2**28·pi/2: plain float64 sin
        return np.float32(math.sin(xd))
    n, y = _reduce(x)
    k = n & 3
    if k == 0:
        return _sindf(y)
    if k == 1:
        return _cosdf(y)
    if k == 2:
        return _sindf(-y)
    return -_cosdf(y)


@njit(cache=True, inline="always")
def sin_turn(x):
    """sinf for 0 <= x <= 2π (an oscillator's phase times 2π): the same result as
    :func:`sinf`, with the sign and range tests it does not need left out."""
    if x <= np.float32(0.785398125648498535):
        if x < np.float32(2.44140625e-4):
            return np.float32(x)
        return _sindf(np.float64(x))
    xd = np.float64(x)
    if x <= np.float32(2.35619449615478515625):
        return _cosdf(xd - _PIO2[0])
    if x <= np.float32(3.92699074745178222656):
        return _sindf(-(xd - _PIO2[1]))
    if x <= np.float32(5.49778699874877929688):
        return -_cosdf(xd - _PIO2[2])
    if x <= np.float32(7.06858301162719726562):
        return _sindf(xd - _PIO2[3])
    return sinf(x)


@njit(cache=True, nogil=True)
def cosf(x):
    """cos of a float32, as the engine computes it."""
    ax = abs(x)
    xd = np.float64(x)
    neg = x < 0
    if ax <= np.float32(0.785398125648498535):
        if ax < np.float32(2.44140625e-4):
            return np.float32(1.0)
        return _cosdf(xd)
    if ax <= np.float32(3.92699074745178222656):
        if ax > np.float32(2.35619449615478515625):
            return -_cosdf(xd + _PIO2[1] if neg else xd - _PIO2[1])
        return _sindf(xd + _PIO2[0]) if neg else _sindf(_PIO2[0] - xd)
    if ax <= np.float32(7.06858301162719726562):
        if ax > np.float32(5.49778699874877929688):
            return _cosdf(xd + _PIO2[3] if neg else xd - _PIO2[3])
        return _sindf(-xd - _PIO2[2]) if neg else _sindf(xd - _PIO2[2])
    if not math.isfinite(x):
        return np.float32(np.nan)
    if ax >= np.float32(421657440.0):
        return np.float32(math.cos(xd))
    n, y = _reduce(x)
    k = n & 3
    if k == 0:
        return _cosdf(y)
    if k == 1:
        return _sindf(-y)
    if k == 2:
        return -_cosdf(y)
    return _sindf(y)


_TURN_HI = np.float32(7.06858301162719726562)  # ~9pi/4: sin_turn's last range


@njit(cache=True, nogil=True, boundscheck=False)
def sin_block(x, out):
    """``out[i] = sin_turn(x[i]) if x[i] >= 0 else sinf(x[i])`` for float32 arrays, in a
    loop the compiler vectorises: each sample evaluates both polynomials on its reduced
    argument and selects, without branches (the same float64 operations in the same order as
    :func:`sin_turn`, so the same bits). Samples outside ``[0, ~9pi/4]`` (negative, large or
    NaN: rare for an oscillator's phase) are redone by :func:`sinf` in a second pass."""
    n = x.size
    bad = 0
    for i in range(n):
        v = x[i]
        xd = np.float64(v)
        r1 = v > np.float32(0.785398125648498535)
        r2 = v > np.float32(2.35619449615478515625)
        r3 = v > np.float32(3.92699074745178222656)
        r4 = v > np.float32(5.49778699874877929688)
        off = _PIO2[3] if r4 else (_PIO2[2] if r3 else (_PIO2[1] if r2 else (
            _PIO2[0] if r1 else 0.0)))
        a = xd - off if r1 else xd
        a = -a if (r2 and not r3) else a  # sin_turn's third range: sindf(-(x - pi))
        z = a * a
        w = z * z
        s = z * a
        sin_a = np.float32((a + s * (_S1 + z * _S2)) + s * w * (_S3 + z * _S4))
        cos_a = np.float32(((1.0 + z * _C0) + w * _C1) + (w * z) * (_C2 + z * _C3))
        cos_range = (r1 and not r2) or (r3 and not r4)
        y = cos_a if cos_range else sin_a
        y = -y if (r3 and not r4) else y
        y = v if v < np.float32(2.44140625e-4) else y  # sin x = x (also selects x < 0)
        out[i] = y
        bad += 0 if (v >= np.float32(0.0)) and (v <= _TURN_HI) else 1
    if bad:
        for i in range(n):
            v = x[i]
            if not ((v >= np.float32(0.0)) and (v <= _TURN_HI)):
                out[i] = sinf(v)
