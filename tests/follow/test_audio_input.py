"""Audio in: a rendered take through the front end into the followers."""

import numpy as np
import pytest

from musicgym.audio.soundfont import Part, render_notes, soundfont_available
from musicgym.errors import AccompanyConfigError
from musicgym.follow.audio_input import AudioFrames, audio_frames, performance_notes
from musicgym.follow.followers import ONSET_DECAY, SUSTAIN_WEIGHT

SR = 22050
needs_soundfont = pytest.mark.skipif(not soundfont_available(),
                                     reason="needs libfluidsynth3 and timgm6mb-soundfont")


@needs_soundfont
def test_rendered_notes_become_frames_with_attacks_where_midi_has_them():
    notes = [(0.3, 0.8, 72, 90), (0.9, 1.4, 79, 90), (1.5, 2.0, 76, 90)]
    audio = render_notes(Part(notes, program="piano"), sr=SR)[0]
    frames = audio_frames(audio, SR)
    assert frames.shape[1] == 128 and frames.dtype == np.float32
    attacks = np.flatnonzero((frames >= ONSET_DECAY[0]).any(axis=1))
    assert len(attacks) == 3
    for (onset, _, key, _), frame in zip(notes, attacks, strict=True):
        assert 0 <= frame * 0.02 - onset < 0.1  # a frame within 100 ms after the attack
        assert frames[frame, key] >= ONSET_DECAY[0] + SUSTAIN_WEIGHT
        assert frames[frame + 1, key] == pytest.approx(ONSET_DECAY[1] + SUSTAIN_WEIGHT)


def test_frames_must_be_whole_hops_and_notes_are_clipped():
    with pytest.raises(AccompanyConfigError, match="whole number"):
        AudioFrames(SR, frame_s=0.015)
    performed = np.zeros(2, dtype=[("onset_sec", float), ("duration_sec", float),
                                   ("pitch", int), ("velocity", int)])
    performed[0] = (0.5, np.nan, 60, 0)
    performed[1] = (np.nan, 1.0, 62, 80)
    assert performance_notes(performed) == [(0.5, 0.55, 60, 64)]


def test_frames_keep_the_follower_clock_though_the_hop_is_not_exactly_10_ms():
    # 220 samples at 22.05 kHz are 9.977 ms: counting two hops a frame drifted 0.23 %
    # (a quarter of a second late after 100 s of a take)
    frames = audio_frames(np.zeros(100 * SR, dtype=np.float32), SR)
    assert abs(len(frames) - 100 / 0.02) <= 1


def test_dated_follower_moves_onset_dates_back_by_the_front_end_latency():
    from musicgym.follow.audio_input import DatedFollower
    from musicgym.follow.followers import HMMFollower

    reference = np.zeros(3, dtype=[("onset_sec", float), ("duration_sec", float),
                                   ("pitch", int), ("onset_beat", float)])
    reference[:] = [(0.0, 0.4, 60, 0.0), (0.5, 0.4, 62, 1.0), (1.0, 0.4, 64, 2.0)]
    dated = DatedFollower(HMMFollower(reference), AudioFrames(SR).frontend.latency_s)
    frame = np.zeros(128, dtype=np.float32)
    frame[60] = ONSET_DECAY[0] + SUSTAIN_WEIGHT
    for _ in range(5):
        dated.report(np.zeros(128, dtype=np.float32))
    assert dated.report(frame) == 0.0
    assert dated.reported_onset_s == pytest.approx(dated.follower.reported_onset_s - 0.03,
                                                   abs=1e-3)
