"""Rules registered with a ``key``: declared, refused when contradictory, and the rule whose
look-back the key must cover (skip series) behaving at its edge."""

import numpy as np
import pytest

from musicgym.errors import RuleError
from musicgym.music.rules import RULES, register_rule
from musicgym.music.rules.counterpoint import absence_of_skip_series
from musicgym.music.rules.species import CounterpointState, make_setup


def test_static_and_key_together_are_refused():
    with pytest.raises(RuleError, match="static=True or key"):
        register_rule("both_static_and_keyed", task="counterpoint", static=True,
                      key=lambda state: ())


def test_key_only_without_a_key_is_refused():
    with pytest.raises(RuleError, match="key_only=True needs a key"):
        register_rule("key_only_without_key", task="counterpoint", key_only=True)


def test_every_builtin_counterpoint_rule_is_static_or_keyed():
    # a rule with neither would be judged afresh for every new state (the slow path)
    plain = [r.name for r in RULES.values()
             if r.task == "counterpoint" and r.source != "user" and not r.static and r.key is None]
    assert plain == []


def test_no_skips_at_all_when_max_n_skips_is_zero():
    state = CounterpointState(make_setup())
    state.add(1, 4)  # a step: before the fix the whole history was read and this allowed skips
    cand = state.candidates()
    allowed = absence_of_skip_series(state, cand, max_n_skips=0)
    np.testing.assert_array_equal(allowed, np.abs(cand.move) <= 1)
