import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import musicgym  # noqa: F401  (registers the ids)
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import CantusFirmusError, InvalidActionError, RuleError
from musicgym.music.rules.species import CANTUS_FIRMI, EIGHTHS_PER_BAR, encode_action


def _random_episode(env, rng):
    obs, info = env.reset()
    while True:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return reward, terminated, info


def test_passes_gymnasium_env_checker():
    env = gym.make("musicgym/Counterpoint-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)


def test_passes_stable_baselines3_env_checker():
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_checker.check_env(gym.make("musicgym/Counterpoint-v0").unwrapped)


def test_observation_and_masks():
    env = CounterpointEnv()
    obs, info = env.reset(seed=1)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].shape == (60,)
    assert np.array_equal(env.action_masks(), info["action_mask"].astype(bool))
    # channels: the whole cantus is drawn, the counterpoint only up to bar 1
    n_keys, total = env._n_keys, env.setup.total_eighths
    roll = obs[:4 * n_keys * total].reshape(4, n_keys, total)
    assert roll[0].sum() == total and roll[2].sum() == env.setup.n_bars
    assert roll[1].sum() == EIGHTHS_PER_BAR - 4 and roll[3].sum() == 1
    assert obs[-9 + 0] == 1.0  # bar position: eighth 0 of bar 2
    obs[:] = 0.5  # returned arrays are copies
    assert env._get_obs().max() == 1.0


def test_masked_random_policy_never_dead_ends_and_scores_are_bounded():
    env = CounterpointEnv()
    rng = np.random.default_rng(0)
    results = [_random_episode(env, rng) for _ in range(15)]
    dead_ends = sum(bool(info.get("dead_end")) for _, _, info in results)
    assert dead_ends == 0
    for reward, terminated, info in results:
        assert terminated
        assert reward == pytest.approx(info["scores"]["total"]) and reward <= 3.0
        assert all(count == 0 for count in info["rule_violations"].values())


@pytest.mark.slow
def test_dead_end_rate_without_lookahead_is_high_and_with_it_zero():
    # RL-Musician's rules without lookahead: the situation of its env (99 % dead ends)
    rng = np.random.default_rng(0)
    plain = CounterpointEnv(rules="rl_musician", lookahead=False)
    results = [_random_episode(plain, rng) for _ in range(100)]
    rate = np.mean([bool(info.get("dead_end")) for _, _, info in results])
    assert rate > 0.5
    assert all(r == -3.0 for r, _, info in results if info.get("dead_end"))
    ours = CounterpointEnv(rules="rl_musician")
    results = [_random_episode(ours, rng) for _ in range(100)]
    assert not any(info.get("dead_end") for _, _, info in results)


def test_invalid_action_raise_and_penalize():
    env = CounterpointEnv(invalid_action="raise")
    _, info = env.reset()
    bad = int(np.flatnonzero(info["action_mask"] == 0)[0])
    with pytest.raises(InvalidActionError, match=f"action {bad} .* is not allowed at eighth 8"):
        env.step(bad)
    with pytest.raises(InvalidActionError, match="not in Discrete"):
        env.step(60)
    env = CounterpointEnv(invalid_action="penalize")
    obs, info = env.reset()
    obs2, reward, terminated, truncated, info2 = env.step(bad)
    assert reward == -1.0 and info2["invalid_action"] and not terminated
    assert np.array_equal(obs, obs2) and info2["time_eighths"] == info["time_eighths"]


def test_invalid_action_message_names_the_broken_rule():
    env = CounterpointEnv(invalid_action="raise", lookahead=False)
    env.reset()
    with pytest.raises(InvalidActionError, match="absence_of_parallel_perfects"):
        env.step(encode_action(+1, 8))  # species 5, G4/C4 -> A4/D4 in bar 2


@pytest.mark.parametrize("species", [1, 2, 3, 4, 5])
def test_every_species_finishes_on_the_default_cantus(species):
    env = CounterpointEnv(species=species)
    rng = np.random.default_rng(species)
    reward, terminated, info = _random_episode(env, rng)
    assert terminated
    durations = env.state.durations[1:-1]
    expected = {1: {8}, 2: {4}, 3: {2}, 4: {4, 8}, 5: {1, 2, 4, 8}}[species]
    assert set(durations) <= expected


def test_builtin_cantus_firmi_in_several_modes():
    solvable = 0
    for name in CANTUS_FIRMI:
        env = CounterpointEnv(cantus_firmus=name, species=1)
        reward, terminated, _ = _random_episode(env, np.random.default_rng(0))
        solvable += terminated
    assert solvable == len(CANTUS_FIRMI)


def test_penalty_mode_counts_violations():
    env = CounterpointEnv(species=1, rules="rl_musician",
                          penalties={"absence_of_parallel_perfects": 0.5})
    _, info = env.reset()
    assert info["rule_violations"] == {**info["rule_violations"], "absence_of_parallel_perfects": 0}
    parallel_fifth = encode_action(+1, 8)  # G4/C4 -> A4/D4
    assert info["action_mask"][parallel_fifth]
    _, reward, *_, info = env.step(parallel_fifth)
    assert reward == -0.5 and info["rule_violations"]["absence_of_parallel_perfects"] == 1


def test_bad_set_up_raises_specific_errors():
    with pytest.raises(CantusFirmusError, match="not in C major"):
        CounterpointEnv(cantus_firmus=["C4", "D#4", "C4"], tonic="C", mode="major")
    with pytest.raises(CantusFirmusError, match="unknown built-in cantus"):
        gym.make("musicgym/Counterpoint-v0", cantus_firmus="nope")
    with pytest.raises(CantusFirmusError, match="no counterpoint can be written"):
        CounterpointEnv(cantus_firmus="fux_phrygian", species=2).reset()
    with pytest.raises(InvalidActionError, match="invalid_action must be"):
        CounterpointEnv(invalid_action="ignore")
    # bad rules are a rule error, not the cantus firmus's
    for rules in ("textbook", 3):
        with pytest.raises(RuleError, match="rules must be 'strict', 'rl_musician' or a list"):
            CounterpointEnv(rules=rules)
    with pytest.raises(RuleError, match="unknown counterpoint rule 'nope'"):
        CounterpointEnv(rules=["nope"])


def test_cantus_by_its_notes_alone_in_any_form():
    dorian = "D4 F4 E4 D4 G4 F4 A4 G4 F4 E4 D4"
    from_string = CounterpointEnv(dorian, species=1)
    from_midi = CounterpointEnv([62, 65, 64, 62, 67, 65, 69, 67, 65, 64, 62], species=1)
    # the refused case: tonic and mode given, no start, end or range
    given_mode = CounterpointEnv(dorian.split(), tonic="D", mode="dorian", species=1)
    builtin = CounterpointEnv("fux_dorian", species=1)
    for env in (from_string, from_midi, given_mode):
        assert env.setup.start_position == builtin.setup.start_position
        assert env.setup.end_position == builtin.setup.end_position
        assert env.setup.scale == builtin.setup.scale
        env.reset()
    below = CounterpointEnv("fux_dorian", species=2, voice="below")
    assert not below.setup.counterpoint_above
    assert below.setup.highest_position <= max(below.setup.cantus_positions)
    below.reset()
    with pytest.raises(CantusFirmusError, match="voice"):
        CounterpointEnv(dorian, voice="middle")
    with pytest.raises(CantusFirmusError, match="note names"):
        CounterpointEnv([62, 65.5, 62])
