"""300 random valid programs, each rendered by both backends and compared (1 s each):
max |numpy - glicol| <= 1e-5 x max(1, peak). Random chains can reach levels far above 1 (FM
into a sampler-rate synth into a plate peaked at 540000), where one float32 ulp is far above
1e-5 (0.03 at 400000): there the bound is relative to the peak, which still means agreement to
within a few ulps of float32."""

from __future__ import annotations

import pytest

from tests.synth.conformance import assert_matches
from tests.synth.programs import random_program

pytestmark = pytest.mark.reference

N_PROGRAMS = 300


@pytest.mark.parametrize("seed", range(N_PROGRAMS))
def test_random_program_matches_glicol(glicol, seed):
    assert_matches(random_program(seed), glicol, seconds=1.0, rtol_peak=1.0)
