"""Helpers for comparing the NumPy backend with the real Glicol engine."""

from __future__ import annotations

import numpy as np

from musicgym.synth import Patch


def case_rng(seed: int, name: str) -> np.random.Generator:
    """A generator for a conformance case, seeded by the seed and the case's name."""
    return np.random.default_rng([seed, sum(map(ord, name))])


def fmt(x: float) -> str:
    """A number as a Glicol float literal with 4 decimals."""
    return f"{x:.4f}"


def assert_matches(code: str, reference, *, seconds: float = 2.0, atol: float = 1e-5,
                   rtol_peak: float = 0.0, **options) -> float:
    """Render ``code`` with both backends and assert they agree; return the max difference.

    ``rtol_peak`` loosens the bound to ``atol * max(1, rtol_peak * peak)`` for patches whose
    level is far above 1 or whose recursions amplify float32 rounding of sin/cos (see callers).
    """
    patch = Patch(code, **options)
    n = patch.n_samples(seconds)
    ours = patch.render(n_samples=n)[0].astype(np.float64)
    ref = reference(code, n, sr=patch.sr, bpm=patch.bpm, seed=patch.seed,
                    samples=patch.samples).astype(np.float64)
    same = (ours == ref) | (np.isnan(ours) & np.isnan(ref))  # equal infinities, both NaN
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(ours - ref))
    diff = np.nan_to_num(diff, nan=np.inf)
    peak = float(np.nanmax(np.abs(ref))) if np.isfinite(ref).any() else 0.0
    bound = atol * max(1.0, rtol_peak * peak)
    worst = float(diff.max())
    if worst > bound:
        ch, i = np.unravel_index(int(np.argmax(diff)), diff.shape)
        raise AssertionError(
            f"{code!r}: max |numpy - glicol| = {worst:.3g} > {bound:.3g} at channel {ch}, "
            f"sample {i}: numpy {ours[ch, i]!r} vs glicol {ref[ch, i]!r} (peak {peak:.3g})")
    return worst
