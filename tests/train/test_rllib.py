"""RLlib backend: bad input is refused before Ray starts (no run folder); budgets are planned
from --steps; real PPO runs on a local Ray write complete run folders and resume."""

from __future__ import annotations

import json
import math
import socket
import sys

import pytest

from musicgym.cli import main
from musicgym.errors import ConfigError
from musicgym.train.config import TrainConfig
from musicgym.train.rllib import (
    check_address,
    evaluate_rllib_returns,
    load_rllib_run,
    plan_budget,
    train_rllib,
)

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


@pytest.mark.parametrize("steps, kwargs, expected", [
    # RLlib's 4,000-step batch never overshoots a smaller budget: one iteration of it all
    (256, {}, (1, 256, 128)),
    (20_000, {}, (5, 4000, 128)),
    # equal batches, at most one step per iteration over
    (10_001, {}, (3, 3334, 128)),
    # a given batch is kept: whole iterations of it
    (100, {"train_batch_size_per_learner": 64, "minibatch_size": 32}, (2, 64, 32)),
    (5, {}, (1, 8, 8)),  # at least one step per env of the runners (2 runners x 4 envs)
])
def test_budget_is_planned_from_steps(steps, kwargs, expected):
    budget = plan_budget(steps, 2, 4, kwargs)
    assert (budget.iterations, budget.batch, budget.minibatch) == expected
    assert steps <= budget.env_steps


def test_batch_smaller_than_one_step_per_env_is_refused():
    with pytest.raises(ConfigError, match="train_batch_size_per_learner must be an integer >= 8"):
        plan_budget(100, 2, 4, {"train_batch_size_per_learner": 4})


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
    assert not list(tmp_path.iterdir())


def test_maskable_ppo_on_an_env_without_masks_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="needs an env with action masks"):
        train_rllib(TrainConfig(**{**TINY, "algo": "maskable_ppo"}), num_env_runners=1,
                    runs_root=tmp_path)


def test_missing_env_kwargs_are_a_config_error(tmp_path):
    config = TrainConfig(**{**TINY, "env_id": "musicgym/SynthMatch-v0"})
    with pytest.raises(ConfigError, match="env_kwargs for musicgym/SynthMatch-v0"):
        train_rllib(config, num_env_runners=1, runs_root=tmp_path)


def test_no_ray_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without Ray
    with pytest.raises(ConfigError, match="needs Ray"):
        train_rllib(TrainConfig(**TINY), num_env_runners=1, runs_root=tmp_path)
    assert not list(tmp_path.iterdir())


def test_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["train", "--backend", "rllib", "--runs", str(runs), "--no-progress"]
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    for extra, message in [
            (["musicgym/Kick-v0", "--address", "http://head:10001"], "expected ray://HOST:PORT"),
            (["musicgym/Kick-v0", "--address", closed], "nothing answers there"),
            (["musicgym/Kick-v0", "--num-env-runners", "-2"], "must be an integer >= 0"),
            (["musicgym/NoSuch-v0"], "env_id"),
            (["--resume", str(tmp_path)], "no checkpoint/ and rllib.json there")]:
        assert main(args + extra) != 0
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not runs.exists()  # refused before any run folder is made


def test_resume_starts_from_the_checkpoint_and_drops_the_logs_after_it(tmp_path):
    from musicgym.train.rllib.run import _steps_done

    # a run killed after logging its iteration at 128 steps, before checkpointing it
    (tmp_path / "checkpoint.json").write_text(json.dumps({"num_timesteps": 64}))
    (tmp_path / "metrics.json").write_text(json.dumps([{"steps": 64}, {"steps": 128}]))
    (tmp_path / "evaluations.json").write_text(json.dumps([{"steps": 64}]))
    assert _steps_done(tmp_path) == 64
    assert _json(tmp_path / "metrics.json") == [{"steps": 64}]
    assert _json(tmp_path / "evaluations.json") == [{"steps": 64}]


@pytest.fixture(scope="module")
def rllib():
    pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[rllib]'")
    return pytest.importorskip("ray.rllib", reason="ray[rllib] is not installed")


