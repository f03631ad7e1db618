"""300 random valid programs, each rendered by both backends and compared (1 s each).

The bound is 1e-5 relative to the larger of 1 and the signal's peak: programs here may run a
modulated biquad, whose float32 rounding of the host's sinf can differ from the engine's in the
last bit (see test_conformance_core), and feedback loops that accumulate it.
"""

from __future__ import annotations

import pytest

from tests.synth.conformance import assert_matches
from tests.synth.programs import random_program

pytestmark = pytest.mark.reference

N_PROGRAMS = 300


@pytest.mark.parametrize("seed", range(N_PROGRAMS))
def test_random_program_matches_glicol(glicol, seed):
    assert_matches(random_program(seed), glicol, seconds=1.0, rtol_peak=10.0)
