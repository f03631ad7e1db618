"""Patch.stream: piece-by-piece rendering equals one long render, parameters change without a
restart (oscillator phases, envelopes, filters, delays carry on)."""

import numpy as np
import pytest

from musicgym.errors import ParameterError, UnsupportedNodeError
from musicgym.synth import Patch

SAMPLE = (np.sin(np.arange(3000) / 10.0).astype(np.float32), 44100)
CODES = {   # per node kind: code, parameter scale
    "oscillators": ("o: sin {f} >> mul 0.3\nb: saw {g} >> mul 0.2\nc: squ {g}\nd: tri {f}",
                    [200.0, 90.0]),
    "fm": ("~mod: sin {m} >> mul {d} >> add {c}\no: sin ~mod >> mul 0.5", [50.0, 100.0, 300.0]),
    "biquad": ("o: saw {f} >> lpf {c} {q} >> hpf 200 1.0 >> mul 0.5", [100.0, 500.0, 0.7]),
    "onepole": ("o: noise 3 >> onepole {r}", [0.3]),
    "envperc": ("~env: imp {r} >> envperc {a} {d}\no: sin 220 >> mul ~env", [2.0, 0.005, 0.1]),
    "adsr": ('~g: sig "1@0 0@0.3"(1)\n~env: ~g >> adsr {a} 0.1 0.5 {r}\no: saw 110 >> mul ~env',
             [0.01, 0.05]),
    "delayn": ("o: imp 5 >> delayn {n}", [300.0]),
    "delayms": ("o: sin 300 >> mul 0.3 >> delayms {ms}", [10.0]),
    "feedback": ("~a: sin 200 >> add ~b >> mul 0.5\n~b: ~a >> delayn 300 >> mul {g}\n"
                 "o: ~a >> mul 1", [0.3]),
    "sampler": ("o: imp {r} >> sp \\x", [4.0]),
    "instrument": ("o: imp 3 >> bd {d}\nh: imp 7 >> sawsynth 0.01 {d}", [0.1]),
}


def _patch(kind: str) -> tuple[Patch, np.ndarray]:
    code, scale = CODES[kind]
    patch = Patch(code, samples={"x": SAMPLE})
    params = np.random.default_rng(1).uniform(1.0, 3.0, (3, patch.n_params)) * scale
    return patch, params


@pytest.mark.parametrize("kind", sorted(CODES))
def test_stream_in_pieces_equals_one_render(kind):
    patch, params = _patch(kind)
    full = patch.render(params, n_samples=20000)
    stream, rng, parts, done = patch.stream(params), np.random.default_rng(0), [], 0
    while done < 20000:
        k = min(int(rng.integers(0, 3000)), 20000 - done)
        parts.append(stream.render(k))
        done += k
    assert stream.position == 20000
    np.testing.assert_array_equal(np.concatenate(parts, axis=-1), full)


@pytest.mark.parametrize("kind", sorted(CODES))
def test_setting_the_same_params_changes_nothing(kind):
    """set_params re-derives the controls and keeps the state: the same values, the same
    sound (bit for bit) as a render that never changed them."""
    patch, params = _patch(kind)
    full = patch.render(params, n_samples=8192)
    stream = patch.stream(params)
    parts = []
    for _ in range(16):
        parts.append(stream.render(512))
        stream.set_params(params.copy())
    np.testing.assert_array_equal(np.concatenate(parts, axis=-1), full)


# a parameter schedule the engine itself plays in one long render: the same control driven by
# a "value@bar-fraction" pattern (sr 32000, bpm 120: a bar is 64000 samples, 0.5 -> 32000 =
# 250 blocks, so the stream's change lands on the same sample)
SR, SWITCH = 32000, 32000


@pytest.mark.parametrize("stream_code, long_code, before, after", [
    ("o: sin {f}", '~f: sig "330@0 523@0.5"(1)\no: sin ~f', 330.0, 523.0),
    ("~mod: sin 7 >> mul {d} >> add 440\no: sin ~mod",
     '~d: sig "30@0 90@0.5"(1)\n~mod: sin 7 >> mul ~d >> add 440\no: sin ~mod', 30.0, 90.0),
    ("o: saw 220 >> mul {g}", '~g: sig "0.25@0 0.75@0.5"(1)\no: saw 220 >> mul ~g', 0.25,
     0.75),
])
def test_parameter_change_equals_the_engine_playing_the_schedule(stream_code, long_code,
                                                                 before, after):
    long = Patch(long_code, sr=SR).render(n_samples=2 * SWITCH)[0]
    stream = Patch(stream_code, sr=SR).stream([[before]])
    first = stream.render(SWITCH)
    stream.set_params([[after]])
    got = np.concatenate([first, stream.render(SWITCH)], axis=-1)[0]
    np.testing.assert_array_equal(got, long)


