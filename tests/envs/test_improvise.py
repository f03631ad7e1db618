"""musicgym/Improvise-v0, its synths and its data: behaviour through the public API."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import musicgym  # noqa: F401  (registers the env ids)
from musicgym.audio.descriptors import pitch
from musicgym.envs.improvise import ImproviseEnv, ImproviseVectorEnv
from musicgym.envs.improvise_core import settings_to_kwargs
from musicgym.envs.improvise_data import (
    analyze_held,
    analyze_synth,
    analyze_window,
    build_lookup,
    grid_points,
    load_corpus,
    lookup_from_columns,
    read_table,
    split_tracks,
    write_table,
)
from musicgym.envs.synths import Synth, make_synth
from musicgym.errors import ImproviseConfigError, InvalidActionError

SR = 44100
SINE = {"synth": "sine", "features_keep": ["loudness-dB", "specshape-centroid", "pitch"],
        "features_reward": ["loudness-dB", "specshape-centroid"]}


def sine_track(hz: float, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)


def corpus() -> dict[str, np.ndarray]:
    return {f"take{i}": sine_track(hz) for i, hz in enumerate([220, 330, 440, 550, 660])}


# -- synths ------------------------------------------------------------------------------------
def test_fm_synth_is_what_rl_impro_meant():
    fm = make_synth("fm")
    # harmonicity 0: a plain carrier at 400 (u=0) and 600 Hz (u=0.5)
    audio = fm.render([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]], n_samples=8192)
    f0 = pitch(audio, sr=SR, frame_length=4096, center=False)[:, -1, 0]
    np.testing.assert_allclose(f0, [400.0, 600.0], rtol=0.005)
    holes = fm.hole_matrix([[0.5, 0.2, 0.2]])[0]
    params = dict(zip(fm.patch().params, holes, strict=True))
    # carrier 600, harmonicity 1, index 1: modulator 600 Hz, deviation 600 Hz
    assert params == pytest.approx({"carrier_hz": 600.0, "mod_hz": 600.0, "dev_hz": 600.0})


def test_granular_synth_speed_is_pitch_and_grain_length_is_loudness():
    """Grains of the 220 Hz source: speed 1 sounds at 220 Hz, speed 2 an octave up; longer
    grains fill more of the window, so they sound louder."""
    granular = make_synth("granular")
    assert granular.param_names == ("density_hz", "speed", "grain_s")
    speed_1 = np.log(1 / 0.25) / np.log(16)       # speed 0.25 -> 4, exp
    speed_2 = np.log(2 / 0.25) / np.log(16)
    u = [[0.5, speed_1, 1.0], [0.5, speed_2, 1.0], [0.5, speed_1, 0.0]]
    values = analyze_synth(granular, u, features=["loudness-dB", "pitch"])
    assert values[0, 1] == pytest.approx(220, rel=0.03)
    assert values[1, 1] == pytest.approx(440, rel=0.03)
    assert values[0, 0] > 2 * values[2, 0] > 0


def test_synth_mappings_and_custom_patches():
    sub = make_synth("subtractive")
    controls = sub.get_controls([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(controls["pitch_hz"], [55.0, 880.0])
    np.testing.assert_allclose(controls["cutoff_hz"], [8000.0, 100.0])
    custom = Synth.from_code("o: saw {pitch_hz} >> lpf {cutoff_hz} 1.0",
                             {"pitch_hz": (110, 440, "exp"), "cutoff_hz": (200, 4000)})
    assert custom.render(np.full((3, 2), 0.5), n_samples=512).shape == (3, 512)
    with pytest.raises(ImproviseConfigError, match="missing"):
        Synth.from_code("o: saw {pitch_hz} >> lpf {cutoff_hz} 1.0", {"pitch_hz": (1, 2)})
    with pytest.raises(ImproviseConfigError, match="low > 0"):
        Synth.from_code("o: sin {f}", {"f": (0, 100, "exp")})
    with pytest.raises(ImproviseConfigError, match="unknown synth"):
        make_synth("theremin")
    with pytest.raises(ImproviseConfigError, match=r"in \[0, 1\]"):
        sub.render([[0.0, 1.5, 0.0]], n_samples=64)


def test_sampler_plays_a_real_oneshot(oneshots_dir):
    sampler = make_synth("sampler", sample=oneshots_dir / "perc_bell.flac")
    audio = sampler.render([[1.0, 0.5, 1.0], [1.0, 0.5, 0.0]], n_samples=2048)
    assert np.abs(audio).max() > 0.01
    # the cutoff control really filters: less energy with the filter closed
    values = analyze_synth(sampler, [[1.0, 0.5, 1.0], [1.0, 0.5, 0.0]],
                           features=["specshape-centroid"])
    assert values[0, 0] > values[1, 0]


# -- lookup tables and corpus ----------------------------------------------------------------
def test_lookup_interpolates_between_rendered_states(tmp_path):
    synth = make_synth("sine")
    table = build_lookup(synth, subdiv=9, features=["pitch", "loudness-dB"])
    assert table.features == ("loudness-amp", "pitch", "pitch-confidence")
    assert table.values.shape == (81, 3)
    u = np.array([[0.3, 0.8], [0.61, 0.4]])
    rendered = analyze_synth(synth, u, features=["pitch", "loudness-dB"])
    # pitch is linear in the sine's freq parameter, so interpolation is close to rendering
    np.testing.assert_allclose(table.interpolate(u)[:, 1], rendered[:, 1], rtol=0.02)
    np.testing.assert_allclose(table.interpolate(u)[:, 0], rendered[:, 0], rtol=0.05)
    # on grid points both lookups give the stored row
    on_grid = table.grid[[10, 40]]
    np.testing.assert_allclose(table.interpolate(on_grid), table.values[[10, 40]])
    np.testing.assert_allclose(table.nearest(on_grid + 0.01), table.values[[10, 40]])
    path = write_table(tmp_path / "sine.csv", table.columns())
    again = lookup_from_columns(read_table(path), synth=synth)
    np.testing.assert_allclose(again.values, table.values)
    assert not list(tmp_path.glob(".partial-*"))


def test_granular_table_is_what_a_held_stream_plays_on_average():
    """The granular synth's table entry is the mean over the frames it plays held (grains and
    silences), not one window after a grain: a stream held for 2 s after 1 s of play (another
    stretch than the table's 0.5 s) has a mean loudness-amp within 0.01 of it. 0.01 is a
    quarter of a held setting's own frame-to-frame spread (0.03-0.07 at low densities) and a
    tenth of the old one-window table's miss here (over 0.1 at 2 Hz)."""
    granular = make_synth("granular")
    u = grid_points(3, 3)
    table = build_lookup(granular, subdiv=3, features=["loudness"])
    amp = table.features.index("loudness-amp")
    stream = granular.patch(SR).stream(granular.hole_matrix(u, SR))
    stream.render(43 * 1024)
    prev, frames = stream.render(1024).mean(axis=1), []
    for _ in range(86):
        cur = stream.render(1024).mean(axis=1)
        frames.append(analyze_window(np.concatenate([prev, cur], axis=1),
                                     features=["loudness-amp"], sr=SR, frame_length=1024))
        prev = cur
    stream_mean = np.mean(frames, axis=0)[:, 0]
    np.testing.assert_allclose(table.values[:, amp], stream_mean, atol=0.01)
    np.testing.assert_array_equal(table.values, analyze_held(granular, u, features=["loudness"]))
    one_window = analyze_synth(granular, u, features=["loudness-amp"])[:, 0]
    assert np.abs(one_window - stream_mean).max() > 0.1


@pytest.mark.parametrize("name", ["sine", "fm", "subtractive", "sampler"])
def test_stationary_synths_keep_their_one_window_table(name):
    """Synths that declare no hold keep the table of one window after the pre-roll, bit for
    bit."""
    synth = make_synth(name)
    assert synth.table_hold_s == 0.0
    table = build_lookup(synth, subdiv=3, features=["loudness", "pitch"])
    np.testing.assert_array_equal(
        table.values, analyze_synth(synth, grid_points(3, synth.n_params),
                                    features=table.features))


def test_corpus_split_holds_tracks_out(tmp_path):
    tracks = load_corpus(corpus(), features=["pitch"])
    train, test = split_tracks(tracks, holdout=0.2)
    assert len(train) == 4 and len(test) == 1
    assert not {t.name for t in train} & {t.name for t in test}
    # 0.5 s at hop 512: 1 + 22050 // 512 frames; the pitch is the track's
    assert tracks[0].features.shape == (44, 2)
    assert abs(np.median(tracks[0].features[:, 0]) - 220) < 3
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio")
    skipped = []
    with pytest.raises(ImproviseConfigError, match="no readable audio"):
        load_corpus([bad], on_skip=lambda path, exc: skipped.append(path))
    assert skipped == [bad]


# -- the env ------------------------------------------------------------------------------------
@pytest.mark.parametrize("action_type", ["ternary", "multidiscrete", "continuous"])
def test_env_passes_gymnasium_and_sb3_checkers(action_type):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("musicgym/Improvise-v0", action_type=action_type, mode="lookup", subdiv=5,
                   **SINE)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped)


