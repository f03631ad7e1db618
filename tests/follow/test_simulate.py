"""The performance simulator, checked against the statistics of the real Brahms takes."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.errors import AccompanyConfigError
from musicgym.follow.simulate import Expression, performance_statistics, simulate_performance
from musicgym.music.notes import make_notes


def test_seeded_and_varied(brahms_takes):
    score = brahms_takes[0].solo.score
    a = simulate_performance(score, seed=3)
    b = simulate_performance(score, seed=3)
    c = simulate_performance(score, seed=4)
    for name in ("onset_sec", "onset_beat", "pitch", "velocity"):
        np.testing.assert_array_equal(a.performed[name], b.performed[name])
    assert not np.array_equal(a.score["onset_sec"], c.score["onset_sec"], equal_nan=True)


def test_statistics_like_the_real_takes(brahms_takes):
    real = [performance_statistics(t.solo) for t in brahms_takes]
    sims = [
        performance_statistics(simulate_performance(brahms_takes[0].solo.score, seed=s))
        for s in range(6)
    ]
    for key in ("median_beat_period_s", "tempo_spread_log", "local_timing_log",
                "chord_spread_ms", "missing_rate"):
        lo = min(r[key] for r in real)
        hi = max(r[key] for r in real)
        mean_sim = np.mean([s[key] for s in sims])
        # the simulated mean lies within the real takes' range widened by a third
        assert lo * 0.67 <= mean_sim <= hi * 1.33, (key, lo, hi, mean_sim)


def test_expression_parts_do_what_they_say():
    score = make_notes(np.arange(64) * 0.5, 0.5, 60 + np.arange(64) % 12)
    plain = Expression(arch_depth=0, phrase_rit_depth=0, final_rit_depth=0, drift_sd=0,
                       onset_jitter_ms=0, chord_spread_ms=0, melody_lead_ms=0,
                       p_missing=0, p_wrong=0, p_extra=0, beat_period_s=0.5)
    take = simulate_performance(score, seed=0, expression=plain, start_sec=1.0)
    np.testing.assert_allclose(take.score["onset_sec"], 1.0 + score["onset_beat"] * 0.5)
    rit = simulate_performance(score, seed=0, start_sec=1.0,
                               expression=Expression(**{**plain.__dict__, "final_rit_depth": 0.5}))
    gaps = np.diff(rit.score["onset_sec"])
    assert gaps[-1] > 1.4 * gaps[0]  # ritardando at the end
    sloppy = Expression(**{**plain.__dict__, "p_missing": 0.2, "p_wrong": 0.2, "p_extra": 0.2})
    take = simulate_performance(make_notes(np.arange(2000) * 0.5, 0.5, 60), seed=1,
                                expression=sloppy)
    assert take.n_deleted / 2000 == pytest.approx(0.2, abs=0.03)
    assert take.n_inserted / 2000 == pytest.approx(0.2 * 0.8, abs=0.03)
    scored = take.performed[np.isfinite(take.performed["onset_beat"])]
    assert np.mean(scored["pitch"] != 60) == pytest.approx(0.2, abs=0.03)


def test_bad_expression_is_named():
    score = make_notes([0, 1], 1.0, [60, 62])
    with pytest.raises(AccompanyConfigError, match="p_missing"):
        simulate_performance(score, expression=Expression(p_missing=1.5))
    with pytest.raises(AccompanyConfigError, match="empty score"):
        simulate_performance(score[:0])
