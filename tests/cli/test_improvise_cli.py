"""``musicgym lookup``, ``musicgym analyze`` and ``musicgym train-improviser`` through the
command's entry point."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.audio.io import write_wav
from musicgym.cli import main
from musicgym.envs.improvise_data import read_table


def test_lookup_writes_table_map_and_listening_page(tmp_path, capsys):
    rc = main(["lookup", "sine", "--subdiv", "4", "--window", "512", "-o", str(tmp_path),
               "--features", "pitch", "loudness", "--color-by", "pitch", "--format", "csv"])
    assert rc == 0
    table = read_table(tmp_path / "sine-k4-w512.csv")
    assert len(table["pitch"]) == 16
    np.testing.assert_allclose(np.unique(table["param-freq_hz"]), [0, 1 / 3, 2 / 3, 1])
    # the sine's pitch follows its freq parameter (20 + 2500 u Hz) where it is audible
    loud = table["param-amp"] > 0
    high = loud & (table["param-freq_hz"] > 0.3)
    np.testing.assert_allclose(table["pitch"][high], 20 + 2500 * table["param-freq_hz"][high],
                               rtol=0.02)
    png = (tmp_path / "sine-k4-w512-pca.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    page = (tmp_path / "sine-k4-w512-pca.html").read_text()
    assert "data:audio/wav;base64," in page and page.count('"i": "freq_hz=') == 16
    assert not list(tmp_path.glob(".partial-*"))
    assert "wrote" in capsys.readouterr().out


def test_lookup_rejects_a_colour_that_is_not_in_the_table(tmp_path, capsys):
    rc = main(["lookup", "sine", "--subdiv", "3", "-o", str(tmp_path), "--features", "pitch",
               "--color-by", "mfcc-1"])
    assert rc == 1
    assert "--color-by 'mfcc-1'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_analyze_reads_the_real_oneshots_in_place(oneshots_dir, tmp_path):
    assert main(["analyze", str(oneshots_dir), "-o", str(tmp_path), "--format", "csv",
                 "--features", "loudness", "pitch"]) == 0
    tables = sorted(p.stem for p in tmp_path.glob("*.csv"))
    assert tables == sorted(p.stem for p in oneshots_dir.glob("*.flac"))
    kick = read_table(tmp_path / "bd_808.csv")
    assert list(kick)[:2] == ["time_s", "loudness-dBFS"]
    assert kick["loudness-dBFS"].max() > -30          # a real kick is loud somewhere


def test_analyze_skips_unreadable_files_and_fails_when_none_is_readable(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "broken.wav").write_bytes(b"RIFF nonsense")
    out = tmp_path / "out"
    assert main(["analyze", str(corpus), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "skipping" in err and "broken.wav" in err and "no readable audio" in err
    assert not out.exists() or not list(out.rglob("*"))
    t = np.arange(22050) / 44100
    write_wav(corpus / "take.wav", 0.3 * np.sin(2 * np.pi * 330 * t), 44100)
    assert main(["analyze", str(corpus), "-o", str(out), "--format", "csv"]) == 0
    # the table, and the corpus's map with its listening page
    assert sorted(p.name for p in out.iterdir()) == ["corpus-pca.html", "corpus-pca.png",
                                                     "take.csv"]


def test_live_improvise_refuses_a_wav_file_that_is_not_wav_before_serving(tmp_path, capsys):
    assert main(["live", "improvise", "--wav", str(tmp_path / "played.mp3"),
                 "--max-packets", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("musicgym live improvise: error: --wav") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_train_improviser_writes_a_grid_search_agent_with_its_command(tmp_path, capsys):
    """``musicgym train-improviser`` with the grid search options: the agent's JSON holds
    them and the exact command, and the agent plays from its files."""
    import json

    pytest.importorskip("torch")
    from musicgym.envs.improvise_agents import InverseAgent

    t = np.arange(22050) / 44100
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_wav(corpus / "a.wav", 0.3 * np.sin(2 * np.pi * 330 * t), 44100)
    write_wav(corpus / "b.wav", 0.1 * np.sin(2 * np.pi * 550 * t), 44100)
    rc = main(["train-improviser", "sine", "--features", "lp", "--corpus", str(corpus),
               "--subdiv", "9", "--distil-steps", "20", "--refine-steps", "0",
               "--search-grid", "--stay-margin", "0.05", "--search-from-current",
               "-o", str(tmp_path / "out")])
    assert rc == 0 and "trained in" in capsys.readouterr().out
    info = json.loads((tmp_path / "out" / "sine-lp.json").read_text())
    assert info["search"] and info["search_grid"] and info["search_from_current"]
    assert info["stay_margin"] == 0.05
    assert "--search-grid --stay-margin 0.05 --search-from-current" in info["command"]
    agent = InverseAgent.load(tmp_path / "out" / "sine-lp.npz")
    u = agent(agent.mean[None], current=np.array([[0.5, 0.5]]))
    np.testing.assert_allclose(u * 8, np.rint(u * 8), atol=1e-9)     # a grid point
