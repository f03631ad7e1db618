import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import musicgym  # noqa: F401  (registers the ids)
from musicgym.envs.melody import (
    MelodyEnv,
    beam_melody,
    evaluate_melody,
    melody_actions,
    melody_notes,
    piece_from_melody,
    random_melody,
    spell_key,
    time_signature_of,
)
from musicgym.errors import InvalidActionError, RuleError, ScoreFileError
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


# ---- composing melodies (musicgym compose --task melody) -----------------------------


@pytest.mark.parametrize("tonic, mode, keys, names", [
    ("C", "major", [60, 61, 70, 71], ["C4", "C#4", "A#4", "B4"]),
    ("F", "major", [70, 66, 61], ["Bb4", "Gb4", "Db4"]),
    ("F#", "major", [65, 67, 62], ["E#4", "G4", "D4"]),
    ("D", "dorian", [71, 72, 66], ["B4", "C5", "F#4"]),
])
def test_keys_are_spelled_in_the_key(tonic, mode, keys, names):
    assert [spell_key(Scale(tonic, mode), k) for k in keys] == names


def test_events_become_notes_and_metres():
    assert melody_notes([HOLD, 60, HOLD, REST, HOLD, 62, 64, HOLD]) == [
        (1, 2, 60), (5, 1, 62), (6, 2, 64)]
    assert [time_signature_of(n) for n in (8, 6, 7, 4)] == [(4, 4), (3, 4), (7, 8), (2, 4)]


@pytest.mark.parametrize("search", [random_melody, beam_melody])
def test_searches_are_seeded_and_their_return_is_the_envs(search):
    env = MelodyEnv(tonic="G", mode="mixolydian", masks=["rl_tuner_key"])
    total, actions = search(env, seed=5)
    assert search(env, seed=5) == (total, actions)
    assert search(env, seed=6)[1] != actions
    assert len(actions) == env.n_steps
    env.reset()
    rewards = [env.step(a)[1] for a in actions]  # raises nothing: every action allowed
    assert sum(rewards) == pytest.approx(total)
    piece = piece_from_melody(env, actions)
    assert all(Scale("G", "mixolydian").contains_midi(piece.notes["pitch"]))


def test_beam_search_beats_random_melodies():
    env = MelodyEnv()
    beams = [beam_melody(env, seed=s, beam_width=8)[0] for s in range(3)]
    randoms = [random_melody(env, seed=s)[0] for s in range(20)]
    assert min(beams) > max(randoms)
    with pytest.raises(ValueError, match="beam_width"):
        beam_melody(env, beam_width=0)


def test_written_melody_is_judged_from_its_notes():
    env = MelodyEnv(masks=["rl_tuner_key"])
    _, actions = beam_melody(env, seed=1)
    piece = piece_from_melody(env, actions)
    assert melody_actions(piece, env) == actions
    before = evaluate_melody(piece)
    assert before["out_of_key"] == 0 and before["mask_violations"] == 0
    # an edited note (C# in C major) is judged as edited
    piece.names[0] = "C#" + piece.names[0][-1]
    after = evaluate_melody(piece)
    assert after["out_of_key"] == 1 and after["mask_violations"] == 1
    assert after["rule_rewards"]["rl_tuner_key"] == before["rule_rewards"]["rl_tuner_key"] - 1


def test_melody_piece_errors():
    env = MelodyEnv(n_steps=4, steps_per_bar=4)
    with pytest.raises(ScoreFileError, match="needs 4 actions"):
        piece_from_melody(env, [2, 0])
    with pytest.raises(ScoreFileError, match="no note"):
        piece_from_melody(env, [1, 1, 1, 1])
    piece = piece_from_melody(env, [2, 0, 0, 3])
    piece.exercise = {}
    with pytest.raises(ScoreFileError, match="not a melody"):
        evaluate_melody(piece)
