"""``musicgym match`` as a user runs it: files per target, a summary, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from musicgym.cli import main
from musicgym.envs.presets import fm_target, kick_target


def test_match_writes_params_patch_sound_and_summary_and_the_patch_renders_the_match(tmp_path):
    targets = tmp_path / "sounds"
    targets.mkdir()
    sf.write(targets / "kick.wav", kick_target(), 44100)
    out = tmp_path / "out"
    status = main(["match", str(targets), "--preset", "Kick-v0", "--method", "policy",
                   "--method", "policy+cmaes", "--budget", "16", "-o", str(out)])
    assert status == 0
    summary = json.loads((out / "summary.json").read_text())
    (row,) = summary["targets"]
    assert set(row["methods"]) == {"policy", "policy+cmaes"}
    assert row["methods"]["policy"]["evaluations"] == 1
    assert row["methods"]["policy+cmaes"]["evaluations"] == 16
    for method in ("policy", "policy+cmaes"):
        folder = out / "kick" / method
        assert {p.name for p in folder.iterdir()} == {"params.json", "patch.glicol",
                                                      "match.wav", "comparison.png"}
        assert set(json.loads((folder / "params.json").read_text())) == {"0", "1", "2"}
        assert row["methods"][method]["mrstft"] > 0 and row["methods"][method]["mfcc_mae"] > 0
    # `musicgym render` of the filled patch plays the match
    folder = out / "kick" / "policy+cmaes"
    proc = subprocess.run([sys.executable, "-m", "musicgym", "render",
                           str(folder / "patch.glicol"), "--file", str(tmp_path / "again.wav"),
                           "--seconds", "0.5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    again, _ = sf.read(tmp_path / "again.wav")
    match, _ = sf.read(folder / "match.wav")
    np.testing.assert_allclose(again[:, 0], match.reshape(len(match), -1)[:, 0], atol=1e-3)


def test_match_with_your_own_code_and_action_space(tmp_path):
    code = tmp_path / "blip.glicol"
    code.write_text("~env: imp 0.1 >> envperc 0.001 {decay}\no: sin {freq} >> mul ~env\n")
    space = tmp_path / "space.yaml"
    space.write_text("action_space:\n  - [exp, 0.05, 0.5]\n  - [exp, 100, 1000]\nseconds: 0.3\n")
    t = np.arange(int(0.3 * 44100)) / 44100
    sf.write(tmp_path / "blip.wav", np.sin(2 * np.pi * 300 * t) * np.exp(-t / 0.1), 44100)
    out = tmp_path / "out"
    assert main(["match", str(tmp_path / "blip.wav"), "--code", str(code), "--action-space",
                 str(space), "--method", "cmaes", "--budget", "48", "--no-plots",
                 "-o", str(out)]) == 0
    params = json.loads((out / "blip" / "params.json").read_text())
    assert abs(np.log(params["freq"] / 300)) < 0.2


def test_match_refuses_bad_input_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["match", str(tmp_path / "missing.wav"), "--preset", "Kick-v0", "-o", out]) == 1
    assert "missing.wav: no such file or folder" in capsys.readouterr().err
    sf.write(tmp_path / "k.wav", kick_target(), 44100)
    assert main(["match", str(tmp_path / "k.wav"), "--preset", "Nope-v0", "-o", out]) == 1
    assert "unknown sound-matching preset 'Nope-v0'" in capsys.readouterr().err
    assert main(["match", str(tmp_path / "k.wav"), "--code", str(tmp_path / "k.wav"),
                 "-o", out]) == 2
    err = capsys.readouterr().err
    assert "--code needs --action-space" in err and len(err.strip().splitlines()) == 1


def test_match_with_a_matcher_from_a_path_refuses_one_trained_on_another_patch(tmp_path, capsys):
    import shutil

    from musicgym.envs.matcher_model import BUILTIN_DIR

    for suffix in (".npz", ".json"):
        shutil.copy(BUILTIN_DIR / f"Kick-v0{suffix}", tmp_path / f"mine{suffix}")
    sf.write(tmp_path / "k.wav", kick_target(), 44100)
    out = tmp_path / "out"
    assert main(["match", str(tmp_path / "k.wav"), "--preset", "Kick-v0", "--method", "policy",
                 "--policy", str(tmp_path / "mine"), "--no-plots", "-o", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["targets"][0]["methods"]["policy"][
        "evaluations"] == 1
    assert main(["match", str(tmp_path / "k.wav"), "--preset", "Snare-v0", "--method", "policy",
                 "--policy", str(tmp_path / "mine"), "-o", str(out)]) == 1
    assert "trained on another patch" in capsys.readouterr().err


def test_match_refine_and_policy_nm_from_the_command_line(tmp_path):
    sf.write(tmp_path / "kick.wav", kick_target(), 44100)
    out = tmp_path / "out"
    status = main(["match", str(tmp_path / "kick.wav"), "--preset", "Kick-v0", "--method",
                   "refine", "--method", "policy+nm", "--budget", "12", "--no-plots",
                   "-o", str(out)])
    assert status == 0
    row = json.loads((out / "summary.json").read_text())["targets"][0]["methods"]
    assert row["refine"]["evaluations"] == 12 and 0 < row["policy+nm"]["evaluations"] <= 12
    assert (out / "kick" / "refine" / "match.wav").is_file()


def test_the_builtin_fm_matcher_names_a_phase_modulated_tone_it_never_heard(tmp_path):
    # FMTone-v0's default target is phase modulation synthesised in NumPy, not the patch: the
    # built-in matcher's guesses seed Nelder-Mead, which beats random search at equal renders
    sf.write(tmp_path / "fm.wav", fm_target(), 44100)
    out = tmp_path / "out"
    status = main(["match", str(tmp_path / "fm.wav"), "--preset", "FMTone-v0", "--method",
                   "policy", "--method", "policy+nm", "--method", "random", "--budget", "24",
                   "--no-plots", "-o", str(out)])
    assert status == 0
    row = json.loads((out / "summary.json").read_text())["targets"][0]["methods"]
    assert row["policy"]["evaluations"] == 1 and row["random"]["evaluations"] == 24
    assert row["policy+nm"]["mrstft"] <= row["policy"]["mrstft"]
    assert row["policy+nm"]["mrstft"] < 0.85 * row["random"]["mrstft"]
    params = json.loads((out / "fm" / "policy+nm" / "params.json").read_text())
    assert set(params) == {"carrier_hz", "ratio", "index", "attack_s", "decay_s"}
    assert 100.0 <= params["carrier_hz"] <= 1000.0


def test_match_defaults_to_the_matcher_plus_nelder_mead_with_a_builtin_matcher(tmp_path):
    sf.write(tmp_path / "kick.wav", kick_target(), 44100)
    out = tmp_path / "out"
    assert main(["match", str(tmp_path / "kick.wav"), "--preset", "Kick-v0", "--budget", "12",
                 "--no-plots", "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["policy+nm"]
    assert 0 < summary["targets"][0]["methods"]["policy+nm"]["evaluations"] <= 12
    assert (out / "kick" / "params.json").is_file()
