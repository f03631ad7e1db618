"""SoundFont rendering through the real FluidSynth and Debian's General MIDI SoundFont."""

import numpy as np
import pytest

from musicgym.audio.soundfont import Part, find_soundfont, render_notes, soundfont_available
from musicgym.errors import AudioFileError, ParameterError

pytestmark = pytest.mark.skipif(not soundfont_available(),
                                reason="needs libfluidsynth3 and timgm6mb-soundfont (.ci/run)")


def _f0(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)]


def test_a_flute_note_sounds_at_its_pitch_and_time():
    sr = 22050
    audio = render_notes(Part([(0.5, 1.5, 69, 100)], program="flute"), sr=sr, tail=0.5)
    assert audio.shape == (1, 2 * sr) and audio.dtype == np.float32
    assert np.abs(audio[0, : int(0.45 * sr)]).max() < 1e-4  # silence before the onset
    body = audio[0, int(0.8 * sr): int(1.3 * sr)]
    assert np.sqrt(np.mean(body**2)) > 0.01
    assert abs(_f0(body, sr) - 440.0) < 8.0


def test_render_is_deterministic_and_stereo_parts_pan():
    parts = [Part([(0, 0.5, 60, 90)], program="violin", pan=-1.0),
             Part([(0, 0.5, 64, 90)], program="piano", pan=1.0)]
    a = render_notes(parts, sr=16000, stereo=True)
    b = render_notes(parts, sr=16000, stereo=True)
    assert a.shape[0] == 2 and np.array_equal(a, b)


@pytest.mark.parametrize("part, match", [
    (Part([(0, 1, 200, 90)]), "pitch"),
    (Part([(1, 0.5, 60, 90)]), "onset"),
    (Part([(0, float("nan"), 60, 90)]), "finite"),
    (Part([(0, 1e9, 60, 90)]), "offset"),
    (Part([(0, 1, 60, 90)], program="kazoo"), "program"),
    (Part([("a", 1)]), "not \\(onset_s"),
])
def test_bad_notes_are_refused_before_rendering(part, match):
    with pytest.raises(ParameterError, match=match):
        render_notes(part)


def test_a_missing_soundfont_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICGYM_SOUNDFONT", str(tmp_path / "none.sf2"))
    with pytest.raises(AudioFileError, match="none.sf2"):
        find_soundfont()


def test_a_drum_part_plays_gm_percussion_on_channel_10():
    """A kick key of a drum kit sounds (finite, after its onset, low); a melodic part beside
    it renders as alone (the drum part takes channel 9, the others keep theirs)."""
    from musicgym.audio.soundfont import GM_DRUM_KITS

    sr = 22050
    kick = render_notes(Part([(0.2, 0.5, 36, 110)], program=0, drums=True), sr=sr, tail=0.5)
    assert kick.shape == (1, sr) and np.isfinite(kick).all()
    assert np.abs(kick[0, : int(0.18 * sr)]).max() < 1e-4  # silence before the onset
    assert np.sqrt(np.mean(kick[0, int(0.2 * sr): int(0.4 * sr)] ** 2)) > 0.01
    hat = render_notes(Part([(0.2, 0.5, 42, 110)], program=0, drums=True), sr=sr, tail=0.5)
    spectrum = [np.abs(np.fft.rfft(x[0])) for x in (kick, hat)]
    freqs = np.fft.rfftfreq(kick.shape[1], 1 / sr)
    centroid = [np.sum(freqs * s) / np.sum(s) for s in spectrum]
    assert centroid[0] < centroid[1] / 2  # the kick is low, the closed hi-hat high
    for kit in GM_DRUM_KITS:  # every kit both Debian SoundFonts have is there
        assert np.abs(render_notes(Part([(0, 0.2, 38, 100)], program=kit, drums=True),
                                   sr=sr, tail=0.2)).max() > 0.01
    piano = Part([(0.1, 0.6, 60, 90)], program="piano")
    drums = Part([(0.2, 0.5, 36, 110)], program=25, drums=True)
    both = render_notes([drums, piano], sr=sr, duration=1.2)
    alone = render_notes(piano, sr=sr, duration=1.2) + render_notes(drums, sr=sr, duration=1.2)
    assert np.abs(both - alone).max() < 3 / 32768  # sums of 16-bit renders


def test_drum_parts_are_refused_where_fluidsynth_cannot_play_them():
    drums = Part([(0, 0.2, 36, 100)], program=0, drums=True)
    with pytest.raises(ParameterError, match="1 drum part"):
        render_notes([drums, drums])
    with pytest.raises(ParameterError, match="no preset 3 in bank 128"):
        render_notes(Part([(0, 0.2, 36, 100)], program=3, drums=True))
