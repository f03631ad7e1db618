"""TensorBoard that sounds: at each evaluation a training run logs one episode's sounds and
pictures (the family's evaluation files) beside its scalars."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

from musicgym.train.config import resolve  # noqa: E402
from musicgym.train.runner import train  # noqa: E402


def _events(run):
    acc = event_accumulator.EventAccumulator(
        str(run / "tensorboard"), size_guidance={event_accumulator.AUDIO: 0,
                                                 event_accumulator.IMAGES: 0,
                                                 event_accumulator.SCALARS: 0})
    acc.Reload()
    return acc


def test_a_sound_matching_run_logs_its_clips_and_spectrograms(tmp_path):
    import soundfile as sf

    run = train(resolve({"env_id": "musicgym/Kick-v0", "n_envs": 4, "eval_episodes": 1,
                         "eval_every": 32, "steps": 64,
                         "algo_kwargs": {"n_steps": 8, "batch_size": 16, "n_epochs": 1}}),
                runs_root=tmp_path, progress=False)
    acc = _events(run)
    tags = acc.Tags()
    assert {"eval/audio/target", "eval/audio/agent_best"} <= set(tags["audio"])
    assert "eval/image/comparison" in tags["images"]
    # one of each at every evaluation: after 32 steps and at the end
    assert [e.step for e in acc.Audio("eval/audio/agent_best")] == [32, 64]
    assert [e.step for e in acc.Images("eval/image/comparison")] == [32, 64]
    target = acc.Audio("eval/audio/target")[-1]
    audio, sr = sf.read(io.BytesIO(target.encoded_audio_string))
    assert sr == target.sample_rate == 44100 and audio.ndim == 1
    assert np.abs(audio).max() > 0.01                             # a kick, not silence
    image = acc.Images("eval/image/comparison")[-1]
    assert image.width > 400 and image.height > 400
    assert image.encoded_image_string.startswith(b"\x89PNG")


def test_a_composition_run_logs_its_piece_and_piano_roll(tmp_path):
    run = train(resolve({"env_id": "musicgym/Melody-v0", "steps": 128, "eval_episodes": 1,
                         "n_envs": 1, "algo_kwargs": {"n_steps": 64, "batch_size": 64}}),
                runs_root=tmp_path, progress=False)
    tags = _events(run).Tags()
    assert "eval/audio/piece/piece" in tags["audio"]
    assert "eval/image/piece/piano_roll" in tags["images"]
