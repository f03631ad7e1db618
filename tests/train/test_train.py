"""Training runs end to end (tiny budgets): config validation, run folders, atomic checkpoints,
resume, evaluation outputs, baselines and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("stable_baselines3")

from musicgym.cli import main  # noqa: E402
from musicgym.errors import ConfigError  # noqa: E402
from musicgym.train.baselines import cmaes, random_search  # noqa: E402
from musicgym.train.config import TrainConfig  # noqa: E402
from musicgym.train.evaluate import evaluate_run  # noqa: E402
from musicgym.train.runner import train  # noqa: E402

TINY = dict(env_id="musicgym/Kick-v0", algo="ppo", steps=64, n_envs=4, eval_episodes=1,
            algo_kwargs={"n_steps": 8, "batch_size": 16, "n_epochs": 1})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return train(TrainConfig(**TINY, checkpoint_every=32, eval_every=32), runs_root=root,
                 progress=False)


def test_run_folder_has_everything(tiny_run):
    for name in ("config.yaml", "model.zip", "checkpoint.zip", "evaluations.json", "tensorboard"):
        assert (tiny_run / name).exists(), name
    assert tiny_run.name.endswith("-PPO")
    evaluations = json.loads((tiny_run / "evaluations.json").read_text())
    assert evaluations[-1]["steps"] >= 64 and "mean_clip_distance" in evaluations[-1]
    assert not list(tiny_run.glob(".*.tmp*"))  # no temporary file left behind


def test_resume_continues_the_step_count(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run)
    before = json.loads((run / "checkpoint.json").read_text())["num_timesteps"]
    train(TrainConfig(**{**TINY, "steps": 96}), resume=run, progress=False)
    after = json.loads((run / "checkpoint.json").read_text())["num_timesteps"]
    assert before >= 64 and after >= 96


def test_evaluate_writes_metrics_sounds_and_plots(tiny_run):
    metrics = evaluate_run(tiny_run, episodes=2)
    out = tiny_run / "eval"
    assert metrics["mean_clip_distance"] > 0 and np.isfinite(metrics["mean_mfcc_mae"])
    for name in ("metrics.json", "target.wav", "agent_best.wav", "agent_final.wav",
                 "comparison.png", "curve.png"):
        assert (out / name).is_file(), name
    audio, sr = sf.read(out / "agent_best.wav")
    assert sr == 44100 and audio.shape[0] == 22050


@pytest.mark.parametrize("data,match", [
    ({"algo": "ppp"}, "did you mean 'ppo'"), ({"steps": 0}, "positive integer"),
    ({"n_env": 4}, "did you mean 'n_envs'"), ({"env_kwargs": [1]}, "mapping"),
])
def test_config_errors_name_the_field(data, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict(data)


def test_config_file_and_bad_algo_kwargs(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("env_id: musicgym/Kick-v0\nsteps: 16\nn_envs: 2\n"
                    "algo_kwargs: {n_steps: 8, batch_size: 8, learning_rte: 0.1}\n")
    config = TrainConfig.load(path)
    assert config.steps == 16 and config.policy == "MlpPolicy"
    with pytest.raises(ConfigError, match="learning_rte"):
        train(config, runs_root=tmp_path / "runs", progress=False)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.load(tmp_path / "nope.yaml")


def test_resume_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no config.yaml"):
        train(None, resume=tmp_path, progress=False)


def test_baselines_improve_on_their_first_guess():
    r = random_search("musicgym/Kick-v0", 64, seed=1, batch=32)
    c = cmaes("musicgym/Kick-v0", 64, seed=1, batch=32, popsize=16)
    for result in (r, c):
        assert result["evaluations"] == 64
        assert result["curve"][-1] == result["best_distance"] <= result["curve"][0]
        assert len(result["best_params"]) == 1 and len(result["best_params"][0]) == 3


def test_cli_train_evaluate_baseline(tmp_path, capsys):
    assert main(["train", "musicgym/Kick-v0", "--steps", "32", "--n-envs", "4", "--runs",
                 str(tmp_path), "--no-progress", "--algo", "a2c"]) == 0
    run = next(tmp_path.iterdir())
    assert main(["evaluate", str(run), "--episodes", "1"]) == 0
    assert "mean_clip_distance" in capsys.readouterr().out
    assert main(["baseline", "musicgym/Kick-v0", "--method", "random", "--budget", "16",
                 "-o", str(tmp_path / "base")]) == 0
    assert json.loads((tmp_path / "base" / "random.json").read_text())["evaluations"] == 16
    assert main(["train", "--backend", "rllib", "musicgym/Kick-v0", "--num-env-runners",
                 "-1"]) == 1


def test_demo_writes_its_files(tmp_path):
    from musicgym.train.demo import demo

    # small budgets; synthetic targets so the test runs without the real one-shots
    out = demo(tmp_path / "demo", steps=64, budget=12, hybrid_budget=6, targets="synthetic")
    for name in ("target.wav", "agent.wav", "random.wav", "cmaes.wav", "comparison.png",
                 "curve.png"):
        assert (out / "kick" / name).is_file(), name
    targets = sorted(p.name for p in out.iterdir() if p.name.startswith("synthetic_"))
    assert targets == [f"synthetic_{i}" for i in range(1, 6)]
    for method in ("policy", "refine", "policy+nm", "policy+cmaes", "cmaes", "random"):
        for name in ("match.wav", "comparison.png", "params.json", "patch.glicol"):
            assert (out / "synthetic_3" / method / name).is_file(), (method, name)
    assert (out / "synthetic_3" / "target.wav").is_file()
    for name in ("target.wav", "policy/match.wav", "policy/params.json", "cmaes/patch.glicol"):
        assert (out / "bassline" / name).is_file(), name
    summary = (out / "summary.md").read_text()
    bass = {line.split(" | ")[0][2:]: line.split(" | ") for line in summary.splitlines()
            if line.startswith(("| YIN", "| matcher (one pass: a render a step)", "| CMA-ES, 6"))}
    assert bass["matcher (one pass: a render a step)"][1] == "16 / 16"  # every note named
    assert bass["matcher (one pass: a render a step)"][4] == "16"
    assert bass["CMA-ES, 6 renders a step"][4] == "96"
    assert "PPO agent" in summary and "cmaes search, best of 64" in summary
    rows = [line.split(" | ") for line in summary.splitlines() if line.startswith("| **mean**")]
    evaluations = {row[1]: row[4] for row in rows}
    assert evaluations["matcher (one pass)"] == "1"
    assert evaluations["matcher, refinement episode"] == "10"
    assert evaluations["matcher + CMA-ES"] == "6" and int(evaluations["matcher + Nelder-Mead"]) <= 6
    assert evaluations["CMA-ES"] == evaluations["random search"] == "12"


def test_demo_targets_real_when_found_else_synthetic(monkeypatch, tmp_path):
    from musicgym.errors import DataNotFoundError, UsageError
    from musicgym.train.demo import demo, held_out_targets
    from musicgym.train.match import HELD_OUT

    monkeypatch.setenv("MUSICGYM_ONESHOTS_DIR", str(tmp_path / "none"))
    held, source = held_out_targets("auto")
    assert [name for name, _ in held] == [f"synthetic_{i}" for i in range(1, 6)]
    assert all(clip.ndim == 1 and np.abs(clip).max() > 0 for _, clip in held)
    with pytest.raises(DataNotFoundError, match="MUSICGYM_ONESHOTS_DIR"):
        held_out_targets("real")
    with pytest.raises(UsageError, match="targets"):
        demo(tmp_path / "x", targets="everything")
    with pytest.raises(UsageError, match="hybrid_budget"):
        demo(tmp_path / "x", hybrid_budget=0)
    for name in HELD_OUT:  # only their presence decides; matching would read them
        (tmp_path / f"{name}.flac").write_bytes(b"")
    monkeypatch.setenv("MUSICGYM_ONESHOTS_DIR", str(tmp_path))
    held, source = held_out_targets("auto")
    assert [name for name, _ in held] == list(HELD_OUT) and source.startswith("held-out real")
