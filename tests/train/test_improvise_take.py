"""``musicgym evaluate`` on an improvisation run writes what a person hears and looks at: the
agent's synth take, its target and the descriptor traces, with or without a corpus."""

from __future__ import annotations

import pytest

pytest.importorskip("stable_baselines3")

from musicgym.audio.io import read_audio  # noqa: E402
from musicgym.train.config import resolve  # noqa: E402
from musicgym.train.evaluate import evaluate_run  # noqa: E402
from musicgym.train.evaluate_improvise import write_agent_take  # noqa: E402
from musicgym.train.runfiles import load_run  # noqa: E402
from musicgym.train.runner import train  # noqa: E402

STEPS, HOP = 40, 512
ENV_KWARGS = {"synth": "sine", "mode": "lookup", "subdiv": 6, "max_episode_steps": STEPS,
              "features_keep": ["loudness-dB", "specshape-centroid"]}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny PPO run on the default (synthetic-target) improvisation env, no corpus."""
    return train(resolve({"env_id": "musicgym/Improvise-v0", "steps": 64, "n_envs": 2,
                          "eval_episodes": 1, "env_kwargs": ENV_KWARGS}),
                 runs_root=tmp_path_factory.mktemp("runs"), progress=False)


def _check_wav(path, n_samples: int) -> None:
    audio, sr = read_audio(path)
    assert sr == 44100 and audio.shape == (1, n_samples)
    assert abs(audio).max() > 1e-3   # non-silent


def _check_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_evaluate_without_corpus_writes_the_agent_take_against_the_synthetic_target(run):
    metrics = evaluate_run(run, 1)
    out = run / "eval"
    for name in ("metrics.json", "curve.png", "agent.wav", "target.wav", "descriptors.png"):
        assert (out / name).is_file(), name
    # the take is the env's first evaluation episode (same seed, deterministic policy)
    assert metrics["take_steps"] == STEPS
    assert metrics["take_return"] == pytest.approx(metrics["mean_return"])
    assert metrics["target_mode"] in ("static_random", "dynamic_random")
    assert metrics["rmse"] >= 0.0
    # one synth state per step, each sounding for two hops from its step's hop
    _check_wav(out / "agent.wav", (STEPS + 1) * HOP)
    _check_wav(out / "target.wav", (STEPS + 1) * HOP)
    _check_png(out / "descriptors.png")


def test_with_a_corpus_the_musician_track_is_written_beside_the_take(run, oneshots_dir,
                                                                      tmp_path):
    config, model = load_run(run)
    kwargs = {**config.env_kwargs, "corpus": str(oneshots_dir), "split": "test"}
    metrics = write_agent_take(model, kwargs, tmp_path)
    assert set(metrics) == {"track", "rmse"}
    musician, sr = read_audio(tmp_path / "target.wav")
    assert sr == 44100 and abs(musician).max() > 1e-3
    assert (tmp_path / "agent.wav").is_file()
    _check_png(tmp_path / "descriptors.png")
