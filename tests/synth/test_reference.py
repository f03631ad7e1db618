"""The reference backend (the real engine via wasmtime): its errors map to musicgym's, and it
is set up as documented."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.errors import (
    EngineTrapError,
    GlicolSyntaxError,
    MissingReferenceError,
    MissingSampleError,
    ReferenceEngineMissingError,
)
from musicgym.synth import reference

pytestmark = pytest.mark.reference


def test_renders_stereo_float32_from_sample_zero(glicol):
    audio = glicol("o: sin 440", 300)
    assert audio.shape == (2, 300) and audio.dtype == np.float32
    assert audio[0, 0] == 0.0 and audio[0, 1] > 0.06  # code applies from the first sample


def test_each_render_is_a_fresh_instance(glicol):
    first = glicol("o: sin 440", 1000)
    glicol("o: saw 3", 1000)
    np.testing.assert_array_equal(glicol("o: sin 440", 1000), first)


def test_parse_error_has_line_and_column_as_ours(glicol):
    from musicgym.synth import parse

    code = "o: sin 440\np: sin .5"
    with pytest.raises(GlicolSyntaxError) as engine:
        glicol(code, 128)
    with pytest.raises(GlicolSyntaxError) as ours:
        parse(code)
    assert (engine.value.line, engine.value.column) == (ours.value.line, ours.value.column)
    assert (ours.value.line, ours.value.column) == (2, 8)


def test_missing_reference_and_sample(glicol):
    with pytest.raises(MissingReferenceError):
        glicol("o: sin 440 >> mul ~nope", 128)
    with pytest.raises(MissingSampleError):
        glicol("o: imp 1 >> sp \\nope", 128)


def test_a_trap_is_an_unsupported_error(glicol):
    with pytest.raises(EngineTrapError, match="unsupported by the Glicol engine"):
        glicol("o: sin 440 >> pan 0.5", 256)


def test_samples_are_registered_verbatim(glicol):
    click = np.zeros((1, 64), dtype=np.float32)
    click[0, 0] = 1.0
    audio = glicol("o: imp 2 >> sp \\click", 2000, samples={"\\click": (click, 44100)})
    assert audio[0, 0] != 0.0 or audio[0, 1] != 0.0


def test_missing_installation_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSICGYM_GLICOL_DIR", str(tmp_path / "nowhere"))
    assert not reference.is_installed()
    with pytest.raises(ReferenceEngineMissingError, match="make setup"):
        reference.render_reference("o: sin 440", 128)
