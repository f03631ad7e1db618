import math

import numpy as np
import pytest

from musicgym.compose.search import (
    ENTROPY_ESTIMATES,
    guided_beam_search,
    reachable_entropy,
    usable_ranges,
)
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import ConfigError


def test_reachable_entropy_levels_up_the_least_used_pitches_by_hand():
    # counts 0,2,1,0 (3 notes); the end note on index 1 -> 0,3,1,0; 3 more notes over all
    # four pitches fill the three lowest (0, 0, 1) to 4/3 each: 4/3, 3, 4/3, 4/3 (7 notes)
    counts = [0, 2, 1, 0]
    clogc = 2 * math.log(2)
    got = reachable_entropy(counts, 3, clogc, 3.0, 0, 3, 1)
    p = np.array([4 / 3, 3, 4 / 3, 4 / 3]) / 7
    assert got == pytest.approx(float(-(p * np.log(p)).sum()))
    assert counts == [0, 2, 1, 0]  # restored
    # only indices 2..3 usable: 1 and 0 levelled to 2 each: 0, 3, 2, 2
    p = np.array([3, 2, 2]) / 7
    assert reachable_entropy(counts, 3, clogc, 3.0, 2, 3, 1) == pytest.approx(
        float(-(p * np.log(p)).sum()))
    # no notes left (or no usable pitch): the notes so far + the end note
    p = np.array([3, 1]) / 4
    want = float(-(p * np.log(p)).sum())
    assert reachable_entropy(counts, 3, clogc, 0.0, 0, 3, 1) == pytest.approx(want)
    assert reachable_entropy(counts, 3, clogc, 5.0, 1, 0, 1) == pytest.approx(want)


def test_usable_ranges_are_the_pitches_above_the_lowest_cantus_note_left():
    env = CounterpointEnv()
    env.reset()
    setup = env.unwrapped.setup
    assert setup.counterpoint_above
    ranges = usable_ranges(setup)
    assert len(ranges) == setup.total_eighths + 1
    for t in range(8, setup.final_bar_eighth):
        lowest_cf = int(setup.cantus_midi[t // 8:setup.n_bars - 1].min())
        lo, hi = ranges[t]
        assert hi == setup.highest_position
        assert setup.position_midi[lo] > lowest_cf
        assert lo == setup.lowest_position or setup.position_midi[lo - 1] <= lowest_cf
    assert ranges[setup.final_bar_eighth] == (1, 0)  # no middle bar left


@pytest.mark.parametrize("estimate", ["reachable", "blend"])
def test_searches_with_the_reachable_entropy_replay_without_violations(replay, estimate):
    env = CounterpointEnv(species=5)
    reward, actions = guided_beam_search(env, seed=0, beam_width=20,
                                         entropy_estimate=estimate)
    replayed, terminated, info = replay(env, actions)
    assert terminated and replayed == pytest.approx(reward)
    assert all(v == 0 for v in info["rule_violations"].values())


def test_the_default_estimate_is_so_far():
    env = CounterpointEnv(species=5)
    assert guided_beam_search(env, seed=0, beam_width=20) == guided_beam_search(
        env, seed=0, beam_width=20, entropy_estimate="so_far")
    assert ENTROPY_ESTIMATES[0] == "so_far"


def test_an_unknown_entropy_estimate_is_refused():
    from musicgym.compose.policy import ComposerPolicy, policy_guided_search
    from musicgym.compose.value import ComposerValue, compose_value_and_search

    env = CounterpointEnv(species=5)
    with pytest.raises(ConfigError, match="entropy_estimate"):
        guided_beam_search(env, beam_width=5, entropy_estimate="final")
    policy = ComposerPolicy.load("builtin")
    with pytest.raises(ConfigError, match="entropy_estimate"):
        policy_guided_search(env, policy, beam_width=5, entropy_estimate=None)
    with pytest.raises(ConfigError, match="entropy_estimate"):
        compose_value_and_search(env, policy, ComposerValue.load("builtin"), beam=0,
                                 search_width=5, entropy_estimate="Reachable")


@pytest.mark.parametrize("weight", [-0.5, float("nan"), float("inf"), "2", True, None])
def test_a_bad_entropy_weight_is_refused(weight):
    from musicgym.compose.policy import ComposerPolicy
    from musicgym.compose.value import ComposerValue, compose_value_and_search

    env = CounterpointEnv(species=5)
    with pytest.raises(ConfigError, match="entropy_weight"):
        guided_beam_search(env, beam_width=5, entropy_weight=weight)
    with pytest.raises(ConfigError, match="entropy_weight"):
        compose_value_and_search(env, ComposerPolicy.load("builtin"),
                                 ComposerValue.load("builtin"), beam=0, search_width=5,
                                 entropy_weight=weight)


def test_the_entropy_weight_changes_only_the_ranking(replay):
    env = CounterpointEnv(species=5)
    assert guided_beam_search(env, seed=0, beam_width=20) == guided_beam_search(
        env, seed=0, beam_width=20, entropy_weight=1.0)
    reward, actions = guided_beam_search(env, seed=0, beam_width=20, entropy_weight=3.0)
    replayed, terminated, info = replay(env, actions)
    assert terminated and replayed == pytest.approx(reward)  # still the env's return
    assert all(v == 0 for v in info["rule_violations"].values())
