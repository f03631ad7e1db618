import numpy as np
import pytest

from musicgym.compose.search import beam_search, random_search
from musicgym.envs.counterpoint import CounterpointEnv


@pytest.mark.slow
def test_beam_search_is_seeded_and_beats_random_pieces(replay):
    env = CounterpointEnv()
    reward, actions = beam_search(env, seed=3, beam_width=2, n_records_to_keep=4, n_trials=4)
    replayed, terminated, info = replay(env, actions)
    assert terminated and replayed == pytest.approx(reward) == info["scores"]["total"]
    assert all(v == 0 for v in info["rule_violations"].values())
    assert beam_search(env, seed=3, beam_width=2, n_records_to_keep=4, n_trials=4) == (
        reward, actions)
    randoms = [random_search(env, seed=s)[0] for s in range(8)]
    assert reward > np.median(randoms)


def test_trial_estimate_is_rl_musicians_product_of_allowed_counts():
    from musicgym.compose.search import estimate_n_trials
    from musicgym.music.rules.species import CounterpointState

    env = CounterpointEnv()
    env.reset()
    n_allowed = int(env.action_masks().sum())
    state = CounterpointState(env.setup)
    rng = np.random.default_rng(0)
    assert estimate_n_trials(env, state, rng, depth=1, width=4, factor=3) == 3 * n_allowed
    deeper = estimate_n_trials(env, state, np.random.default_rng(0), depth=3)
    assert deeper == estimate_n_trials(env, state, np.random.default_rng(0), depth=3)
    assert deeper > 3 * n_allowed
