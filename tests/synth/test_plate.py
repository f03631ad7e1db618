"""plate: the NumPy backend against the real Glicol engine (renders of 2 s or more, max
|numpy - glicol| <= 1e-5; measured at most 4.8e-7 on 2 s), plus engine-free checks of what the
structure implies (dry/wet mix, first wet samples, independence from the chunking).

The plate's 0.1 Hz modulator uses the engine's own float32 sine algorithm
(``musicgym.synth.nodes.libm``); with any other float32 sine, a few samples of the modulated
read position move by one float32 step, which white noise makes visible after about 2.25 s
(5.6e-5 at 3 s). The long white-noise test below guards that.
"""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.synth import Patch
from musicgym.synth.nodes.base import Context
from musicgym.synth.nodes.plate import Plate
from tests.synth.conformance import assert_matches

SR = 44100
ENV = "\n~env: imp 2 >> envperc 0.01 0.2"


def numpy_render(code: str, n: int, params=None) -> np.ndarray:
    return Patch(code).render(params, n_samples=n).astype(np.float64)


# -- against the real engine -----------------------------------------------------------------
@pytest.mark.reference
@pytest.mark.parametrize("code", [
    "o: imp 1 >> plate 0.5",
    "o: imp 1 >> plate 0.0",
    "o: imp 1 >> plate 1.0",
    "o: imp 3 >> plate 0.8",
    "o: sin 440 >> mul ~env >> plate 0.7" + ENV,
    "o: sin 440 >> mul ~env >> plate 1.0" + ENV,
    "o: noise 42 >> plate 0.3",
    "o: noise 7 >> mul 0.5 >> plate 1.0",
])
def test_plate_matches_engine(glicol, code):
    assert_matches(code, glicol, seconds=2.0, atol=1e-5)


@pytest.mark.reference
@pytest.mark.parametrize("code", ["o: imp 1 >> plate 0.5", "o: noise 9 >> plate 0.9"])
def test_plate_keeps_its_44100_sizes_at_other_rates(glicol, code):
    # the plate's sub-nodes keep their default 44.1 kHz sizes when the engine runs at 48 kHz
    assert_matches(code, glicol, seconds=2.0, atol=1e-5, sr=48000)


@pytest.mark.reference
@pytest.mark.parametrize("source", ["imp 1", "sin 440 >> mul ~env", "noise 3"])
def test_plate_batch_of_mixes_through_a_hole(glicol, source):
    code = f"o: {source} >> plate {{}}" + (ENV if "~env" in source else "")
    mixes = np.array([[0.0], [0.25], [0.6], [1.0]])
    n = 2 * SR
    ours = numpy_render(code, n, mixes)
    patch = Patch(code)
    for row, mix in enumerate(mixes):
        ref = glicol(patch.fill(mix), n).astype(np.float64)
        worst = np.abs(ours[row] - ref).max()
        assert worst <= 1e-5, f"{code!r} with mix {mix[0]}: max difference {worst:.3g}"


@pytest.mark.reference
def test_plate_white_noise_over_4_seconds(glicol):
    # see the module docstring: the modulator's sine must round as the engine's does
    code = "o: noise 42 >> plate 1.0"
    n = 4 * SR
    diff = np.abs(numpy_render(code, n)[0] - glicol(code, n))
    assert diff.max() <= 1e-5


# -- engine-free checks ------------------------------------------------------------------------
def test_plate_without_chain_input_is_silent():
    # glicol@0.4.0 itself crashes here (its plate indexes a missing input); the NumPy backend
    # follows the engine's rule for every other node: no chain input, nothing to process.
    out = numpy_render("o: plate 0.5", 4096)
    assert out.shape == (1, 2, 4096)
    assert not out.any()


def test_plate_mix_weighs_dry_and_wet():
    n = SR // 2
    dry = numpy_render("o: noise 5", n)[0, 0]
    mixes = np.array([[0.0], [0.3], [1.0]])
    out = numpy_render("o: noise 5 >> plate {}", n, mixes)
    assert np.array_equal(out[0], np.stack([dry, dry]))  # mix 0 is exactly dry
    wet = out[2]
    assert np.allclose(out[1], 0.7 * dry + 0.3 * wet, atol=1e-6)
    assert not np.allclose(wet[0], wet[1])  # a stereo reverb: L and R differ


def test_plate_impulse_response_starts_where_the_structure_says():
    # L's first tap is aa: 2205 (50 ms pre-delay) + 394; R's first is -ab, 2800 after aa plus
    # the engine block (128 samples) by which ab reads aa late. Allpasses pass -g·x at once.
    wet = numpy_render("o: imp 1 >> plate 1.0", 6000)[0]
    assert np.flatnonzero(wet[0])[0] == 2205 + 394
    assert np.flatnonzero(wet[1])[0] == 2205 + 394 + 128 + 2800


def test_plate_output_does_not_depend_on_chunking():
    rng = np.random.default_rng(1)
    B, n = 5, 6000
    x = rng.uniform(-1, 1, (B, 1, n)).astype(np.float32)
    mix = rng.uniform(0, 1, B)
    whole = Plate(Context(batch=B), [mix], True, 0).process([x], 0, n)
    node = Plate(Context(batch=B), [mix], True, 0)
    parts, start = [], 0
    for size in (128, 2560, 1280, n - 3968):
        parts.append(node.process([x[:, :, start:start + size]], start, size))
        start += size
    assert np.array_equal(np.concatenate(parts, axis=-1), whole)


@pytest.mark.parametrize("batch", [1, 3, 16, 21])
def test_plate_rows_are_independent(batch):
    # rows run in lock-step groups; each row must equal the same row rendered alone
    rng = np.random.default_rng(batch)
    n = 3000
    x = rng.uniform(-1, 1, (batch, 1, n)).astype(np.float32)
    mix = rng.uniform(0, 1, batch)
    together = Plate(Context(batch=batch), [mix], True, 0).process([x], 0, n)
    for row in {0, batch // 2, batch - 1}:
        alone = Plate(Context(batch=1), [mix[row:row + 1]], True, 0).process([x[row:row + 1]], 0, n)
        assert np.array_equal(together[row], alone[0])
