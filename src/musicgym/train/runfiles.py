"""A run folder's files: made race-free, written atomically, read back without running code.

A run folder may come from someone else, so nothing in it is unpickled:

* ``model.zip``/``checkpoint.zip`` are SB3 zips; the objects SB3 would unpickle from their
  ``data`` (the spaces, the policy class, schedules, buffers' classes...) are rebuilt from the
  run's ``config.yaml`` (by making its env and the algorithm's constructor), any other pickled
  entry is refused, and the weights go through ``torch.load(weights_only=True)`` (SB3's own);
* the replay buffer of an off-policy run is a NumPy ``.npz`` read with ``allow_pickle=False``;
* ``config.yaml`` is read with ``yaml.safe_load``.

Each checkpoint holds its own record (``musicgym.json`` inside the zip: steps, algorithm,
replay-buffer file and digest), so a checkpoint is checked on its own before it is used: the zip
reads back whole (CRCs), its record matches its SB3 data. ``checkpoint.zip`` is the newest,
``checkpoint_prev.zip`` the one before: a kill at any moment leaves at least one good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from musicgym.errors import ConfigError
from musicgym.train.config import LEARNERS, OFF_POLICY, TrainConfig, learner

META = "musicgym.json"
CHECKPOINTS = ("checkpoint.zip", "checkpoint_prev.zip")

# what SB3 pickles into a model's data, and how it is rebuilt instead: from the algorithm
# constructed on the run's config without its networks (``template``), or left to
# ``_setup_model``, which remakes it (None)
_REBUILT = {
    "observation_space": lambda t: t.observation_space,
    "action_space": lambda t: t.action_space,
    "policy_class": lambda t: t.policy_class,
    "policy_kwargs": lambda t: t.policy_kwargs,
    "clip_range": lambda t: t.clip_range,
    "clip_range_vf": lambda t: t.clip_range_vf,
    "train_freq": lambda t: t.train_freq,
    "action_noise": lambda t: t.action_noise,
    "rollout_buffer_class": lambda t: t.rollout_buffer_class,
    "replay_buffer_class": lambda t: t.replay_buffer_class,
    "lr_schedule": lambda t: None,
    "exploration_schedule": lambda t: None,
    "_last_obs": lambda t: None,
    "_last_original_obs": lambda t: None,
    "_last_episode_starts": lambda t: None,
    "_last_lstm_states": lambda t: None,
    "ep_info_buffer": lambda t: None,
    "ep_success_buffer": lambda t: None,
}


def new_run_dir(root: str | Path, algo: str) -> Path:
    """Make ``root/<timestamp>-<ALGO>[-k]``; two processes never get the same folder."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"runs folder {str(root)!r}: cannot create it: {exc}") from exc
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1, 10_000):
        path = root / (f"{stamp}-{algo.upper()}" + (f"-{k}" if k > 1 else ""))
        try:
            path.mkdir()  # atomic: exactly one process creates a name
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"runs folder {str(root)!r}: 10,000 runs started this second")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a synced temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path)


def save_checkpoint(model, run_dir: Path, config: TrainConfig, name: str = "checkpoint") -> Path:
    """Write ``run_dir/name.zip`` atomically, the previous checkpoint kept as ``*_prev.zip``.

    The model goes to a temporary zip with its record added and synced, then renames put it in
    place: a kill leaves the old files or the new ones, never a half-written one in use.
    """
    steps = int(model.num_timesteps)
    meta: dict[str, Any] = {"num_timesteps": steps, "algo": config.algo, "time": time.time()}
    if config.algo in OFF_POLICY and getattr(model, "replay_buffer", None) is not None:
        rb = run_dir / f"replay_buffer-{steps}.npz"
        _save_replay_buffer(model.replay_buffer, rb)
        meta["replay_buffer"] = {"file": rb.name, "sha256": _sha256(rb)}
    final = run_dir / f"{name}.zip"
    tmp = run_dir / f".{name}.tmp.zip"
    model.save(tmp)
    with zipfile.ZipFile(tmp, "a") as archive:
        archive.writestr(META, json.dumps(meta))
    _fsync(tmp)
    if name == "checkpoint" and final.is_file():
        os.replace(final, run_dir / "checkpoint_prev.zip")
    os.replace(tmp, final)
    _fsync(run_dir)
    if name == "checkpoint":
        write_atomically(run_dir / "checkpoint.json", json.dumps(meta))
        _prune_replay_buffers(run_dir)
    return final


