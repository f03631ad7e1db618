"""Conformance of the core nodes (sources, arithmetic, envelopes, filters, delays) with the
real Glicol engine: seeded random arguments, 2 s renders, max |numpy - glicol| <= 1e-5.

The bound is absolute everywhere, even where recursions amplify float32 rounding (modulated
biquads, modulated delays, FM): musicgym computes sinf/cosf with the engine's own algorithm
(``musicgym.synth.nodes.libm``), so there is no last-bit difference to amplify.
"""

from __future__ import annotations

import pytest

from tests.synth.conformance import assert_matches
from tests.synth.conformance import case_rng as _rng
from tests.synth.conformance import fmt as _f

pytestmark = pytest.mark.reference

RNG_SEEDS = [0, 1, 2]


SOURCE_CASES = {
    "sin": lambda r: f"o: sin {_f(r.uniform(20, 5000))}",
    "saw": lambda r: f"o: saw {_f(r.uniform(20, 5000))}",
    "squ": lambda r: f"o: squ {_f(r.uniform(20, 5000))}",
    "tri": lambda r: f"o: tri {_f(r.uniform(20, 5000))}",
    "imp": lambda r: f"o: imp {_f(r.uniform(0.5, 200))}",
    "noise": lambda r: f"o: noise {int(r.integers(0, 10000))}",
    "noiz": lambda r: f"o: noiz {int(r.integers(0, 10000))}",
    "sig": lambda r: f"o: sig {_f(r.uniform(-2, 2))}",
    "constsig": lambda r: f"o: constsig {_f(r.uniform(-2, 2))}",
    "sin_fm": lambda r: (f"~m: sin {_f(r.uniform(1, 50))} >> mul {_f(r.uniform(1, 300))} "
                         f">> add {_f(r.uniform(300, 800))}\no: sin ~m"),
    "saw_sticky": lambda r: (f"~f: squ {_f(r.uniform(1, 10))} >> add 1.0 >> "
                             f"mul {_f(r.uniform(50, 400))}\no: saw ~f"),
    "tri_input": lambda r: f"o: sig {_f(r.uniform(50, 900))} >> tri 440",
}

PROCESSOR_CASES = {
    "mul": lambda r: f"o: saw {_f(r.uniform(50, 500))} >> mul {_f(r.uniform(-2, 2))}",
    "add": lambda r: f"o: sin {_f(r.uniform(50, 500))} >> add {_f(r.uniform(-1, 1))}",
    "mul_ref": lambda r: f"~a: sin {_f(r.uniform(1, 30))}\no: saw 220 >> mul ~a",
    "add_ref_stereo": lambda r: (f"~a: sin {_f(r.uniform(1, 30))} >> mul 0.5\n"
                                 f"o: saw 220 >> mul 0.5 >> add ~a"),
    "mix": lambda r: (f"~a: sin {_f(r.uniform(20, 500))}\n~b: saw {_f(r.uniform(20, 500))}\n"
                      f"~c: imp {_f(r.uniform(1, 50))}\no: mix ~a ~b ~c"),
    "mix_prefix": lambda r: (f"~ta: sin {_f(r.uniform(20, 500))}\n~tb: tri "
                             f"{_f(r.uniform(20, 500))}\no: mix ~t.."),
    "get": lambda r: f"~a: saw {_f(r.uniform(20, 500))}\no: get ~a >> mul 0.5",
    "balance": lambda r: (f"~l: sin {_f(r.uniform(20, 500))}\n~r: saw {_f(r.uniform(20, 500))}\n"
                          "o: balance ~l ~r"),
    "envperc": lambda r: (f"o: imp {_f(r.uniform(0.5, 8))} >> envperc "
                          f"{_f(r.uniform(0, 0.2))} {_f(r.uniform(0.01, 0.8))}"),
    "envperc_kick": lambda r: (f"~env: imp {_f(r.uniform(0.5, 4))} >> envperc "
                               f"{_f(r.uniform(0.001, 0.05))} {_f(r.uniform(0.05, 1))}\n"
                               f"o: sin {_f(r.uniform(40, 120))} >> mul ~env"),
    "adsr": lambda r: (f"o: squ {_f(r.uniform(0.5, 3))} >> adsr {_f(r.uniform(0, 0.2))} "
                       f"{_f(r.uniform(0, 0.2))} {_f(r.uniform(0, 1))} {_f(r.uniform(0, 0.3))}"),
    "lpf": lambda r: (f"o: saw {_f(r.uniform(40, 400))} >> lpf {_f(r.uniform(50, 15000))} "
                      f"{_f(r.uniform(0.3, 8))}"),
    "hpf": lambda r: (f"o: noise {int(r.integers(0, 99))} >> hpf {_f(r.uniform(50, 15000))} "
                      f"{_f(r.uniform(0.5, 4))}"),
    "rhpf": lambda r: (f"o: saw {_f(r.uniform(40, 400))} >> rhpf {_f(r.uniform(50, 15000))} "
                       f"{_f(r.uniform(0.5, 4))}"),
    "lpf_pattern": lambda r: (f"o: saw 110 >> lpf \"{int(r.uniform(100, 900))}@0 "
                              f"{int(r.uniform(1000, 8000))}@{_f(r.uniform(0.1, 0.9))}\"(1) "
                              f"{_f(r.uniform(0.5, 3))}"),
    "onepole": lambda r: f"o: saw 110 >> onepole {_f(r.uniform(0.001, 0.3))}",
    "apfmsgain": lambda r: (f"o: imp {_f(r.uniform(1, 20))} >> apfmsgain "
                            f"{_f(r.uniform(0.5, 50))} {_f(r.uniform(-0.9, 0.9))}"),
    "apfgain": lambda r: (f"o: noise 3 >> apfgain {_f(r.uniform(0.5, 50))} "
                          f"{_f(r.uniform(-0.9, 0.9))}"),
    "apfmsgain_ref": lambda r: (f"~m: sig {_f(r.uniform(1, 40))}\n"
                                f"o: imp 10 >> apfmsgain ~m {_f(r.uniform(-0.9, 0.9))}"),
    "delayn": lambda r: f"o: saw 110 >> delayn {int(r.integers(0, 5000))}",
    "delayn_stereo": lambda r: f"o: saw 110 >> mul 0.5 >> delayn {int(r.integers(1, 5000))}",
    "delayms": lambda r: f"o: saw 110 >> delayms {_f(r.uniform(0, 200))}",
    "delayms_stereo": lambda r: f"o: saw 110 >> mul 0.5 >> delayms {_f(r.uniform(1, 200))}",
    "delayms_ref_const": lambda r: (f"~d: sig {_f(r.uniform(1, 500))}\n"
                                    f"o: imp 7 >> delayms ~d"),
    "feedback": lambda r: (f"~a: imp {_f(r.uniform(1, 10))} >> add ~b\n"
                           f"~b: get ~a >> delayn {int(r.integers(1, 3000))} >> mul "
                           f"{_f(r.uniform(0.1, 0.9))}\no: get ~a"),
}