def test_render_mode_env_hears_itself_and_passes_checker():
    from gymnasium.utils.env_checker import check_env

    env = ImproviseEnv(**SINE, max_episode_steps=20)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    f = len(env.features)
    assert obs.shape == (2 * f + 2,)
    np.testing.assert_allclose(obs[2 * f:], info["params"], atol=1e-6)


def test_ternary_actions_follow_rl_impro_order():
    env = ImproviseEnv(**SINE, mode="lookup", subdiv=5)
    _, info = env.reset(seed=0)
    start = info["params"]
    _, _, _, _, info = env.step(0)            # every parameter up
    expected = np.clip(start + 0.05, 0, 1)
    np.testing.assert_allclose(info["params"], expected)
    _, _, _, _, info = env.step(3 ** 2 - 1)   # every parameter down
    np.testing.assert_allclose(info["params"], np.clip(expected - 0.05, 0, 1))
    _, _, _, _, info = env.step(4)            # digits 1, 1: stay
    np.testing.assert_allclose(info["params"], np.clip(expected - 0.05, 0, 1))
    with pytest.raises(InvalidActionError, match="ternary"):
        env.step(9)


def test_matching_the_target_is_rewarded_and_reward_is_bounded():
    env = ImproviseEnv(**SINE, mode="lookup", subdiv=21, training_mode="static_random",
                       action_type="continuous", step_size=1.0)
    _, info = env.reset(seed=5)
    # jump straight to the target's parameters, then away from them
    rewards = []
    for goal in (info["target_params"], 1.0 - info["target_params"]):
        _, r, _, _, step_info = env.step((goal - step_info_params(env)).astype(np.float32))
        rewards.append((r, step_info["rmse"]))
    assert rewards[0][1] < 0.05 and rewards[0][0] > 0.9
    assert rewards[1][0] < rewards[0][0] and -1.0 <= rewards[1][0] <= 1.0