def _prune_replay_buffers(run_dir: Path) -> None:
    """Delete replay buffers no checkpoint of the folder names."""
    keep = set()
    for name in (*CHECKPOINTS, "model.zip"):
        meta = verify_checkpoint(run_dir / name)
        if meta and "replay_buffer" in meta:
            keep.add(meta["replay_buffer"]["file"])
    for path in run_dir.glob("replay_buffer-*.npz"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checkpoint(path: Path, algo: str | None = None) -> dict | None:
    """The record of a checkpoint zip if it reads back whole and is consistent, else None."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                return None
            meta = json.loads(archive.read(META))
            data = json.loads(archive.read("data"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError):
        return None
    if not isinstance(meta, dict) or meta.get("num_timesteps") != data.get("num_timesteps"):
        return None
    if algo is not None and meta.get("algo") != algo:
        return None
    rb = meta.get("replay_buffer")
    if rb is not None:
        file = path.parent / str(rb.get("file", ""))
        if Path(rb.get("file", "")).name != rb.get("file") or not file.is_file() \
                or _sha256(file) != rb.get("sha256"):
            return None
    return meta


def last_good_checkpoint(run_dir: Path, algo: str, order=(*CHECKPOINTS, "model.zip")
                         ) -> tuple[Path, dict] | None:
    """The first of ``order`` in ``run_dir`` that verifies, with its record; None if none."""
    for name in order:
        path = run_dir / name
        meta = verify_checkpoint(path, algo) if path.is_file() else None
        if meta is not None:
            return path, meta
    return None


def load_model(path: Path, config: TrainConfig, env, *, meta: dict | None = None):
    """Load an SB3 model zip without unpickling anything from it.

    Parameters
    ----------
    path : pathlib.Path
        A ``model.zip`` or checkpoint written by musicgym (or any SB3 zip whose pickled entries
        are among those SB3 itself writes).
    config : TrainConfig
        The run's config: the algorithm, its keywords and the env the spaces are rebuilt from.
    env : gymnasium.Env or VecEnv
        The env the model will act in (its spaces must be the model's).
    meta : dict, optional
        The checkpoint's record: its replay buffer (off-policy) is loaded too.

    Raises
    ------
    ConfigError
        The zip cannot be read, holds a pickled entry musicgym does not rebuild, or does not
        fit the config's algorithm and env.
    """
    from musicgym.train.runner import algo_class

    cls = algo_class(config.algo)
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable model zip ({exc})") from None
    pickled = sorted(k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v)
    foreign = [k for k in pickled if k not in _REBUILT]
    if foreign:
        raise ConfigError(f"{path}: holds pickled {foreign}, which musicgym does not load "
                          "(unpickling data from a run folder could run any code)")
    try:
        with warnings.catch_warnings():  # its batch-size advice is for training, not here
            warnings.simplefilter("ignore")
            template = cls(config.policy, env, device=config.device, _init_setup_model=False,
                           **config.algo_kwargs)
        custom = {k: _REBUILT[k](template) for k in pickled}
        model = cls.load(path, env=env, device=config.device, custom_objects=custom)
    except (ValueError, KeyError, RuntimeError, TypeError, AssertionError) as exc:
        raise ConfigError(f"{path}: does not fit its run's config ({config.algo} on "
                          f"{config.env_id}): {exc}") from None
    rb = (meta or {}).get("replay_buffer")
    if rb is not None and getattr(model, "replay_buffer", None) is not None:
        _load_replay_buffer(model.replay_buffer, path.parent / rb["file"])
    return model


_RB_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _save_replay_buffer(buffer, path: Path) -> None:
    if isinstance(buffer.observations, dict):
        raise ConfigError("checkpointing a replay buffer of dict observations is not supported")
    arrays = {k: getattr(buffer, k) for k in _RB_ARRAYS if getattr(buffer, k, None) is not None}
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)
    _fsync(tmp)
    os.replace(tmp, path)


def _load_replay_buffer(buffer, path: Path) -> None:
    try:
        with np.load(path, allow_pickle=False) as saved:
            for key in _RB_ARRAYS:
                mine = getattr(buffer, key, None)
                if mine is None or key not in saved:
                    continue
                if saved[key].shape != mine.shape or saved[key].dtype != mine.dtype:
                    raise ConfigError(f"{path}: {key} is {saved[key].shape} "
                                      f"{saved[key].dtype}, the run needs {mine.shape} "
                                      f"{mine.dtype}")
                setattr(buffer, key, saved[key].copy())
            buffer.pos, buffer.full = int(saved["pos"]), bool(saved["full"])
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the replay buffer: {exc}") from None


def read_run_config(run_dir: Path) -> TrainConfig:
    """The ``config.yaml`` of a run folder."""
    cfg = run_dir / "config.yaml"
    if not cfg.is_file():
        raise ConfigError(f"{run_dir}: no config.yaml there (is it a run folder made by "
                          "musicgym train?)")
    return TrainConfig.load(cfg)


def load_run(run_dir: str | Path, *, env=None):
    """``(config, model)`` of a run folder, loaded safely (see the module docstring).

    Parameters
    ----------
    run_dir : path
        A folder made by ``musicgym train``.
    env : gymnasium.Env, optional
        The env to load the model for (default: one made from the run's evaluation keywords).

    Returns
    -------
    (TrainConfig, model)
        The model is ``model.zip``'s, else the last good checkpoint's.

    Raises
    ------
    ConfigError
        No run there, no good model, or a model musicgym will not load.
    """
    import gymnasium as gym

    import musicgym  # noqa: F401  (registers the env ids)

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if config.algo in LEARNERS:   # a learner's own model files (algo: inverse)
        return config, learner(config.algo).load(run_dir, config)
    found = last_good_checkpoint(run_dir, config.algo, order=("model.zip", *CHECKPOINTS))
    if found is None:
        raise ConfigError(f"{run_dir}: no model.zip or checkpoint that reads back whole (was "
                          "the run killed before its first checkpoint?)")
    own = env is None
    if own:
        env = gym.make(config.env_id, **config.eval_kwargs)
    try:
        return config, load_model(found[0], config, env)
    finally:
        if own:
            env.close()

