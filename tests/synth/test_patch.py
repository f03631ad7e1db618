"""Templates and rendering through the public API: shapes, batching, both backends, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.errors import (
    AudioFileError,
    MissingSampleError,
    ParameterError,
    RenderLimitError,
    UnsupportedNodeError,
)
from musicgym.synth import Patch, render

KICK = "~env: imp 0.1 >> envperc {} {}\nkick_drum: sin {} >> mul ~env"


def test_batch_rows_equal_single_renders():
    patch = Patch(KICK)
    params = np.array([[0.002, 0.35, 60.0], [0.01, 0.1, 90.0], [0.0, 0.5, 45.5]])
    batch = patch.render(params, seconds=0.5)
    assert batch.shape == (3, 2, 22050) and batch.dtype == np.float32
    for b in range(3):
        np.testing.assert_array_equal(batch[b], patch.render(params[b], seconds=0.5)[0])
    assert not np.allclose(batch[0], batch[1])


def test_fill_writes_values_as_glicol_literals():
    patch = Patch("o: seq {n} _ >> sawsynth {a} 0.1 >> lpf {cutoff} 1.0")
    assert patch.params == ("n", "a", "cutoff")
    assert patch.fill([60.4, 0.001, 1000]) == "o: seq 60 _ >> sawsynth 0.001 0.1 >> lpf 1000.0 1.0"


@pytest.mark.reference
def test_glicol_backend_has_the_same_api_and_output():
    params = np.array([[0.002, 0.35, 60.0], [0.02, 0.2, 80.0]])
    ours = Patch(KICK).render(params, seconds=2.0)
    real = Patch(KICK, backend="glicol").render(params, seconds=2.0)
    assert real.shape == ours.shape == (2, 2, 88200)
    assert np.abs(ours - real).max() <= 1e-5


def test_render_function_and_holes_free_code():
    audio = render("o: sin 440 >> mul 0.5", seconds=0.25)
    assert audio.shape == (2, 11025)
    assert abs(float(np.abs(audio).max()) - 0.5) < 1e-3


def test_compat_false_fixes_the_biquad_bug():
    faithful = render("o: sig 1.0 >> lpf 1000.0 1.0", seconds=0.5)
    fixed = render("o: sig 1.0 >> lpf 1000.0 1.0", seconds=0.5, compat=False)
    assert abs(faithful[0, -1] - 0.75) < 1e-3  # the engine's lpf has DC gain 0.75
    assert abs(fixed[0, -1] - 1.0) < 1e-3  # the textbook biquad passes DC unchanged


@pytest.mark.parametrize("bad,column", [(np.nan, 1), (np.inf, 2), (-np.inf, 0)])
def test_non_finite_parameters_name_the_hole(bad, column):
    params = np.array([[0.01, 0.2, 60.0]])
    params[0, column] = bad
    with pytest.raises(ParameterError, match=f"parameter '{column}'"):
        Patch(KICK).render(params, seconds=0.1)


def test_wrong_parameter_shape_says_what_is_expected():
    with pytest.raises(ParameterError, match=r"shape \(B, 3\)"):
        Patch(KICK).render([[1.0, 2.0]], seconds=0.1)
    with pytest.raises(ParameterError, match="no rows"):
        Patch(KICK).render(np.zeros((0, 3)), seconds=0.1)


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), 1e9])
def test_bad_durations_are_refused(seconds):
    with pytest.raises(RenderLimitError):
        Patch("o: sin 440").render(seconds=seconds)


def test_renders_over_the_memory_limit_are_refused_before_allocating():
    patch = Patch("o: sin {}", max_bytes=10 * 2**20)
    with pytest.raises(RenderLimitError, match="MiB"):
        patch.render(np.full((1000, 1), 440.0), seconds=10.0)


def test_bad_settings_are_refused():
    with pytest.raises(RenderLimitError, match="sr"):
        Patch("o: sin 440", sr=10)
    with pytest.raises(RenderLimitError, match="bpm"):
        Patch("o: sin 440", bpm=0)
    with pytest.raises(ValueError, match="backend"):
        Patch("o: sin 440", backend="supercollider")


def test_missing_sample_is_named_and_located(tmp_path):
    with pytest.raises(MissingSampleError) as info:
        Patch("o: imp 2 >> sp \\kick")
    assert "\\kick" in str(info.value) and info.value.column == 16
    with pytest.raises(AudioFileError, match="does not exist"):
        Patch("o: imp 2 >> sp \\kick", samples={"kick": tmp_path / "nope.wav"})
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav")
    with pytest.raises(AudioFileError, match="broken.wav"):
        Patch("o: imp 2 >> sp \\kick", samples={"kick": broken})


def test_unsupported_nodes_point_to_the_reference_backend():
    with pytest.raises(UnsupportedNodeError, match="backend='glicol'"):
        Patch("o: meta `output.pad(128, 0.0)`")
    with pytest.raises(UnsupportedNodeError, match="crashes"):
        Patch("o: sin 440 >> pan 0.5")


def test_long_renders_in_chunks_equal_one_piece():
    patch = Patch("~m: sin 3 >> mul 200 >> add 500\no: saw ~m >> lpf 2000.0 2.0 >> delayn 333")
    whole = patch.render(seconds=1.0)
    # a graph with feedback runs block by block: same result
    fb = Patch("~a: imp 5 >> add ~b\n~b: get ~a >> delayn 1000 >> mul 0.5\no: get ~a")
    assert np.isfinite(whole).all() and np.isfinite(fb.render(seconds=1.0)).all()
    assert whole.shape == (1, 2, 44100)
