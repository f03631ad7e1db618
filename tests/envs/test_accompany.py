"""musicgym/Accompany-v0: the Gymnasium contract, its dynamics, splits and memory."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import musicgym.envs  # noqa: F401  (registers the ids)
from musicgym.errors import AccompanyConfigError
from musicgym.follow.duets import BRAHMS, default_duets_dir
from musicgym.follow.evaluate import run_metrics, run_tempo_model, tempo_model_action
from musicgym.follow.tempo import make_tempo_model

needs_duets = pytest.mark.skipif(
    not (default_duets_dir() / BRAHMS).is_dir(),
    reason=f"real duets not found under {default_duets_dir()}: set MUSICGYM_DUETS_DIR",
)


@pytest.mark.parametrize("residual_on", [None, "kalman+timing"])
def test_check_env_simulated(residual_on):
    env = gym.make("musicgym/Accompany-v0", sources=("simulated",), memory=True,
                   residual_on=residual_on)
    check_env(env.unwrapped)


@needs_duets
def test_check_env_real_and_sb3():
    env = gym.make("musicgym/Accompany-v0", follower="noisy_oracle")
    check_env(env.unwrapped)
    sb3 = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3.check_env(env.unwrapped)


@needs_duets
def test_actions_change_the_future():
    env = gym.make("musicgym/Accompany-v0", split="test", resync_s=None).unwrapped
    positions = []
    for action in (-1.0, 1.0):
        env.reset(seed=0, options={"take": 6, "start": 100})
        for _ in range(5):
            env.step(np.array([action], dtype=np.float32))
        positions.append(env.run.position_beat)
    # slower (larger beat period) leaves the accompanist behind the faster one
    assert positions[1] < positions[0] - 1.0


@needs_duets
def test_env_reproduces_the_tempo_model_baseline():
    env = gym.make("musicgym/Accompany-v0", split="test", episode_reports=None).unwrapped
    env.reset(seed=0, options={"take": 7, "start": 0})
    model = make_tempo_model("kalman")
    run = env.run
    model.reset(time_s=float(run.episode.report_onset_sec[0]), solo_beat=run.position_beat,
                beat_period_s=run.beat_period_s)
    asynchrony, rewards, done = [], [], False
    while not done:
        _, reward, done, truncated, info = env.step(tempo_model_action(model, run))
        asynchrony.extend(info["asynchrony_ms"])
        rewards.append(reward)
        assert not truncated
    direct = run_metrics(run_tempo_model(run.episode, make_tempo_model("kalman")))
    assert np.mean(np.abs(asynchrony) <= 50) == pytest.approx(direct["within_50_ms"], abs=0.02)
    assert all(r <= 0 for r in rewards)
    assert np.mean(rewards) > -0.5


@needs_duets
def test_split_by_take_and_piece():
    train = gym.make("musicgym/Accompany-v0", split="train").unwrapped
    test = gym.make("musicgym/Accompany-v0", split="test").unwrapped
    assert {t.take for t in train.takes} == {1, 2, 3, 4, 5}
    assert {t.take for t in test.takes} == {6, 7}
    assert not {p.name for p in train.pieces} & {p.name for p in test.pieces}
    with pytest.raises(AccompanyConfigError, match="take 6 is not in the train split"):
        train.reset(seed=0, options={"take": 6})


@needs_duets
def test_memory_uses_earlier_takes_only():
    env = gym.make("musicgym/Accompany-v0", split="test", memory=True).unwrapped
    obs, _ = env.reset(seed=0, options={"take": 6, "start": 50})
    assert obs[-1] == 1.0  # takes 1-5 came before take 6
    assert [len(c[0]) for c in env._memory_curves] and len(env._memory_curves) == 5
    train = gym.make("musicgym/Accompany-v0", split="train", memory=True).unwrapped
    obs, _ = train.reset(seed=0, options={"take": 1, "start": 50})
    assert obs[-1] == 0.0  # nothing came before take 1: no memory, and never take 1 itself


def test_the_hmm_follower_drives_a_simulated_episode():
    env = gym.make("musicgym/Accompany-v0", follower="hmm", sources=("simulated",),
                   episode_reports=16)
    obs, _ = env.reset(seed=3)
    steps, done = 0, False
    while not done:
        obs, reward, done, _, info = env.step(np.zeros(1, dtype=np.float32))
        assert np.isfinite(reward) and env.observation_space.contains(obs)
        steps += 1
    assert steps == 16  # one step per report of the segment


def test_bad_arguments_are_named():
    with pytest.raises(AccompanyConfigError, match="unknown follower 'dtw'"):
        gym.make("musicgym/Accompany-v0", follower="dtw", sources=("simulated",))
    with pytest.raises(AccompanyConfigError, match="resync_s must be > 0"):
        gym.make("musicgym/Accompany-v0", resync_s=-1.0, sources=("simulated",))
    with pytest.raises(AccompanyConfigError, match="unknown split 'dev'"):
        gym.make("musicgym/Accompany-v0", split="dev", sources=("simulated",))
    env = gym.make("musicgym/Accompany-v0", sources=("simulated",)).unwrapped
    env.reset(seed=0)
    with pytest.raises(AccompanyConfigError, match="one finite number"):
        env.step(np.array([np.nan], dtype=np.float32))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.filterwarnings("ignore::UserWarning")  # the async worker's report of the error
def test_make_vec_steps_and_closes(mode):
    # a step's shared onsets come as tuples, so Gymnasium's vector envs can batch any number
    envs = gym.make_vec("musicgym/Accompany-v0", num_envs=2, vectorization_mode=mode,
                        sources=("simulated",), episode_reports=8, memory=True,
                        residual_on="kalman")
    try:
        obs, info = envs.reset(seed=0)
        assert obs.shape == (2, 34)
        for _ in range(12):  # past the end of the first episodes: autoreset
            obs, reward, terminated, truncated, info = envs.step(np.zeros((2, 1), np.float32))
            assert info["asynchrony_ms"].shape == (2,) and np.all(np.isfinite(reward))
            assert all(isinstance(a, tuple) and len(a) == len(b) for a, b in
                       zip(info["asynchrony_ms"], info["shared_beat"], strict=True))
        if mode == "async":  # a worker's error comes back, and closing does not hang
            with pytest.raises(AccompanyConfigError, match="one finite number"):
                envs.step(np.full((2, 1), np.nan, np.float32))
    finally:
        envs.close()


@needs_duets
def test_many_pieces_chosen_takes_and_timing_features():
    env = gym.make("musicgym/Accompany-v0", follower="hmm", pieces="many", takes=(1, 2, 3, 4),
                   memory=True, timing=True, residual_on="kalman+timing", resync_s=None,
                   episode_reports=24).unwrapped
    names = {p.name for p in env.pieces}
    assert "mozart/k155/movement1" in names and "bach/bwv66.6" in names
    assert not names & {"schumann_robert/opus41no1/movement2", "joplin/maple_leaf_rag",
                        "cpebach"}  # the validation pieces are never trained on
    assert [t.take for t in env.takes] == [1, 2, 3, 4]
    obs, _ = env.reset(seed=0, options={"piece": "mozart/k155/movement1"})
    assert obs.shape == (6 * 2 + 4 * 2 + 8 + 4 + 1 + 3 * 6 + 1,)
    done = False
    while not done:
        obs, _, done, _, _ = env.step(np.zeros(1, dtype=np.float32))
        assert env.observation_space.contains(obs)
        if not done:  # the last gap heard is the gap the observation shows now (no jumps)
            assert obs[6 * 2 + 4 * 2 + 8 + 4 + 1 + 5] == pytest.approx(
                np.clip(obs[2 * 6 + 1], -1, 1), abs=1e-5)
    with pytest.raises(AccompanyConfigError, match="takes \\(5, 6\\) must be some of"):
        gym.make("musicgym/Accompany-v0", takes=(5, 6))
    with pytest.raises(AccompanyConfigError, match="unknown pieces 'all'"):
        gym.make("musicgym/Accompany-v0", pieces="all", sources=("simulated",))
