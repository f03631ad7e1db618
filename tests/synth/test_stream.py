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
    "spmono": ("o: imp {r} >> mul {s} >> spmono \\x", [4.0, 0.5]),
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


# the granular synth's patch (envs/synths.py): grains of a 2 s tone under one envelope
GRANULAR = ("~trig: imp {density}\n~env: ~trig >> envperc 0.005 {grain}\n"
            "o: ~trig >> mul {speed} >> spmono \\src >> mul ~env")


def _granular_source(sr: int = 44100) -> np.ndarray:
    return Patch("o: saw 220 >> lpf 3000 1.0 >> mul 0.5", sr=sr).render(n_samples=2 * sr)[0]


def test_granular_jump_sounds_like_a_fresh_render_from_the_next_grain():
    """Issue 16: after a jump (40 Hz of slow 0.5 s grains to 10 Hz of fast 0.05 s ones) the
    stream from the first new grain on is what a fresh render at the new settings plays: no
    voices of the old rate left (``sp`` kept each for 2 s / 0.25 = 8 s, hundreds piled up
    under the envelope) and the grain clock one new period after the last grain."""
    patch = Patch(GRANULAR, samples={"src": (_granular_source(), 44100)})
    old, new = np.array([[40.0, 0.5, 0.25]]), np.array([[10.0, 0.05, 2.0]])
    stream = patch.stream(old)
    stream.render(344 * 128)   # about 1 s, ending on a block boundary
    last = (344 * 128 - 1) // 1102 * 1102   # the last 40 Hz grain (period 1102)
    stream.set_params(new)
    after = stream.render(22050)
    first = last + 4410 - 344 * 128   # one 10 Hz period after the last grain
    fresh = patch.render(new, n_samples=22050 - first)
    np.testing.assert_array_equal(after[:, :, first:], fresh)
    # the old grain dies away under its envelope meanwhile (no new grain before)
    assert np.abs(after[0, 0, :first]).max() > 0


def test_granular_stream_level_stays_that_of_one_grain():
    """Held for 3 s at dense, slow, long grains, the stream is as loud as a fresh render
    (``sp`` summed up to 320 voices there)."""
    patch = Patch(GRANULAR, samples={"src": (_granular_source(), 44100)})
    params = np.array([[40.0, 0.5, 0.25]])
    fresh = patch.render(params, n_samples=4408)[0, 0]
    stream = patch.stream(params)
    stream.render(3 * 44100 - 3 * 44100 % 1102)   # ends on a grain
    held = stream.render(4408)[0, 0]
    np.testing.assert_allclose(held, fresh, atol=1e-5)


def test_imp_clock_carries_over_a_frequency_change():
    """The next impulse comes one new period after the last one (at once where that is
    past), whatever the stream's clock is."""
    patch = Patch("o: imp {f}")
    stream = patch.stream(np.array([[100.0]]))   # period 441
    a = stream.render(1024)[0, 0]
    stream.set_params(np.array([[50.0]]))        # period 882: last impulse at 882
    b = stream.render(1024)[0, 0]
    stream.set_params(np.array([[400.0]]))       # period 110: 1764 + 110 is past, so at once
    c = stream.render(1024)[0, 0]
    got = np.flatnonzero(np.concatenate([a, b, c]))
    assert got.tolist()[:6] == [0, 441, 882, 1764, 2048, 2158]
    stream = patch.stream(np.array([[10.0]]))    # period 4410, impulse at 0
    stream.render(2048)
    stream.set_params(np.array([[40.0]]))        # 1102 already past: an impulse at once
    assert np.flatnonzero(stream.render(1024)[0, 0]).tolist() == [0]


def test_spmono_plays_one_voice_at_a_time():
    """Each trigger ends the voice playing (sp sums them); a lone voice is sp's."""
    x = (np.sin(np.arange(3000) / 10.0).astype(np.float32), 44100)
    mono = Patch("o: imp 1 >> spmono \\x", samples={"x": x}).render(n_samples=2000)
    poly = Patch("o: imp 1 >> sp \\x", samples={"x": x}).render(n_samples=2000)
    np.testing.assert_array_equal(mono, poly)   # one trigger: the same voice
    mono = Patch("o: imp 150 >> spmono \\x", samples={"x": x}).render(n_samples=900)[0, 0]
    poly = Patch("o: imp 150 >> sp \\x", samples={"x": x}).render(n_samples=900)[0, 0]
    one = Patch("o: imp 1 >> sp \\x", samples={"x": x}).render(n_samples=900)[0, 0]
    period = 294   # floor(44100 / 150)
    np.testing.assert_array_equal(mono[:period], one[:period])
    np.testing.assert_array_equal(mono[period:2 * period], one[:period])   # restarted
    assert np.abs(poly[period:2 * period] - one[:period]).max() > 0.1     # sp sums two


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
