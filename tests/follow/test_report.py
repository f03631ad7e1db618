"""Where an accompanist's misses come from (musicgym.follow.report.miss_sources)."""

from __future__ import annotations

import pytest

from musicgym.follow.accompanist import make_episode
from musicgym.follow.duets import tempo_curve
from musicgym.follow.evaluate import pool_runs, run_tempo_model
from musicgym.follow.followers import OLTWFollower, OracleFollower
from musicgym.follow.report import miss_sources
from musicgym.follow.tempo import RehearsedTiming, make_tempo_model


def test_misses_split_into_skips_follower_and_tempo_model(brahms_takes):
    take = brahms_takes[6]
    earlier = [tempo_curve(t.solo.score) for t in brahms_takes if t.take < take.take]
    runs = {}
    for name, follower in (("oracle", OracleFollower()),
                           ("oltw", OLTWFollower(brahms_takes[0].solo.performed))):
        episode = make_episode(take.solo, take.accompaniment.score, follower=follower,
                               take=take.take)
        runs[name] = run_tempo_model(episode, RehearsedTiming(make_tempo_model("kalman"),
                                                              earlier))
    misses = miss_sources(runs["oltw"], runs["oracle"])
    assert misses["missed"] == misses["skipped"] + misses["follower"] + misses["tempo_model"]
    within = pool_runs([runs["oltw"]])["within_50_ms"]
    assert misses["missed"] == round((1 - within) * misses["shared"])
    # measured on take 7: 47 of 324 missed, 30 of them the follower's
    assert misses["follower"] > misses["tempo_model"] > 0
    itself = miss_sources(runs["oracle"], runs["oracle"])
    assert itself["follower"] == 0 and itself["missed"] == itself["skipped"] + itself[
        "tempo_model"]
    assert pool_runs([runs["oracle"]])["within_50_ms"] == pytest.approx(
        1 - itself["missed"] / itself["shared"])
