"""compose_value_and_search's note_cost: a cost per note in the policy-guided search's ranking,
through the policy's log-probabilities."""
import numpy as np
import pytest

from musicgym.compose.policy import ComposerPolicy, policy_guided_search
from musicgym.compose.value import (
    DEFAULT_NOTE_COST,
    ComposerValue,
    _NoteCostPrior,
    compose_value_and_search,
)
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import ConfigError
from musicgym.music.rules.species import CounterpointState


@pytest.fixture(scope="module")
def models():
    return ComposerPolicy.load("builtin"), ComposerValue.load("builtin")


def test_the_shifted_prior_keeps_the_policy_s_order():
    policy = ComposerPolicy.load("builtin")
    env = CounterpointEnv(species=5)
    env.reset()
    state = CounterpointState(env.unwrapped.setup)
    mask = env.unwrapped.oracle.mask(state)
    plain = policy.log_probs_batch([state], [mask])
    shifted = _NoteCostPrior(policy, 0.3).log_probs_batch([state], [mask])
    allowed = np.isfinite(plain)
    assert np.array_equal(allowed, np.isfinite(shifted))
    np.testing.assert_allclose(shifted[allowed], plain[allowed] - 0.3)
    assert np.array_equal(np.argsort(-plain[0], kind="stable"),
                          np.argsort(-shifted[0], kind="stable"))


def test_no_note_cost_is_the_default_piece(models):
    policy, value = models
    env = CounterpointEnv(species=5)
    assert DEFAULT_NOTE_COST[5] == 0.0
    assert compose_value_and_search(env, policy, value, search_width=20, polish=False) == \
        compose_value_and_search(env, policy, value, search_width=20, polish=False,
                                 note_cost=0.0)


def test_a_note_cost_changes_only_the_ranking(models, replay):
    policy, value = models
    env = CounterpointEnv(species=5)
    reward, actions = compose_value_and_search(env, policy, value, search_width=20,
                                               polish=False, note_cost=0.05)
    replayed, terminated, info = replay(env, actions)
    assert terminated and replayed == pytest.approx(reward)  # still the env's return
    assert all(v == 0 for v in info["rule_violations"].values())
    # the same as the search with the shifted prior: logp 0.1 x (shift 0.5 a note)
    expected = policy_guided_search(env, _NoteCostPrior(policy, 0.5), beam_width=20, top_k=3,
                                    logp_weight=0.1)
    assert (reward, actions) == expected


@pytest.mark.parametrize("cost", [-0.01, float("nan"), float("inf"), "0.01", True])
def test_a_bad_note_cost_is_refused(models, cost):
    policy, value = models
    with pytest.raises(ConfigError, match="note_cost"):
        compose_value_and_search(CounterpointEnv(species=5), policy, value, search_width=5,
                                 note_cost=cost)


def test_a_note_cost_needs_the_log_probabilities_in_the_ranking(models):
    policy, value = models
    with pytest.raises(ConfigError, match="search_logp"):
        compose_value_and_search(CounterpointEnv(species=5), policy, value, search_width=5,
                                 search_logp=0.0, note_cost=0.01)
