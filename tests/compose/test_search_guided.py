import numpy as np
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


def test_diversity_makes_pieces_differ_at_little_cost():
    from musicgym.compose.evaluate import mean_pairwise_difference
    from musicgym.compose.search import diverse_pieces, piece_eighths

    env = CounterpointEnv("fux_dorian", species=3)
    same = diverse_pieces(env, 3, seed=0, diversity=0.0, beam_width=60)
    varied = diverse_pieces(env, 3, seed=0, diversity=0.5, beam_width=60)
    d_same = mean_pairwise_difference([piece_eighths(env, a) for _, a in same])
    d_varied = mean_pairwise_difference([piece_eighths(env, a) for _, a in varied])
    assert d_varied >= 0.25 and d_varied > d_same + 0.15
    assert np.mean([r for r, _ in varied]) > np.mean([r for r, _ in same]) - 0.5
    assert mean_pairwise_difference([piece_eighths(env, varied[0][1])] * 2) == 0.0
    with pytest.raises(ConfigError, match="diversity"):
        guided_beam_search(env, diversity=-1)
    with pytest.raises(ConfigError, match="objective"):
        guided_beam_search(env, objective="best")



def test_step_rewards_are_the_checks_rewards_with_and_without_penalty_rules(replay):
    # the searches read only the step rewards: without penalty rules they are zero and the
    # state is not judged for them; with one they are check's, and the return replays
    from musicgym.music.rules.species import ACTION_DURATIONS, ACTION_MOVES, CounterpointState

    penalised = 0
    for env in (CounterpointEnv(species=5),
                CounterpointEnv(species=5, penalties={"absence_of_parallel_perfects": 0.5})):
        reward, actions = guided_beam_search(env, beam_width=10)
        assert replay(env, actions)[0] == pytest.approx(reward)
        state = CounterpointState(env.setup)
        for action in actions:
            rewards = env.oracle.step_rewards(state)
            assert np.array_equal(rewards, env.oracle.check(state)[1])
            penalised += int((rewards < 0).sum())
            state.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
            if state.finished:
                break
    assert penalised > 0


def test_guided_search_gives_the_garbage_collector_back_as_it_found_it():
    import gc

    env = CounterpointEnv(species=2)
    assert gc.isenabled()
    first = guided_beam_search(env, beam_width=5)
    assert gc.isenabled()
    gc.disable()
    try:
        assert guided_beam_search(env, beam_width=5) == first
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ConfigError):
        guided_beam_search(env, beam_width=0)
    assert gc.isenabled()


def test_searches_run_blas_on_one_thread_and_give_it_back_as_they_found_it():
    # the composing models' small matrix products cost twice the CPU on several threads
    from threadpoolctl import threadpool_info, threadpool_limits

    from musicgym.compose.search import _gc_paused

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    if not blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can see")
    with threadpool_limits(limits=2, user_api="blas"):
        outside = blas_threads()
        assert set(_gc_paused(blas_threads)()) == {1}
        assert blas_threads() == outside
        with pytest.raises(ConfigError):
            guided_beam_search(CounterpointEnv(species=2), beam_width=0)
        assert blas_threads() == outside



def test_compiled_masks_read_by_future_key_are_the_compiled_paths_and_fresh():
    # the oracle keeps the compiled path's masks by future key (a search meets the same
    # future many times): the same masks as the Python path's, each a fresh array, also when
    # the compiled memo is emptied or a dead-end search runs out of budget
    from musicgym.music.rules import STRICT_RULES, RuleSet
    from musicgym.music.rules.lookahead import CounterpointOracle
    from musicgym.music.rules.species import ACTION_DURATIONS, ACTION_MOVES, CounterpointState

    env = CounterpointEnv("fux_dorian", species=5)
    _, actions = guided_beam_search(env, beam_width=20)
    for options in ({}, {"max_cache_size": 5}, {"node_budget": 3}):
        kept, python = (CounterpointOracle(RuleSet("counterpoint", masks=STRICT_RULES),
                                           compiled=compiled, **options)
                        for compiled in (True, False))
        for _ in range(2):  # the second time the masks are read back by key
            state = CounterpointState(env.setup)
            for action in actions:
                mask = kept.mask(state)
                np.testing.assert_array_equal(mask, python.mask(state))
                mask[:] = False  # the caller's own array
                assert kept.mask(state).any()
                state.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
                if state.finished:
                    break
        assert kept._fast is not None and kept._fast_masks


@pytest.mark.parametrize("kwargs", [{"cantus_firmus": "fux_dorian", "species": 5},
                                    {"cantus_firmus": "fux_lydian", "species": 3}])
def test_pieces_screened_by_the_score_bound_leave_the_best_piece_as_it_was(kwargs):
    # n_pieces > 1 keeps every finished piece's exact return (no screening): the best piece
    # and the counts must be the same as with the screen (n_pieces=1)
    env = CounterpointEnv(**kwargs)
    screened, exact = {}, {}
    best = guided_beam_search(env, beam_width=30, stats=screened)
    assert guided_beam_search(env, beam_width=30, stats=exact, n_pieces=3) == best
    assert exact["pieces"][0] == best == screened["pieces"][0]
    for key in ("expanded", "children", "evaluations", "objective"):
        assert screened[key] == exact[key]


def test_the_score_bound_is_never_below_the_score():
    from musicgym.compose.search import score_bound_terms
    from musicgym.music.rules import score_piece
    from musicgym.music.rules.species import ACTION_DURATIONS, ACTION_MOVES

    env = CounterpointEnv(cantus_firmus="fux_dorian", species=5)
    env.reset(seed=0)
    terms = score_bound_terms(env)
    assert [w for w, _ in terms] == [1.0, 1.0, 1.0]  # entropy, climax, skips
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 40:
        env.reset()
        state = env.state.copy()
        while not state.finished:
            allowed = np.flatnonzero(env.oracle.mask(state))
            action = int(rng.choice(allowed))
            state.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
        total = score_piece(state)["total"]
        assert sum(w * score(state) for w, score in terms) >= total
        checked += 1
    # parameters of the two scores left out, or a negative weight: no bound
    assert score_bound_terms(CounterpointEnv(scoring_fn_params={
        "narrow_ranges": {"min_size": 5}})) == []
    assert score_bound_terms(CounterpointEnv(scoring_coefs={"looped_fragments": -1.0})) == []
