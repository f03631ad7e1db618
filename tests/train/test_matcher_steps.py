"""A sequencer preset's matcher (BassLine-v0): step by step, notes learnt from SoundFont bass
lines, the match written as 16 filled steps that `musicgym render --steps` plays back. Real
engine renders and real SoundFonts throughout."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import soundfile as sf

from musicgym.audio.soundfont import soundfont_available
from musicgym.cli import main
from musicgym.cli.render import split_steps
from musicgym.envs.matcher_model import Matcher
from musicgym.envs.presets import BASS_NOTES, bassline_target
from musicgym.errors import ConfigError, ParameterError
from musicgym.train.match import match_target
from musicgym.train.matcher import patch_spec, synthetic_dataset, train_matcher
from musicgym.train.matcher_steps import (
    TEST_PROGRAMS,
    TRAIN_PROGRAMS,
    learn_notes,
    note_accuracy,
    soundfont_basslines,
    yin_notes,
)

needs_soundfont = pytest.mark.skipif(not soundfont_available(), reason="no SoundFont")


def _saw(midi: int, seconds: float = 0.25, sr: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 15)).astype(np.float32)


def test_a_sequencer_preset_is_matched_step_by_step_as_the_env_renders_it():
    spec = patch_spec("BassLine-v0")
    assert spec["steps"] == 16 and spec["seconds"] == 0.25
    matcher = Matcher.builtin("BassLine-v0")
    result = match_target(spec, bassline_target(), "policy", matcher=matcher)
    assert result["actions"].shape == (16, 2) and result["params"].shape == (16, 2)
    assert result["evaluations"] == 16 and result["clip"].shape == (16 * 11025,)
    # the env, stepped with the same actions, renders the same clip
    env = gym.make("musicgym/BassLine-v0")
    env.reset(seed=0)
    for action in result["actions"]:
        env.step(action.astype(np.float32))
    np.testing.assert_allclose(env.unwrapped.clip_audio, result["clip"], atol=1e-6)
    # the preset's target is another synthesis model (additive saws): the notes are named
    assert note_accuracy(result["params"][:, 0].astype(int), BASS_NOTES) >= 0.9
    # a search keeps its best per step: never worse than the first guesses it renders
    hybrid = match_target(spec, bassline_target(), "policy+nm", budget=8, matcher=matcher)
    assert hybrid["evaluations"] <= 16 * 8


def test_the_builtin_bass_matcher_knows_the_patch_and_was_made_by_a_recorded_command():
    matcher = Matcher.builtin("BassLine-v0")
    meta = matcher.meta
    assert "--sf-lines" in meta["command"] and meta["seed"] == 0
    assert meta["sf_programs"] == list(TRAIN_PROGRAMS) and meta["note_column"] == 0
    assert not set(TRAIN_PROGRAMS) & set(TEST_PROGRAMS)
    spec = patch_spec("BassLine-v0")
    x, y = synthetic_dataset(spec, 64, seed=4242, features=matcher.features_kwargs)
    error = np.abs(matcher.forward(x) - y)
    assert np.median(error[:, 1]) < 0.05  # the cutoff, normalised
    named = np.minimum(((matcher.forward(x)[:, 0] + 1) / 2 * 19).astype(int), 18)
    truth = np.minimum(((y[:, 0] + 1) / 2 * 19).astype(int), 18)
    assert (named == truth).mean() > 0.9


@needs_soundfont
def test_soundfont_bass_lines_have_known_notes_that_yin_and_the_matcher_name():
    spec = patch_spec("BassLine-v0")
    clips, notes, programs = soundfont_basslines(2, spec, seed=7, programs=TEST_PROGRAMS)
    assert clips.shape == (2, 16 * 11025) and notes.shape == (2, 16)
    assert set(programs) <= set(TEST_PROGRAMS) and np.isfinite(clips).all()
    assert notes.min() >= 33 and notes.max() <= 51 and 0.5 <= np.abs(clips).max() <= 1.0
    again, _, _ = soundfont_basslines(2, spec, seed=7, programs=TEST_PROGRAMS)
    np.testing.assert_array_equal(clips, again)  # seeded
    steps = clips.reshape(-1, 11025)
    assert note_accuracy(yin_notes(steps), notes.reshape(-1)) > 0.7
    matcher = Matcher.builtin("BassLine-v0")
    named = np.minimum(((matcher.propose(steps)[:, 0] + 1) / 2 * 19).astype(int), 18) + 33
    assert note_accuracy(named, notes.reshape(-1)) > 0.7


def test_yin_names_a_saw_and_leaves_silence_unnamed():
    clips = np.stack([_saw(36), _saw(45), _saw(51), np.zeros(11025, np.float32)])
    assert yin_notes(clips).tolist() == [36, 45, 51, -1]


def test_pitch_salience_peaks_at_the_note_whatever_the_timbre_and_not_for_noise():
    from musicgym.envs.matcher_model import pitch_salience

    t = np.arange(11025) / 44100
    f0 = 440.0 * 2 ** ((40 - 69) / 12)
    square = np.sign(np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(11025).astype(np.float32)
    out = pitch_salience(np.stack([_saw(40), square, noise, np.zeros(11025, np.float32)]),
                         sr=44100, lo=28, hi=56, per_semitone=4)
    assert out.shape == (4, 113) and out.dtype == np.float32
    at_40 = (40 - 28) * 4
    for row in out[:2]:  # the period of a saw and of a square wave: the same note
        assert row[at_40] > 0.9 and row[at_40] >= row[at_40 + 4:].max()
    assert out[2].max() < 0.5 and not out[3].any()  # noise: no period; silence: 0


@needs_soundfont
def test_a_note_head_names_the_note_and_round_trips_through_the_files(tmp_path):
    from musicgym.train.matcher import save_matcher

    spec = patch_spec("BassLine-v0")
    matcher = train_matcher(spec, examples=400, epochs=2, seed=1, log=lambda _: None)
    x, y = synthetic_dataset(spec, 64, seed=2, features=matcher.features_kwargs)
    with_head = learn_notes(matcher, spec, x, y, 2, seed=0, epochs=2, log=lambda _: None)
    assert with_head.meta["note_column"] == 0 and len(with_head.note_layers) == 3
    actions = with_head.forward(x)
    # the note coordinate is a bucket centre (the head's class), the cutoff the regression's
    buckets = (actions[:, 0] + 1) / 2 * 19 - 0.5
    np.testing.assert_allclose(buckets, np.round(buckets), atol=1e-5)
    np.testing.assert_allclose(actions[:, 1], matcher.forward(x)[:, 1], atol=1e-6)
    loaded = Matcher.load(save_matcher(with_head, tmp_path / "bass"))
    np.testing.assert_allclose(loaded.forward(x), actions, atol=1e-6)
    meta = dict(with_head.meta)
    del meta["note_column"]
    with np.load(tmp_path / "bass.npz") as data:
        weights = {k: data[k] for k in data.files}
    with pytest.raises(ConfigError, match="note_column"):
        Matcher(weights, meta)
    for bad in (2, -1, "0", True):  # a sidecar from elsewhere: out of range or not a column
        with pytest.raises(ConfigError, match="note_column"):
            Matcher(weights, dict(meta, note_column=bad))
    del weights["c1"]  # a weight file from elsewhere: a layer without its bias
    with pytest.raises(ConfigError, match="C1 has no bias c1"):
        Matcher(weights, with_head.meta)


def test_bass_lines_teach_only_a_sequencer(tmp_path):
    from musicgym.train.matcher import main as train_main

    with pytest.raises(ConfigError, match="not a sequencer"):
        train_main(["--preset", "Kick-v0", "--examples", "64", "--epochs", "1",
                    "--sf-lines", "2", "-o", str(tmp_path / "k")])


def test_match_a_bass_line_from_the_command_line_and_render_its_steps_back(tmp_path, capsys):
    sf.write(tmp_path / "bass.wav", bassline_target(), 44100)
    out = tmp_path / "out"
    # the default method for a sequencer is the matcher alone: 16 renders
    assert main(["match", str(tmp_path / "bass.wav"), "--preset", "BassLine-v0",
                 "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["policy"]
    assert summary["targets"][0]["methods"]["policy"]["evaluations"] == 16
    params = json.loads((out / "bass" / "params.json").read_text())
    assert params["step_seconds"] == 0.25 and len(params["steps"]) == 16
    assert [int(s["note"]) for s in params["steps"]] == [
        int(s["note"]) for s in json.loads((out / "summary.json").read_text())["targets"][0][
            "methods"]["policy"]["params"]]
    code = (out / "bass" / "patch.glicol").read_text()
    assert code.count("// step ") == 16
    proc = subprocess.run([sys.executable, "-m", "musicgym", "render",
                           str(out / "bass" / "patch.glicol"), "--steps", "16", "--seconds", "4",
                           "--file", str(tmp_path / "again.wav")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    again, _ = sf.read(tmp_path / "again.wav", dtype="float32")
    match, _ = sf.read(out / "bass" / "match.wav", dtype="float32")
    np.testing.assert_allclose(again[:, 0], match, atol=1e-5)  # a stereo file, both the same
    # a wrong step count is refused in one line with the count the file has; nothing written
    capsys.readouterr()
    assert main(["render", str(out / "bass" / "patch.glicol"), "--steps", "4", "--seconds", "4",
                 "--file", str(tmp_path / "x.wav")]) == 1
    err = capsys.readouterr().err
    assert "give --steps 16" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.wav").exists()
    with pytest.raises(ParameterError, match="positive"):
        split_steps(code, 0)


def test_a_matcher_sidecar_from_elsewhere_cannot_ask_for_unknown_or_huge_features(tmp_path):
    import shutil

    from musicgym.envs.matcher_model import BUILTIN_DIR

    good = json.loads((BUILTIN_DIR / "BassLine-v0.json").read_text())
    shutil.copy(BUILTIN_DIR / "BassLine-v0.npz", tmp_path / "m.npz")
    bad_features = [dict(good["features"], n_fft=1 << 30), dict(good["features"], evil=1),
                    dict(good["features"], pitch=[28, 56, 10 ** 6]),
                    dict(good["features"], pitch=[56, 28, 4]), "n_fft=4096",
                    {k: v for k, v in good["features"].items() if k != "hop"}]
    for features in bad_features:
        (tmp_path / "m.json").write_text(json.dumps(dict(good, features=features)))
        with pytest.raises(ConfigError, match="features"):
            Matcher.load(tmp_path / "m")
    for key, value in (("clip_samples", 10 ** 12), ("sr", 0), ("clip_samples", 1.5)):
        (tmp_path / "m.json").write_text(json.dumps(dict(good, **{key: value})))
        with pytest.raises(ConfigError, match=key):
            Matcher.load(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps(good))
    assert Matcher.load(tmp_path / "m").features_kwargs["pitch"] == (28, 56, 4)


@needs_soundfont
def test_the_bassline_benchmark_runs_small_and_writes_its_table(tmp_path):
    from tests.scripts import load_script

    bench = load_script("benchmarks/bassline_match.py", "bassline_match_benchmark")
    out = tmp_path / "b.json"
    assert bench.main(["--lines", "1", "--synthetic", "1", "--budget", "2",
                       "--hybrid-budget", "2", "--out", str(out)]) == 0
    table = {(r["set"], r["method"]): r for r in json.loads(out.read_text())["table"]}
    assert set(table) == {(s, m) for s in ("default", "soundfont", "synthetic")
                          for m in ("yin", "policy", "policy+nm", "cmaes", "random")}
    assert table[("default", "policy")]["notes"] == 1.0  # the preset's 16 notes
    assert table[("synthetic", "policy")]["cutoff_error"] < 0.05
    assert table[("soundfont", "cmaes")]["evaluations"] == 32  # 2 renders for each of 16 steps
    assert table[("soundfont", "yin")]["mrstft"] is None


def test_your_own_sequencer_patch_is_matched_step_by_step_from_the_command_line(tmp_path,
                                                                                 capsys):
    code = tmp_path / "seq.glicol"
    code.write_text("o: seq {note} >> sawsynth 0.005 0.2 >> mul 0.4\n")
    space = tmp_path / "space.yaml"
    space.write_text("action_space:\n  - [choose, [36, 43, 48]]\nseconds: 0.25\nsteps: 3\n")
    # the patch's own notes 48, 36, 43: a search on the distance finds them here
    from musicgym.synth import Patch

    rows = np.array([[48.0], [36.0], [43.0]])
    target = Patch(code.read_text()).render(rows, n_samples=11025, progress=False)[:, 0]
    sf.write(tmp_path / "line.wav", target.reshape(-1), 44100)
    out = tmp_path / "out"
    assert main(["match", str(tmp_path / "line.wav"), "--code", str(code), "--action-space",
                 str(space), "--method", "random", "--budget", "12", "--no-plots",
                 "-o", str(out)]) == 0
    params = json.loads((out / "line" / "params.json").read_text())
    assert [s["note"] for s in params["steps"]] == [48, 36, 43]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["targets"][0]["methods"]["random"]["evaluations"] <= 36
    for steps in ("0", "2.5", "true", "1000"):
        space.write_text(f"action_space:\n  - [choose, [36, 43]]\nsteps: {steps}\n")
        assert main(["match", str(tmp_path / "line.wav"), "--code", str(code),
                     "--action-space", str(space), "--method", "random", "-o", str(out)]) == 1
        assert "'steps' must be" in capsys.readouterr().err