def step_info_params(env: ImproviseEnv) -> np.ndarray:
    return env.unwrapped._core.params[0]


def test_corpus_episode_follows_a_held_out_track_to_its_end():
    env = ImproviseEnv(**SINE, corpus=corpus(), training_mode="corpus", split="test",
                       mode="lookup", subdiv=5, max_episode_steps=1000)
    obs, info = env.reset(seed=0, options={"track": 0})
    assert info["track"] == "take4" and info["episode_mode"] == "corpus"
    f = len(env.features)
    steps, terminated = 0, False
    while not terminated:
        obs, _, terminated, truncated, info = env.step(4)
        steps += 1
        assert not truncated
    assert steps == 43       # 44 frames: the last step lands on the last frame
    with pytest.raises(ImproviseConfigError, match="not a track"):
        env.reset(options={"track": "take0"})
    assert np.isfinite(obs[f:2 * f]).all()


def test_vector_env_matches_single_env_and_autoresets():
    vec = gym.make_vec("musicgym/Improvise-v0", num_envs=3, mode="lookup", subdiv=5,
                       max_episode_steps=2, **SINE)
    assert isinstance(vec, ImproviseVectorEnv)
    obs, _ = vec.reset(seed=11)
    assert obs.shape == (3, 2 * 4 + 2) and obs.dtype == np.float32
    vec.step(np.array([0, 4, 8]))
    obs2, rewards, terminated, truncated, infos = vec.step(np.array([0, 4, 8]))
    assert truncated.all() and not terminated.any()
    assert infos["_final_obs"].all() and infos["final_obs"][0].shape == (10,)
    assert np.all(np.abs(rewards) <= 1.0)
    # a reset with the same seed replays the same episode
    np.testing.assert_array_equal(vec.reset(seed=11)[0], obs)


def test_rendering_vector_env_hears_its_pitch_rise():
    kwargs = {**SINE, "features_keep": ["pitch"], "features_reward": ["pitch"]}
    vec = ImproviseVectorEnv(4, action_type="multidiscrete", step_size=0.2, **kwargs)
    obs, infos = vec.reset(seed=2)
    up = np.tile([2, 1], (4, 1))          # raise freq_hz, keep amp
    after, *_, infos = vec.step(up)
    rises = infos["params"][:, 0] > obs[:, -2]
    assert rises.any()
    assert np.all(after[rises, 0] > obs[rises, 0])     # the rendered pitch went up too


