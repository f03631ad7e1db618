"""benchmarks/matcher_variants.py: the per-target gates between one basin and two (helper
"gate") keep to the budget and, shut, are the shipped hybrid render for render."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.audio.soundfont import soundfont_available
from musicgym.envs.matcher_model import Matcher
from musicgym.envs.matching import MatchCore
from musicgym.train.match import Evaluations, env_kwargs
from musicgym.train.matcher import patch_spec, soundfont_oneshots
from tests.scripts import load_script


def _harness():
    return load_script("benchmarks/matcher_variants.py", "matcher_variants")


@pytest.mark.skipif(not soundfont_available(), reason="no GM SoundFont to render one-shots")
def test_the_gated_variants_keep_to_the_budget_and_shut_are_the_shipped_hybrid():
    mv = _harness()
    matcher, spec = Matcher.builtin("Snare-v0"), patch_spec("Snare-v0")
    budget = 40  # small, so that the probes and the second starts run into it
    opened_elsewhere = []
    for clip in soundfont_oneshots(2, seed=9):
        core = MatchCore(**env_kwargs(spec, clip))
        target = core.target_clips[0]
        guesses = Evaluations(core)
        mv.policy_at_k(matcher, target, guesses, 16)
        runs = {}
        for name, args in (("shipped", ()), ("gate", (10.0,)), ("gate", (10.0, 1e9)),
                           ("probe", (10.0,)), ("probe", (10.0, 1e9)),
                           ("nearown", (10.0, 1e9)), ("nearown", (10.0, 0.0))):
            ev = Evaluations(core)
            mv.VARIANTS[name](matcher, target, ev, budget, *args)
            assert ev.count <= budget, (name, args, ev.count)
            # the 16 guesses come first: no variant ends worse than their best
            assert ev.best_cost <= guesses.best_cost, (name, args)
            runs[(name, args)] = (ev.count, ev.best_cost, ev.best)
        # a gate that cannot open (ratio 0) is the shipped hybrid, the same renders
        count, cost, best = runs[("nearown", (10.0, 0.0))]
        assert count == runs[("shipped", ())][0] and cost == runs[("shipped", ())][1]
        np.testing.assert_array_equal(best, runs[("shipped", ())][2])
        # always open (ratio 1e9): the probe from the patch's own sound changes the search
        opened_elsewhere.append(not np.array_equal(runs[("nearown", (10.0, 1e9))][2],
                                                   runs[("shipped", ())][2]))
    assert any(opened_elsewhere)
