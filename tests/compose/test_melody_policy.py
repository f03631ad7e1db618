"""The learned melody policy: features, the shipped weights on held-out settings, its CLI,
training on a tiny set, and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from musicgym.compose.melody import beam_melody, evaluate_melody, piece_from_melody
from musicgym.compose.melody_policy import (
    BUILTIN_MELODY,
    MelodyPolicy,
    action_features,
    best_of_melody_policy,
    compose_melody_policy,
    n_features,
)
from musicgym.compose.melody_policy_train import HELD_OUT, held_out_settings, random_setting
from musicgym.envs.melody import MelodyEnv
from musicgym.errors import ConfigError
from musicgym.music.rules.melody import RL_TUNER_RULES


def test_features_have_one_row_per_action_and_the_step_rewards():
    env = MelodyEnv(tonic="D", mode="dorian", n_pitches=24)
    state = env.empty_state()
    for action in (2 + 14, 0, 2 + 16):
        state.add(action)
    mask, reward, outputs = env.judge(state)
    x = action_features(state, outputs, reward)
    assert x.shape == (env.n_actions, n_features()) and x.dtype == np.float32
    squashed = np.sign(reward) * np.log1p(np.abs(reward))
    assert np.allclose(x[:, -1], squashed, atol=1e-5)
    assert np.isfinite(x).all()
    assert len(RL_TUNER_RULES) == 9


def test_training_never_draws_a_held_out_pair():
    rng = np.random.default_rng(0)
    drawn = {(s["tonic"], s["mode"]) for s in (random_setting(rng) for _ in range(2000))}
    assert not drawn & set(HELD_OUT)
    assert len(drawn) > 90  # the other pairs are drawn


def test_builtin_policy_writes_valid_melodies_on_held_out_settings():
    policy = MelodyPolicy.load("builtin")
    assert BUILTIN_MELODY.stat().st_size < 1_000_000
    info = json.loads(BUILTIN_MELODY.with_suffix(".json").read_text())
    assert info["command"].startswith("python -m musicgym.compose.melody_policy_train")
    assert "seed" in info
    for settings in held_out_settings()[:3]:
        env = MelodyEnv(**settings)
        total, actions = compose_melody_policy(env, policy)
        assert len(actions) == env.n_steps
        # the return is the env's own: replaying the actions gives it, and so does judging
        # the written notes again
        env.reset()
        replayed = sum(env.step(a)[1] for a in actions)
        assert replayed == pytest.approx(total)
        report = evaluate_melody(piece_from_melody(env, actions))
        assert report["total"] == pytest.approx(total)
        # better than a greedy beam (width 1) on the env's own rewards, same setting
        greedy = np.mean([beam_melody(env, seed=s, beam_width=1)[0] for s in range(3)])
        assert total > greedy


def test_policy_keeps_the_mask_and_other_lengths_and_metres():
    policy = MelodyPolicy.load("builtin")
    env = MelodyEnv(tonic="E", mode="phrygian", masks=["rl_tuner_key"], n_steps=18,
                    steps_per_bar=6, lowest_midi=55, n_pitches=24)
    total, actions = compose_melody_policy(env, policy, seed=3, temperature=0.5)
    report = evaluate_melody(piece_from_melody(env, actions))
    assert len(actions) == 18 and report["out_of_key"] == 0
    assert report["mask_violations"] == 0


def test_best_of_k_is_at_least_the_greedy_melody_and_checks_its_arguments():
    policy = MelodyPolicy.load("builtin")
    env = MelodyEnv(tonic="F#", mode="lydian", n_steps=16)
    greedy = compose_melody_policy(env, policy)[0]
    total, actions = best_of_melody_policy(env, policy, samples=3, seed=2)
    assert total >= greedy and len(actions) == 16
    with pytest.raises(ValueError, match="samples"):
        best_of_melody_policy(env, policy, samples=0)
    with pytest.raises(ValueError, match="temperature"):
        best_of_melody_policy(env, policy, temperature=0.0)


def test_bad_policy_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        MelodyPolicy.load(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ConfigError, match="not a melody policy"):
        MelodyPolicy.load(bad)
    with pytest.raises(ConfigError, match="features"):
        MelodyPolicy([(np.zeros((3, 4)), np.zeros(4)), (np.zeros((4, 1)), np.zeros(1))])


def test_training_on_a_tiny_set_writes_a_loadable_policy(tmp_path):
    pytest.importorskip("torch")
    from musicgym.compose.melody_policy_train import main

    assert main(["--settings", "4", "--width", "2", "--epochs", "1", "--rl-updates", "1",
                 "--rl-batch", "2", "--out", str(tmp_path)]) == 0
    policy = MelodyPolicy.load(tmp_path)
    assert policy.info["settings"] == 4 and policy.info["reinforce"]["updates"] == 1
    total, actions = compose_melody_policy(MelodyEnv(n_steps=8), policy)
    assert len(actions) == 8


def _musicgym(*args):
    return subprocess.run([sys.executable, "-m", "musicgym", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_composes_melodies_with_the_policy(tmp_path):
    run = _musicgym("compose", "--task", "melody", "--method", "policy", "--pieces", 2,
                    "--no-wav", "-o", tmp_path / "m", "--evaluate")
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["method"] == "policy" and len(summary["pieces"]) == 2
    assert (tmp_path / "m" / "piece_002" / "piece.musicxml").is_file()
    run = _musicgym("compose", "--task", "melody", "--method", "policy", "--policy-beam", 3,
                    "-o", tmp_path / "x")
    assert run.returncode != 0 and "agent.policy_beam (--policy-beam) is for task" in run.stderr
    run = _musicgym("compose", "--task", "melody", "--method", "policy", "--policy",
                    tmp_path / "missing.npz", "-o", tmp_path / "y")
    assert run.returncode != 0 and "not found" in run.stderr
