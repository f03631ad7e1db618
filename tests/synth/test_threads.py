"""Rendering and the MR-STFT on several threads: bit-identical to one thread, set by an option
or by MUSICGYM_NUM_THREADS."""

import numpy as np
import pytest

from musicgym.audio.distances import MultiResolutionSTFT
from musicgym.audio.features import log_mel
from musicgym.errors import ConfigError
from musicgym.synth import Patch
from musicgym.synth.examples import EXAMPLES, default_params, example_samples
from musicgym.threads import THREADS_ENV, num_threads

# feedback (whole 128-sample blocks), delays, filters, noise and the plate besides the examples
EXTRA = {
    "feedback": "~a: sin {f} >> mul 0.5 >> add ~b\n~b: get ~a >> delayn 300 >> mul {g}\n"
                "o: get ~a >> mul 0.3",
    "filters": "o: noise 7 >> hpf {cut} 1.5 >> lpf 3000 2.0 >> onepole 0.3 >> delayms 12 "
               ">> mul {g}",
}


def _rows(patch: Patch, batch: int, rng) -> np.ndarray | None:
    if not patch.n_params:
        return None
    base = np.array([1.0] * patch.n_params)
    return base * rng.uniform(0.2, 1.0, (batch, patch.n_params)) * 200.0


@pytest.mark.parametrize("name", [*EXAMPLES, *EXTRA])
@pytest.mark.parametrize("batch", [64, 19])
def test_render_on_threads_is_bit_identical(name, batch):
    if name in EXAMPLES:
        code, _ = EXAMPLES[name]
        one = Patch(code, samples=example_samples(), threads=1)
        params = np.repeat(default_params(name, one.params).reshape(1, -1), batch, axis=0)
        params = params * np.linspace(0.5, 1.5, batch)[:, None] if one.n_params else None
        many = Patch(code, samples=example_samples(), threads=3)
    else:
        one, many = Patch(EXTRA[name], threads=1), Patch(EXTRA[name], threads=3)
        params = _rows(one, batch, np.random.default_rng(0))
        params[:, -1] = np.linspace(0.1, 0.9, batch)
    a = one.render(params, seconds=0.3)
    b = many.render(params, seconds=0.3)
    assert np.abs(a).max() > 0
    assert np.array_equal(a, b, equal_nan=True)


def test_mrstft_on_threads_is_bit_identical():
    rng = np.random.default_rng(3)
    audio = rng.standard_normal((37, 22050)).astype(np.float32)
    audio[::3, :8000] = 0.0  # silent starts: chunks skip different frames
    target = np.sin(np.arange(22050) / 20.0).astype(np.float32)
    one, many = MultiResolutionSTFT(), MultiResolutionSTFT()
    many.threads = 2
    prepared = one.prepare(target)
    cache_one, cache_many = {}, {}
    assert np.array_equal(one(audio, prepared, cache=cache_one),
                          many(audio, prepared, cache=cache_many))
    for key, mags in cache_one.items():
        assert np.array_equal(mags, cache_many[key])
    for (f1, s1), (f2, s2) in zip(one.frame_sums(audio, prepared, 5000, 9000),
                                  many.frame_sums(audio, prepared, 5000, 9000), strict=True):
        assert f1 == f2 and np.array_equal(s1, s2)


def test_log_mel_on_threads_is_bit_identical(monkeypatch):
    audio = np.random.default_rng(4).standard_normal((9, 11025)).astype(np.float32)
    monkeypatch.setenv(THREADS_ENV, "1")
    one = log_mel(audio)
    monkeypatch.setenv(THREADS_ENV, "2")
    assert np.array_equal(one, log_mel(audio))


def test_threads_from_the_environment(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert num_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "4")
    assert num_threads() == 4 and num_threads(2) == 2
    patch = Patch(EXAMPLES["kick"][0])
    params = np.repeat([[0.002, 0.35, 60.0]], 32, axis=0)
    audio = patch.render(params, seconds=0.1)
    monkeypatch.setenv(THREADS_ENV, "1")
    assert np.array_equal(audio, patch.render(params, seconds=0.1))
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ConfigError, match=THREADS_ENV):
            num_threads()
    with pytest.raises(ConfigError, match="threads"):
        Patch(EXAMPLES["kick"][0], threads=0)


@pytest.mark.parametrize("env_id", ["musicgym/Kick-v0", "musicgym/BassLine-v0"])
def test_vector_env_steps_on_threads_are_bit_identical(monkeypatch, env_id):
    """The whole vector step (render into the clips, reward, running clip distance,
    observation, autoresets) gives the same bits on 1 and 3 threads."""
    import gymnasium as gym

    import musicgym  # noqa: F401  (registers the envs)

    runs = []
    for threads in ("1", "3"):
        monkeypatch.setenv(THREADS_ENV, threads)
        env = gym.make_vec(env_id, num_envs=19)
        env.action_space.seed(3)
        obs, _ = env.reset(seed=3)
        out = [obs]
        for _ in range(4):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            out += [obs, reward, info["clip_distance"]]
        runs.append(out)
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("name", [*EXAMPLES, *EXTRA])
def test_chunk_rows_samples_does_not_change_the_audio(name):
    """A patch's own chunk size (the vector env's render blocks set one) gives the same bits:
    here chunks of 1,024 samples (2,048 for one row) against one for the whole render."""
    if name in EXAMPLES:
        code, _ = EXAMPLES[name]
        patch = Patch(code, samples=example_samples(), threads=1)
        params = default_params(name, patch.params).reshape(1, -1) if patch.n_params else None
        params = None if params is None else \
            np.repeat(params, 19, axis=0) * np.linspace(0.5, 1.5, 19)[:, None]
    else:
        patch = Patch(EXTRA[name], threads=1)
        params = _rows(patch, 19, np.random.default_rng(1))
    whole = patch.render(params, seconds=0.3)
    patch.chunk_rows_samples = 1 << 11
    chunked = patch.render(params, seconds=0.3, left_only=True)
    assert np.abs(whole).max() > 0
    assert np.array_equal(whole[:, 0], chunked, equal_nan=True)


@pytest.mark.parametrize("name", ["kick", "fm", "bassline"])
def test_prepare_left_runs_the_render_elsewhere(name):
    """``prepare_left``: the checks and set-up now, the kernels later on another thread; the
    same bits as ``render(left_only=True)``, and the same errors."""
    import threading

    from musicgym.errors import RenderLimitError

    code, _ = EXAMPLES[name]
    patch = Patch(code, samples=example_samples(), threads=1)
    params = np.repeat(default_params(name, patch.params).reshape(1, -1), 9, axis=0)
    params = params * np.linspace(0.5, 1.5, 9)[:, None]
    want = patch.render(params, n_samples=20000, left_only=True)
    out = np.full((9, 20000), np.nan, np.float32)
    run = patch.prepare_left(params, 20000, out)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert np.abs(want).max() > 0 and np.array_equal(out, want)
    with pytest.raises(RenderLimitError, match="out must be"):
        patch.prepare_left(params, 20000, np.empty((9, 2, 20000), np.float32))
    with pytest.raises(RenderLimitError, match="n_samples"):
        patch.prepare_left(params, 0, out)
