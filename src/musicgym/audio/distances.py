"""Audio distances for sound-matching rewards: ``reward = -distance``, bounded.

Each distance prepares a target's features once (``prepare``) and then scores a batch of
renders against them (``__call__``), returning float32 distances >= 0, clipped at the distance's
``bound`` so that a reward is always in ``[-bound, 0]`` and never NaN or inf.

=========  =====================================================================  ======
name       definition                                                             bound
=========  =====================================================================  ======
mse        mean squared error of the waveforms (RaveForce's criterion)            100
mrstft     mean over FFT sizes 2048/1024/512 (hop n/2) of spectral convergence    50
           ``||T - X||_F / ||T||_F`` plus mean ``|ln(X + 1e-5) - ln(T + 1e-5)|``
logmel     mean ``|log10 mel(X) - log10 mel(T)|`` (64 bands, FFT 1024, hop 256)  20
mfcc       mean absolute error of 13 MFCC (FFT 2048, hop 512): spiegelib's metric 1000
=========  =====================================================================  ======

Weighted combinations: ``make_distance({"mrstft": 1.0, "mfcc": 0.01})`` (bound: weighted sum).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from musicgym.audio.features import EPS, log_mel, mfcc, stft_magnitude
from musicgym.errors import RewardConfigError


class Distance:
    """Base class: ``prepare(target)`` once, then ``self(batch, prepared)`` per step."""

    name = "distance"
    bound = 1.0

    def __init__(self, sr: int = 44100) -> None:
        self.sr = int(sr)

    def prepare(self, target: np.ndarray):
        return np.asarray(target, dtype=np.float32)

    def compute(self, audio: np.ndarray, prepared, cache: dict | None) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, audio: np.ndarray, prepared, *, cache: dict | None = None) -> np.ndarray:
        """Distances of a batch ``audio`` (B, n) to the prepared target: (B,) float32.

        ``cache``: STFT results of this same audio, shared with other features (see
        ``features.stft_magnitude``)."""
        with np.errstate(all="ignore"):
            d = self.compute(np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0,
                                           posinf=1e6, neginf=-1e6), prepared, cache)
        d = np.nan_to_num(np.asarray(d, dtype=np.float64), nan=self.bound, posinf=self.bound)
        return np.clip(d, 0.0, self.bound).astype(np.float32)


class MSE(Distance):
    name = "mse"
    bound = 100.0

    def compute(self, audio, target, cache):
        return np.mean((audio.astype(np.float64) - target) ** 2, axis=-1)


class MultiResolutionSTFT(Distance):
    name = "mrstft"
    bound = 50.0
    FFT_SIZES = (2048, 1024, 512)

    def prepare(self, target):
        target = np.asarray(target, dtype=np.float32)
        out = []
        for n in self.FFT_SIZES:
            mag = stft_magnitude(target, n_fft=n, hop=n // 2)
            norm = float(np.sqrt(np.sum(mag.astype(np.float64) ** 2))) + EPS
            out.append((mag, np.log(mag + EPS), norm))
        return out

    def compute(self, audio, prepared, cache):
        total = np.zeros(audio.shape[0])
        for n_fft, (t, log_t, norm) in zip(self.FFT_SIZES, prepared, strict=True):
            x = stft_magnitude(audio, n_fft=n_fft, hop=n_fft // 2, cache=cache)
            flat = x.reshape(x.shape[0], -1)
            # ||X - T||^2 = ||X||^2 - 2 <X, T> + ||T||^2, without a temporary the size of X
            sq = np.einsum("ij,ij->i", flat, flat, dtype=np.float64) \
                - 2.0 * np.einsum("ij,j->i", flat, t.reshape(-1), dtype=np.float64) \
                + (norm - EPS) ** 2
            sc = np.minimum(np.sqrt(np.maximum(sq, 0.0)) / norm, 10.0)
            work = np.add(x, EPS)  # in place from here on: these arrays are the big ones
            np.log(work, out=work)
            work -= log_t
            np.abs(work, out=work)
            total += sc + work.mean(axis=(-2, -1), dtype=np.float64)
        return total / len(self.FFT_SIZES)


class LogMel(Distance):
    name = "logmel"
    bound = 20.0

    def prepare(self, target):
        return log_mel(np.asarray(target, np.float32), sr=self.sr, n_fft=1024, hop=256)

    def compute(self, audio, target_mel, cache):
        mel = log_mel(audio, sr=self.sr, n_fft=1024, hop=256, cache=cache)
        return np.mean(np.abs(mel - target_mel), axis=(-2, -1))


class MFCC(Distance):
    name = "mfcc"
    bound = 1000.0

    def prepare(self, target):
        return mfcc(np.asarray(target, np.float32), sr=self.sr)

    def compute(self, audio, target_mfcc, cache):
        return np.mean(np.abs(mfcc(audio, sr=self.sr) - target_mfcc), axis=(-2, -1))


class Weighted(Distance):
    name = "weighted"

    def __init__(self, parts: list[tuple[Distance, float]], sr: int = 44100) -> None:
        super().__init__(sr)
        self.parts = parts
        self.bound = float(sum(w * d.bound for d, w in parts))
        self.name = "+".join(f"{w:g}*{d.name}" for d, w in parts)

    def prepare(self, target):
        return [d.prepare(target) for d, _ in self.parts]

    def compute(self, audio, prepared, cache):
        return sum(w * d(audio, p, cache=cache).astype(np.float64)
                   for (d, w), p in zip(self.parts, prepared, strict=True))


DISTANCES = {cls.name: cls for cls in (MSE, MultiResolutionSTFT, LogMel, MFCC)}


def make_distance(spec: str | Mapping[str, float] | Distance, *, sr: int = 44100) -> Distance:
    """A distance from a name (``"mrstft"``), weights (``{"mrstft": 1, "mfcc": 0.01}``) or an
    existing :class:`Distance`.

    Raises
    ------
    RewardConfigError
        An unknown name or a negative/non-finite weight.
    """
    if isinstance(spec, Distance):
        return spec
    if isinstance(spec, str):
        if spec not in DISTANCES:
            raise RewardConfigError(f"unknown reward {spec!r}; choose one of "
                                    f"{sorted(DISTANCES)} or a dict of weights")
        return DISTANCES[spec](sr)
    if isinstance(spec, Mapping) and spec:
        parts = []
        for name, weight in spec.items():
            if not (isinstance(weight, (int, float)) and np.isfinite(weight) and weight >= 0):
                raise RewardConfigError(f"reward weight for {name!r} must be a finite number "
                                        f">= 0, got {weight!r}")
            parts.append((make_distance(name, sr=sr), float(weight)))
        return Weighted(parts, sr)
    raise RewardConfigError(f"reward must be a name {sorted(DISTANCES)} or a non-empty dict of "
                            f"weights, got {spec!r}")
