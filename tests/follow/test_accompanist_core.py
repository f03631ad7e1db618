"""The one accompanist core: Accompany-v0, the evaluation and the live engine play alike."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import musicgym.envs  # noqa: F401  (registers the ids)
from musicgym.errors import AccompanyConfigError
from musicgym.follow import followers
from musicgym.follow.accompanist import (
    AccompanistRun,
    AgentController,
    TempoModelController,
    run_controller,
)
from musicgym.follow.evaluate import evaluate_tempo_model, pool_runs
from musicgym.follow.followers import OLTWFollower, OracleFollower, piano_roll
from musicgym.follow.report import agent_run
from musicgym.follow.tempo import build_tempo_model, make_tempo_model
from musicgym.live.accompany import LiveAccompanist


class Constant:
    """A fixed policy: the same action whatever it sees."""

    def __init__(self, action: float) -> None:
        self.action = action

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.full((len(observation), 1), self.action, dtype=np.float32), state


class Linear:
    """A fixed policy that reads its observation (a fixed linear map, squashed)."""

    def __init__(self, size: int) -> None:
        self.weights = np.random.default_rng(0).normal(0.0, 0.3, size).astype(np.float32)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.tanh(np.asarray(observation) @ self.weights)[:, None], state


def _env_take(take: int, policy, **env_kwargs):
    """Play a whole held-out take in Accompany-v0 with a policy; return the env's run."""
    env = gym.make("musicgym/Accompany-v0", split="test", sources=("real",),
                   episode_reports=None, **env_kwargs).unwrapped
    obs, _ = env.reset(seed=0, options={"take": take, "start": 0, "whole": True})
    done = False
    while not done:
        action, _ = policy.predict(obs[None, :])
        obs, _, done, _, _ = env.step(action[0])
    return env


def _live_take(take, reference, controller, beat_period_s: float) -> LiveAccompanist:
    """The live engine fed the take frame by frame (the frames the follower's ``follow`` reads),
    as the clock would."""
    live = LiveAccompanist(take.solo.score, take.accompaniment.score,
                           OLTWFollower(reference.solo.performed), controller,
                           beat_period_s=beat_period_s)
    for i, frame in enumerate(piano_roll(take.solo.performed, live.frame_s)):
        live.feed(frame, (i + 1) * live.frame_s)
    return live


def _same_onsets(recorded: AccompanistRun, live: LiveAccompanist) -> None:
    beat, sec = np.asarray(live.played_beat), np.asarray(live.played_sec)
    upto = beat <= recorded.end_beat  # live plays on past the last report until the input ends
    assert len(recorded.played_beat) > 400  # of its 471 distinct onsets
    assert np.array_equal(beat[upto], recorded.played_beat)
    assert np.allclose(sec[upto], recorded.played_sec, rtol=0, atol=1e-6)
    assert live.resyncs == recorded.resyncs


def test_env_and_live_engine_play_the_same_onsets(brahms_takes):
    take, reference = brahms_takes[5], brahms_takes[0]  # take 6, followed against take 1
    # a residual agent (fixed policy) on kalman+timing: the env mixes it, live the same class
    env = _env_take(6, Constant(0.5), follower="oltw", memory=True, residual_on="kalman+timing")
    episode, curves = env.run.episode, env.memory_curves
    controller = AgentController(build_tempo_model("kalman+timing", curves), scale=0.1,
                                 policy=Constant(0.5), observe=lambda a: np.zeros(3))
    live = _live_take(take, reference, controller, env.run.beat_periods_s[0])
    # the same follower reports reach both, then the same onsets are played
    assert np.array_equal(live.report_beat, episode.report_beat)
    assert np.allclose(live.report_onset_sec, episode.report_onset_sec, rtol=0, atol=1e-9)
    _same_onsets(env.run, live)
    # a tempo model as controller: the recorded-report driver (the env's dynamics) and live
    recorded = run_controller(AccompanistRun(episode, 0, len(episode.report_sec),
                                             max_log_ratio=0.5),
                              TempoModelController(make_tempo_model("kalman")))
    live = _live_take(take, reference, TempoModelController(make_tempo_model("kalman")),
                      recorded.beat_periods_s[0])
    _same_onsets(recorded, live)


def test_the_evaluation_plays_an_agent_as_the_env_does(brahms_takes):
    settings = {"follower": "oracle", "memory": True, "residual_on": "kalman+timing",
                "residual_scale": 0.3}
    policy = Linear(6 * 2 + 4 * 2 + 8 + 4 + 1 + 1)
    env = _env_take(7, policy, **settings)
    run = agent_run(policy, env.run.episode, settings, env.memory_curves)
    assert run.played_beat == env.run.played_beat and run.played_sec == env.run.played_sec
    assert run.beat_periods_s == env.run.beat_periods_s


