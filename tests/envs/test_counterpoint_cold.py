"""The fast paths of a fresh exercise (the static verdict table built at the first reset, the
dead-end search walking forward and back on one state, its answers keyed by what the future
depends on) change nothing: a fresh env and a warm one agree step by step, the table equals the
rules run one (last note, time) at a time, and push/pop leave a state as it was."""

import numpy as np
import pytest

from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.rules import STRICT_RULES
from musicgym.music.rules.lookahead import StaticTable
from musicgym.music.rules.species import (
    EIGHTHS_PER_BAR,
    CounterpointState,
    encode_action,
)

EXERCISES = [
    {},
    {"cantus_firmus": "fux_dorian", "species": 2},
    {"cantus_firmus": "fux_mixolydian", "species": 3,
     "rules": [r for r in STRICT_RULES if r not in ("absence_of_hidden_perfects",
                                                    "consonance_on_strong_beat")],
     "penalties": {"absence_of_hidden_perfects": 0.5, "consonance_on_strong_beat": 0.25}},
    # a counterpoint below the cantus
    {"cantus_firmus": "fux_dorian", "species": 5, "start_note": "A3", "end_note": "D3",
     "lowest_note": "C3", "highest_note": "C4"},
]


def _episodes(env, seed, n):
    """Masks, rewards, observations and infos of ``n`` random masked episodes."""
    rng = np.random.default_rng(seed)
    record = []
    for _ in range(n):
        obs, info = env.reset()
        record.append((obs, info["action_mask"], None, None))
        done = False
        while not done:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            obs, reward, terminated, truncated, info = env.step(action)
            record.append((obs, info["action_mask"], reward,
                           (terminated, truncated, info["rule_violations"],
                            info.get("scores"), info.get("dead_end"))))
            done = terminated or truncated
    return record


@pytest.mark.parametrize("kwargs", EXERCISES)
def test_fresh_and_warm_envs_agree(kwargs):
    warm = CounterpointEnv(**kwargs)
    _episodes(warm, seed=100, n=12)  # fill its caches with other episodes
    fresh = CounterpointEnv(**kwargs)
    got_warm, got_fresh = _episodes(warm, seed=7, n=5), _episodes(fresh, seed=7, n=5)
    assert len(got_warm) == len(got_fresh) > 5
    for (obs_w, mask_w, reward_w, rest_w), (obs_f, mask_f, reward_f, rest_f) in zip(
            got_warm, got_fresh, strict=True):
        np.testing.assert_array_equal(obs_w, obs_f)
        np.testing.assert_array_equal(mask_w, mask_f)
        assert reward_w == reward_f  # bit for bit
        assert rest_w == rest_f


def _state_at(setup, position, time):
    """A state whose last note is ``position`` and whose next note starts at ``time`` (all
    that static rules read)."""
    state = CounterpointState(setup)
    state.positions[-1] = position
    state.midis[-1] = int(setup.position_midi[position])
    state.time = time
    return state


@pytest.mark.parametrize("kwargs", EXERCISES)
def test_static_table_equals_rules_run_one_state_at_a_time(kwargs):
    env = CounterpointEnv(**kwargs)
    setup, ruleset = env.setup, env.ruleset
    assert StaticTable.supports(ruleset)
    table = StaticTable(ruleset, setup)
    checked = 0
    for position in range(setup.lowest_position, setup.highest_position + 1):
        for time in range(EIGHTHS_PER_BAR, setup.final_bar_eighth):
            state = _state_at(setup, position, time)
            cand, base = state.candidates(), state.frame_mask()
            mask, outputs, terms = ruleset.check_static(state, cand, base)
            t_cand, t_base, (t_mask, t_outputs, t_terms), keyed = table.entry(position, time)
            for name in cand.__slots__:
                np.testing.assert_array_equal(getattr(t_cand, name), getattr(cand, name),
                                              err_msg=name)
            assert type(t_cand.start) is int and type(t_cand.cf_start_midi) is int
            np.testing.assert_array_equal(t_base, base)
            np.testing.assert_array_equal(t_mask, mask)
            assert list(t_outputs) == list(outputs) and list(t_terms) == list(terms)
            for name in outputs:
                np.testing.assert_array_equal(np.broadcast_to(t_outputs[name], (60,)),
                                              np.broadcast_to(outputs[name], (60,)),
                                              err_msg=f"{name} at {position}, {time}")
            for name in terms:
                np.testing.assert_array_equal(t_terms[name], terms[name], err_msg=name)
            assert keyed == {}
            checked += 1
    assert checked == ((setup.highest_position - setup.lowest_position + 1)
                       * (setup.final_bar_eighth - EIGHTHS_PER_BAR))
    assert table.entry(setup.highest_position + 1, EIGHTHS_PER_BAR) is None
    assert table.entry(setup.lowest_position, setup.final_bar_eighth) is None


def _snapshot(state):
    return (list(state.positions), list(state.midis), list(state.starts),
            list(state.durations), list(state.moves), state.bar_durations,
            state.motion_start_midi, state.last_consonant, state.finished, state.time,
            state.midi_at_eighth.tolist(), state.signature(), state.future_key())


def test_push_then_pop_restores_the_state_and_push_equals_add():
    env = CounterpointEnv()
    rng = np.random.default_rng(0)
    _, info = env.reset()
    done, pushed_finishing = False, 0
    while not done:
        state = env.state
        before = _snapshot(state)
        for action in np.flatnonzero(env.oracle.rule_mask(state)).tolist():
            move, duration = _decode(action)
            reference = state.copy()
            reference.add(move, duration)
            record = state.push(move, duration)
            assert _snapshot(state) == _snapshot(reference)
            pushed_finishing += state.finished
            state.pop(record)
            assert _snapshot(state) == before
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        _, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    assert pushed_finishing > 0  # pop took back an end note too


def _decode(action):
    duration_index, move = divmod(action, 15)
    duration = (1, 2, 4, 8)[duration_index]
    assert encode_action(move - 7, duration) == action
    return move - 7, duration


def test_future_key_tells_apart_states_the_signature_merges():
    # bar 2 as (2, 1, 1, 2) eighths, the two lines differing only in its first note: the last
    # three notes, the motion's start and everything else in the signature agree, but the
    # next downbeat's parallel-perfects check reads the bar's first note, so the futures
    # differ and the dead-end search must not share its answers between them
    env = CounterpointEnv()
    a, b = CounterpointState(env.setup), CounterpointState(env.setup)
    for state, moves in ((a, (1, 1, 1, -1)), (b, (-1, 3, 1, -1))):
        for move, duration in zip(moves, (2, 1, 1, 2), strict=True):
            state.add(move, duration)
    assert a.positions[-3:] == b.positions[-3:] and a.positions[-4] != b.positions[-4]
    assert a.signature() == b.signature()
    assert a.future_key() != b.future_key()
    assert a.future_key()[-1] == int(a.midi_at_eighth[EIGHTHS_PER_BAR])