@pytest.fixture(scope="module")
def local_ray(rllib):
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def test_load_without_checkpoint_is_a_config_error(rllib, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint/"):
        load_rllib_run(tmp_path)


def test_sb3_names_in_algo_kwargs_are_a_config_error(rllib, tmp_path):
    config = TrainConfig(**{**TINY, "algo_kwargs": {"n_steps": 64}})
    with pytest.raises(ConfigError, match="train_batch_size_per_learner"):
        train_rllib(config, num_env_runners=2, runs_root=tmp_path)


def _json(path):
    return json.loads(path.read_text())


@pytest.mark.slow
def test_two_env_runners_a_whole_budget_and_a_restorable_checkpoint(local_ray, tmp_path,
                                                                    capsys):
    # 100 steps in batches of 64: the run says it samples 128, and its bar counts to 128
    run = train_rllib(TrainConfig(**{**TINY, "steps": 100}), num_env_runners=2,
                      runs_root=tmp_path, progress=True)
    out, err = capsys.readouterr()
    assert "2 PPO iteration(s) of 64 env steps: 128 env steps in all for --steps 100" in out
    assert "128/128" in err
    assert run.name.endswith("-RLLIB-PPO")
    assert TrainConfig.load(run / "config.yaml").env_id == "musicgym/Kick-v0"
    setup = _json(run / "rllib.json")
    assert setup["num_env_runners"] == 2 and setup["num_envs_per_env_runner"] == 1
    assert (setup["iterations"], setup["train_batch_size_per_learner"]) == (2, 64)
    assert setup["policy"] == {"masked": False, "lstm": False}
    assert len(setup["env_runner_nodes"]) == 2
    metrics = _json(run / "metrics.json")
    assert [row["steps"] for row in metrics] == [64, 128]
    # Kick episodes are one step long: 64 steps end 64 episodes, each returning -distance
    assert metrics[0]["episodes"] == 64 and metrics[0]["episode_return_mean"] < 0
    evaluation = _json(run / "evaluations.json")[-1]
    assert evaluation["steps"] == 128
    assert evaluation["mean_return"] == pytest.approx(-evaluation["mean_clip_distance"])
    assert (run / "checkpoint" / "rllib_checkpoint.json").is_file()
    assert _json(run / "checkpoint.json")["num_timesteps"] == 128
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

    # resuming to the steps already done trains nothing and restores the same policy
    assert train_rllib(None, num_env_runners=1, resume=run, progress=False) == run
    assert len(_json(run / "metrics.json")) == 2
    evaluations = _json(run / "evaluations.json")
    assert [e["steps"] for e in evaluations] == [128, 128]
    assert evaluations[1]["mean_return"] == pytest.approx(evaluations[0]["mean_return"],
                                                          rel=1e-5)


FAMILIES = {
    # sound matching: Box actions (Kick, FMTone, Snare, SynthMatch), flat Box (BassLine)
    "musicgym/Kick-v0": {}, "musicgym/BassLine-v0": {}, "musicgym/FMTone-v0": {},
    "musicgym/Snare-v0": {},
    "musicgym/SynthMatch-v0": {"env_kwargs": {
        "code": "~env: imp 0.1 >> envperc {} {}\nkick: sin {} >> mul ~env",
        "target": "TARGET_WAV", "total_step": 1, "step_len": 0.5,
        "action_space": [["exp", 0.0005, 0.05], ["exp", 0.05, 0.5], ["exp", 30, 300]]}},
    "musicgym/Improvise-v0": {},
    # masks: an action the mask forbids would raise, in training or in the evaluation
    "musicgym/Counterpoint-v0": {"env_kwargs": {"invalid_action": "raise"}},
    "musicgym/Melody-v0": {"env_kwargs": {"invalid_action": "raise"}},
    "musicgym/Accompany-v0": {},
}
POLICY = {"musicgym/Counterpoint-v0": {"masked": True, "lstm": False},
          "musicgym/Melody-v0": {"masked": True, "lstm": False},
          "musicgym/Accompany-v0": {"masked": False, "lstm": True}}
RESUMED = ("musicgym/Kick-v0", "musicgym/Counterpoint-v0", "musicgym/Accompany-v0")


@pytest.fixture
def kick_wav(tmp_path):
    import soundfile as sf

    from musicgym.envs.presets import kick_target

    path = tmp_path / "kick.wav"
    sf.write(path, kick_target(), 44100)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", list(FAMILIES))
def test_every_family_trains_and_resumes(env_id, local_ray, tmp_path, kick_wav):
    fields = FAMILIES[env_id]
    env_kwargs = {k: kick_wav if v == "TARGET_WAV" else v
                  for k, v in fields.get("env_kwargs", {}).items()}
    config = TrainConfig(env_id=env_id, steps=64, n_envs=1, eval_episodes=1,
                         env_kwargs=env_kwargs, algo_kwargs={"num_epochs": 1})
    run = train_rllib(config, num_env_runners=1, runs_root=tmp_path, progress=False)
    setup = _json(run / "rllib.json")
    assert setup["policy"] == POLICY.get(env_id, {"masked": False, "lstm": False})
    assert (setup["iterations"], setup["train_batch_size_per_learner"]) == (1, 64)
    assert [row["steps"] for row in _json(run / "metrics.json")] == [64]
    assert math.isfinite(_json(run / "evaluations.json")[-1]["mean_return"])
    if env_id not in RESUMED:
        return
    # resumed to 128: the same folder, one more iteration, its logs appended
    assert train_rllib(TrainConfig(steps=128), num_env_runners=1, resume=run,
                       progress=False) == run
    assert [row["steps"] for row in _json(run / "metrics.json")] == [64, 128]
    assert [row["iteration"] for row in _json(run / "metrics.json")] == [1, 2]
    assert [e["steps"] for e in _json(run / "evaluations.json")] == [64, 128]
    assert [s["steps_before"] for s in _json(run / "rllib.json")["sessions"]] == [0, 64]
