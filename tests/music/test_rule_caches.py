"""The fast paths (static verdicts shared by last note and time, state caches, lookahead
memo) give exactly what judging every rule afresh gives, step by step, in random episodes."""

import numpy as np
import pytest

from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.rules import RL_MUSICIAN_RULES, STRICT_RULES
from musicgym.music.rules.lookahead import _SEARCH_ORDER, CounterpointOracle


def _reference(ruleset, state):
    """Every rule run afresh on fresh candidates, in the order given (the plain definition)."""
    probe = state.copy()
    probe._candidates = None
    cand = probe.candidates()
    mask = probe.frame_mask().copy()
    reward = np.zeros(len(mask))
    outputs = {}
    for name, fn in ruleset.mask_rules.items():
        out = outputs[name] = fn(probe, cand)
        if out is not True:
            out = np.asarray(out)
            mask &= out if out.dtype == bool else out >= 0
    for name, (fn, weight) in ruleset.penalty_rules.items():
        out = np.asarray(fn(probe, cand))
        outputs[name] = out
        reward += weight * (np.where(out, 0.0, -1.0) if out.dtype == bool else out)
    return mask, reward, outputs


def _same_outputs(a, b):
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)


@pytest.mark.parametrize("kwargs", [
    {"species": 5},
    {"cantus_firmus": "fux_dorian", "species": 2},
    {"cantus_firmus": "fux_ionian", "species": 4},
    {"species": 3, "rules": list(RL_MUSICIAN_RULES[:8]),
     "penalties": {name: 0.1 + 0.07 * i for i, name in enumerate(STRICT_RULES[8:])}},
    # keyed verdicts at the look-backs the caches accept, and penalties of keyed rules
    {"rule_params": {"absence_of_stalled_pitches": {"max_n_repetitions": 3},
                     "absence_of_skip_series": {"max_n_skips": 1},
                     "turn_after_skip": {"min_n_scale_degrees": 2}}},
    {"rules": [r for r in STRICT_RULES if r not in ("absence_of_parallel_perfects",
                                                    "absence_of_long_motion")],
     "penalties": {"absence_of_parallel_perfects": 0.5, "absence_of_long_motion": 0.25}},
])
def test_cached_verdicts_equal_fresh_ones(kwargs):
    env = CounterpointEnv(**kwargs)
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(4):
        _, info = env.reset()
        done = False
        while not done:
            state = env.state
            # the mask alone (as the dead-end search reads it), judged before the full check
            rule_mask = env.oracle.rule_mask(state)
            mask, reward, outputs = env.oracle.check(state)
            ref_mask, ref_reward, ref_outputs = _reference(env.ruleset, state)
            np.testing.assert_array_equal(mask, ref_mask)
            np.testing.assert_array_equal(rule_mask, ref_mask)
            np.testing.assert_array_equal(reward, ref_reward)  # bit for bit, same sum order
            _same_outputs(outputs, ref_outputs)
            # the lookahead mask of a fresh oracle (empty caches) is the same
            fresh = CounterpointOracle(env.ruleset, lookahead=env.oracle.lookahead)
            np.testing.assert_array_equal(info["action_mask"].astype(bool),
                                          fresh.mask(state.copy()))
            # the dead-end search's allowed actions (search-order bits) are the rule mask's,
            # in search order, from warm caches and from empty ones
            order = CounterpointOracle(env.ruleset)._search_actions(state)
            assert order == env.oracle._search_actions(state) == \
                _SEARCH_ORDER[ref_mask[_SEARCH_ORDER]].tolist()
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            _, step_reward, terminated, truncated, info = env.step(action)
            assert step_reward == pytest.approx(ref_reward[action] + info.get("scores", {}).get(
                "total", 0.0) + (env.reward_for_dead_end if info.get("dead_end") else 0.0))
            done = terminated or truncated
            checked += 1
    assert checked > 20
