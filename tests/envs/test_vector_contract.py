"""Every registered env in Gymnasium's vector envs and in Stable-Baselines3: ``gym.make_vec``
(sync and async), SB3's ``make_vec_env``, and ``SB3VecEnv`` over native and Gymnasium vector
envs (autoreset modes, infos, episode statistics, masks, indices, clean close after an error).
"""

from __future__ import annotations

import csv
import threading

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import musicgym.envs  # noqa: F401  (registers the ids)
from musicgym.envs.synth_match_vector import SynthMatchVectorEnv
from musicgym.errors import ConfigError, MusicgymError, RenderModeError
from tests.envs.small import SMALL_KWARGS

sb3 = pytest.importorskip("stable_baselines3")
from musicgym.train.sb3 import SB3VecEnv, make_sb3_vec_env  # noqa: E402

KWARGS = SMALL_KWARGS
IDS = sorted(KWARGS)
NATIVE = [i for i in IDS if gym.spec(i).vector_entry_point is not None]
MASKED = ("musicgym/Counterpoint-v0", "musicgym/Melody-v0")


def test_every_registered_id_is_covered():
    assert set(IDS) == {i for i in gym.registry if i.startswith("musicgym/")}


def _signature(info: dict, prefix: str = "") -> dict:
    """Each info key's batch dtype and per-env shape (nested dicts flattened)."""
    out = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            out.update(_signature(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = (value.dtype, value.shape[1:])
    return out


def _rollout(venv, steps: int, seed: int = 0):
    """Random steps; yields (rewards, terminated, truncated, info)."""
    venv.action_space.seed(seed)
    venv.reset(seed=seed)
    for _ in range(steps):
        _, rewards, terminated, truncated, info = venv.step(venv.action_space.sample())
        yield rewards, terminated, truncated, info


@pytest.mark.parametrize(("env_id", "mode"), [(i, m) for i in IDS for m in ("sync", "async")]
                         + [(i, "vector_entry_point") for i in NATIVE])
def test_make_vec_steps_with_infos_of_fixed_shapes(env_id, mode):
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, **KWARGS[env_id])
    try:
        seen: dict = {}
        for *_, info in _rollout(venv, 8):
            for key, signature in _signature(info).items():
                assert seen.setdefault(key, signature) == signature, key
    finally:
        venv.close()


def _bad_action(space: spaces.Space):
    if isinstance(space, spaces.Discrete):
        return 10**6
    if isinstance(space, spaces.MultiDiscrete):
        return np.full(space.shape, 10**6)
    return np.full(space.shape, np.nan, dtype=np.float32)


@pytest.mark.parametrize("env_id", IDS)
def test_async_env_closes_cleanly_after_a_sub_env_raised(env_id):
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="async", **KWARGS[env_id])
    venv.reset(seed=0)
    bad = np.stack([_bad_action(venv.single_action_space)] * 2)
    with pytest.raises(MusicgymError):
        venv.step(bad)
    closing = threading.Thread(target=venv.close, daemon=True)
    closing.start()
    closing.join(timeout=10)
    assert not closing.is_alive(), "close() hung after a sub-env raised"


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_make_vec_env_steps(env_id):
    from stable_baselines3.common.env_util import make_vec_env

    # SB3 asks for render_mode="rgb_array" first and falls back on a TypeError
    venv = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=KWARGS[env_id])
    venv.reset()
    for _ in range(4):
        venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
    venv.close()


@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")
@pytest.mark.parametrize("env_id", IDS)
def test_unsupported_render_mode_is_a_clear_error(env_id):
    with pytest.raises(RenderModeError, match="'rgb_array', 'ansi'"):
        gym.make(env_id, render_mode="depth_array", **KWARGS[env_id])
    assert gym.make(env_id, render_mode="ansi", **KWARGS[env_id]).unwrapped.render_mode == "ansi"


def _algo(env_id: str):
    if env_id in MASKED:
        from sb3_contrib import MaskablePPO

        return MaskablePPO, "MlpPolicy"
    if env_id == "musicgym/Accompany-v0":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO, "MlpLstmPolicy"
    return sb3.PPO, "MlpPolicy"


def _learn(env_id: str, mode: str | None) -> None:
    venv = make_sb3_vec_env(env_id, 2, seed=0, env_kwargs=KWARGS[env_id],
                            vectorization_mode=mode)
    algo, policy = _algo(env_id)
    model = algo(policy, venv, n_steps=8, batch_size=8, n_epochs=1, seed=0,
                 policy_kwargs={"net_arch": [8]}, device="cpu")
    model.learn(16)
    assert model.num_timesteps == 16
    venv.close()


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_learns_through_the_adapter_on_sync_envs(env_id):
    _learn(env_id, "sync")


@pytest.mark.parametrize("env_id", NATIVE)
def test_sb3_learns_through_the_adapter_on_native_envs(env_id):
    _learn(env_id, None)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["musicgym/Melody-v0", "musicgym/Kick-v0"])
def test_sb3_learns_through_the_adapter_on_async_envs(env_id):
    _learn(env_id, "async")