def test_rl_impro_settings_file_is_accepted(tmp_path):
    settings = {"instrument_name": "sin", "corpus_name": "GuitarSet", "N_synth_params": 2,
                "features_keep": ["loudness", "mfcc", "specshape"],
                "features_reward": ["loudness-dB", "specshape-centroid"], "reward_noise": 0.1,
                "training_mode": "mixed_random", "reward_type": "cubic+prize",
                "step_size": 0.01, "ip_send": "127.0.0.1", "port_send": 6667,
                "port_send_optimal": 6668, "verbose": "False", "live": "True",
                "max_episode_duration": 3000, "seed": "None"}
    path = tmp_path / "environment_settings.json"
    path.write_text(json.dumps(settings))
    env = ImproviseEnv(settings=str(path), mode="lookup", subdiv=4)
    assert env.unwrapped._core.reward_type == "cubic+prize"     # honoured, unlike RL-impro
    assert env.observation_space.shape == (2 * 23 + 2,)
    with pytest.raises(ImproviseConfigError, match="N_synth_params"):
        settings_to_kwargs({**settings, "N_synth_params": 3})
    with pytest.raises(ImproviseConfigError, match="unknown key 'colour'"):
        settings_to_kwargs({"colour": 1})
    with pytest.raises(ImproviseConfigError, match="instrument_name"):
        settings_to_kwargs({"instrument_name": "granular3-dur"})


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"action_type": "joystick"}, "action_type"),
    ({"mode": "fast"}, "mode"),
    ({"features_keep": ["pitch"], "features_reward": ["loudness-dB"]}, "leaves out"),
    ({"training_mode": "corpus"}, "needs corpus"),
    ({"step_size": 0.0}, "step_size"),
    ({"corpus": {"one": sine_track(220)}, "split": "test"}, "no test track"),
])
def test_bad_settings_raise_improvise_config_error(kwargs, match):
    with pytest.raises(ImproviseConfigError, match=match):
        ImproviseEnv(**{**SINE, "mode": "lookup", "subdiv": 3, **kwargs})


def test_write_table_honours_the_umask(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        path = write_table(tmp_path / "t.csv", {"a": np.arange(3.0)})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_vector_env_refuses_a_batch_of_the_wrong_size_and_waits_when_disabled():
    vec = ImproviseVectorEnv(3, mode="lookup", subdiv=5, max_episode_steps=1,
                             autoreset_mode="disabled", **SINE)
    assert vec.metadata["autoreset_mode"].name == "DISABLED"
    vec.reset(seed=0)
    with pytest.raises(InvalidActionError, match="batch of 3 rows"):
        vec.step(np.array([0, 4]))
    obs, _, _, truncated, infos = vec.step(np.array([0, 4, 8]))
    assert truncated.all() and "final_obs" not in infos and infos["_rmse"].all()
    with pytest.raises(InvalidActionError, match="reset_mask"):
        vec.step(np.array([0, 4, 8]))
    obs2, infos = vec.reset(options={"reset_mask": np.array([False, True, False])})
    assert infos["_frame"].tolist() == [False, True, False]
    np.testing.assert_array_equal(obs2[0], obs[0])
    with pytest.raises(ImproviseConfigError, match="autoreset_mode"):
        ImproviseVectorEnv(2, autoreset_mode="next_step", mode="lookup", subdiv=3, **SINE)


def test_rendering_mode_streams_the_synth_without_restarting():
    """A held state sounds like one long render: every step continues the stream (no new
    attack), bit for bit, and a row's autoreset leaves the other rows playing on."""
    vec = ImproviseVectorEnv(2, action_type="multidiscrete", step_size=0.05, **SINE)
    vec.reset(seed=3)
    core = vec._core
    holes = core.synth.hole_matrix(core.params, core.sr)
    for _ in range(3):
        vec.step(np.ones((2, 2), dtype=np.int64))     # stay
    fl = core.frame_length
    long = core.synth.patch(core.sr).render(holes, n_samples=2 * fl + 3 * fl).mean(axis=1)
    np.testing.assert_array_equal(core._heard, long[:, -2 * fl:])
    before = core._heard[1].copy()
    core.reset(np.array([True, False]), np.random.default_rng(0), None)
    np.testing.assert_array_equal(core._heard[1], before)
    fresh = core.synth.render(core.params[:1], n_samples=fl, sr=core.sr, preroll=fl)
    np.testing.assert_array_equal(core._heard[0], fresh[0])


def test_episode_audio_is_one_continuous_stream():
    from musicgym.envs.improvise_play import render_states
    from musicgym.envs.synths import make_synth

    synth = make_synth("sine")
    u = np.array([[0.2, 0.5]] * 4)
    audio = render_states(synth, u, hop_length=512)
    long = synth.render(u[:1], n_samples=5 * 512, preroll=0)[0]
    np.testing.assert_array_equal(audio, long)
