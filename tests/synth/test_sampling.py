"""Samplers ``sp``/``sampler`` and ``psampler``: the NumPy backend against the real Glicol engine
(2 s renders, max |numpy - glicol| <= 1e-5) on the real one-shots in ../shared/data/oneshots,
a stereo file and a 22.05 kHz file written here, and engine-free checks of voice timing."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musicgym.errors import MissingSampleError, UnsupportedNodeError
from musicgym.synth import Patch
from musicgym.synth.nodes import NODES
from tests.synth.conformance import assert_matches

SR = 44100


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, str]:
    """Samples written with soundfile: stereo (different L and R), 22.05 kHz mono, 64 frames."""
    folder = tmp_path_factory.mktemp("samples")
    rng = np.random.default_rng(7)
    t = np.arange(15000) / SR
    decay = np.exp(-t * 30)
    stereo = np.stack([np.sin(2 * np.pi * 330 * t) * decay,
                       rng.uniform(-1, 1, t.size) * decay * 0.5], axis=1)
    t22 = np.arange(8000) / 22050
    low_rate = np.sin(2 * np.pi * 200 * t22) * np.exp(-t22 * 12)
    tiny = rng.uniform(-0.1, 0.1, 64)
    paths = {}
    for name, data, rate in [("stereo", stereo, SR), ("low_rate", low_rate, 22050),
                             ("tiny", tiny, SR)]:
        paths[name] = str(folder / f"{name}.wav")
        sf.write(paths[name], data.astype(np.float32), rate, subtype="FLOAT")
    return paths


def _oneshots(folder, **names) -> dict[str, str]:
    return {key: str(folder / f"{stem}.flac") for key, stem in names.items()}


# -- against the real engine -----------------------------------------------------------------

SP_CASES = [
    ("o: imp 2 >> sp \\bd", {"bd": "bd_808"}),
    ("o: imp 3 >> mul 1.7 >> sp \\sn", {"sn": "sn_dub"}),  # stereo, faster
    ("o: imp 9 >> mul 0.6 >> sampler \\b", {"b": "bass_hit_c"}),  # stereo, overlapping voices
    ("a: imp 2 >> sp \\bd\nb: imp 5 >> mul 0.45 >> sp \\hat", {"bd": "bd_pure",
                                                             "hat": "drum_cymbal_closed"}),
    # the rate of each voice from a pattern: 1, 2, 0.5 and 1.25 within each bar
    ("~t: imp 4\n~r: sig \"1.0@0 2.0@0.25 0.5@0.5 1.25@0.75\"(1)\no: ~t >> mul ~r >> sp \\s",
     {"s": "sn_zome"}),
    ("o: imp 1.5 >> mul 0.8 >> sp \\bell", {"bell": "perc_bell"}),  # long stereo, outlasts 2 s
]


@pytest.mark.reference
@pytest.mark.parametrize("code,names", SP_CASES, ids=[c for c, _ in SP_CASES])
def test_sp_oneshots_match_engine(glicol, oneshots_dir, code, names):
    assert_matches(code, glicol, samples=_oneshots(oneshots_dir, **names))


@pytest.mark.reference
@pytest.mark.parametrize("code", [
    "o: imp 3 >> sp \\stereo",
    "o: imp 2.5 >> mul 1.3 >> sp \\low_rate",  # 22.05 kHz: voices last twice as long
    "o: squ 3 >> sp \\tiny",  # held input: a new voice every positive sample, dozens at once
    "o: sig 0.5 >> sp \\tiny",  # every sample starts a voice at half speed
    "o: sp \\stereo",  # no chain input: silent
])
def test_sp_made_samples_match_engine(glicol, made, code):
    assert_matches(code, glicol, samples=made)


@pytest.mark.reference
def test_sp_at_48k_converts_rate(glicol, oneshots_dir, made):
    samples = {**made, **_oneshots(oneshots_dir, bd="bd_808")}
    assert_matches("a: imp 2 >> sp \\bd\nb: imp 3 >> sp \\low_rate", glicol, sr=48000,
                   samples=samples)


@pytest.mark.reference
def test_sp_driven_by_seq(glicol, oneshots_dir):
    if "seq" not in NODES:
        pytest.skip("the seq node is not in the NumPy backend yet")
    samples = _oneshots(oneshots_dir, bd="bd_808", sn="sn_dub")
    # notes 72 and 48 play at rates 2 and 0.5
    assert_matches("a: seq 60 72 _ 48 >> sp \\bd\nb: seq _ 60_67 >> sp \\sn", glicol,
                   samples=samples)


PSAMPLER_CASES = [
    ('o: psampler "\\a@0 \\b@0.25 \\a@0.5 \\b@0.8"(1)', {"a": "bd_haus", "b": "elec_blip"}),
    # a mono voice after a stereo one: the engine copies the left sum to the right channel
    ('o: psampler "\\a@0 \\b@0.01 \\a@0.02"(0.5)', {"a": "bd_haus", "b": "elec_blip"}),
    ('o: psampler "\\k@0 \\s@0.5 \\k@1.25 \\h@1.75"(2)', {"k": "bd_808", "s": "sn_zome",
                                                         "h": "drum_cymbal_closed"}),
]


@pytest.mark.reference
@pytest.mark.parametrize("code,names", PSAMPLER_CASES, ids=[c for c, _ in PSAMPLER_CASES])
def test_psampler_matches_engine(glicol, oneshots_dir, code, names):
    assert_matches(code, glicol, seconds=4.0, samples=_oneshots(oneshots_dir, **names))


@pytest.mark.reference
def test_psampler_made_samples_and_tempo(glicol, made):
    code = 'o: psampler "\\stereo@0 \\low_rate@0.3 \\tiny@0.31"(1)'
    assert_matches(code, glicol, seconds=3.0, samples=made, bpm=97)


@pytest.mark.reference
def test_batch_of_rates_matches_engine_row_by_row(glicol, oneshots_dir):
    patch = Patch("o: imp 3 >> mul {} >> sp \\s", samples=_oneshots(oneshots_dir, s="sn_dub"))
    rows = np.array([[0.5], [1.0], [1.9]])
    ours = patch.render(rows, seconds=2)
    for row, audio in zip(rows, ours, strict=True):
        ref = glicol(patch.fill(row), audio.shape[-1], samples=patch.samples)
        assert np.abs(audio - ref).max() <= 1e-5, row


@pytest.mark.reference
def test_engine_reports_missing_sample(glicol):
    with pytest.raises(MissingSampleError):
        glicol("o: imp 1 >> sp \\nope", 256)


# -- engine-free behaviour -----------------------------------------------------------------------

def _ones(frames: int, rate: int) -> tuple[np.ndarray, int]:
    return np.ones((1, frames), dtype=np.float32), rate


@pytest.mark.parametrize("rate,sample_rate,expected", [
    (1.0, SR, 101), (2.0, SR, 51), (0.5, SR, 201), (1.0, 22050, 201), (1.0, 88200, 51)])
def test_voice_length_follows_rate_and_sample_rate(rate, sample_rate, expected):
    # a 100-frame voice lasts 100/rate·(sr/sample_sr) samples, pos 0 to 1 inclusive
    code = f"o: imp 1 >> mul {rate} >> sp \\one"
    audio = Patch(code, samples={"one": _ones(100, sample_rate)}).render(n_samples=1000)[0]
    assert np.count_nonzero(audio[0]) == expected
    np.testing.assert_array_equal(audio[0], audio[1])


def test_voices_overlap_and_sum():
    patch = Patch("o: imp 441 >> sp \\one", samples={"one": _ones(300, SR)})
    audio = patch.render(n_samples=1000)[0, 0]
    # a trigger every 100 samples, each voice 301 samples long (pos 0 to 1 inclusive): 4 voices
    # sound where one ends as another starts, 3 in between
    assert audio[0] == 1 and audio[150] == 2 and audio[250] == 3
    assert audio[300] == 4 and audio[350] == 3 and audio[400] == 4


def test_stereo_sample_keeps_its_channels():
    left, right = np.full(50, 0.25, np.float32), np.full(50, -0.5, np.float32)
    patch = Patch("o: imp 1 >> sp \\st", samples={"st": (np.stack([left, right]), SR)})
    audio = patch.render(n_samples=100)[0]
    np.testing.assert_array_equal(audio[:, :51], np.array([[0.25], [-0.5]]) * np.ones(51))
    assert not audio[:, 51:].any()


def test_missing_sample_is_located():
    with pytest.raises(MissingSampleError) as err:
        Patch("o: imp 1 >> sp \\nope")
    assert err.value.line == 1 and "\\nope" in str(err.value)
    with pytest.raises(MissingSampleError):
        Patch('o: psampler "\\a@0 \\nope@0.5"(1)', samples={"a": _ones(10, SR)})


def test_psampler_without_span_is_refused():
    with pytest.raises(UnsupportedNodeError, match="span"):
        Patch('o: psampler "\\a@0"', samples={"a": _ones(10, SR)}).render(n_samples=128)
