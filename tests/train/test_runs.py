"""The runner's promises: honest budgets, refusals before any file, family defaults as data,
run folders that run no code, checkpoints that survive kills, race-free run folders, and an
evaluation for every family."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import yaml

pytest.importorskip("stable_baselines3")

from musicgym.cli import main  # noqa: E402
from musicgym.errors import ConfigError  # noqa: E402
from musicgym.train import config as config_module  # noqa: E402
from musicgym.train.config import TrainConfig, plan_budget, resolve  # noqa: E402
from musicgym.train.evaluate import evaluate_run  # noqa: E402
from musicgym.train.runfiles import load_run, new_run_dir  # noqa: E402
from musicgym.train.runner import train  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
KICK = dict(env_id="musicgym/Kick-v0", n_envs=4, eval_episodes=1,
            algo_kwargs={"n_steps": 8, "batch_size": 16, "n_epochs": 1})


def _steps_trained(run: Path) -> int:
    return json.loads((run / "checkpoint.json").read_text())["num_timesteps"]


@pytest.fixture(scope="module")
def kick_run(tmp_path_factory):
    return train(resolve({**KICK, "steps": 60}), runs_root=tmp_path_factory.mktemp("runs"),
                 progress=False)


def test_steps_are_the_steps_trained_and_recorded(kick_run, capsys):
    saved = yaml.safe_load((kick_run / "config.yaml").read_text())
    assert saved["steps"] == _steps_trained(kick_run) == 64  # 2 rollouts of 4 envs x 8
    assert saved["algo_kwargs"]["n_steps"] == 8 and saved["algo_kwargs"]["n_epochs"] == 1
    # the family defaults filled what the user left out
    assert saved["algo_kwargs"]["learning_rate"] == 0.003
    config = resolve({"env_id": "musicgym/Kick-v0", "steps": 512, "n_envs": 16})
    assert plan_budget(config) is None and config.steps == 512  # 1 rollout of 16 x 32
    config = resolve({"env_id": "musicgym/Melody-v0", "steps": 128})
    assert plan_budget(config) is None and config.algo_kwargs["n_steps"] == 128
    config = resolve({"env_id": "musicgym/Kick-v0", "steps": 500, "n_envs": 16})
    assert plan_budget(config) == "steps 500 -> 512: 1 rollout of 16 envs x 32 steps"
    config = resolve({"env_id": "musicgym/Kick-v0", "steps": 500, "n_envs": 4, "algo": "sac"})
    assert plan_budget(config) is None and config.steps == 500


def test_defaults_are_data_and_the_user_wins():
    for family in ("sound", "compose", "improvise"):
        assert (config_module.DEFAULTS_DIR / f"{family}.yaml").is_file()
    config = resolve({"env_id": "musicgym/Counterpoint-v0", "algo_kwargs": {"n_epochs": 2}})
    assert config.algo == "maskable_ppo" and config.algo_kwargs["gamma"] == 1.0
    assert config.algo_kwargs["n_epochs"] == 2
    assert resolve({"env_id": "musicgym/Kick-v0", "algo": "a2c"}).algo_kwargs == {"n_steps": 8}


@pytest.mark.parametrize("argv,message", [
    (["musicgym/Kick-v0", "--algo", "dqn"], "algo dqn does not fit musicgym/Kick-v0"),
    (["musicgym/Melody-v0", "--algo", "sac"], "choose one of ppo, a2c"),
    (["musicgym/Kick-v0", "--algo", "maskable_ppo"], "does not fit"),
    (["musicgym/Kick-v0", "--steps", "0"], "steps: must be a positive integer"),
    (["musicgym/Kick-v0", "--n-envs", "-2"], "n_envs: must be a positive integer"),
    (["musicgym/Nope-v0"], "is not registered"),
])
def test_cli_refuses_before_writing_anything(argv, message, tmp_path, capsys):
    assert main(["train", *argv, "--runs", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv,message", [
    (["musicgym/Counterpoint-v0"], "is not one: choose one of musicgym/Kick-v0"),
    (["musicgym/Kick-v0", "--budget", "-3"], "budget: must be a positive integer"),
])
def test_baseline_refuses_what_it_cannot_search(argv, message, capsys):
    assert main(["baseline", *argv]) == 2
    assert message in capsys.readouterr().err


class _Pwn:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(zip_path: Path, key: str, marker: Path) -> None:
    """Rewrite ``zip_path`` with ``data[key]`` a pickle that runs ``touch marker``."""
    import cloudpickle

    with zipfile.ZipFile(zip_path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(files["data"])
    data[key] = {":type:": "<class 'x'>", ":serialized:":
                 base64.b64encode(cloudpickle.dumps(_Pwn(marker))).decode()}
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, blob in files.items():
            archive.writestr(name, blob)


@pytest.mark.parametrize("key", ["observation_space", "policy_class", "lr_schedule", "evil"])
def test_a_run_folder_runs_no_code(kick_run, key, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(kick_run, run)
    marker = tmp_path / "PWNED"
    for name in ("model.zip", "checkpoint.zip", "checkpoint_prev.zip"):
        if (run / name).is_file():
            _plant(run / name, key, marker)
    code = main(["evaluate", str(run), "--episodes", "1"])
    resumed = main(["train", "--resume", str(run), "--steps", "96", "--no-progress"])
    assert not marker.exists()
    if key == "evil":  # a pickled entry SB3 never writes: refused, one line
        assert code == resumed == 1
        assert "does not load" in capsys.readouterr().err
    else:  # an entry SB3 writes: rebuilt from the run's config instead, the run goes on
        assert code == resumed == 0
        assert _steps_trained(run) == 96


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(kick_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(kick_run, run)
    (run / "model.zip").unlink()
    blob = (run / "checkpoint.zip").read_bytes()
    (run / "checkpoint.zip").write_bytes(blob[: len(blob) // 2])
    config, model = load_run(run)
    assert model.num_timesteps < 64  # checkpoint_prev.zip, an earlier one
    capsys.readouterr()
    train(TrainConfig(steps=80), resume=run, progress=False)
    # from step 32 in whole rollouts of 4 envs x 8 steps, said in one line
    assert capsys.readouterr().out.splitlines()[0] == "steps 80 -> 96: whole rollouts of 32"
    assert _steps_trained(run) == 96
    for name in ("checkpoint.zip", "checkpoint_prev.zip", "model.zip"):
        (run / name).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ConfigError, match="reads back whole"):
        train(TrainConfig(steps=96), resume=run, progress=False)


def test_resume_appends_to_the_logs(kick_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(kick_run, run)
    csv = run / "tensorboard" / "progress.csv"
    rows = csv.read_text().splitlines()
    evaluations = json.loads((run / "evaluations.json").read_text())
    train(TrainConfig(steps=96), resume=run, progress=False)
    after = csv.read_text().splitlines()
    assert after[: len(rows)] == rows and len(after) > len(rows)
    assert json.loads((run / "evaluations.json").read_text())[: len(evaluations)] == evaluations


def _make_dirs(root: str) -> list[str]:
    return [new_run_dir(root, "ppo").name for _ in range(10)]


def test_run_folders_are_race_free(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        names = [n for batch in pool.map(_make_dirs, [str(tmp_path)] * 4) for n in batch]
    assert len(set(names)) == 40 == len(list(tmp_path.iterdir()))


def _train_process(runs: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        [sys.executable, "-m", "musicgym", "train", *extra, "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=runs)


@pytest.mark.slow
def test_killed_at_random_moments_the_run_resumes_to_its_budget(tmp_path):
    rng = random.Random(7)
    config = tmp_path / "kick.yaml"
    config.write_text(yaml.safe_dump({**KICK, "steps": 2048, "checkpoint_every": 32,
                                      "algo_kwargs": {"n_steps": 8, "batch_size": 32,
                                                      "n_epochs": 1}}))
    runs = tmp_path / "runs"
    fresh = ("--config", str(config), "--runs", "runs")
    proc = _train_process(tmp_path, *fresh)
    kills = 0
    while proc.poll() is None and kills < 5:
        time.sleep(rng.uniform(2.0, 6.0))  # start-up, training and checkpoint writes alike
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        run = next(runs.iterdir(), None) if runs.is_dir() else None
        if run is None or not any((run / n).is_file() for n in ("checkpoint.zip",
                                                                "checkpoint_prev.zip")):
            if run is not None:  # killed before its first checkpoint: nothing to resume
                shutil.rmtree(run)
            proc = _train_process(tmp_path, *fresh)
        else:
            proc = _train_process(tmp_path, "--resume", str(run))
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()
    (run,) = (tmp_path / "runs").iterdir()
    assert kills >= 1 and _steps_trained(run) == 2048
    _, model = load_run(run)
    assert model.num_timesteps == 2048


@pytest.fixture
def accompany_defaults(tmp_path, monkeypatch):
    """The family files with a temporary accompany.yaml (the accompanist's own comes later)."""
    folder = tmp_path / "defaults"
    shutil.copytree(config_module.DEFAULTS_DIR, folder)
    (folder / "accompany.yaml").write_text(yaml.safe_dump({
        "env_ids": ["musicgym/Accompany-v0"], "algo": "recurrent_ppo", "n_envs": 2,
        "steps": 1000, "env_kwargs": {"sources": ["simulated"]},
        "eval_env_kwargs": {"split": "test"},
        "algo_kwargs": {"recurrent_ppo": {"n_steps": 16, "batch_size": 32}}}))
    monkeypatch.setattr(config_module, "DEFAULTS_DIR", folder)
    config_module._defaults_files.cache_clear()
    yield
    config_module._defaults_files.cache_clear()


@pytest.mark.slow
def test_every_family_trains_and_is_evaluated(accompany_defaults, tmp_path, oneshots_dir):
    families = {
        "musicgym/Counterpoint-v0": ("piece/piece.mid", "piece/piece.musicxml",
                                     "piece/piece.wav", "piece/piano_roll.png"),
        "musicgym/Accompany-v0": ("duet.mid", "asynchrony.png"),
        "musicgym/Improvise-v0": ("agent.wav", "descriptors.png"),
    }
    extra = {"musicgym/Improvise-v0": {
        "n_envs": 2, "env_kwargs": {"synth": "sine", "corpus": str(oneshots_dir),
                                    "mode": "lookup", "subdiv": 6, "max_episode_steps": 50,
                                    "training_mode": "mixed_random+corpus"},
        "eval_env_kwargs": {"split": "test"}}}
    for env_id, files in families.items():
        run = train(resolve({"env_id": env_id, "steps": 64, "eval_episodes": 1,
                             **extra.get(env_id, {})}),
                    runs_root=tmp_path / "runs", progress=False)
        assert _steps_trained(run) == 64
        metrics = evaluate_run(run, 1)
        for name in ("metrics.json", "curve.png", *files):
            assert (run / "eval" / name).is_file(), (env_id, name)
        assert metrics["family"] in ("compose", "accompany", "improvise")
        if env_id == "musicgym/Counterpoint-v0":  # issue 14: quality and variety reported
            assert 0.0 <= metrics["mean_fux_quality"] <= 3.0
            assert 0.0 <= metrics["variety"] <= 1.0
