"""Descriptors against hand-computed values on synthetic signals, and against librosa where the
definitions coincide."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.audio import descriptors as d
from musicgym.errors import DescriptorError

SR = 44100
T = np.arange(SR) / SR


def sine(hz: float, amp: float = 1.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * hz * T)


def test_shapes_and_frame_rate_are_shared():
    y = np.stack([sine(440), sine(220)])
    for func, k in [(d.loudness, 3), (d.spectral_shape, 7), (d.mfcc, 13), (d.chroma, 12),
                    (d.pitch, 2)]:
        out = func(y, sr=SR, frame_length=2048, hop_length=256)
        assert out.shape == (2, 1 + SR // 256, k)
        assert func(y[0], sr=SR, frame_length=2048, hop_length=256).shape == out.shape[1:]
    full = d.descriptors(y, sr=SR, frame_length=2048, hop_length=256)
    assert full.shape == (2, 1 + SR // 256, len(d.FEATURE_NAMES))
    # one column picked out of the full set equals the dedicated function's
    col = d.FEATURE_NAMES.index("specshape-centroid")
    np.testing.assert_allclose(full[..., col], d.spectral_shape(
        y, sr=SR, frame_length=2048, hop_length=256)[..., 0])


def test_batch_rows_are_independent():
    rng = np.random.default_rng(1)
    y = rng.standard_normal((3, 8192))
    batch = d.descriptors(y, sr=SR)
    for b in range(3):
        np.testing.assert_allclose(batch[b], d.descriptors(y[b], sr=SR), atol=1e-9)


def test_k_weighting_matches_bs1770_table_at_48k():
    (b1, a1), (b2, a2) = d.k_weighting(48000)
    np.testing.assert_allclose(b1, [1.53512485958697, -2.69169618940638, 1.19839281085285],
                               atol=1e-8)
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-8)
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-8)


def test_loudness_of_full_scale_997hz_sine_is_minus_3_dB():
    t = np.arange(48000) / 48000
    out = d.loudness(np.sin(2 * np.pi * 997 * t), sr=48000, frame_length=4096, center=False)
    np.testing.assert_allclose(out[2:, 0], -3.01, atol=0.05)
    # the peak of a sampled sine is under 0 dBFS; 4x oversampling finds about 0 dBTP
    assert -0.05 < out[2, 1] <= 0.01
    np.testing.assert_allclose(out[..., 2], 10 ** (out[..., 0] / 20))
    # halving the amplitude takes 6.02 dB off
    half = d.loudness(0.5 * np.sin(2 * np.pi * 997 * t), sr=48000, frame_length=4096,
                      center=False)
    np.testing.assert_allclose(out[2:, 0] - half[2:, 0], 20 * np.log10(2), atol=1e-6)


def test_true_peak_sees_intersample_peaks():
    # a sine at sr/4 sampled at 45 degrees never hits its peak: sample peak -3 dB, true 0 dB
    n = np.arange(4096)
    y = np.sin(np.pi / 2 * n + np.pi / 4)
    tp = d.loudness(y, sr=SR, frame_length=1024, center=False)[1:, 1]
    sample_peak = d.loudness(y, sr=SR, frame_length=1024, center=False, true_peak=False)[1:, 1]
    np.testing.assert_allclose(sample_peak, 20 * np.log10(np.sqrt(0.5)), atol=1e-6)
    assert np.all(tp > -0.3)


def test_silence_is_quiet_and_defined():
    out = d.descriptors(np.zeros((2, 4096)), sr=SR)
    assert np.isfinite(out).all()
    loud = d.loudness(np.zeros(4096), sr=SR)
    assert np.all(loud[:, 0] < -150) and np.all(loud[:, 1] < -300)
    np.testing.assert_array_equal(d.pitch(np.zeros(4096), sr=SR)[:, 1], 0.0)


def test_click_has_a_flat_spectrum():
    click = np.zeros(1024)
    click[512] = 1.0   # the Hann window is 1 at its middle: every bin has magnitude 1
    shape = d.spectral_shape(click, sr=SR, center=False)[0]
    nyq = SR / 2
    np.testing.assert_allclose(shape[0], nyq / 2, rtol=1e-9)          # centroid
    # the moments of 513 equally spaced, equally weighted frequencies
    freqs = np.arange(513) * nyq / 512
    np.testing.assert_allclose(shape[1], freqs.std(), rtol=1e-9)
    np.testing.assert_allclose(shape[2], 0.0, atol=1e-9)
    np.testing.assert_allclose(shape[3], np.mean((freqs - freqs.mean()) ** 4) / freqs.var() ** 2,
                               rtol=1e-9)
    np.testing.assert_allclose(shape[5:], [0.0, 0.0], atol=1e-9)      # flatness, crest
    # 95% of 513 equal bins: bin 487.35 (interpolated), in Hz
    np.testing.assert_allclose(shape[4], (0.95 * 513 - 1) * nyq / 512, rtol=1e-9)


def test_white_noise_flatness_is_the_rayleigh_value():
    rng = np.random.default_rng(0)
    shape = d.spectral_shape(rng.standard_normal(SR), sr=SR)[2:-2]
    # E[log R] and E[R] of Rayleigh magnitudes: 20 log10(exp((ln 2 - gamma) / 2) / sqrt(pi / 2))
    expected = 20 * np.log10(np.exp((np.log(2) - np.euler_gamma) / 2) / np.sqrt(np.pi / 2))
    assert abs(np.mean(shape[:, 5]) - expected) < 0.1
    assert abs(np.mean(shape[:, 0]) - SR / 4) < 0.02 * SR / 4


def test_sine_centroid_and_crest():
    shape = d.spectral_shape(sine(1000), sr=SR, frame_length=4096)[5:-5]
    np.testing.assert_allclose(shape[:, 0], 1000, rtol=0.02)
    assert np.all(shape[:, 6] > 40)          # one peak among 2049 bins


@pytest.mark.parametrize("hz", [110.0, 261.63, 440.0, 1000.0, 3000.0])
def test_pitch_of_sines(hz):
    out = d.pitch(sine(hz), sr=SR, frame_length=2048)[5:-5]
    np.testing.assert_allclose(out[:, 0], hz, rtol=0.01)
    assert np.all(out[:, 1] > 0.9)


def test_pitch_of_noise_is_unconfident():
    rng = np.random.default_rng(3)
    assert np.median(d.pitch(rng.standard_normal(SR), sr=SR)[:, 1]) < 0.4


@pytest.mark.parametrize(("hz", "name"), [(440.0, "A"), (261.63, "C"), (392.0, "G")])
def test_chroma_peaks_at_the_pitch_class(hz, name):
    c = d.chroma(sine(hz), sr=SR, frame_length=8192)[5:-5]
    assert np.all(np.argmax(c, axis=-1) == d.CHROMA_NAMES.index(name))


def test_mfcc0_tracks_level():
    # scaling the signal by g adds 20 log10(g) to every band, so sqrt(40) * that to c0 only
    a = d.mfcc(sine(440), sr=SR)
    b = d.mfcc(sine(440, 0.1), sr=SR)
    np.testing.assert_allclose(a[3:-3, 0] - b[3:-3, 0], 20 * np.sqrt(40), rtol=1e-6)
    np.testing.assert_allclose(a[3:-3, 1:], b[3:-3, 1:], atol=1e-6)


def test_feature_names_expand_groups_and_rl_impro_columns():
    assert d.feature_names(["loudness-dB", "specshape-centroid"]) == (
        "loudness-amp", "specshape-centroid")
    assert len(d.feature_names(["loudness", "mfcc", "specshape"])) == 23
    assert d.feature_names("all") == d.FEATURE_NAMES
    with pytest.raises(DescriptorError, match="sine-peak"):
        d.feature_names(["sinefeaturefreqs"])
    with pytest.raises(DescriptorError, match="unknown descriptor 'centroid'"):
        d.feature_names(["centroid"])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"y": np.zeros((2, 2, 100))}, "shaped"),
    ({"y": np.array([0.0, np.nan] * 600)}, "NaN"),
    ({"frame_length": 8}, "frame_length"),
    ({"hop_length": 0}, "hop_length"),
    ({"sr": 8.5}, "sample rate"),
    ({"y": np.zeros(100), "center": False}, "shorter than one frame"),
])
def test_bad_input_raises_descriptor_error(kwargs, match):
    args = {"y": np.zeros(2048), "sr": SR, **kwargs}
    y = args.pop("y")
    with pytest.raises(DescriptorError, match=match):
        d.descriptors(y, **args)


# -- against librosa, where FluCoMa's definitions and librosa's coincide --------------------
librosa = pytest.importorskip("librosa", reason="librosa is in the dev extra")


def test_filterbanks_match_librosa():
    np.testing.assert_allclose(
        d.mel_filterbank(sr=SR, n_fft=2048),
        librosa.filters.mel(sr=SR, n_fft=2048, n_mels=40, fmin=20.0, fmax=20000.0, htk=True,
                            norm=None), atol=1e-6)
    np.testing.assert_allclose(
        d.chroma_filterbank(sr=SR, n_fft=2048),
        librosa.filters.chroma(sr=SR, n_fft=2048, octwidth=None, base_c=False), atol=1e-6)


def test_centroid_and_spread_match_librosa():
    rng = np.random.default_rng(5)
    y = np.convolve(rng.standard_normal(SR // 2), np.ones(8) / 8, mode="same") + sine(300)[:SR // 2]
    ours = d.spectral_shape(y, sr=SR, frame_length=1024, hop_length=512)
    kwargs = {"y": y, "sr": SR, "n_fft": 1024, "hop_length": 512, "center": True,
              "pad_mode": "constant"}
    np.testing.assert_allclose(ours[:, 0], librosa.feature.spectral_centroid(**kwargs)[0],
                               rtol=1e-6)
    np.testing.assert_allclose(ours[:, 1], librosa.feature.spectral_bandwidth(p=2, **kwargs)[0],
                               rtol=1e-6)


def test_mfcc_and_chroma_match_librosa_built_the_flucoma_way():
    y = sine(330) + 0.5 * sine(495)
    mag = np.abs(librosa.stft(y, n_fft=1024, hop_length=512, center=True, pad_mode="constant"))
    mel = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=40, fmin=20.0, fmax=20000.0, htk=True,
                              norm=None) @ mag
    expected = librosa.feature.mfcc(S=20 * np.log10(np.maximum(mel, d.EPS)), n_mfcc=13,
                                    dct_type=2, norm="ortho")
    np.testing.assert_allclose(d.mfcc(y, sr=SR), expected.T, atol=1e-6)
    expected = librosa.feature.chroma_stft(S=mag**2, sr=SR, norm=None, octwidth=None,
                                           base_c=False, tuning=0.0)
    np.testing.assert_allclose(d.chroma(y, sr=SR), expected.T, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("n", "frame_length", "hop", "center"), [
    (2048, 1024, 1024, False), (2100, 512, 512, False), (3000, 1024, 1024, True),
    (2048, 1024, 512, False), (1500, 256, 100, True)])
def test_frame_cuts_the_signal_as_sliding_windows_do(n, frame_length, hop, center):
    y = np.random.default_rng(0).standard_normal((2, n))
    frames = d.frame(y, frame_length=frame_length, hop_length=hop, center=center)
    padded = np.pad(y, ((0, 0), (frame_length // 2,) * 2)) if center else y
    count = 1 + (padded.shape[1] - frame_length) // hop
    want = np.stack([padded[:, i * hop:i * hop + frame_length] for i in range(count)], axis=1)
    np.testing.assert_array_equal(frames, want)
    assert not frames.flags.writeable
