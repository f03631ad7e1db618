"""The compiled rules and dead-end search (musicgym.music.rules.fastmask) give the Python
oracle's masks bit for bit, on generated exercises of every species, above and below the
cantus, at small node budgets and cache sizes too; rule sets they do not cover keep the Python
path."""

import numpy as np
import pytest

from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.cantus import generate_exercises
from musicgym.music.rules import RL_MUSICIAN_RULES, STRICT_RULES, RuleSet
from musicgym.music.rules.fastmask import count_loops
from musicgym.music.rules.lookahead import CounterpointOracle
from musicgym.music.rules.species import CounterpointState, make_setup

EXERCISES = generate_exercises(10, seed=4242, species=(1, 2, 3, 4, 5),
                               voices=("above", "below"))


def _walk_and_compare(setup, ruleset, seed, episodes=3, **options):
    """Random walks on the Python oracle's masks; the compiled oracle must agree at every
    state (both fresh, each with its own caches). Returns the number of states compared."""
    fast = CounterpointOracle(ruleset, compiled=True, **options)
    slow = CounterpointOracle(ruleset, compiled=False, **options)
    rng = np.random.default_rng(seed)
    compared = 0
    for _ in range(episodes):
        state = CounterpointState(setup)
        while not state.finished:
            expected = slow.mask(state)
            np.testing.assert_array_equal(fast.mask(state), expected)
            compared += 1
            allowed = np.flatnonzero(expected)
            if not len(allowed):
                break
            action = int(rng.choice(allowed))
            state.add(action % 15 - 7, (1, 2, 4, 8)[action // 15])
    assert fast.compiled and fast._fast is not None  # the compiled path did the work
    return compared


@pytest.mark.parametrize("index", range(len(EXERCISES)))
def test_compiled_masks_equal_python_masks(index):
    setup = make_setup(**EXERCISES[index])
    ruleset = RuleSet("counterpoint", masks=STRICT_RULES)
    assert _walk_and_compare(setup, ruleset, seed=index) > 10
    assert _walk_and_compare(setup, ruleset, seed=index, lookahead=False) > 5


@pytest.mark.parametrize("options", [{"node_budget": 3}, {"node_budget": 40},
                                     {"max_cache_size": 5}])
def test_budget_and_cache_limits_are_the_same(options):
    # a search cut short keeps the note, and emptied caches change nothing: both as before
    for index in (2, 4, 9):
        setup = make_setup(**EXERCISES[index])
        ruleset = RuleSet("counterpoint", masks=STRICT_RULES)
        _walk_and_compare(setup, ruleset, seed=index, **options)


@pytest.mark.parametrize("masks", [RL_MUSICIAN_RULES, STRICT_RULES[::2], ["cadence"]])
def test_rule_subsets(masks):
    for index in (3, 4):
        setup = make_setup(**EXERCISES[index])
        _walk_and_compare(setup, RuleSet("counterpoint", masks=masks), seed=index)


@pytest.mark.parametrize("kwargs", [
    {"penalties": {"cadence": 0.5}},
    {"rule_params": {"absence_of_large_leaps": {"max_semitones": 7}}},
    {"rules": [*STRICT_RULES, lambda state, cand: cand.midi != 74]},
])
def test_rule_sets_it_does_not_cover_keep_the_python_path(kwargs):
    env = CounterpointEnv(**{**EXERCISES[4], **kwargs})
    _, info = env.reset(seed=0)
    assert not env.oracle.compiled and env.oracle._fast is None
    assert info["action_mask"].any()


def test_a_range_beyond_the_packed_key_keeps_the_python_path():
    setup = make_setup(**{**EXERCISES[4], "start_note": "E8", "end_note": "A8",
                          "lowest_note": "G7", "highest_note": "B9"})
    oracle = CounterpointOracle(RuleSet("counterpoint", masks=STRICT_RULES), compiled=True)
    oracle.mask(CounterpointState(setup))
    assert oracle._fast is None and not oracle.compiled


def test_envs_use_the_compiled_path_from_the_second_exercise_on():
    first, second = CounterpointEnv(**EXERCISES[4]), CounterpointEnv(**EXERCISES[5])
    first.reset()
    second.reset()
    assert second.oracle.compiled and second.oracle._fast is not None
    explicit = CounterpointEnv(**EXERCISES[4])
    explicit.oracle.compiled = False
    explicit.reset()
    assert explicit.oracle._fast is None


def _count_loops_reference(columns, min_size, max_size, bar):
    """Fragments (start, size) followed at once by an identical one, by their definition."""
    total, count = len(columns), 0
    for size in range(min_size, max_size + 1):
        for start in range(total):
            if start > min(total - 2 * size, total - bar - 1):
                continue
            later = [columns[min(j + size, total - 1)] for j in range(start, min(start + size,
                                                                                 total))]
            count += list(columns[start:start + size]) == later
    return count


def _looping_columns(rng, total: int, shortest_motif: int) -> np.ndarray:
    """A piano roll of ``total`` columns: a random motif (``shortest_motif`` to 8 columns)
    repeated, with up to 3 columns changed, so that loops are found and broken."""
    base = rng.integers(0, 3, size=int(rng.integers(shortest_motif, 9)))
    columns = np.tile(base, total // len(base) + 1)[:total].astype(np.int64)
    columns[rng.integers(0, total, size=int(rng.integers(0, 4)))] = 7
    return columns


def test_count_loops_matches_its_definition():
    rng = np.random.default_rng(0)
    for _ in range(30):
        total = int(rng.integers(24, 100))
        columns = _looping_columns(rng, total, shortest_motif=2)
        assert count_loops(columns, 4, total // 2, 8) == _count_loops_reference(
            columns.tolist(), 4, total // 2, 8)


def test_count_loops_in_numpy_is_the_compiled_count():
    # looped_fragments counts with NumPy until numba is loaded in the process
    from musicgym.music.rules.scores import _count_loops

    rng = np.random.default_rng(1)
    for _ in range(300):
        total = int(rng.integers(9, 130))
        columns = _looping_columns(rng, total, shortest_motif=1)
        # sizes from 0, beyond total // 2 and none at all (min_size > max_size) too
        min_size, max_size = int(rng.integers(0, 9)), int(rng.integers(0, total + 2))
        bar = int(rng.choice([4, 8]))
        assert _count_loops(columns, min_size, max_size, bar) == count_loops(
            columns, min_size, max_size, bar)

