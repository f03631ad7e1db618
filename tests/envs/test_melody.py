import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import musicgym  # noqa: F401  (registers the ids)
from musicgym.envs.melody import MelodyEnv
from musicgym.errors import InvalidActionError, RuleError
from musicgym.music.rules import RULES
from musicgym.music.rules.melody import HOLD, REST, RL_TUNER_RULES, MelodyState
from musicgym.music.scales import Scale


def test_passes_gymnasium_env_checker():
    env = gym.make("musicgym/Melody-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)


def test_passes_stable_baselines3_env_checker():
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_checker.check_env(gym.make("musicgym/Melody-v0").unwrapped)


def test_nine_rl_tuner_rules_are_registered():
    assert len(RL_TUNER_RULES) == 9
    assert all(RULES[n].task == "melody" and RULES[n].source == "rl-tuner" for n in RL_TUNER_RULES)


def _play(env, actions):
    env.reset()
    rewards = []
    for action in actions:
        _, reward, terminated, _, info = env.step(action)
        rewards.append(reward)
    return rewards, terminated, info


def test_episode_length_and_rule_breakdown():
    env = MelodyEnv()
    rng = np.random.default_rng(0)
    _, terminated, info = _play(env, rng.integers(1, 38, size=32))
    assert terminated and set(info["rule_rewards"]) == set(RL_TUNER_RULES)


def test_key_tonic_and_repetition_rewards():
    state = MelodyState(Scale("D", "dorian"))
    cand = state.action_events
    key = RULES["rl_tuner_key"].fn(state, cand)
    assert key[2 + (62 - 48)] == 0.0 and key[2 + (66 - 48)] == -1.0  # D4 in, F#4 out
    tonic = RULES["rl_tuner_tonic"].fn(state, cand)
    assert tonic[2 + (62 - 48)] == 3.0 and tonic[2 + (64 - 48)] == 0.0
    for _ in range(5):
        state.add(2 + 14)  # D4 five times
    repeating = RULES["rl_tuner_repeating"].fn(state, cand)
    assert repeating[2 + 14] == -100.0 and repeating[2 + 16] == 0.0


def test_preferred_intervals_and_leap_resolution():
    state = MelodyState(Scale("C", "major"))
    cand = state.action_events
    state.add(2 + 12)  # C4
    intervals = RULES["rl_tuner_preferred_intervals"].fn(state, cand)
    assert intervals[2 + 16] == pytest.approx(0.15 * 5)  # C4 -> E4, in-key third
    assert intervals[2 + 19] == pytest.approx(0.1 * 5)  # C4 -> G4, in-key fifth
    assert intervals[2 + 15] == 0.0  # minor third scores 0, as in RL Tuner
    assert intervals[2 + 23] == pytest.approx(-0.3 * 5)  # major seventh
    assert intervals[0] == pytest.approx(0.3 * 5)  # hold after the tonic
    state.add(2 + 19)  # leap up a fifth to G4
    leap = RULES["rl_tuner_leap_up_back"].fn(state, cand)
    assert leap[2 + 26] == -5.0  # leaping up again
    assert leap[2 + 12] == 5.0 and leap[2 + 11] == 5.0  # back to or past C4
    assert leap[2 + 17] == 0.0  # F4: not yet back
    assert cand[0] == HOLD and cand[1] == REST


def test_masks_and_invalid_actions():
    env = MelodyEnv(masks=["rl_tuner_key"], invalid_action="raise")
    _, info = env.reset()
    assert info["action_mask"][2 + 13] == 0  # C#4 is outside C major
    with pytest.raises(InvalidActionError, match="rl_tuner_key"):
        env.step(2 + 13)
    env = MelodyEnv(masks=["rl_tuner_key"])
    env.reset()
    _, reward, _, _, info = env.step(2 + 13)
    assert reward == -1.0 and info["invalid_action"]
    with pytest.raises(RuleError, match="unknown melody rule"):
        MelodyEnv(masks=["cadence"])
