"""Watching and listening to every env: render modes, Gymnasium's render checks and
RecordVideo, episode audio and RecordAudio."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import soundfile as sf
from gymnasium.utils.env_checker import check_env

import musicgym.envs  # noqa: F401  (registers the ids)
from musicgym.envs.rendering import RED
from musicgym.envs.wrappers import RecordAudio
from musicgym.errors import ConfigError
from tests.envs.small import SMALL_KWARGS

# small episodes: every test here together stays well under a minute; Counterpoint whole
# (its marks of violations need notes past the first few)
KWARGS = {**SMALL_KWARGS, "musicgym/Counterpoint-v0": {"species": 1}}
IDS = sorted(KWARGS)


def make(env_id: str, render_mode: str | None = None, **extra) -> gym.Env:
    return gym.make(env_id, render_mode=render_mode, **{**KWARGS[env_id], **extra})


def act(env: gym.Env):
    """A random allowed action (the composition envs mask some)."""
    base = env.unwrapped
    if hasattr(base, "action_masks"):
        return int(env.action_space.sample(mask=base.action_masks().astype(np.int8)))
    return env.action_space.sample()


def run_episode(env: gym.Env, seed: int = 0) -> int:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(act(env))
        steps, done = steps + 1, terminated or truncated
    return steps


def test_every_registered_id_is_covered():
    assert set(IDS) == {i for i in gym.registry if i.startswith("musicgym/")}


@pytest.mark.parametrize("mode", ["rgb_array", "ansi"])
@pytest.mark.parametrize("env_id", IDS)
def test_env_checker_passes_with_render_mode(env_id, mode):
    env = make(env_id, mode)
    assert mode in env.metadata["render_modes"] and env.metadata["render_fps"] > 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert not [w for w in caught if "render" in str(w.message).lower()]
    env.reset(seed=0)
    out = env.render()
    if mode == "ansi":
        assert isinstance(out, str) and out.strip()
    else:
        assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3


@pytest.mark.parametrize("env_id", IDS)
def test_rgb_array_pictures_show_the_episode(env_id):
    env = make(env_id, "rgb_array")
    env.reset(seed=0)
    env.action_space.seed(0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.std() > 1.0  # not blank
    env.step(act(env))
    later = env.render()
    assert later.shape == first.shape and later.std() > 1.0
    assert not np.array_equal(later, first)  # the picture follows the episode


def test_counterpoint_marks_rule_violations_in_red():
    env = make("musicgym/Counterpoint-v0", "rgb_array",
               rules=[], penalties={"absence_of_large_leaps": 1.0,
                                           "consonance_on_strong_beat": 1.0})
    env.reset(seed=0)
    red = np.all(env.render() == RED, axis=-1)
    assert not red.any()
    violations = 0
    for _ in range(40):  # the first allowed action (a leap down), whatever it breaks
        action = int(np.flatnonzero(env.unwrapped.action_masks())[0])
        _, _, terminated, truncated, info = env.step(action)
        violations = sum(info["rule_violations"].values())
        if violations or terminated or truncated:
            break
    assert violations > 0
    assert np.all(env.render() == RED, axis=-1).any()


def test_melody_ansi_says_where_it_is_after_reset():
    env = make("musicgym/Melody-v0", "ansi")
    env.reset(seed=0)
    assert env.render() == "step 0/4:"
    env.step(2)
    assert env.render() == "step 1/4: 48"


def test_synth_match_ansi_reports_the_step():
    env = make("musicgym/Kick-v0", "ansi")
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    line = env.render()
    assert line.startswith("step 1/1") and f"{info['clip_distance']:.4f}" in line


@pytest.mark.parametrize("env_id", ["musicgym/Melody-v0", "musicgym/Kick-v0",
                                    "musicgym/Improvise-v0", "musicgym/Accompany-v0"])
def test_record_video_writes_frames(env_id, tmp_path):
    pytest.importorskip("moviepy")
    env = gym.wrappers.RecordVideo(make(env_id, "rgb_array"), str(tmp_path / "videos"),
                                   episode_trigger=lambda k: True)
    run_episode(env)
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000


@pytest.mark.parametrize("env_id", IDS)
def test_record_audio_writes_each_episode(env_id, tmp_path):
    env = RecordAudio(make(env_id), tmp_path, episode_trigger=lambda k: k != 1)
    expected = []
    for seed in range(3):
        steps = run_episode(env, seed)
        audio, sr = env.unwrapped.episode_audio()
        expected.append((audio.shape[-1], sr, steps))
    env.close()
    assert [p.name for p in env.paths] == ["episode-episode-0.wav", "episode-episode-2.wav"]
    for path, (n, sr, steps) in zip(env.paths, expected[::2], strict=True):
        info = sf.info(path)
        assert info.frames == n and info.samplerate == sr
        base = env.unwrapped
        if hasattr(base, "core"):  # sound matching: the whole clip
            assert n == base.core.clip_len
        elif env_id == "musicgym/Improvise-v0":  # one state per hop, and the last one's tail
            assert n == (steps + 2) * 512
        data, _ = sf.read(path)
        assert np.abs(data).max() > 0.0


def test_record_audio_writes_an_unfinished_episode_on_close(tmp_path):
    env = RecordAudio(make("musicgym/Melody-v0"), tmp_path)
    env.reset(seed=0)
    env.step(2)
    env.close()
    assert sf.info(env.paths[0]).duration == pytest.approx(0.25 + 0.3, abs=0.01)


def test_record_audio_needs_episode_audio(tmp_path):
    with pytest.raises(ConfigError, match="episode_audio"):
        RecordAudio(gym.make("CartPole-v1"), tmp_path)


@pytest.mark.parametrize("mode", ["rgb_array", "ansi"])
def test_native_vector_synth_match_renders_each_env(mode):
    envs = gym.make_vec("musicgym/SynthMatch-v0", num_envs=2, render_mode=mode,
                        **KWARGS["musicgym/SynthMatch-v0"])
    envs.reset(seed=0)
    envs.step(envs.action_space.sample())
    frames = envs.render()
    assert isinstance(frames, tuple) and len(frames) == 2
    if mode == "ansi":
        assert all(f.startswith("step 1/2") for f in frames)
    else:
        assert all(f.dtype == np.uint8 and f.shape == (288, 512, 3) for f in frames)
        single = make("musicgym/SynthMatch-v0", "rgb_array")
        single.reset(seed=0)
        assert frames[0].shape == single.render().shape
    audio, sr = envs.unwrapped.episode_audio()
    assert audio.shape == (2, envs.unwrapped.core.clip_len) and sr == 44100


def test_counterpoint_audio_is_the_piece_compose_writes():
    from musicgym.compose.outputs import render_piece
    from musicgym.compose.piece import piece_from_counterpoint

    env = make("musicgym/Counterpoint-v0")
    run_episode(env)
    audio, sr = env.unwrapped.episode_audio()
    written = render_piece(piece_from_counterpoint(env.unwrapped.state), sr=sr)
    assert audio.shape == written.shape
    np.testing.assert_allclose(audio, written, atol=1e-5)
