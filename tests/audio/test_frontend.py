"""The streaming audio front end and the synthetic room, on notes rendered through the real
SoundFont."""

import time

import numpy as np
import pytest

from musicgym.audio.frontend import FrontEnd
from musicgym.audio.room import add_room, pink_noise, reverb_ir
from musicgym.audio.soundfont import Part, render_notes, soundfont_available
from musicgym.errors import ParameterError

SR = 22050
needs_soundfont = pytest.mark.skipif(not soundfont_available(),
                                     reason="needs libfluidsynth3 and timgm6mb-soundfont")


def _onsets(audio, block=441, **kwargs):
    frontend = FrontEnd(SR, **kwargs)
    hops = []
    for i in range(0, audio.size, block):
        hops += frontend.process(audio[i : i + block])
    return [h for h in hops if h.onset], hops


@needs_soundfont
@pytest.mark.parametrize("key", [72, 84])
def test_a_piano_note_is_one_onset_naming_its_key_soon_after_it(key):
    audio = render_notes(Part([(0.5, 1.2, key, 90)], program="piano"), sr=SR)[0]
    onsets, _ = _onsets(add_room(audio, SR, seed=3))
    assert len(onsets) == 1
    assert 0.5 < onsets[0].end_s < 0.5 + 0.1  # detected within 100 ms of the attack
    assert key in onsets[0].keys.tolist()


@needs_soundfont
def test_a_flute_note_in_mono_mode_names_one_key():
    audio = render_notes(Part([(0.3, 1.0, 76, 100)], program="flute"), sr=SR)[0]
    onsets, _ = _onsets(audio, instrument="mono")
    assert len(onsets) >= 1 and onsets[0].keys.tolist() == [76]


def test_room_noise_alone_makes_no_onset():
    noise = pink_noise(3 * SR, seed=1) * 0.01
    onsets, hops = _onsets(noise)
    assert onsets == [] and len(hops) == 300


@needs_soundfont
def test_hops_do_not_depend_on_the_block_size():
    audio = render_notes(Part([(0.2, 0.6, 67, 90), (0.7, 1.0, 71, 90)], program="piano"),
                         sr=SR)[0]
    a, _ = _onsets(audio, block=64)
    b, _ = _onsets(audio, block=4096)
    assert [(h.end_s, h.keys.tolist()) for h in a] == [(h.end_s, h.keys.tolist()) for h in b]
    assert len(a) == 2


def test_a_hop_takes_well_under_5_ms():
    frontend = FrontEnd(SR)
    audio = pink_noise(SR, seed=0) * 0.1
    start = time.perf_counter()
    hops = frontend.process(audio)
    per_hop_ms = (time.perf_counter() - start) / len(hops) * 1000
    assert per_hop_ms < 5.0


def test_bad_settings_are_refused():
    with pytest.raises(ParameterError, match="sample rate"):
        FrontEnd(1000)
    with pytest.raises(ParameterError, match="instrument"):
        FrontEnd(SR, instrument="drums")
    with pytest.raises(ParameterError):
        FrontEnd(SR, threshold=2.0)


def test_the_room_is_seeded_keeps_the_shape_and_sets_the_noise_level():
    x = np.zeros((1, SR), dtype=np.float32)
    x[0, 1000:5000] = np.sin(np.arange(4000) * 0.1) * 0.5
    a, b = add_room(x, SR, seed=4), add_room(x, SR, seed=4)
    assert a.shape == x.shape and np.array_equal(a, b)
    assert not np.array_equal(a, add_room(x, SR, seed=5))
    ir = reverb_ir(SR, rt60_s=0.4)
    assert ir[0] == 1.0 and ir.size == int(0.4 * SR)
    tail = a[0, 15000:]  # long after the note and its reverb: noise only
    signal_rms = float(np.sqrt(np.mean(add_room(x, SR, snr_db=200)[0] ** 2)))
    noise_db = 20 * np.log10(np.sqrt(np.mean(tail**2)) / signal_rms)
    assert -34 < noise_db < -26  # the default 30 dB SNR
    with pytest.raises(ParameterError, match="mono"):
        add_room(np.zeros((2, 100)), SR)
    with pytest.raises(ParameterError):
        reverb_ir(SR, rt60_s=0)
