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