# controls modulated by another chain: block-rate coefficients, modulated read positions
MODULATED_CASES = {
    "lpf_ref": lambda r: (f"~c: sin {_f(r.uniform(0.5, 5))} >> mul {_f(r.uniform(100, 800))} "
                          f">> add {_f(r.uniform(900, 3000))}\no: saw 110 >> lpf ~c "
                          f"{_f(r.uniform(0.5, 3))}"),
    "hpf_ref": lambda r: (f"~c: sin {_f(r.uniform(0.5, 5))} >> mul {_f(r.uniform(100, 800))} "
                          f">> add {_f(r.uniform(900, 3000))}\no: saw 110 >> hpf ~c "
                          f"{_f(r.uniform(0.5, 3))}"),
    "delayms_ref": lambda r: (f"~d: sin {_f(r.uniform(0.2, 3))} >> mul {_f(r.uniform(1, 5))} "
                              f">> add {_f(r.uniform(6, 20))}\no: saw 110 >> delayms ~d"),
    "onepole_ref": lambda r: (f"~r: sin 1 >> mul 0.01 >> add {_f(r.uniform(0.02, 0.1))}\n"
                              "o: sig 0.05 >> onepole ~r"),
}


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("name", sorted(SOURCE_CASES))
def test_sources_match_glicol(glicol, name, seed):
    assert_matches(SOURCE_CASES[name](_rng(seed, name)), glicol)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("name", sorted(PROCESSOR_CASES))
def test_processors_match_glicol(glicol, name, seed):
    assert_matches(PROCESSOR_CASES[name](_rng(seed, name)), glicol)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("name", sorted(MODULATED_CASES))
def test_modulated_controls_match_glicol(glicol, name, seed):
    assert_matches(MODULATED_CASES[name](_rng(seed, name)), glicol)


@pytest.mark.parametrize("code", [
    "o: sig 0.8\np: sig 0.8",  # tracks are summed, no limiter: 1.6
    "o: sig 220 >> sin 440",  # a chain input is the oscillator's frequency
    "~a: sin 440\no: sin 1 >> sin ~a",  # two inputs: silence
    "o: mul 0.5",  # mul at the start of a chain: silence
    "~a: sin 20\no: mul ~a",
    "o: imp 2 >> adsr 0.05 0.1 0.5 0.2",  # adsr with an impulse: near silence (glicol#175)
    "o: envperc 0.1 0.2",  # no input: silence
    "~a: sin 440 >> add ~b\n~b: get ~a >> mul 0.5\no: get ~a",  # a cycle: one block late
    "~lfo: sin 3\no: saw 100",  # an unreferenced chain does not play
    "o: saw 100\no: sin 200",  # a duplicate name replaces the earlier chain
    "o: saw -100",  # negative frequency drifts below -1
    "o: imp 0",
])
def test_engine_quirks_are_reproduced(glicol, code):
    assert_matches(code, glicol)


def test_other_rate_and_tempo(glicol):
    assert_matches("~e: imp 3 >> envperc 0.01 0.1\no: saw 300 >> lpf 2000 2 >> mul ~e", glicol,
                   sr=48000)
    assert_matches("o: saw 110 >> lpf \"300@0 3000@0.5\"(1) 1", glicol, bpm=97.0)