def test_oscillator_phase_carries_over_a_change():
    """No restart: after a frequency change the sine goes on from the phase it had (a restart
    would jump back to sin(0) = 0)."""
    stream = Patch("o: sin {f}").stream([[441.0]])
    a = stream.render(1024)[0, 0]
    stream.set_params([[882.0]])
    b = stream.render(200)[0, 0]
    phase = 1024 * 441.0 / 44100 % 1.0          # 10.24 periods: phase 0.24
    assert abs(b[0] - np.sin(2 * np.pi * phase)) < 1e-3
    assert abs(b[1] - np.sin(2 * np.pi * (phase + 882.0 / 44100))) < 1e-3
    assert abs(a[-1] - np.sin(2 * np.pi * 1023 * 441.0 / 44100)) < 1e-3


def test_envelope_decay_change_keeps_its_position():
    """envperc's position runs on; the new decay shapes the rest of the note."""
    code = "~env: imp 0.0 >> envperc 0.0 {d}\no: sig 1 >> mul ~env"
    stream = Patch(code).stream([[1.0]])       # a 44100-sample decay from 1
    a = stream.render(1024)[0, 0]
    np.testing.assert_allclose(a[1:1024], (44100 - np.arange(1, 1024)) / 44100, atol=1e-6)
    stream.set_params([[0.5]])                  # 22050 samples: at position 1024 -> 21026/22050
    b = stream.render(256)[0, 0]
    np.testing.assert_allclose(b, (22050 - np.arange(1024, 1280)) / 22050, atol=1e-6)


def test_filter_state_carries_over_a_cutoff_change():
    """A restart would start the filter from rest: the first output sample after a change
    would be the same as the very first sample of the patch."""
    patch = Patch("o: saw 110 >> lpf {c} 1.0")
    stream = patch.stream([[800.0]])
    stream.render(4096)
    stream.set_params([[1600.0]])
    after = stream.render(256)[0, 0]
    fresh = patch.render([[1600.0]], n_samples=256)[0, 0]
    assert np.abs(after - fresh).max() > 0.05
    assert np.abs(np.diff(after)).max() < 0.2   # no jump: the sound goes on smoothly


def test_delay_length_change_reads_the_input_that_long_ago():
    stream = Patch("o: imp 10 >> delayn {n}").stream([[100.0]])   # impulses every 4410
    a = stream.render(8192)[0, 0]
    assert np.flatnonzero(a).tolist() == [100, 4510]
    stream.set_params([[1000.0]])
    b = stream.render(8192)[0, 0]
    # impulses at 8820 (and 13230) now come out 1000 samples later; 4410 + 1000 = 5410 < 8192
    # was already past the 100-sample line
    assert (np.flatnonzero(b) + 8192).tolist() == [8820 + 1000, 13230 + 1000]


def test_row_restart_matches_a_fresh_render_on_the_clock():
    patch = Patch("o: saw {f} >> lpf 900 1.0")
    stream = patch.stream([[110.0], [220.0]])
    stream.render(4096)
    stream.set_params([[110.0], [330.0]])
    pre = stream.reset([1], preroll=1024)
    assert pre.shape == (1, 2, 1024)
    # row 1 restarted 1024 samples before the clock: it equals a fresh render's tail
    fresh = patch.render([[330.0]], n_samples=1024 + 512)
    np.testing.assert_array_equal(pre[0], fresh[0, :, :1024])
    np.testing.assert_array_equal(stream.render(512)[1], fresh[0, :, 1024:])


def test_stream_errors():
    stream = Patch("o: sin {f}").stream([[440.0], [220.0]])
    with pytest.raises(ParameterError, match="plays 2 rows"):
        stream.set_params([[440.0]])
    with pytest.raises(ParameterError, match="finite"):
        stream.set_params([[440.0], [np.nan]])
    plate = Patch("o: sin {f} >> plate 0.3").stream([[440.0], [220.0]])
    plate.render(256)
    with pytest.raises(UnsupportedNodeError, match="reset the whole stream"):
        plate.reset([0], preroll=128)
    with pytest.raises(ValueError, match="numpy backend"):
        Patch("o: sin 440", backend="glicol").stream()
