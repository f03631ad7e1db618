"""Training the recurrent accompanist: a tiny run saves a model that loads and acts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicgym.errors import AccompanyConfigError

pytest.importorskip("sb3_contrib")

from musicgym.follow.evaluate import evaluate_tempo_model, pool_runs  # noqa: E402
from musicgym.follow.tempo import make_tempo_model  # noqa: E402
from musicgym.follow.train import (  # noqa: E402
    AgentPolicy,
    TrainConfig,
    agent_runs,
    build_model,
    load_agent,
    make_agent_env,
    make_train_env,
    train,
)

TINY = {"total_timesteps": 128, "n_envs": 1, "n_steps": 64, "batch_size": 64, "n_epochs": 1,
        "env_kwargs": {"sources": ("simulated",), "episode_reports": 32, "memory": True}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return train(TrainConfig(**TINY), tmp_path_factory.mktemp("run"))


def test_tiny_training_saves_a_model_that_loads_and_acts(tiny_run):
    assert (tiny_run / "model.zip").is_file()
    assert json.loads((tiny_run / "config.json").read_text())["total_timesteps"] == 128
    assert list((tiny_run / "tb").rglob("events.out.tfevents.*")), "no TensorBoard log"
    model, config = load_agent(tiny_run)
    assert config.residual_on == "kalman+timing" and config.n_steps == 64
    env = make_agent_env(config, "test")
    obs, _ = env.reset(seed=1)
    policy = AgentPolicy(model)
    for _ in range(5):
        action = policy.act(obs)
        assert action.shape == (1,) and action.dtype == np.float32 and abs(action[0]) <= 1
        obs, reward, terminated, _, _ = env.step(action)
        assert np.isfinite(reward) and not terminated
    # 28 + memory (4 gaps + flag) + the tempo model's action
    assert obs.shape == env.observation_space.shape and obs.shape[0] == 34


def test_an_untrained_zero_init_agent_plays_as_its_tempo_model():
    config = TrainConfig(**TINY)
    venv = make_train_env(config)
    policy = AgentPolicy(build_model(config, venv))
    obs = venv.reset()[0]
    for _ in range(3):
        action = policy.act(obs)
        assert np.array_equal(action, np.zeros(1, np.float32))
        obs = venv.step(action[None, :])[0][0]
    assert not np.array_equal(
        AgentPolicy(build_model(TrainConfig(**TINY, zero_init=False), venv)).act(obs),
        np.zeros(1, np.float32),
    )
    venv.close()


class _Silent:
    """An agent that never corrects the tempo model."""

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return np.zeros((1, 1), dtype=np.float32), state


def test_a_silent_residual_agent_plays_exactly_as_its_tempo_model(brahms_takes):
    from musicgym.follow.accompanist import make_episode
    from musicgym.follow.followers import OracleFollower

    runs = agent_runs(_Silent(), TrainConfig(residual_on="kalman"), (6, 7), follower="oracle")
    episodes = [make_episode(t.solo, t.accompaniment.score, follower=OracleFollower())
                for t in brahms_takes if t.take in (6, 7)]
    kalman = evaluate_tempo_model(episodes, lambda: make_tempo_model("kalman"))
    assert pool_runs(runs) == pytest.approx(kalman)


def test_bad_training_settings_are_named(tmp_path):
    with pytest.raises(AccompanyConfigError, match="total_timesteps >= 1"):
        TrainConfig(total_timesteps=0)
    with pytest.raises(AccompanyConfigError, match="must not set 'split'"):
        TrainConfig(env_kwargs={"split": "test"})
    with pytest.raises(AccompanyConfigError, match="unknown tempo model 'swing'"):
        make_agent_env(TrainConfig(residual_on="swing", env_kwargs=TINY["env_kwargs"]), "train")
    plain = {"sources": ("simulated",)}
    with pytest.raises(AccompanyConfigError, match="needs env_kwargs=\\{'memory': True\\}"):
        make_agent_env(TrainConfig(env_kwargs=plain), "train")
    with pytest.raises(AccompanyConfigError,
                       match="the suffixes are '\\+rehearsal' and '\\+timing'"):
        make_agent_env(TrainConfig(residual_on="kalman+memo", env_kwargs=TINY["env_kwargs"]),
                       "train")
    with pytest.raises(AccompanyConfigError, match="residual_scale must be > 0"):
        make_agent_env(TrainConfig(residual_scale=0.0, env_kwargs=TINY["env_kwargs"]), "train")
    with pytest.raises(AccompanyConfigError, match="not a trained accompanist run"):
        load_agent(tmp_path)
