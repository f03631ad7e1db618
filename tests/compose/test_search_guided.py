import pytest

from musicgym.compose.search import guided_beam_search, random_search
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import ConfigError


def test_guided_beam_search_is_seeded_replays_and_beats_random_pieces(replay):
    env = CounterpointEnv()
    stats = {}
    reward, actions = guided_beam_search(env, seed=1, beam_width=20, stats=stats)
    replayed, terminated, info = replay(env, actions)
    assert terminated and replayed == pytest.approx(reward) == info["scores"]["total"]
    assert all(v == 0 for v in info["rule_violations"].values())
    assert stats["evaluations"] > 0 and stats["children"] >= stats["expanded"] > 0
    assert guided_beam_search(env, seed=1, beam_width=20) == (reward, actions)
    randoms = [random_search(env, seed=s)[0] for s in range(8)]
    assert reward > max(randoms)


def test_guided_beam_search_reads_the_env_score_weights(replay):
    # with only the skip count scored, the best piece makes exactly 3 skips (reward 1.0)
    env = CounterpointEnv(scoring_coefs={"number_of_skips": 1.0})
    reward, actions = guided_beam_search(env, seed=0, beam_width=10)
    assert reward == pytest.approx(1.0)
    _, _, info = replay(env, actions)
    assert set(info["scores"]) == {"number_of_skips", "total"}


@pytest.mark.parametrize("kwargs", [{"beam_width": 0}, {"beam_width": 2.5}, {"noise": -1.0}])
def test_guided_beam_search_refuses_bad_settings(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        guided_beam_search(CounterpointEnv(), **kwargs)
