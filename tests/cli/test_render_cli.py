"""The engine's commands, run as a user runs them (a subprocess) and through main()."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from musicgym.cli import main


def test_render_writes_a_wav_with_the_params_into_the_output_folder(tmp_path):
    patch = tmp_path / "kick.glicol"
    patch.write_text("~env: imp 1 >> envperc {attack} {decay}\no: sin {freq} >> mul ~env\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "musicgym", "render", str(patch), "-o", str(out), "--seconds", "0.5",
         "--param", "attack=0.001", "--param", "decay=0.2", "--param", "freq=60"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in out.iterdir()] == ["kick.wav"]
    data, sr = sf.read(out / "kick.wav")
    assert sr == 44100 and data.shape == (22050, 2)
    assert 0.5 < np.abs(data).max() <= 1.0
    assert f"wrote {out / 'kick.wav'}" in proc.stdout


@pytest.mark.parametrize("suffix, file_format, subtype", [
    (".wav", "WAV", "FLOAT"), (".flac", "FLAC", "PCM_24"), (".ogg", "OGG", "VORBIS")])
def test_render_file_writes_the_format_its_suffix_names(tmp_path, suffix, file_format, subtype):
    out = tmp_path / f"tone{suffix}"
    proc = subprocess.run(
        [sys.executable, "-m", "musicgym", "render", "-", "--file", str(out), "--seconds", "0.2"],
        input="o: sin 440 >> mul 0.5\n", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = sf.info(str(out))
    assert (info.format, info.subtype, info.frames) == (file_format, subtype, 8820)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]   # no partial file left


def test_render_refuses_a_suffix_it_cannot_write_before_rendering(tmp_path, capsys):
    patch = tmp_path / "p.glicol"
    patch.write_text("o: sin 440\n")
    assert main(["render", str(patch), "--file", str(tmp_path / "x.mp3"), "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'.mp3'" in err and ".wav, .flac, .ogg" in err
    assert list(tmp_path.iterdir()) == [patch]


def test_written_audio_and_midi_get_the_users_umask(tmp_path):
    """A WAV from render, and the MIDI and WAV of a composed piece, are 0644 under umask 022
    and 0600 under umask 077, as any file the user makes."""
    patch = tmp_path / "p.glicol"
    patch.write_text("o: sin 440 >> mul 0.5\n")
    for umask, mode in (("022", 0o644), ("077", 0o600)):
        out = tmp_path / umask
        proc = subprocess.run(
            ["bash", "-c", f"umask {umask} && '{sys.executable}' -m musicgym render '{patch}' "
                           f"-o '{out}' --seconds 0.1 && '{sys.executable}' -m musicgym compose "
                           f"--task melody --method random -o '{out}'"],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        written = [out / "p.wav", out / "piece_001" / "piece.mid", out / "piece_001" / "piece.wav"]
        assert {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in written} == \
            dict.fromkeys((str(p.relative_to(out)) for p in written), oct(mode))


def test_render_errors_are_one_clear_line_and_exit_1(tmp_path, capsys):
    patch = tmp_path / "bad.glicol"
    patch.write_text("o: sinx 440\n")
    assert main(["render", str(patch), "-o", str(tmp_path), "--seconds", "1"]) == 1
    err = capsys.readouterr().err
    assert "unknown node 'sinx'" in err and "did you mean 'sin'?" in err
    assert not (tmp_path / "bad.wav").exists()


def test_render_rejects_missing_and_unknown_params(tmp_path, capsys):
    patch = tmp_path / "p.glicol"
    patch.write_text("o: sin {freq}\n")
    assert main(["render", str(patch), "-o", str(tmp_path), "--seconds", "1"]) == 1
    assert "missing ['freq']" in capsys.readouterr().err
    assert main(["render", str(patch), "-o", str(tmp_path), "--seconds", "1",
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
