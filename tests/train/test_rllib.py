"""RLlib backend: bad input is refused before Ray starts; one real PPO iteration with 2 env
runners on a local Ray instance writes a complete run folder."""

from __future__ import annotations

import json

import pytest

from musicgym.cli import main
from musicgym.errors import ConfigError
from musicgym.train.config import TrainConfig
from musicgym.train.rllib import check_address, evaluate_rllib_returns, load_rllib_run, train_rllib

TINY = dict(env_id="musicgym/Kick-v0", algo="ppo", steps=64, n_envs=2, eval_episodes=2,
            algo_kwargs={"train_batch_size_per_learner": 64, "minibatch_size": 32,
                         "num_epochs": 1})


@pytest.mark.parametrize("address", ["http://head:10001", "ray://", "ray://head",
                                     "ray://head:port", "ray://head:70000", "head node:6379"])
def test_bad_address_is_a_config_error(address):
    with pytest.raises(ConfigError, match="expected ray://HOST:PORT"):
        check_address(address)


@pytest.mark.parametrize("address", [None, "auto", "local", "ray://head-node:10001",
                                     "10.0.0.5:6379"])
def test_good_addresses_pass(address):
    check_address(address)


@pytest.mark.parametrize("runners", [-1, 1.5, True])
def test_bad_num_env_runners_is_a_config_error(runners, tmp_path):
    with pytest.raises(ConfigError, match="num-env-runners"):
        train_rllib(TrainConfig(**TINY), num_env_runners=runners, runs_root=tmp_path)
    assert not list(tmp_path.iterdir())  # refused before any run folder is made


@pytest.mark.parametrize("field, value, message", [
    ("algo", "sac", "PPO only"), ("device", "cuda", "CPU only"),
    ("env_id", "musicgym/NoSuch-v0", "env_id")])
def test_unsupported_config_is_a_config_error(field, value, message, tmp_path):
    config = TrainConfig(**{**TINY, field: value})
    with pytest.raises(ConfigError, match=message):
        train_rllib(config, num_env_runners=2, runs_root=tmp_path)


def test_load_without_checkpoint_is_a_config_error(rllib, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint/"):
        load_rllib_run(tmp_path)


def test_cli_refuses_bad_input(tmp_path, capsys):
    args = ["train", "musicgym/Kick-v0", "--backend", "rllib", "--runs", str(tmp_path)]
    assert main(args + ["--address", "http://head:10001"]) == 1
    assert "expected ray://HOST:PORT" in capsys.readouterr().err
    assert main(args + ["--num-env-runners", "-2"]) == 1
    assert "must be an integer >= 0" in capsys.readouterr().err
    assert main(args + ["--resume", str(tmp_path)]) == 1
    assert "not supported with --backend rllib" in capsys.readouterr().err


@pytest.fixture
def rllib():
    pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[rllib]'")
    return pytest.importorskip("ray.rllib", reason="ray[rllib] is not installed")


@pytest.fixture
def local_ray(rllib):
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def test_sb3_names_in_algo_kwargs_are_a_config_error(rllib, tmp_path):
    config = TrainConfig(**{**TINY, "algo_kwargs": {"n_steps": 64}})
    with pytest.raises(ConfigError, match="train_batch_size_per_learner"):
        train_rllib(config, num_env_runners=2, runs_root=tmp_path)


@pytest.mark.slow
def test_one_iteration_with_two_env_runners(local_ray, tmp_path):
    run = train_rllib(TrainConfig(**TINY), num_env_runners=2, runs_root=tmp_path,
                      progress=False)
    assert run.name.endswith("-RLLIB-PPO")
    assert TrainConfig.load(run / "config.yaml").env_id == "musicgym/Kick-v0"
    setup = json.loads((run / "rllib.json").read_text())
    assert setup["num_env_runners"] == 2 and setup["num_envs_per_env_runner"] == 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics) == 1 and metrics[0]["steps"] >= 64
    # Kick episodes are one step long: 64 steps end 64 episodes, each returning -distance
    assert metrics[0]["episodes"] >= 64 and metrics[0]["episode_return_mean"] < 0
    evaluation = json.loads((run / "evaluations.json").read_text())[-1]
    assert evaluation["steps"] == metrics[0]["steps"]
    assert evaluation["mean_return"] == pytest.approx(-evaluation["mean_clip_distance"])
    assert (run / "checkpoint" / "rllib_checkpoint.json").is_file()
    assert not list(run.glob(".checkpoint*"))
    assert local_ray.is_initialized()  # a Ray the caller started is left to the caller
    # the checkpoint restores the trained policy: the same deterministic evaluation
    algo = load_rllib_run(run)
    try:
        again = evaluate_rllib_returns(algo, TrainConfig.load(run / "config.yaml"), 2,
                                       seed=10_000)
    finally:
        algo.stop()
    assert again["mean_return"] == pytest.approx(evaluation["mean_return"], rel=1e-5)
