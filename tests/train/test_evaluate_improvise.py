"""Evaluation of improvisers on the held-out real one-shots: oracle, random, hold-still, agent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musicgym.cli import main
from musicgym.errors import ImproviseConfigError
from musicgym.train.evaluate_improvise import evaluate_improvisers, format_report

FEATURES = ["loudness-dB", "pitch"]


def _kwargs(corpus) -> dict:
    return {"synth": "sine", "corpus": str(corpus), "mode": "lookup", "subdiv": 11,
            "features_keep": FEATURES, "features_reward": FEATURES}


def test_oracle_beats_random_and_hold_still_on_held_out_tracks(oneshots_dir):
    report = evaluate_improvisers(_kwargs(oneshots_dir), seed=1)
    assert report["tracks"] and set(report["methods"]) == {"oracle", "random", "hold"}
    m = report["methods"]
    assert m["oracle"]["rmse"] < min(m["random"]["rmse"], m["hold"]["rmse"])
    assert m["oracle"]["matched_frames"] > m["hold"]["matched_frames"]
    for method in m.values():
        assert set(method["mae"]) == {"loudness-amp", "pitch", "pitch-confidence"}
        assert all(np.isfinite(v) and v >= 0 for v in method["mae"].values())
        assert method["n_tracks"] == len(report["tracks"])
    if m["oracle"]["time_to_match_s"] is not None:
        assert m["oracle"]["time_to_match_s"] >= report["hop_s"]
    assert "oracle" in format_report(report) and "loudness-amp" in format_report(report)
    # seeded: the same report again
    again = evaluate_improvisers(_kwargs(oneshots_dir), seed=1)
    assert again["methods"]["random"]["rmse"] == m["random"]["rmse"]


def test_agent_is_evaluated_beside_the_baselines(oneshots_dir):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from musicgym.envs.improvise import ImproviseEnv

    kwargs = {**_kwargs(oneshots_dir), "action_type": "multidiscrete"}
    model = PPO("MlpPolicy", ImproviseEnv(**kwargs), n_steps=32, batch_size=32, seed=0,
                device="cpu")
    report = evaluate_improvisers(kwargs, model=model, methods=["agent", "hold"])
    assert list(report["methods"]) == ["agent", "hold"]
    assert np.isfinite(report["methods"]["agent"]["rmse"])


def test_evaluation_needs_a_corpus_and_known_methods(oneshots_dir):
    with pytest.raises(ImproviseConfigError, match="needs a corpus"):
        evaluate_improvisers({"synth": "sine"})
    with pytest.raises(ImproviseConfigError, match="unknown methods"):
        evaluate_improvisers(_kwargs(oneshots_dir), methods=["oracle", "psychic"])
    with pytest.raises(ImproviseConfigError, match="needs a trained model"):
        evaluate_improvisers(_kwargs(oneshots_dir), methods=["agent"])


def test_cli_evaluate_improvise_writes_its_report(oneshots_dir, tmp_path, capsys):
    rc = main(["evaluate-improvise", "--synth", "sine", "--features", *FEATURES,
               "--corpus", str(oneshots_dir), "--methods", "oracle", "hold", "-o", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert set(report["methods"]) == {"oracle", "hold"}
    assert "oracle" in capsys.readouterr().out


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "improvise_sine_ppo.yaml"


def test_example_config_trains_through_the_cli_and_is_evaluated_beside_the_baselines(
        oneshots_dir, tmp_path, capsys):
    """End to end, at a tiny budget: ``musicgym train --config`` on the shipped example (its
    corpus pointed at the one-shots found here), then ``musicgym evaluate-improvise --model``
    on the held-out tracks with all four methods."""
    pytest.importorskip("stable_baselines3")
    import yaml

    from musicgym.train.config import TrainConfig

    data = yaml.safe_load(EXAMPLE.read_text())
    config = TrainConfig.from_dict(data, source=str(EXAMPLE))   # the example is a valid config
    assert config.env_id == "musicgym/Improvise-v0" and config.algo == "ppo"
    data["steps"], data["n_envs"], data["eval_episodes"] = 256, 2, 1
    data["algo_kwargs"] = {**data["algo_kwargs"], "n_steps": 64, "batch_size": 64}
    data["env_kwargs"] = {**data["env_kwargs"], "corpus": str(oneshots_dir), "subdiv": 6}
    small = tmp_path / "improvise_tiny.yaml"
    small.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(small), "--runs", str(tmp_path / "runs"),
                 "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "model.zip").is_file()
    capsys.readouterr()
    assert main(["evaluate-improvise", "--model", str(run), "--subdiv", "6",
                 "-o", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert list(report["methods"]) == ["agent", "oracle", "random", "hold"]
    assert report["tracks"] and report["reward_features"] == ["loudness-amp", "pitch",
                                                               "pitch-confidence"]
    for method in report["methods"].values():
        assert np.isfinite(method["rmse"]) and method["n_tracks"] == len(report["tracks"])
        assert set(method["mae"]) == {"loudness-amp", "pitch", "pitch-confidence"}
    printed = capsys.readouterr().out
    assert printed.splitlines()[2].startswith("agent")
