"""The learned value and its decoder: features, the shipped weights, composing on held-out
cantus firmi without hard violations, training on a tiny set, DAgger relabelling, bad input."""

import json
import time

import numpy as np
import pytest

from musicgym.compose.policy import ComposerPolicy, compose_policy, n_features
from musicgym.compose.value import (
    BUILTIN_VALUE,
    ComposerValue,
    compose_value_and_search,
    compose_value_beam,
    n_value_features,
    value_features,
)
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import ConfigError
from musicgym.music.rules.species import N_ACTIONS, CounterpointState


def test_value_features_leave_the_mask_out_and_count_the_line():
    env = CounterpointEnv("fux_dorian", species=5)
    state = CounterpointState(env.setup)
    x = value_features(state)
    assert x.shape == (n_value_features(),) and x.dtype == np.float32
    assert not x[n_features() - 2 - N_ACTIONS:n_features() - 2].any()
    assert x[n_features()] == 0.0  # one note so far: entropy 0
    assert x[n_features() + 3] == pytest.approx(1 / 64)


def test_builtin_value_is_shipped_with_its_command():
    meta = json.loads(BUILTIN_VALUE.with_suffix(".json").read_text())
    assert "value_train" in meta["command"] and "seed" in meta
    assert BUILTIN_VALUE.stat().st_size < 1_000_000
    value = ComposerValue.load("builtin")
    env = CounterpointEnv("fux_dorian", species=5)
    v = value([CounterpointState(env.setup)])
    assert v.shape == (1,) and np.isfinite(v[0])


@pytest.mark.parametrize("species", [2, 5])
def test_value_decoder_composes_held_out_cantus_without_hard_violations(species, judge):
    # Fux's cantus firmi are held out from training (policy and value)
    policy, value = ComposerPolicy.load("builtin"), ComposerValue.load("builtin")
    env = CounterpointEnv("fux_mixolydian", species=species)
    stats = {}
    t0 = time.perf_counter()
    ret, actions = compose_value_beam(env, policy, value, stats=stats)  # the defaults
    assert time.perf_counter() - t0 < 3.0  # < 1 s a piece on an idle core; slack for CI
    result = judge(env, actions)
    assert result["hard_violations"] == 0 and result["parallel_perfects"] == 0
    assert result["scores"]["total"] == pytest.approx(ret)
    assert stats["evaluations"] >= 1 and stats["children"] >= stats["expanded"]
    from musicgym.compose.search import random_search

    randoms = [random_search(env, seed=s)[0] for s in range(5)]
    assert ret > np.mean(randoms)


def test_value_and_search_keeps_the_better_of_two_pieces(judge):
    policy, value = ComposerPolicy.load("builtin"), ComposerValue.load("builtin")
    env = CounterpointEnv("fux_ionian", species=3)
    alone = compose_value_beam(env, policy, value)
    stats: dict = {}
    ret, actions = compose_value_and_search(env, policy, value, search_width=20, polish=False,
                                            stats=stats)
    result = judge(env, actions)
    assert result["hard_violations"] == 0 and result["parallel_perfects"] == 0
    assert result["scores"]["total"] == pytest.approx(ret)
    assert ret >= alone[0] and stats["chosen"] in ("value", "search")
    # the search's piece, when kept, is the policy-guided search's own
    from musicgym.compose.policy import policy_guided_search

    other = policy_guided_search(env, policy, beam_width=20, top_k=3, logp_weight=0.1)
    assert ret == max(alone[0], other[0])
    assert (ret, actions) == (other if stats["chosen"] == "search" else alone)
    assert compose_value_and_search(env, policy, value, search_width=0, polish=False) == alone
    # by default the better piece is polished (compose.polish; tests/compose/test_polish.py)
    assert compose_value_and_search(env, policy, value, search_width=20)[0] >= ret
    with pytest.raises(ConfigError, match="search_width"):
        compose_value_and_search(env, policy, value, search_width=-1)
    with pytest.raises(ConfigError, match="both 0"):
        compose_value_and_search(env, policy, value, beam=0, search_width=0)
    # species 5: the search alone by default, its log-probability weight 0.3
    env5 = CounterpointEnv("fux_ionian", species=5)
    stats = {}
    assert compose_value_and_search(env5, policy, value, search_width=20, polish=False,
                                    stats=stats) == \
        policy_guided_search(env5, policy, beam_width=20, top_k=3, logp_weight=0.3)
    assert stats["chosen"] == "search"


