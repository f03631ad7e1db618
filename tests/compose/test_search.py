import numpy as np
import pytest

from musicgym.compose.search import beam_search, random_search
from musicgym.envs.counterpoint import CounterpointEnv


def _replay(env, actions):
    env.reset()
    total = 0.0
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
    return total, terminated, info


@pytest.mark.slow
def test_beam_search_is_seeded_and_beats_random_pieces():
    env = CounterpointEnv()
    reward, actions = beam_search(env, seed=3, beam_width=2, n_records_to_keep=4, n_trials=4)
    replayed, terminated, info = _replay(env, actions)
    assert terminated and replayed == pytest.approx(reward) == info["scores"]["total"]
    assert all(v == 0 for v in info["rule_violations"].values())
    assert beam_search(env, seed=3, beam_width=2, n_records_to_keep=4, n_trials=4) == (
        reward, actions)
    randoms = [random_search(env, seed=s)[0] for s in range(8)]
    assert reward > np.median(randoms)