def _make(env_id: str, autoreset: AutoresetMode, num_envs: int = 2):
    if env_id in NATIVE:
        return gym.make_vec(env_id, num_envs=num_envs, autoreset_mode=autoreset,
                            **KWARGS[env_id])
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": autoreset}, **KWARGS[env_id])


@pytest.mark.parametrize("autoreset", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("env_id", IDS)
def test_record_episode_statistics_sums_the_rewards(env_id, autoreset):
    if env_id == "musicgym/Improvise-v0" and autoreset == AutoresetMode.NEXT_STEP:
        pytest.skip("ImproviseVectorEnv resets in the same step or on request")
    venv = RecordEpisodeStatistics(_make(env_id, autoreset))
    returns, lengths = np.zeros(2), np.zeros(2, dtype=int)
    skip = np.zeros(2, dtype=bool)   # NEXT_STEP: the step after an end only resets
    ended = 0
    for rewards, terminated, truncated, info in _rollout(venv, 14):
        returns[~skip] += rewards[~skip]
        lengths[~skip] += 1
        done = terminated | truncated
        for i in np.flatnonzero(done):
            assert info["_episode"][i]
            assert info["episode"]["r"][i] == pytest.approx(returns[i], rel=1e-5, abs=1e-5)
            assert info["episode"]["l"][i] == lengths[i]
            ended += 1
        returns[done], lengths[done] = 0.0, 0
        skip = done if autoreset == AutoresetMode.NEXT_STEP else np.zeros(2, dtype=bool)
    assert ended >= 2
    venv.close()


def test_kick_training_logs_the_episode_return(tmp_path):
    from stable_baselines3.common.logger import configure

    model = sb3.PPO("MlpPolicy", make_sb3_vec_env("musicgym/Kick-v0", 4, seed=0), n_steps=8,
                    batch_size=16, n_epochs=1, policy_kwargs={"net_arch": [8]}, device="cpu")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(64)
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    values = [float(r["rollout/ep_rew_mean"]) for r in rows if r.get("rollout/ep_rew_mean")]
    assert values and all(np.isfinite(values)) and all(v < 0 for v in values)


def test_adapter_refuses_next_step_and_resets_a_disabled_env_on_request():
    with pytest.raises(ConfigError, match="make_sb3_vec_env"):
        SB3VecEnv(gym.make_vec("musicgym/Kick-v0", num_envs=2))
    with pytest.raises(ConfigError, match="episode statistics"):
        SB3VecEnv(_make("musicgym/Melody-v0", AutoresetMode.DISABLED))
    native = SynthMatchVectorEnv(num_envs=2, autoreset_mode=AutoresetMode.DISABLED,
                                 **{**KWARGS["musicgym/SynthMatch-v0"], "total_step": 1})
    venv = SB3VecEnv(native)
    venv.seed(3)
    venv.reset()
    venv.step_async(np.zeros((2, 3), dtype=np.float32))
    obs, rewards, dones, infos = venv.step_wait()
    assert dones.all() and (rewards < 0).all() and (obs[:, -1] == 0).all()
    for info in infos:
        assert info["terminal_observation"][-1] == 1.0 and not info["TimeLimit.truncated"]
        assert info["episode"]["l"] == 1 and info["episode"]["r"] < 0
        assert np.isfinite(info["clip_distance"])


def test_same_step_infos_are_the_ended_steps_and_truncation_is_reported():
    venv = make_sb3_vec_env("musicgym/Melody-v0", 2, seed=0,
                            env_kwargs={"n_steps": 2, "invalid_action": "penalize"})
    venv.reset()
    dones = np.zeros(2, dtype=bool)
    steps = 0
    while not dones.all():   # action 0 (hold) is masked at the start: penalised no-ops
        _, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
        steps += 1
    assert steps == 8   # truncated after 4 * n_steps invalid steps
    for info in infos:
        assert info["TimeLimit.truncated"] and info["invalid_action"]
        assert info["episode"]["l"] == 8 and info["episode"]["r"] == pytest.approx(-8.0)
        assert info["terminal_observation"].shape == venv.observation_space.shape
    assert all(r["step"] == 0 for r in venv.reset_infos)


def test_masks_and_attributes_honour_indices():
    venv = make_sb3_vec_env("musicgym/Counterpoint-v0", 3, seed=0,
                            env_kwargs=KWARGS["musicgym/Counterpoint-v0"])
    venv.reset()
    masks = venv.action_masks()
    assert masks.shape == (3, 60) and masks.dtype == bool and masks.any(axis=1).all()
    assert len(venv.env_method("action_masks", indices=[2])) == 1
    venv.set_attr("invalid_action", "raise", indices=[1])
    assert venv.get_attr("invalid_action") == ["penalize", "raise", "penalize"]
    assert venv.get_attr("invalid_action", indices=[1, 2]) == ["raise", "penalize"]
    assert venv.has_attr("action_masks") and venv.render_mode is None
    native = make_sb3_vec_env("musicgym/Kick-v0", 2)
    assert native.get_attr("num_envs", indices=[0, 1]) == [2, 2]
    with pytest.raises(ConfigError, match="one object for all its envs"):
        native.set_attr("autoreset_mode", AutoresetMode.DISABLED, indices=[0])
