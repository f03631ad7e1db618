"""The engine's commands, run as a user runs them (a subprocess) and through main()."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf

from musicgym.cli import main


def test_render_writes_a_wav_with_the_params(tmp_path):
    patch = tmp_path / "kick.glicol"
    patch.write_text("~env: imp 1 >> envperc {attack} {decay}\no: sin {freq} >> mul ~env\n")
    out = tmp_path / "kick.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "musicgym", "render", str(patch), "-o", str(out), "--seconds", "0.5",
         "--param", "attack=0.001", "--param", "decay=0.2", "--param", "freq=60"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data, sr = sf.read(out)
    assert sr == 44100 and data.shape == (22050, 2)
    assert 0.5 < np.abs(data).max() <= 1.0


def test_render_errors_are_one_clear_line_and_exit_1(tmp_path, capsys):
    patch = tmp_path / "bad.glicol"
    patch.write_text("o: sinx 440\n")
    assert main(["render", str(patch), "-o", str(tmp_path / "x.wav"), "--seconds", "1"]) == 1
    err = capsys.readouterr().err
    assert "unknown node 'sinx'" in err and "did you mean 'sin'?" in err
    assert not (tmp_path / "x.wav").exists()


def test_render_rejects_missing_and_unknown_params(tmp_path, capsys):
    patch = tmp_path / "p.glicol"
    patch.write_text("o: sin {freq}\n")
    assert main(["render", str(patch), "-o", str(tmp_path / "a.wav"), "--seconds", "1"]) == 1
    assert "missing ['freq']" in capsys.readouterr().err
    assert main(["render", str(patch), "-o", str(tmp_path / "a.wav"), "--seconds", "1",
                 "--param", "freq=1", "--param", "cutoff=3"]) == 1
    assert "unknown parameter" in capsys.readouterr().err


def test_nodes_lists_every_supported_node(capsys):
    from musicgym.synth.nodes import NODES

    assert main(["nodes"]) == 0
    text = capsys.readouterr().out
    # each usage line starts with the node name
    for name in ("sin", "lpf", "plate", "seq", "sp", "bd", "envperc"):
        assert name in NODES and f"\n  {name} " in text


def test_examples_renders_the_example_patches(tmp_path, capsys):
    assert main(["examples", "-o", str(tmp_path)]) == 0
    wavs = sorted(p.name for p in tmp_path.glob("*.wav"))
    assert wavs == ["bassline.wav", "fm.wav", "kick.wav", "plate.wav", "sampler.wav"]
    for wav in tmp_path.glob("*.wav"):
        data, _ = sf.read(wav)
        assert np.abs(data).max() > 0.01, wav.name
