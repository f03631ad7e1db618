"""The improviser's corpus: melodies rendered on real SoundFont instruments, split by piece and
instrument, cached, read by the env through its manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicgym.audio.soundfont import soundfont_available
from musicgym.cli import main
from musicgym.envs.improvise_corpus import (
    CorpusRecipe,
    build_corpus,
    manifest_split,
    melody,
    read_manifest,
)
from musicgym.envs.improvise_play import make_core
from musicgym.errors import ImproviseConfigError

needs_sf = pytest.mark.skipif(not soundfont_available(), reason="no FluidSynth or SoundFont")
SMALL = CorpusRecipe(("bach/bwv66.6",), ("bach/bwv84.5",), ("flute",), ("clarinet",),
                     max_seconds=3.0, oneshots=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    if not soundfont_available():
        pytest.skip("no FluidSynth or SoundFont")
    return build_corpus(SMALL, out=tmp_path_factory.mktemp("corpus"))


def test_split_by_piece_and_instrument(small):
    manifest = read_manifest(small)
    by_split = {s: [t for t in manifest["tracks"] if t["split"] == s] for s in ("train", "test")}
    assert [(t["piece"], t["instrument"]) for t in by_split["train"]] == [("bach/bwv66.6",
                                                                          "flute")]
    assert [(t["piece"], t["instrument"]) for t in by_split["test"]] == [("bach/bwv84.5",
                                                                         "clarinet")]
    train, test = manifest_split(small)
    assert not set(train) & set(test)


def test_tracks_sound_the_melody(small):
    """The clarinet track's pitch is the chorale's soprano line (no transposition)."""
    core = make_core({"synth": "sine", "mode": "lookup", "subdiv": 5, "corpus": str(small),
                      "features_keep": ["loudness-dB", "pitch"], "features_reward": ["pitch"],
                      "split": "test", "training_mode": "corpus"})
    assert [t.name for t in core.tracks] == ["bach-bwv84.5-clarinet"]
    f = core.tracks[0].features
    assert len(f) == pytest.approx(3.0 * 44100 / 512, abs=2)
    voiced = f[:, 2] > 0.8
    assert voiced.mean() > 0.5            # sustained: pitched most of the time
    sung = 12 * np.log2(np.median(f[voiced, 1]) / 440) + 69
    notes = melody("bach/bwv84.5")
    assert notes["pitch"].min() - 1 <= sung <= notes["pitch"].max() + 1
    assert f[:, 0].max() > 0.05           # audible


def test_cached(small):
    first = (small / "manifest.json").stat().st_mtime_ns
    wav = next(small.glob("*.wav")).stat().st_mtime_ns
    assert build_corpus(SMALL, out=small) == small
    assert (small / "manifest.json").stat().st_mtime_ns == first
    assert next(small.glob("*.wav")).stat().st_mtime_ns == wav


def test_bad_recipes(tmp_path):
    with pytest.raises(ImproviseConfigError, match="both train and test"):
        build_corpus(CorpusRecipe(("bach/bwv66.6",), ("bach/bwv66.6",)), out=tmp_path)
    with pytest.raises(ImproviseConfigError, match="unknown instrument 'kazoo'"):
        build_corpus(CorpusRecipe(train_instruments=("kazoo",)), out=tmp_path)
    with pytest.raises(ImproviseConfigError, match="max_seconds"):
        build_corpus(CorpusRecipe(max_seconds=0.1), out=tmp_path)


@needs_sf
def test_unknown_piece(tmp_path):
    with pytest.raises(ImproviseConfigError, match="no piece 'bach/nope'"):
        build_corpus(CorpusRecipe(("bach/nope",), ("bach/bwv84.5",), ("flute",), ("clarinet",),
                                  max_seconds=1.0, oneshots=False), out=tmp_path)


def test_broken_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"tracks": [{"name": "a", "path":
                                                                     "a.wav", "split": "x"}]}))
    with pytest.raises(ImproviseConfigError, match="build the corpus again"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"tracks": [{"name": "a", "path":
                                                                     "a.wav", "split": "test"}]}))
    with pytest.raises(ImproviseConfigError, match="is missing"):
        read_manifest(tmp_path)


@needs_sf
def test_cli_build_and_list(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["corpus", "build", "-o", str(out), "--train-pieces", "bach/bwv66.6",
                 "--test-pieces", "bach/bwv84.5", "--train-instruments", "violin",
                 "--test-instruments", "voice", "--max-seconds", "1", "--no-oneshots"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["corpus", "list", str(out)]) == 0
    listed = capsys.readouterr().out
    assert "train melody  bach/bwv66.6     violin" in listed
    assert "test  melody  bach/bwv84.5     voice" in listed
    assert main(["corpus", "list", str(tmp_path)]) == 1
