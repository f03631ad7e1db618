"""The fast MR-STFT reward equals its straightforward definition, and the envs' running clip
distance equals a from-scratch computation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import scipy.fft

import musicgym  # noqa: F401  (registers the envs)
from musicgym.audio.distances import MultiResolutionSTFT, _ln, _sound_spans, make_distance
from musicgym.audio.features import EPS, frames, stft_magnitude


def straightforward(audio: np.ndarray, target: np.ndarray, magnitude) -> np.ndarray:
    """The documented definition, term by term, in float64 on ``magnitude(audio, n_fft)``."""
    total = np.zeros(audio.shape[0])
    for n in (2048, 1024, 512):
        x = magnitude(audio, n).astype(np.float64)
        t = magnitude(target, n).astype(np.float64)
        sc = np.sqrt(((x - t) ** 2).sum(axis=(-2, -1))) / (np.sqrt((t ** 2).sum()) + EPS)
        total += np.minimum(sc, 10.0) + np.abs(np.log(x + EPS) - np.log(t + EPS)).mean(
            axis=(-2, -1))
    return total / 3


def float32_stft(audio, n):
    return stft_magnitude(audio, n_fft=n, hop=n // 2)


def float64_stft(audio, n):
    window = np.hanning(n + 1)[:-1]
    x = frames(audio, n_fft=n, hop=n // 2).astype(np.float64) * window
    return np.abs(scipy.fft.rfft(x, axis=-1))


@pytest.mark.parametrize("n", [22050, 1500, 300, 4097])
def test_equals_the_definition_on_random_signals(n):
    rng = np.random.default_rng(n)
    target = (rng.standard_normal(n) * np.exp(-np.arange(n) / 3000)).astype(np.float32)
    audio = (rng.standard_normal((11, n)) * rng.uniform(0.01, 3, (11, 1))).astype(np.float32)
    audio[1] = target
    audio[2, : n // 3] = 0.0  # leading silence
    audio[3, n // 2:] = 0.0  # trailing silence (its frames are skipped, not transformed)
    audio[4] = 0.0
    audio[5, : n // 4] = 0.0
    audio[5, -n // 4:] = 0.0
    d = make_distance("mrstft")
    got = d(audio, d.prepare(target))
    want = straightforward(audio, target, float64_stft)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    assert got[1] == 0.0  # the same computation on the same samples


def test_vectorised_log_matches_numpy():
    rng = np.random.default_rng(0)
    z = (10.0 ** rng.uniform(-5.1, 8, 200_000)).astype(np.float32)
    z[:4] = [EPS, 1.0, np.sqrt(2.0), 0.70710677]
    out = np.empty_like(z)
    _ln(z, np.empty(z.size, np.int32), np.empty(z.size, np.float32), out)
    exact = np.log(z.astype(np.float64))
    # within 2 float32 ulps of ln z's magnitude (NumPy's own float32 log: about 1)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert (np.abs(out - exact) <= 2 * np.maximum(ulp, 6e-8)).all()


def test_skipping_silent_frames_changes_nothing():
    rng = np.random.default_rng(1)
    n = 22050
    target = rng.standard_normal(n).astype(np.float32)
    audio = rng.standard_normal((10, n)).astype(np.float32)
    for i, cut in enumerate(np.linspace(0, n, 10).astype(int)):
        audio[i, cut:] = 0.0  # a silent tail of every length, from all to none
    d = MultiResolutionSTFT()
    prepared = d.prepare(target)
    rows = np.arange(10)
    spans = np.empty((10, 2), np.int64)
    _sound_spans(audio, spans)
    padded = np.zeros((10, prepared.padded), np.float32)
    padded[:, :n] = audio
    for res in prepared.resolutions:
        every, _ = d._sums(padded, res, 0, res.n_frames, False, rows)
        skipped, _ = d._sums(padded, res, 0, res.n_frames, False, rows, spans)
        np.testing.assert_array_equal(skipped, every)
    assert (spans[:, 1] < n).sum() == 9 and spans[0].tolist() == [0, 0]
    dense = MultiResolutionSTFT()
    dense.SKIP_SILENCE = False
    np.testing.assert_array_equal(d(audio, prepared), dense(audio, prepared))


def test_cache_keeps_the_requested_stfts_equal_to_stft_magnitude():
    rng = np.random.default_rng(2)
    audio = rng.standard_normal((3, 8000)).astype(np.float32)
    audio[2, 4000:] = 0.0
    d = make_distance("mrstft")
    prepared = d.prepare(audio[0])
    cache = {"keep": {(1024, 512)}}
    d(audio, prepared, cache=cache)
    assert set(cache) == {"keep", (1024, 512)}
    np.testing.assert_allclose(cache[(1024, 512)], stft_magnitude(audio, n_fft=1024, hop=512),
                               rtol=1e-4, atol=2e-4)
    everything = {}
    d(audio, prepared, cache=everything)
    assert set(everything) == {(2048, 1024), (1024, 512), (512, 256)}


@pytest.mark.parametrize("env_id", ["musicgym/Kick-v0", "musicgym/FMTone-v0"])
def test_env_rewards_are_as_accurate_as_the_straightforward_float32_path(env_id):
    venv = gym.make_vec(env_id, num_envs=12)
    venv.action_space.seed(0)
    venv.reset(seed=0)
    obs, rewards, *_ = venv.step(venv.action_space.sample())
    clips, target = venv.clips, venv.core.target_clips[0]
    exact = straightforward(clips, target, float64_stft)
    plain = straightforward(clips, target, float32_stft)  # the reward before the fast path
    # near-silent bins make the log term sensitive to float32 rounding in any FFT: the fast
    # path must be as close to float64 as the plain float32 computation is
    np.testing.assert_allclose(-rewards, plain, rtol=1e-3)
    assert np.abs(-rewards - exact).max() <= 1.25 * np.abs(plain - exact).max() + 1e-6
    # the observation reused the reward's STFT: it equals one computed on its own
    fresh = venv.core._features(clips)
    np.testing.assert_allclose(obs[:, :-1], fresh, atol=1e-3)


def test_running_distance_equals_a_from_scratch_computation():
    env = gym.make("musicgym/BassLine-v0")
    env.action_space.seed(4)
    core = env.unwrapped.core
    assert core.incremental
    for episode in range(2):
        env.reset(seed=episode)
        for _ in range(core.total_step):
            *_, info = env.step(env.action_space.sample())
            clip = env.unwrapped.clip_audio
            scratch = core.distance(clip[None], core.prepared(0, -1))[0]
            assert info["clip_distance"] == pytest.approx(float(scratch), rel=1e-6, abs=1e-6)
    exact = straightforward(clip[None], core.target_clips[0], float64_stft)[0]
    plain = straightforward(clip[None], core.target_clips[0], float32_stft)[0]
    assert abs(info["clip_distance"] - exact) <= 1.25 * abs(plain - exact) + 1e-6


def test_vector_running_distance_equals_from_scratch_across_autoresets():
    venv = gym.make_vec("musicgym/BassLine-v0", num_envs=5, total_step=4, step_len=0.25)
    venv.action_space.seed(1)
    venv.reset(seed=1)
    core = venv.core
    checked = 0
    for _ in range(11):  # two episodes, the autoreset steps between them and a third begun
        *_, info = venv.step(venv.action_space.sample())
        stepped = info["_clip_distance"]
        if stepped.any():
            scratch = core.distance(venv.clips[stepped], core.prepared(0, -1))
            np.testing.assert_allclose(info["clip_distance"][stepped], scratch, rtol=1e-6,
                                       atol=1e-6)
            checked += int(stepped.sum())
    assert checked == 5 * 9


def test_other_rewards_keep_the_from_scratch_clip_distance():
    env = gym.make("musicgym/BassLine-v0", reward="logmel")
    core = env.unwrapped.core
    assert not core.incremental and env.unwrapped.running is None
    env.reset(seed=0)
    *_, info = env.step(env.action_space.sample())
    clip = env.unwrapped.clip_audio
    assert info["clip_distance"] == pytest.approx(
        float(core.distance(clip[None], core.prepared(0, -1))[0]), rel=1e-6)


def test_bad_lengths_and_spans_raise():
    d = MultiResolutionSTFT()
    prepared = d.prepare(np.ones(4000, np.float32))
    with pytest.raises(ValueError, match="4000"):
        d(np.ones((2, 3000), np.float32), prepared)
    with pytest.raises(ValueError, match="start < stop"):
        d.frame_sums(np.ones((2, 4000), np.float32), prepared, 100, 50)


def test_sound_spans_and_the_finiteness_check_equal_numpy():
    from musicgym.audio.distances import all_finite

    rng = np.random.default_rng(5)
    n = 1000
    audio = np.zeros((12, n), np.float32)
    # sound at the very edges, inside and across 64-sample blocks, a single sample,
    # -0.0 (silence), NaN (not silence), and rows with no sound at all
    for row, (lo, hi) in enumerate([(0, n), (0, 1), (n - 1, n), (63, 64), (64, 129),
                                    (500, 501), (10, 990), (127, 873)]):
        audio[row, lo:hi] = rng.uniform(0.1, 1.0, hi - lo)
    audio[8, 300] = -0.0
    audio[9, 700] = np.nan
    spans = np.empty((12, 2), np.int64)
    _sound_spans(audio, spans)
    for row in range(12):
        loud = np.flatnonzero(audio[row] != 0)
        want = [loud[0], loud[-1] + 1] if loud.size else [0, 0]
        assert spans[row].tolist() == want, row
    assert not all_finite(audio) and all_finite(audio[:9]) and all_finite(audio[10:].copy())
    for bad in (np.inf, -np.inf, np.nan):
        x = np.zeros((3, 333), np.float32)
        x[2, 332] = bad
        assert not all_finite(x) and not all_finite(x.astype(np.float64))


def test_kept_magnitudes_of_silent_frames_are_zero():
    rng = np.random.default_rng(6)
    audio = rng.standard_normal((20, 22050)).astype(np.float32)
    audio[:10, 9000:] = 0.0  # chunks whose tails are skipped
    audio[15:, :] = 0.0  # a silent chunk of rows
    d = make_distance("mrstft")
    prepared = d.prepare(audio[0])
    for _ in range(2):  # twice: no stale values from the first call's buffers
        cache = {"keep": None}
        d(audio, prepared, cache=cache)
        for n_fft in (2048, 1024, 512):
            np.testing.assert_allclose(cache[(n_fft, n_fft // 2)],
                                       stft_magnitude(audio, n_fft=n_fft, hop=n_fft // 2),
                                       rtol=1e-4, atol=2e-4)
            assert not cache[(n_fft, n_fft // 2)][15:].any()


def test_cache_buffers_are_reused_and_give_the_same_magnitudes():
    rng = np.random.default_rng(7)
    audio = rng.standard_normal((9, 6000)).astype(np.float32)
    d = make_distance("mrstft")
    prepared = d.prepare(audio[0])
    buffers = {}
    first = {"keep": {(1024, 512)}, "buffers": buffers}
    d(audio, prepared, cache=first)
    kept = first[(1024, 512)]
    assert buffers[(1024, 512)] is kept and set(buffers) == {(1024, 512)}
    second = {"keep": {(1024, 512)}, "buffers": buffers}
    values = d(audio[::-1].copy(), prepared, cache=second)
    assert second[(1024, 512)] is kept  # overwritten in place
    fresh = {"keep": {(1024, 512)}}
    np.testing.assert_array_equal(d(audio[::-1].copy(), prepared, cache=fresh), values)
    np.testing.assert_array_equal(fresh[(1024, 512)], kept)
    third = {"keep": {(1024, 512)}, "buffers": buffers}  # another batch size: a new array
    d(audio[:4], prepared, cache=third)
    assert third[(1024, 512)].shape[0] == 4 and buffers[(1024, 512)] is third[(1024, 512)]


def test_log_mel_of_a_batch_equals_row_by_row():
    from musicgym.audio.features import log_mel

    rng = np.random.default_rng(8)
    audio = rng.standard_normal((19, 5000)).astype(np.float32)  # 8-row blocks and a rest
    batch = log_mel(audio, n_fft=1024, hop=512, n_mels=32)
    rows = np.stack([log_mel(a, n_fft=1024, hop=512, n_mels=32) for a in audio])
    np.testing.assert_array_equal(batch, rows)


def test_frames_that_do_not_fit_raise():
    from musicgym.audio.distances import _spectra

    padded = np.zeros((2, 3000), np.float32)
    with pytest.raises(ValueError, match="do not fit"):
        _spectra(padded, 1024, 512, 3, 2)  # frames 3, 4 end at sample 3072
    audio = np.random.default_rng(9).standard_normal((2, 3000)).astype(np.float32)
    strided = _spectra(audio[:, :2048], 1024, 512, 1, 2)  # a view that is not contiguous
    np.testing.assert_array_equal(strided, _spectra(audio[:, :2048].copy(), 1024, 512, 1, 2))
    np.testing.assert_allclose(strided[1, 0], np.fft.rfft(audio[1, 512:1536]), rtol=1e-4,
                               atol=1e-3)


@pytest.mark.parametrize("threads", [1, 3])
def test_batch_with_spans_and_row_callback_gives_the_same_bits(threads):
    """``MultiResolutionSTFT.batch`` (what the envs' step calls, with the sound spans it found
    while rendering and a callback per finished chunk of rows) gives the bits of a plain call
    and reports every row exactly once, with its kept magnitudes."""
    rng = np.random.default_rng(threads)
    n = 9000
    audio = (rng.standard_normal((21, n)) * np.exp(-np.arange(n) / 800)).astype(np.float32)
    for r, stop in enumerate(rng.integers(0, n, 21)):
        audio[r, stop:] = 0.0  # sounds that end at different places, some rows silent
    audio[4] = 0.0
    target = (rng.standard_normal(n) * np.exp(-np.arange(n) / 1500)).astype(np.float32)
    one = MultiResolutionSTFT()
    prepared = one.prepare(target)
    cache_a = {"keep": {(1024, 512)}}
    want = one(audio, prepared, cache=cache_a)
    many = MultiResolutionSTFT()
    many.threads = threads
    spans = np.empty((21, 2), np.int64)
    _sound_spans(audio, spans)
    cache_b = {"keep": {(1024, 512)}}
    seen = []

    def on_rows(rows, kept):
        assert list(kept) == [(1024, 512)]
        assert np.array_equal(kept[(1024, 512)], cache_a[(1024, 512)][rows])
        seen.extend(rows.tolist())

    got = many.finish(many.batch(audio, prepared, cache_b, spans=spans, on_rows=on_rows))
    assert np.array_equal(got, want)
    assert sorted(seen) == list(range(21))
    assert (1024, 512) not in cache_b  # kept per chunk only
    cache_c = {"keep": {(1024, 512)}}  # without a callback: the whole (R, F, K) array
    assert np.array_equal(many.finish(many.batch(audio, prepared, cache_c, spans=spans)), want)
    assert np.array_equal(cache_c[(1024, 512)], cache_a[(1024, 512)])


def test_vector_env_with_several_targets_on_threads():
    """Rows with different targets take the general step (not the one-target blocks): the
    same bits on 1 and 3 threads."""
    rng = np.random.default_rng(0)
    targets = [(rng.standard_normal(22050) * np.exp(-np.arange(22050) / s)).astype(np.float32)
               for s in (500, 3000)]
    runs = []
    for threads in (1, 3):
        env = gym.make_vec("musicgym/Kick-v0", num_envs=17, target=targets, threads=threads)
        env.action_space.seed(1)
        out = [env.reset(seed=1)[0]]
        for _ in range(4):
            obs, reward, *_ = env.step(env.action_space.sample())
            out += [obs, reward]
        runs.append(out)
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b)


def test_finite_sound_spans_is_the_spans_and_the_finiteness_check():
    from musicgym.audio.distances import _finite_sound_spans, all_finite

    rng = np.random.default_rng(9)
    audio = np.zeros((9, 777), np.float32)
    for row, (lo, hi) in enumerate([(0, 777), (0, 1), (776, 777), (63, 64), (100, 600)]):
        audio[row, lo:hi] = rng.uniform(-1.0, 1.0, hi - lo)
    audio[6, 50] = -0.0
    want = np.empty((9, 2), np.int64)
    _sound_spans(audio, want)
    got = np.full((9, 2), -1, np.int64)
    assert _finite_sound_spans(audio, got) and np.array_equal(got, want)
    assert _finite_sound_spans(audio[2:7], got[:5]) and np.array_equal(got[:5], want[2:7])
    for bad in (np.nan, np.inf, -np.inf):
        x = audio.copy()
        x[8, 776] = bad
        assert not all_finite(x) and not _finite_sound_spans(x, got)


def test_finite_sound_spans_on_random_rows():
    """Random heads and tails of silence (with -0.0 in them), sound with zeros inside, and
    NaN as the only sound of a row: the spans of the two-scan :func:`_sound_spans`."""
    from musicgym.audio.distances import _finite_sound_spans

    rng = np.random.default_rng(11)
    n = 3001
    audio = np.zeros((60, n), np.float32)
    for row in range(60):
        lo, hi = sorted(rng.integers(0, n + 1, 2))
        audio[row, lo:hi] = rng.standard_normal(hi - lo) * (rng.random(hi - lo) < 0.7)
        audio[row, rng.integers(0, n, 5)] = -0.0
    want = np.empty((60, 2), np.int64)
    got = np.empty((60, 2), np.int64)
    _sound_spans(audio, want)
    assert _finite_sound_spans(audio, got) and np.array_equal(got, want)
    audio[7] = 0.0
    audio[7, 1234] = np.nan
    _sound_spans(audio, want)
    assert not _finite_sound_spans(audio, got)
    assert np.array_equal(got[7], want[7]) and want[7].tolist() == [1234, 1235]


def test_finish_maps_special_values_as_nan_to_num():
    d = make_distance("mrstft")
    raw = np.array([np.nan, np.inf, -np.inf, -1.0, 0.0, -0.0, 0.5, 1e300, d.bound,
                    np.nextafter(d.bound, np.inf), 3.0 + 1e-12])
    want = np.clip(np.nan_to_num(raw, nan=d.bound, posinf=d.bound), 0.0, d.bound)
    got = d.finish(raw)
    assert got.dtype == np.float32 and got.tobytes() == want.astype(np.float32).tobytes()
    assert d.finish(np.float64(np.nan)) == np.float32(d.bound)
    assert d.finish(raw.reshape(1, -1)).shape == (1, raw.size)


def test_sum_frames_is_numpys_float64_sum_to_the_bit():
    from musicgym.audio.distances import _sum_frames

    rng = np.random.default_rng(12)
    for n_frames in [*range(1, 60), 87, 173, 174, 1000]:
        for rows in (1, 8, 64):
            x = (rng.standard_normal((rows, n_frames, 2))
                 * rng.uniform(1e-3, 1e3, (rows, n_frames, 2))).astype(np.float32)
            assert _sum_frames(x).tobytes() == x.sum(axis=1, dtype=np.float64).tobytes()