def test_a_silent_residual_agent_plays_as_its_tempo_model(brahms_takes):
    from musicgym.follow.accompanist import make_episode

    episodes = [make_episode(t.solo, t.accompaniment.score, follower=OracleFollower())
                for t in brahms_takes if t.take in (6, 7)]
    runs = [agent_run(Constant(0.0), ep, {"residual_on": "kalman"}, []) for ep in episodes]
    kalman = evaluate_tempo_model(episodes, lambda: make_tempo_model("kalman"))
    # the same up to the float32 of the action the env passes on
    assert pool_runs(runs) == pytest.approx(kalman, abs=2e-3)


def test_a_follower_is_registered_in_one_place(monkeypatch):
    class LateOracle(OracleFollower):
        name = "late_oracle"

        def follow(self, performed):
            report_sec, beat, onset_sec = super().follow(performed)
            return report_sec + 0.05, beat, onset_sec

    spec = followers.FollowerSpec(lambda reference, seed: LateOracle(), needs_reference=False,
                                  online=False, evaluated=False, summary="the oracle, 50 ms late")
    monkeypatch.setitem(followers.FOLLOWERS, "late_oracle", spec)
    env = gym.make("musicgym/Accompany-v0", follower="late_oracle", sources=("simulated",),
                   episode_reports=8)
    env.reset(seed=0)
    assert env.unwrapped.run.episode.report_sec[0] > env.unwrapped.run.episode.report_onset_sec[0]
    assert "late_oracle" in followers.follower_names()
    assert "late_oracle" not in followers.follower_names(online=True)


def test_residual_settings_and_followers_are_checked(brahms_takes):
    simulated = {"sources": ("simulated",)}
    with pytest.raises(AccompanyConfigError, match="unknown tempo model 'swing'"):
        gym.make("musicgym/Accompany-v0", residual_on="swing", **simulated)
    with pytest.raises(AccompanyConfigError, match=r"'\+timing' model needs memory=True"):
        gym.make("musicgym/Accompany-v0", residual_on="kalman+timing", **simulated)
    with pytest.raises(AccompanyConfigError, match=r"the suffixes are '\+rehearsal' and"):
        gym.make("musicgym/Accompany-v0", residual_on="kalman+memo", memory=True, **simulated)
    with pytest.raises(AccompanyConfigError, match="residual_scale must be > 0"):
        gym.make("musicgym/Accompany-v0", residual_on="kalman", residual_scale=0.0, **simulated)
    with pytest.raises(AccompanyConfigError, match="the hmm follower needs a reference"):
        followers.make_follower("hmm")
    with pytest.raises(AccompanyConfigError, match="cannot follow live"):
        take = brahms_takes[5]
        LiveAccompanist(take.solo.score, take.accompaniment.score, OracleFollower(),
                        TempoModelController(make_tempo_model("kalman")), beat_period_s=0.5)


def test_residual_observation_ends_with_the_models_action():
    env = gym.make("musicgym/Accompany-v0", sources=("simulated",), memory=True,
                   residual_on="kalman+timing", episode_reports=16)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (34,) and env.observation_space.contains(obs)  # 28 + 5 memory + 1
    base = env.unwrapped.controller.base_action
    assert obs[-1] == np.float32(base)
    # action 0 plays the model's action exactly
    before = env.unwrapped.run.beat_period_s
    env.step(np.zeros(1, np.float32))
    expected = before * np.exp(float(np.float32(base)) * 0.5)
    assert env.unwrapped.run.beat_periods_s[1] == pytest.approx(
        min(max(expected, 0.1), 3.0), rel=1e-12)


def test_the_timing_features_are_the_same_in_the_env_the_evaluation_and_live(brahms_takes):
    from musicgym.follow.observation import timing_features

    settings = {"follower": "oltw", "memory": True, "residual_on": "kalman+timing",
                "timing": True}
    policy = Linear(6 * 2 + 4 * 2 + 8 + 4 + 1 + 3 * 6 + 1)
    env = _env_take(7, policy, **settings)
    run = agent_run(policy, env.run.episode, settings, env.memory_curves)
    assert run.played_sec == env.run.played_sec  # the evaluation sees what the env showed
    # live, the same reports heard and the same onsets played give the same features
    take, reference = brahms_takes[6], brahms_takes[0]
    env = _env_take(7, Constant(0.5), **settings)
    controller = AgentController(build_tempo_model("kalman+timing", env.memory_curves),
                                 scale=0.1, policy=Constant(0.5), observe=lambda a: np.zeros(3))
    live = _live_take(take, reference, controller, env.run.beat_periods_s[0])
    _same_onsets(env.run, live)
    n = len(env.run.report_beat)
    assert np.allclose(live.report_gap_s[:n], env.run.report_gap_s, atol=1e-6)
    features = timing_features(env.run, env.memory_curves, 6)
    assert features.shape == (18,) and np.any(features[:6] != 0)  # gaps heard
    assert np.all(features[6:12] >= 0) and np.any(features[12:] != 0)  # delays, departures
