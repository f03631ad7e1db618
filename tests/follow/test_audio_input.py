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


def test_hear_audio_lets_the_hmm_skip_more_onsets_and_checks_its_input():
    from musicgym.follow.audio_input import DatedFollower
    from musicgym.follow.followers import AUDIO_MAX_SKIP, HMMFollower

    reference = np.zeros(12, dtype=[("onset_sec", float), ("duration_sec", float),
                                    ("pitch", int), ("onset_beat", float)])
    reference["onset_sec"] = np.arange(12) * 0.5
    reference["duration_sec"], reference["pitch"] = 0.4, 60 + np.arange(12)
    reference["onset_beat"] = np.arange(12.0)
    follower = HMMFollower(reference)
    assert follower.max_skip == 4
    DatedFollower(follower, 0.03)  # heard through the front end
    assert follower.max_skip == AUDIO_MAX_SKIP and len(follower._ref_ioi) == AUDIO_MAX_SKIP
    with pytest.raises(AccompanyConfigError, match="max_skip"):
        follower.hear_audio(0)


@needs_soundfont
def test_hmm_from_real_take_audio_keeps_up_better_when_it_may_skip_missed_onsets(
        brahms_takes):
    # real training take 3, rendered with the room: the front end misses about one onset in
    # four, often several in a row; a follower that can skip only 3 falls behind and reports
    # stale onsets late (dated at a later note's attack), and the accompanist with it
    from musicgym.follow.accompanist import make_episode
    from musicgym.follow.audio_input import DatedFollower, render_take
    from musicgym.follow.corpus import reference_take
    from musicgym.follow.evaluate import evaluate_tempo_model
    from musicgym.follow.followers import HMMFollower, _time_map
    from musicgym.follow.tempo import make_tempo_model

    take = next(t for t in brahms_takes if t.take == 3)
    reference = reference_take(brahms_takes, 3).solo
    frames = audio_frames(render_take(take.solo.performed, sr=SR, seed=3), SR)
    beat, sec = _time_map(take.solo.performed)

    class Heard:  # the reports of a dated follower over the rendered take's frames
        name = "hmm"

        def __init__(self, follower):
            self.follower = follower

        def follow(self, performed):
            self.follower.reset()
            out = []
            for i, frame in enumerate(frames):
                reported = self.follower.report(frame)
                if reported is not None:
                    out.append(((i + 1) * 0.02, reported, self.follower.reported_onset_s))
            return tuple(np.asarray(column, dtype=float) for column in zip(*out, strict=True))

    def run(follower):
        heard = Heard(follower)
        report_sec, report_beat, onset_sec = heard.follow(None)
        found = np.isin(report_beat, beat)
        late = onset_sec[found] - sec[np.searchsorted(beat, report_beat[found])]
        episode = make_episode(take.solo, take.accompaniment.score, follower=heard,
                               accompaniment=take.accompaniment, take=3)
        row = evaluate_tempo_model([episode], lambda: make_tempo_model("kalman"))
        return int(np.sum(late > 0.15)), row["within_100_ms"]

    plain = DatedFollower(HMMFollower(reference.performed, score=reference.score), 0.03)
    plain.follower.max_skip = 4  # as from MIDI
    plain.follower._ref_ioi = plain.follower._ref_ioi[:4]
    heard = DatedFollower(HMMFollower(reference.performed, score=reference.score), 0.03)
    (stale_before, within_before), (stale_after, within_after) = run(plain), run(heard)
    assert stale_after < stale_before  # 8 -> 5 stale reports
    assert within_after > within_before + 0.01  # kalman within 100 ms: 79.5 -> 82.0 %
