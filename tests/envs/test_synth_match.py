"""musicgym/SynthMatch-v0 and its presets: RaveForce's interface, Gymnasium/SB3 checkers,
determinism, the native vector env, bad input, and NaN/inf never escaping."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import musicgym
from musicgym.envs.presets import KICK_CODE, PRESETS, kick_target
from musicgym.envs.synth_match import SynthMatchEnv
from musicgym.errors import ActionSpaceError, AudioFileError, InvalidActionError, TargetError

PRESET_IDS = [f"musicgym/{name}" for name in PRESETS]
KICK_SPACE = [("exp", 0.0005, 0.05), ("exp", 0.05, 0.5), ("exp", 30.0, 300.0)]


@pytest.mark.parametrize("env_id", PRESET_IDS)
def test_presets_pass_gymnasium_and_sb3_checkers(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(gym.make(env_id).unwrapped)
        sb3_checker.check_env(gym.make(env_id).unwrapped)


def test_raveforce_script_ports_with_five_return_values():
    target = kick_target()
    env = musicgym.make_synth_match(
        "~env: imp 0.1 >> envperc {} {}\nkick_drum: sin {} >> mul ~env", target=target,
        total_step=1, step_len=len(target) / 44100,
        action_space=[["lin", 0.0001, 0.01], ["rel", 0, lambda x: 0.5 - 0.0001 - x],
                      ["exp", 10, 10000]], criteria="mse")
    obs, info = env.reset(seed=0)
    action = env.action_space.sample()
    obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated  # RaveForce never ended its episodes
    assert -100.0 <= reward <= 0.0
    p = info["params"]
    assert p["1"] == pytest.approx(0.5 - 0.0001 - p["0"])


def test_same_seed_same_episode_bit_for_bit():
    def run(seed):
        env = gym.make("musicgym/BassLine-v0")
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(4):
            obs, reward, *_ = env.step(env.action_space.sample())
            out += [obs, np.float32(reward)]
        return out

    a, b = run(3), run(3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_episode_is_a_sequencer_and_terminates():
    env = gym.make("musicgym/BassLine-v0")
    obs, _ = env.reset(seed=0)
    core = env.unwrapped.core
    for k in range(16):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        clip = env.unwrapped.clip_audio
        assert np.abs(clip[k * core.seg:(k + 1) * core.seg]).max() > 0  # segment k written
        assert not clip[(k + 1) * core.seg:].any()  # nothing after it yet
        assert obs[-1] == pytest.approx((k + 1) / 16)
        assert terminated == (k == 15) and not truncated
    with pytest.raises(InvalidActionError, match="reset"):
        env.step(env.action_space.sample())


def test_a_better_match_gets_a_better_reward():
    env = SynthMatchEnv(KICK_CODE, kick_target(), 1, 0.5, KICK_SPACE)
    env.reset(seed=0)
    # attack 1 ms, decay 0.3 s, 60 Hz is close to the swept kick; 40 ms / 0.06 s / 290 Hz is not
    close = np.array([2 * np.log(0.001 / 0.0005) / np.log(100) - 1,
                      2 * np.log(0.3 / 0.05) / np.log(10) - 1,
                      2 * np.log(60 / 30) / np.log(10) - 1], dtype=np.float32)
    far = np.array([0.9, -0.9, 0.95], dtype=np.float32)
    _, r_close, *_ = env.step(close)
    env.reset(seed=0)
    _, r_far, *_ = env.step(far)
    assert r_close > r_far


@pytest.mark.parametrize("reward", ["mse", "mrstft", "logmel", "mfcc", {"mrstft": 1, "mfcc": 0.01}])
def test_rewards_are_bounded_float32(reward):
    env = SynthMatchEnv(KICK_CODE, kick_target(), 1, 0.5, KICK_SPACE, reward=reward)
    env.reset(seed=0)
    _, r, *_ = env.step(env.action_space.sample())
    bound = env.core.distance.bound
    assert -bound <= r <= 0.0 and np.isfinite(r)


def test_nan_and_inf_never_reach_observation_or_reward():
    # a patch whose output overflows to inf then NaN (seq note 6468 is 2^534)
    env = SynthMatchEnv("o: seq {n} >> mul {g}", kick_target(), 1, 0.5,
                        [("choose", [6468, 60]), ("lin", -1e30, 1e30)], flat_actions=True)
    obs, _ = env.reset(seed=0)
    obs, r, *_ = env.step(np.array([-1.0, 1.0], dtype=np.float32))
    assert np.isfinite(obs).all() and np.isfinite(r)
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("observation", ["features", "audio", "goal"])
def test_observations_are_inside_their_bounds(observation):
    env = SynthMatchEnv(KICK_CODE, kick_target(), 1, 0.5, KICK_SPACE, observation=observation)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)


def test_out_of_range_actions_raise_or_clip():
    env = SynthMatchEnv(KICK_CODE, kick_target(), 1, 0.5, KICK_SPACE)
    env.reset(seed=0)
    with pytest.raises(ActionSpaceError, match="clip_actions=True"):
        env.step(np.array([2.0, 0.0, 0.0], dtype=np.float32))
    with pytest.raises(ActionSpaceError, match="finite"):
        env.step(np.array([np.nan, 0.0, 0.0], dtype=np.float32))
    clipped = SynthMatchEnv(KICK_CODE, kick_target(), 1, 0.5, KICK_SPACE, clip_actions=True)
    clipped.reset(seed=0)
    _, r, *_ = clipped.step(np.array([2.0, 0.0, 0.0], dtype=np.float32))
    assert np.isfinite(r)


@pytest.mark.parametrize("spec,match", [
    ([("lin", 1.0, 1.0), ("exp", 1, 2), ("exp", 1, 2)], "lo < hi"),
    ([("exp", 0.0, 1.0), ("exp", 1, 2), ("exp", 1, 2)], "lo > 0"),
    ([("lin", 0, 1), ("rel", 2, "x"), ("exp", 1, 2)], "earlier hole"),
    ([("lin", 0, 1), ("rel", 1, "x"), ("exp", 1, 2)], "earlier hole"),
    ([("lin", 0, 1), ("choose", []), ("exp", 1, 2)], "at least one value"),
    ([("lin", 0, 1), ("cubic", 0, 1), ("exp", 1, 2)], "unknown kind"),
    ([("lin", 0, 1)], "3 holes"),
    ([("lin", 0, 1), ("rel", 0, "__import__('os')"), ("exp", 1, 2)], "only x"),
])
def test_bad_action_specs_are_refused_at_make_time(spec, match):
    with pytest.raises(ActionSpaceError, match=match):
        SynthMatchEnv(KICK_CODE, kick_target(), 1, 0.5, spec)


def test_mixed_actions_are_a_dict_unless_flat():
    spec = [("choose", [36, 48]), ("exp", 100.0, 5000.0)]
    env = SynthMatchEnv(PRESETS["BassLine-v0"]["code"], kick_target(), 2, 0.25, spec)
    assert isinstance(env.action_space, gym.spaces.Dict)
    env.reset(seed=0)
    _, r, *_ = env.step({"continuous": np.zeros(1, np.float32), "discrete": np.array([1])})
    assert np.isfinite(r)
    flat = SynthMatchEnv(PRESETS["BassLine-v0"]["code"], kick_target(), 2, 0.25, spec,
                         flat_actions=True)
    assert flat.action_space.shape == (2,)
    np.testing.assert_allclose(flat.core.pmap.params(np.array([[1.0, -1.0]]))[0], [48.0, 100.0])


def test_targets_from_files_folders_and_lists(tmp_path, oneshots_dir):
    files = sorted(oneshots_dir.glob("bd_*.flac"))
    env = SynthMatchEnv(KICK_CODE, oneshots_dir, 1, 0.4, KICK_SPACE)
    names = {env.reset(seed=s)[1]["target"] for s in range(12)}
    assert len(names) > 3  # goal-conditioned: episodes draw different targets
    listed = SynthMatchEnv(KICK_CODE, files, 1, 0.4, KICK_SPACE)
    assert len(listed.core.targets) == len(files)
    with pytest.raises(TargetError, match="no audio files"):
        SynthMatchEnv(KICK_CODE, tmp_path, 1, 0.4, KICK_SPACE)
    with pytest.raises(AudioFileError, match="missing.wav"):
        SynthMatchEnv(KICK_CODE, tmp_path / "missing.wav", 1, 0.4, KICK_SPACE)
    with pytest.raises(TargetError, match="NaN"):
        SynthMatchEnv(KICK_CODE, np.array([0.0, np.nan]), 1, 0.4, KICK_SPACE)


def test_vector_env_matches_single_envs_and_autoresets():
    venv = gym.make_vec("musicgym/Kick-v0", num_envs=4)
    assert type(venv).__name__ == "SynthMatchVectorEnv"
    obs, _ = venv.reset(seed=0)
    actions = np.linspace(-0.9, 0.9, 12, dtype=np.float32).reshape(4, 3)
    obs, rewards, terminated, truncated, info = venv.step(actions)
    assert terminated.all() and not truncated.any()
    for i in range(4):
        single = gym.make("musicgym/Kick-v0")
        single.reset(seed=0)
        _, r, *_ = single.step(actions[i])
        assert rewards[i] == pytest.approx(r, rel=1e-6)
    obs, rewards, terminated, *_ = venv.step(actions)  # NEXT_STEP autoreset
    assert (rewards == 0).all() and not terminated.any() and (obs[:, -1] == 0).all()


def test_sb3_adapter_resets_immediately():
    pytest.importorskip("stable_baselines3")
    from musicgym.train.sb3 import SB3VecEnv

    venv = SB3VecEnv(gym.make_vec("musicgym/Kick-v0", num_envs=3,
                                  autoreset_mode=AutoresetMode.SAME_STEP))
    obs = venv.reset()
    venv.step_async(np.zeros((3, 3), dtype=np.float32))
    obs, rewards, dones, infos = venv.step_wait()
    assert dones.all() and all("terminal_observation" in i for i in infos)
    assert (obs[:, -1] == 0).all()  # already reset: progress 0
    assert infos[0]["terminal_observation"][-1] == 1.0


@pytest.mark.reference
def test_reference_backend_gives_the_same_rewards(glicol):
    numpy_env = gym.make("musicgym/Kick-v0")
    glicol_env = gym.make("musicgym/Kick-v0", backend="glicol")
    action = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    numpy_env.reset(seed=0)
    glicol_env.reset(seed=0)
    _, r1, *_ = numpy_env.step(action)
    _, r2, *_ = glicol_env.step(action)
    assert r1 == pytest.approx(r2, abs=1e-4)


def test_a_list_of_files_is_several_targets_and_reset_picks_one(tmp_path):
    from musicgym.audio.io import write_wav

    for name, hz in (("a.wav", 60.0), ("b.wav", 200.0)):
        write_wav(tmp_path / name, np.sin(2 * np.pi * hz * np.arange(4410) / 44100), 44100)
    files = [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]
    env = SynthMatchEnv(KICK_CODE, files, 1, 0.1, KICK_SPACE)
    assert [name for name, _ in env.core.targets] == ["a.wav", "b.wav"]
    assert env.reset(options={"target": "b.wav"})[1]["target_index"] == 1
    assert env.reset(options={"target": 0})[1]["target"] == "a.wav"
    with pytest.raises(TargetError, match="target=99"):
        env.reset(options={"target": 99})
    with pytest.raises(TargetError, match="not an audio file or an array"):
        SynthMatchEnv(KICK_CODE, [["x", 1.0]], 1, 0.1, KICK_SPACE)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"total_step": 0}, "total_step"), ({"total_step": True}, "total_step"),
    ({"total_step": 2.0}, "total_step"), ({"obs_mels": -1}, "obs_mels"),
    ({"obs_frames": 0}, "obs_frames"), ({"num_envs": 0}, "num_envs"),
    ({"autoreset_mode": "sometimes"}, "autoreset_mode"),
])
def test_bad_sizes_are_target_errors(kwargs, match):
    with pytest.raises(TargetError, match=match):
        gym.make_vec("musicgym/Kick-v0", **{"num_envs": 2, **kwargs})


def test_vector_env_refuses_a_batch_of_the_wrong_size():
    venv = gym.make_vec("musicgym/Kick-v0", num_envs=3)
    venv.reset(seed=0)
    with pytest.raises(ActionSpaceError, match="batch of 3 rows"):
        venv.step(np.zeros((2, 3), dtype=np.float32))


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_vector_env_autoreset_modes(mode):
    venv = gym.make_vec("musicgym/BassLine-v0", num_envs=2, total_step=2,
                        autoreset_mode=mode)
    assert venv.metadata["autoreset_mode"] == mode
    venv.reset(seed=0)
    actions = np.zeros((2, 2), dtype=np.float32)
    venv.step(actions)
    obs, rewards, terminated, _, info = venv.step(actions)
    assert terminated.all() and (rewards < 0).all()
    if mode == AutoresetMode.SAME_STEP:
        assert info["_final_obs"].all() and info["final_obs"][0][-1] == 1.0
        assert (obs[:, -1] == 0).all()   # already reset: progress 0
        return
    assert (obs[:, -1] == 1).all()        # waits for a reset
    with pytest.raises(InvalidActionError, match="reset_mask"):
        venv.step(actions)
    obs, info = venv.reset(options={"reset_mask": np.array([True, False])})
    assert obs[0, -1] == 0 and obs[1, -1] == 1 and info["_target_index"].tolist() == [True, False]


def test_steady_malloc_keeps_step_sized_arrays_from_faulting_back_in():
    import resource
    import sys

    from musicgym.envs.matching import steady_malloc

    steady_malloc()
    steady_malloc()  # once is enough; again is harmless
    if not sys.platform.startswith("linux"):
        return

    def step_like():  # a step's pattern: a few multi-megabyte arrays made and dropped
        arrays = [np.ones((64, 22050), np.float32) for _ in range(3)]
        del arrays

    for _ in range(3):
        step_like()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        step_like()
    # with glibc's default dynamic thresholds the freed heap is trimmed and the 20 steps
    # fault about 31,000 pages back in (measured); kept, they fault none
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 2000


@pytest.mark.parametrize("env_id", ["musicgym/Kick-v0", "musicgym/Snare-v0"])
@pytest.mark.parametrize("observation", ["features", "goal", "audio"])
def test_threads_option_gives_the_same_bits(env_id, observation):
    """``threads=`` (the env option; else MUSICGYM_NUM_THREADS): a one-step preset's rows are
    rendered, rewarded and featurised in blocks, one per thread, with the bits of one thread
    and of the single env."""
    from musicgym.errors import ConfigError

    runs = []
    for threads in (1, 3):
        env = gym.make_vec(env_id, num_envs=21, threads=threads, observation=observation)
        env.action_space.seed(4)
        out = [env.reset(seed=4)[0]]
        for _ in range(4):  # step, autoreset, step, autoreset
            obs, reward, _, _, info = env.step(env.action_space.sample())
            out += [obs, reward, info["clip_distance"]]
        runs.append(out)
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b, equal_nan=True)
    env.action_space.seed(4)
    env.reset(seed=4)
    actions = env.action_space.sample()
    obs, reward, *_ = env.step(actions)
    single = gym.make(env_id, observation=observation)
    single.reset(seed=0)
    one = {k: v[5] for k, v in actions.items()} if isinstance(actions, dict) else actions[5]
    obs1, reward1, *_ = single.step(one)
    assert np.array_equal(obs1, obs[5]) and reward1 == reward[5]
    with pytest.raises(ConfigError, match="threads"):
        gym.make_vec(env_id, num_envs=2, threads=0)


def test_vector_env_clips_read_as_zeros_after_an_autoreset():
    """One-step episodes: the autoreset call leaves the clips to be zeroed when read (the
    next step overwrites them); reading them in between gives zeros, and the next step the
    same bits either way."""
    runs = []
    for peek in (False, True):
        env = gym.make_vec("musicgym/Kick-v0", num_envs=8)
        env.action_space.seed(5)
        env.reset(seed=5)
        out = []
        for _ in range(4):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            if peek:
                clips = env.unwrapped.clips
                assert np.abs(clips).max() > 0 if info["_clip_distance"].any() \
                    else not clips.any()
            out += [obs, reward, info["clip_distance"]]
            if info["_clip_distance"].any():  # a rendering call: the clips it wrote
                out.append(env.unwrapped.clips.copy())
        runs.append(out)
    assert len(runs[0]) == 14  # two rendering calls (with their clips), two autoresets
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b, equal_nan=True)
