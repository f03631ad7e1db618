"""Compound instruments bd, sn, hh, sawsynth, squsynth, trisynth: the NumPy backend against the
real Glicol engine (2 s renders, max |numpy - glicol| <= 1e-5), seeded random arguments."""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.synth import Patch
from musicgym.synth.nodes import NODES
from tests.synth.conformance import assert_matches
from tests.synth.conformance import case_rng as _rng
from tests.synth.conformance import fmt as _f

SEEDS = [0, 1, 2]


CASES = {
    "bd": lambda r: f"o: imp {_f(r.uniform(0.5, 6))} >> bd {_f(r.uniform(0.05, 0.8))}",
    "sn": lambda r: (f"o: imp {_f(r.uniform(0.5, 6))} >> mul {_f(r.uniform(0.3, 2))} "
                     f">> sn {_f(r.uniform(0.05, 0.5))}"),
    "hh": lambda r: f"o: imp {_f(r.uniform(1, 12))} >> hh {_f(r.uniform(0.01, 0.2))}",
    "sawsynth": lambda r: (f"o: imp {_f(r.uniform(0.5, 6))} >> mul {_f(r.uniform(0.25, 3))} "
                           f">> sawsynth {_f(r.uniform(0.001, 0.05))} {_f(r.uniform(0.05, 0.5))}"),
    "squsynth": lambda r: (f"o: imp {_f(r.uniform(0.5, 6))} >> mul {_f(r.uniform(0.25, 3))} "
                           f">> squsynth {_f(r.uniform(0.001, 0.05))} {_f(r.uniform(0.05, 0.5))}"),
    "trisynth": lambda r: (f"o: imp {_f(r.uniform(0.5, 6))} >> mul {_f(r.uniform(0.25, 3))} "
                           f">> trisynth {_f(r.uniform(0.001, 0.05))} {_f(r.uniform(0.05, 0.5))}"),
}


@pytest.mark.reference
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(CASES))
def test_instrument_matches_engine(glicol, name, seed):
    assert_matches(CASES[name](_rng(seed, name)), glicol)


@pytest.mark.reference
@pytest.mark.parametrize("code", [
    "o: sig 0 >> bd 0.2",  # every instrument sounds once at creation, untriggered
    "o: sig 0 >> sn 0.3",
    "o: sig 0 >> hh 0.1",
    "o: sig 0 >> sawsynth 0.01 0.3",  # saw held at -1: a DC pulse
    "o: sig 0 >> squsynth 0.01 0.3",
    # the pitch signal changes while a note sounds: a new note keeps the phase
    "~t: imp 3\n~v: sig \"1.0@0 1.5@0.3 0.75@0.6\"(1)\no: ~t >> mul ~v >> trisynth 0.01 0.4",
    "o: bd 0.2",  # no trigger input at all: silent
    "a: imp 2 >> bd 0.4\nb: imp 4 >> hh 0.05\nc: imp 1 >> sn 0.2",
])
def test_instrument_edge_cases_match_engine(glicol, code):
    assert_matches(code, glicol)


@pytest.mark.reference
@pytest.mark.parametrize("code", ["o: imp 2 >> bd 0.3", "o: imp 3 >> sn 0.2",
                                  "o: imp 5 >> hh 0.05", "o: imp 2 >> sawsynth 0.01 0.2"])
def test_instruments_keep_44k1_timing_at_48k(glicol, code):
    assert_matches(code, glicol, sr=48000)


@pytest.mark.reference
def test_instruments_driven_by_seq(glicol):
    if "seq" not in NODES:
        pytest.skip("the seq node is not in the NumPy backend yet")
    # note 72 doubles the pitch and the level; 48 halves them
    assert_matches("a: seq 60 72 _ 48 >> sawsynth 0.01 0.1\nb: seq 60 _ 60 60 >> bd 0.2\n"
                   "c: seq _ 60 >> sn 0.1\nd: seq 60_60 60_60 >> hh 0.03", glicol)


@pytest.mark.reference
@pytest.mark.parametrize("code,rows", [
    ("o: imp 2 >> bd {}", [[0.1], [0.3]]),
    ("o: imp 3 >> hh {}", [[0.02], [0.2], [0.07]]),
    ("o: imp 2 >> mul {pitch} >> squsynth {attack} 0.2", [[1.0, 0.001], [1.5, 0.03]]),
])
def test_batch_of_template_values_matches_engine(glicol, code, rows):
    patch = Patch(code)
    ours = patch.render(rows, seconds=2)
    for row, audio in zip(rows, ours, strict=True):
        ref = glicol(patch.fill(row), audio.shape[-1])
        assert np.abs(audio - ref).max() <= 1e-5, (code, row)


def test_instruments_sound_once_at_creation_and_fill_both_channels():
    audio = Patch("o: sig 0 >> bd 0.1").render(seconds=1)[0]
    np.testing.assert_array_equal(audio[0], audio[1])
    end = int(0.003 * 44100) + int(0.1 * 44100)  # attack + decay of the amplitude envelope
    assert np.abs(audio[0, :end]).max() > 0.5
    assert not audio[0, end + 1:].any()


def test_synth_pitch_follows_the_trigger_value():
    # a trigger of 2 plays 2 x 261.63 Hz, and the saw keeps that pitch after it (input 0);
    # the decaying saw falls only where it wraps
    audio = Patch("o: imp 0.5 >> mul 2.0 >> sawsynth 0.0 2.0").render(seconds=1)[0, 0]
    wraps = np.count_nonzero(np.diff(audio) < 0)
    assert abs(wraps - 523) <= 1