def test_training_a_tiny_value_and_relabelling(tmp_path):
    pytest.importorskip("torch")
    from musicgym.compose import policy_train, value_train

    exercises = policy_train.training_exercises(3, seed=5)
    policy = ComposerPolicy.load("builtin")
    env = CounterpointEnv(**exercises[0])
    actions = value_train.sample_piece(env, policy, np.random.default_rng(0), 1.0)
    x, y = value_train.samples_of(env, actions)
    assert len(x) == len(y) == len(actions) and x.shape[1] == n_value_features()
    value, figures = value_train.train_value(
        np.concatenate([x, x]), np.concatenate([y, y]),
        np.repeat([0, 1], len(y)), hidden=8, epochs=2, log=lambda m: None)
    value.save(tmp_path / "counterpoint_value.npz")
    loaded = ComposerValue.load(tmp_path)
    ret, _ = compose_value_beam(env, policy, loaded, beam=2, top_k=2)
    assert np.isfinite(ret) and np.isfinite(figures["val_mse"])
    # DAgger: the expert continues from the policy's own prefix, keeping it
    _, rollout = compose_policy(env, policy)
    ret, cont = policy_train.expert_continuation(env, rollout[:3], width=10)
    assert np.isfinite(ret) and cont[:3] == rollout[:3]
    xr, yr, pieces = policy_train.relabelled_samples(exercises[:1], policy, cuts=1, width=10,
                                                     log=lambda m: None)
    assert len(xr) == len(yr) > 0 and len(pieces) == 1
    # validation never shares a cantus with training or the test set
    val = value_train.validation_exercises(5, train_seed=5, n_train=3)
    seen = policy_train.held_out_cantus() | {tuple(ex["cantus_firmus"]) for ex in exercises}
    assert val and all(tuple(ex["cantus_firmus"]) not in seen for ex in val)


def test_bad_value_input_raises(tmp_path):
    with pytest.raises(ConfigError, match="no composing value"):
        ComposerValue.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, w0=np.zeros((3, 1)), b0=np.zeros(1))
    with pytest.raises(ConfigError, match="retrain"):
        ComposerValue.load(bad)
    env = CounterpointEnv("fux_dorian", species=1)
    policy, value = ComposerPolicy.load("builtin"), ComposerValue.load("builtin")
    with pytest.raises(ConfigError, match="beam"):
        compose_value_beam(env, policy, value, beam=0)
    with pytest.raises(ConfigError, match="top_k"):
        compose_value_beam(env, policy, value, top_k=0)
    with pytest.raises(ConfigError, match="logp_weight"):
        compose_value_beam(env, policy, value, logp_weight=-1.0)


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "musicgym", *args], capture_output=True,
                          text=True, timeout=300)


def test_compose_cli_with_the_builtin_value(tmp_path):
    out = tmp_path / "out"
    done = _cli("compose", "--method", "policy", "--policy-value", "builtin", "--cantus",
                "D4 F4 E4 D4 G4 F4 A4 G4 F4 E4 D4", "--species", "3", "-o", str(out),
                "--no-wav", "--evaluate")
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "policy" and summary["pieces"][0]["finished"]
    assert "parallel" in done.stdout.lower()
    done = _cli("compose", "--method", "policy", "--policy-value", str(tmp_path / "no.npz"),
                "-o", str(tmp_path / "o"), "--no-wav")
    assert done.returncode != 0 and "no composing value" in done.stderr
    done = _cli("compose", "--method", "guided", "--policy-value", "builtin",
                "-o", str(tmp_path / "g"), "--no-wav")
    assert done.returncode != 0 and "policy_value" in done.stderr


def test_policy_search_setting_is_checked():
    from musicgym.compose.config import load_config, validate

    def config(**agent):
        c = load_config(None)
        c.method = "policy"
        c.agent.update(agent)
        return c

    assert validate(config(policy_value="builtin", policy_search=0)).agent["policy_search"] == 0
    with pytest.raises(ConfigError, match="policy_search"):
        validate(config(policy_value="builtin", policy_search=-1))
    with pytest.raises(ConfigError, match="policy_value"):
        validate(config(policy_search=50))
    c = config(policy_value="builtin", policy_search=10)
    c.method = "guided"
    with pytest.raises(ConfigError, match="policy_search"):
        validate(c)


def test_search_logp_default_per_species_and_bad_values_refused():
    from musicgym.compose.value import DEFAULT_SEARCH_LOGP

    policy, value = ComposerPolicy.load("builtin"), ComposerValue.load("builtin")
    assert DEFAULT_SEARCH_LOGP[5] == 0.3 and DEFAULT_SEARCH_LOGP[3] == 0.1
    env = CounterpointEnv("fux_aeolian", species=5)
    small = {"search_width": 20, "polish": False}
    default = compose_value_and_search(env, policy, value, **small)
    assert default == compose_value_and_search(env, policy, value, search_logp=0.3, **small)
    assert default != compose_value_and_search(env, policy, value, search_logp=0.0, **small)
    for bad in (-0.1, float("nan"), float("inf"), True, "0.3"):
        with pytest.raises(ConfigError, match="search_logp"):
            compose_value_and_search(env, policy, value, search_logp=bad, **small)
