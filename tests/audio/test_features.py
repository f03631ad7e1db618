"""Spectral features and the sound-matching distances built on them."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.audio.distances import make_distance
from musicgym.audio.features import log_mel, mel_filterbank, mfcc, pool_frames, stft_magnitude
from musicgym.errors import RewardConfigError

SR = 44100


def tone(freq: float, seconds: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.sin(2 * np.pi * freq * t + phase).astype(np.float32)


def test_stft_peak_is_at_the_tone_bin():
    freq = 46 * SR / 2048  # centred on bin 46
    mag = stft_magnitude(tone(freq), n_fft=2048)
    assert mag.shape[-1] == 1025
    assert int(np.argmax(mag[5])) == 46
    # a Hann-windowed unit sine centred on a bin peaks at n_fft / 4
    assert mag[5].max() == pytest.approx(2048 / 4, rel=0.01)


def test_batched_features_equal_one_by_one():
    batch = np.stack([tone(220.0), tone(440.0), np.zeros(22050, np.float32)])
    together = log_mel(batch)
    for i in range(3):
        np.testing.assert_allclose(together[i], log_mel(batch[i]), rtol=1e-5, atol=1e-5)
    assert mfcc(batch).shape[-1] == 13


def test_mel_filters_cover_the_spectrum_once():
    fb = mel_filterbank(SR, 1024, 40)
    assert fb.shape == (513, 40) and (fb >= 0).all()
    assert (fb.sum(axis=1)[5:-5] > 0).all()  # every inner bin belongs to some band


def test_pool_frames_averages_slices():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    pooled = pool_frames(x, 3)
    np.testing.assert_allclose(pooled, [[1, 2], [5, 6], [9, 10]])
    assert pool_frames(x[:2], 4).shape == (4, 2)  # fewer frames than slices


@pytest.mark.parametrize("name", ["mse", "mrstft", "logmel", "mfcc"])
def test_distance_is_zero_for_identical_and_grows_with_difference(name):
    d = make_distance(name)
    target = tone(440.0)
    prepared = d.prepare(target)
    out = d(np.stack([target, tone(450.0), tone(2000.0)]), prepared)
    assert out.dtype == np.float32 and out[0] == pytest.approx(0.0, abs=1e-4)
    assert out[1] > 0 and out[2] > out[1] * 0.99 and (out <= d.bound).all()


def test_mrstft_forgives_phase_where_mse_does_not():
    # RaveForce's raw MSE punishes a perfect match played a little out of phase
    target = tone(100.0)
    shifted = tone(100.0, phase=np.pi)
    mse, mr = make_distance("mse"), make_distance("mrstft")
    assert mse(shifted[None], mse.prepare(target))[0] > 0.9  # as bad as silence or worse
    assert mr(shifted[None], mr.prepare(target))[0] < 0.1 * mr(
        np.zeros((1, target.size), np.float32), mr.prepare(target))[0]


def test_bad_input_never_gives_nan_rewards():
    d = make_distance({"mrstft": 1.0, "mfcc": 0.01})
    prepared = d.prepare(tone(440.0))
    audio = np.stack([np.full(22050, np.nan, np.float32), np.full(22050, np.inf, np.float32)])
    out = d(audio, prepared)
    assert np.isfinite(out).all() and (out <= d.bound).all()


@pytest.mark.parametrize("spec,match", [("l2", "unknown reward"), ({"mrstft": -1.0}, ">= 0"),
                                        ({}, "non-empty"), (3, "name")])
def test_bad_reward_specs(spec, match):
    with pytest.raises(RewardConfigError, match=match):
        make_distance(spec)


def test_pooled_features_is_the_composition_bit_for_bit():
    """``pooled_features`` (the envs' observation pooling, one compiled pass) gives the bits
    of ``clip(nan_to_num(pool_frames(...), nan=low), low, high)``, NaN and inf included, for
    more and fewer output slices than frames."""
    from musicgym.audio.features import pool_frames, pooled_features

    rng = np.random.default_rng(7)
    for frames_in, n_out in ((43, 32), (5, 32), (87, 16), (1, 4)):
        x = (rng.standard_normal((6, frames_in, 24)) * 4).astype(np.float32)
        x[0, 0, :3] = (np.nan, np.inf, -np.inf)
        want = np.clip(np.nan_to_num(pool_frames(x, n_out).reshape(6, -1), nan=-5.0), -5.0, 8.0)
        got = pooled_features(x, n_out, -5.0, 8.0)
        assert got.dtype == np.float32 and np.array_equal(got, want)
    with pytest.raises(ValueError, match="rows, frames, features"):
        pooled_features(np.zeros((3, 4), np.float32), 2, -5.0, 8.0)
