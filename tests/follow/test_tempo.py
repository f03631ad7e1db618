"""Tempo models as accompanists of the real Brahms takes (held-out takes 6 and 7)."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.errors import AccompanyConfigError
from musicgym.follow.accompanist import make_episode
from musicgym.follow.evaluate import evaluate_tempo_model, human_metrics, run_tempo_model
from musicgym.follow.followers import OracleFollower
from musicgym.follow.tempo import TEMPO_MODELS, KalmanTempo, make_tempo_model


@pytest.fixture(scope="module")
def test_episodes(brahms_takes):
    return [
        make_episode(t.solo, t.accompaniment.score, follower=OracleFollower(),
                     accompaniment=t.accompaniment, piece=t.piece, take=t.take)
        for t in brahms_takes if t.take in (6, 7)
    ]


def test_models_rank_as_expected_with_a_perfect_follower(test_episodes):
    results = {name: evaluate_tempo_model(test_episodes, lambda n=name: make_tempo_model(n),
                                          resync_s=None)
               for name in TEMPO_MODELS}
    # a metronome drifts away by seconds; listening models stay within tens of ms
    assert results["fixed"]["median_abs_ms"] > 1000
    for name in ("reactive", "moving_average", "linear_sync", "kalman"):
        assert results[name]["median_abs_ms"] < 40, name
    # measured: Kalman 72 % within 50 ms (the issue quotes about 73 %), reactive 62 %
    assert 0.65 < results["kalman"]["within_50_ms"] < 0.85
    assert results["kalman"]["within_50_ms"] > results["reactive"]["within_50_ms"]
    assert results["kalman"]["tempo_jitter"] < results["reactive"]["tempo_jitter"]
    # the human secondo of the same takes remains the ceiling
    human = [human_metrics(ep) for ep in test_episodes]
    assert min(h["within_50_ms"] for h in human) > results["kalman"]["within_50_ms"]


def test_resynchronising_keeps_every_model_closer(test_episodes):
    for name in ("fixed", "reactive", "kalman"):
        plain = evaluate_tempo_model(test_episodes, lambda n=name: make_tempo_model(n),
                                     resync_s=None)
        recovering = evaluate_tempo_model(test_episodes, lambda n=name: make_tempo_model(n),
                                          resync_s=0.2)
        assert recovering["mean_abs_ms"] < plain["mean_abs_ms"], name
        assert recovering["within_100_ms"] > plain["within_100_ms"], name
    # skipped onsets count as misses; a metronome jumps ahead often (19 %), Kalman rarely
    assert recovering["skipped"] < 0.05
    # measured (oracle follower): Kalman 87.0 % within 100 ms without, 91.8 % with (1.5 %
    # of shared onsets skipped by jumps ahead)
    assert recovering["within_100_ms"] > 0.9


def test_a_resync_jumps_and_never_replays_a_note(test_episodes):
    episode = test_episodes[0]
    run = run_tempo_model(episode, make_tempo_model("fixed"), resync_s=0.2)
    assert run.resyncs > 10  # a metronome loses the soloist again and again
    played = np.asarray(run.played_beat)
    assert np.all(np.diff(played) > 0)  # forward jumps skip notes, backward ones wait
    assert np.all(np.diff(run.played_sec) >= 0)
    never = run_tempo_model(episode, make_tempo_model("fixed"), resync_s=None)
    assert never.resyncs == 0
    with pytest.raises(AccompanyConfigError, match="resync_s must be > 0"):
        run_tempo_model(episode, make_tempo_model("fixed"), resync_s=0.0)


def test_rehearsal_lets_the_kalman_model_anticipate(brahms_takes, test_episodes):
    from musicgym.follow.duets import tempo_curve
    from musicgym.follow.evaluate import pool_runs
    from musicgym.follow.tempo import RehearsedTempo

    def earlier(take):
        return [tempo_curve(t.solo.score) for t in brahms_takes if t.take < take]

    plain = evaluate_tempo_model(test_episodes, lambda: make_tempo_model("kalman"))
    rehearsed = pool_runs([
        run_tempo_model(ep, RehearsedTempo(make_tempo_model("kalman"), earlier(ep.take)))
        for ep in test_episodes
    ])
    # measured (oracle follower): 74.9 % within 50 ms plain, 83.4 % after takes 1-5 (1-6)
    assert rehearsed["within_50_ms"] > plain["within_50_ms"] + 0.05
    assert rehearsed["within_50_ms"] > 0.8
    with pytest.raises(AccompanyConfigError, match="at least one earlier take"):
        RehearsedTempo(make_tempo_model("kalman"), [])


def test_kalman_converges_to_a_steady_tempo():
    model = KalmanTempo(phase_gain=0.0)
    model.reset(time_s=0.0, solo_beat=0.0, beat_period_s=0.6)
    for k in range(1, 40):
        period = model.update(time_s=0.4 * k, solo_beat=float(k), accompanist_beat=float(k),
                              beat_period_s=0.4)
    assert period == pytest.approx(0.4, rel=0.01)


def test_unknown_model_and_bad_options():
    with pytest.raises(AccompanyConfigError, match="unknown tempo model 'swing'"):
        make_tempo_model("swing")
    with pytest.raises(AccompanyConfigError, match="phase_gain"):
        make_tempo_model("reactive", phase_gain=2.0)


def test_rehearsed_timing_scales_the_earlier_takes_to_the_present_speed():
    from musicgym.follow.tempo import RehearsedTiming

    beats = np.arange(0.0, 40.0, 1.0)
    earlier = [(beats, 0.5 * beats)]  # rehearsed steadily at 0.5 s a beat
    model = RehearsedTiming(KalmanTempo(), earlier)
    model.reset(time_s=0.0, solo_beat=0.0, beat_period_s=0.5)
    for k in range(1, 20):  # now played at 0.4 s a beat, the accompanist on the beat
        period = model.update(time_s=0.4 * k, solo_beat=float(k), accompanist_beat=float(k),
                              beat_period_s=0.4)
    assert model.speed == pytest.approx(0.8, rel=1e-3)
    assert period == pytest.approx(0.4, rel=1e-3)
    # 0.1 beat behind: reach the next onset (due in 0.4 s) over 1.1 beats
    period = model.update(time_s=8.0, solo_beat=20.0, accompanist_beat=19.9, beat_period_s=0.4)
    assert period == pytest.approx(0.4 / 1.1, rel=1e-3)
    # already at the next onset: wait
    period = model.update(time_s=8.4, solo_beat=21.0, accompanist_beat=22.0, beat_period_s=0.4)
    assert period == 3.0
    with pytest.raises(AccompanyConfigError, match="RehearsedTiming needs at least one"):
        RehearsedTiming(KalmanTempo(), [])
    with pytest.raises(AccompanyConfigError, match="0 < smoothing <= 1"):
        RehearsedTiming(KalmanTempo(), earlier, smoothing=0.0)


def test_rehearsed_timing_keeps_closer_than_rehearsed_tempo(brahms_takes, test_episodes):
    from musicgym.follow.duets import tempo_curve
    from musicgym.follow.evaluate import pool_runs
    from musicgym.follow.tempo import RehearsedTempo, RehearsedTiming

    def earlier(take):
        return [tempo_curve(t.solo.score) for t in brahms_takes if t.take < take]

    results = {
        kind: pool_runs([run_tempo_model(ep, kind(make_tempo_model("kalman"), earlier(ep.take)))
                         for ep in test_episodes])
        for kind in (RehearsedTempo, RehearsedTiming)
    }
    # measured (oracle follower, held-out takes 6-7): 83.4 % -> 93.5 % within 50 ms
    assert results[RehearsedTiming]["within_50_ms"] > results[RehearsedTempo]["within_50_ms"] + 0.05
    assert results[RehearsedTiming]["mean_abs_ms"] < results[RehearsedTempo]["mean_abs_ms"]
