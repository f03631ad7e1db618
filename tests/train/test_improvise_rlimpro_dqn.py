"""RL-impro's own set-up (the DQN baseline row): its example config is valid, names RL-impro's
action space and reward, and trains a tiny smoke run through the SB3 runner (``musicgym
train``), whose model then plays the held-out tracks beside the baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from musicgym.audio.soundfont import soundfont_available
from musicgym.cli import main
from musicgym.envs.improvise_core import BUILTIN_CORPUS, Improvisers, resolve_corpus
from musicgym.train.evaluate_improvise import evaluate_improvisers

needs_soundfont = pytest.mark.skipif(
    not soundfont_available(),
    reason="the built-in corpus is rendered with FluidSynth and a GM SoundFont")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "improvise_rlimpro_dqn.yaml"


def test_rl_impro_reward_is_the_unclipped_cubic():
    core = Improvisers(3, synth="sine", features_keep=["loudness-dB"],
                       features_reward=["loudness-dB"], mode="lookup", subdiv=3,
                       reward_type="cubic_unbounded")
    core.agent[:] = 0.0
    core.target[:, 0] = [0.0, 0.5, 2.0]   # one descriptor: the RMSE is the difference
    rewards, rmse = core.reward()
    np.testing.assert_allclose(rmse, [0.0, 0.5, 2.0])
    np.testing.assert_allclose(rewards, [1.0, 0.0, 8.0 * (0.5 - 2.0) ** 3])  # -27: unclipped


def test_ternary_moves_are_rl_impros_3_to_the_n_actions():
    core = Improvisers(1, synth="fm", features_keep=["loudness-dB"],
                       features_reward=["loudness-dB"], mode="lookup", subdiv=3)
    action, _ = core.spaces()
    assert action == spaces.Discrete(27)
    # digits most significant first: 0 up, 1 stay, 2 down, by 0.05
    np.testing.assert_allclose(core.deltas(np.array([0 * 9 + 1 * 3 + 2])), [[0.05, 0.0, -0.05]])


@needs_soundfont
def test_builtin_corpus_name_resolves_to_the_built_corpus():
    assert resolve_corpus("some/folder") == "some/folder"
    folder = Path(resolve_corpus(BUILTIN_CORPUS))
    assert (folder / "manifest.json").is_file()


@needs_soundfont
def test_dqn_config_trains_a_smoke_run_through_the_runner(tmp_path):
    """A tiny budget (not a result): the example as shipped, with a few hundred steps."""
    pytest.importorskip("stable_baselines3")
    import yaml

    from musicgym.train.config import TrainConfig
    from musicgym.train.evaluate import load_run

    data = yaml.safe_load(EXAMPLE.read_text())
    config = TrainConfig.from_dict(data, source=str(EXAMPLE))
    assert config.algo == "dqn" and config.env_kwargs["action_type"] == "ternary"
    assert config.env_kwargs["step_size"] == 0.05
    assert config.env_kwargs["reward_type"] == "cubic_unbounded"
    assert config.env_kwargs["corpus"] == BUILTIN_CORPUS
    data["steps"], data["eval_episodes"] = 300, 1
    data["algo_kwargs"] = {"learning_starts": 50, "buffer_size": 1000}
    data["env_kwargs"] = {**data["env_kwargs"], "subdiv": 5}
    small = tmp_path / "dqn_tiny.yaml"
    small.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(small), "--runs", str(tmp_path / "runs"),
                 "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    _, model = load_run(run)
    assert model.action_space == spaces.Discrete(3 ** 2)
    kwargs = {**data["env_kwargs"], "corpus": resolve_corpus(BUILTIN_CORPUS)}
    report = evaluate_improvisers(kwargs, model=model, methods=["agent", "hold"])
    for method in report["methods"].values():
        assert np.isfinite(method["rmse"]) and method["n_tracks"] == len(report["tracks"]) > 0
