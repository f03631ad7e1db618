"""Audio in and out of the live accompanist: a real take rendered through the real SoundFont,
with a room, followed from audio; the duet written as MIDI and as a mixed WAV."""

from pathlib import Path

import numpy as np
import pytest

from musicgym.audio.soundfont import soundfont_available
from musicgym.errors import AccompanyConfigError, ParameterError

pytestmark = pytest.mark.skipif(not soundfont_available(),
                                reason="needs libfluidsynth3 and timgm6mb-soundfont")
SR = 22050


@pytest.fixture(scope="module")
def brahms(tmp_path_factory):
    from musicgym.follow.audio_input import render_take
    from musicgym.follow.corpus import brahms_takes

    try:
        takes = brahms_takes()
    except AccompanyConfigError as exc:
        pytest.skip(str(exc))
    take = takes[5]
    excerpt = take.solo.performed[take.solo.performed["onset_sec"] < 12.0]
    audio = render_take(excerpt, sr=SR, seed=6)
    return takes, take, audio


def test_render_duet_mixes_the_solo_with_the_rendered_accompaniment():
    from musicgym.live.accompany.audio import render_duet

    solo = np.zeros(SR, dtype=np.float32)
    mix = render_duet(solo, SR, [(0.2, 0.5, 60, 90)], program="strings")
    assert mix.shape[0] == 2 and mix.shape[1] >= int(1.7 * SR)
    assert np.abs(mix[:, : int(0.15 * SR)]).max() < 1e-4  # nothing before the note
    assert np.sqrt(np.mean(mix[:, int(0.3 * SR): int(0.6 * SR)] ** 2)) > 1e-3
    with pytest.raises(ParameterError, match="program"):
        render_duet(solo, SR, [(0.2, 0.5, 60, 90)], program="kazoo")


def test_the_accompanist_follows_a_rendered_take_from_audio(brahms):
    from musicgym.follow.accompanist import TempoModelController
    from musicgym.follow.corpus import reference_take
    from musicgym.follow.followers import HMMFollower
    from musicgym.follow.tempo import make_tempo_model
    from musicgym.live.accompany import LiveAccompanist
    from musicgym.live.accompany.audio import replay_audio

    takes, take, audio = brahms
    follower = HMMFollower(reference_take(takes, take.take).solo.performed)
    accompanist = LiveAccompanist(take.solo.score, take.accompaniment.score, follower,
                                  TempoModelController(make_tempo_model("kalman")),
                                  beat_period_s=0.45)
    events = replay_audio(audio, SR, accompanist)
    score = take.solo.score
    truth_beat = np.unique(score["onset_beat"][score["onset_sec"] < 12.0])
    reported = np.asarray(accompanist.report_beat)
    # most onsets of the excerpt are reported, in score order, and the accompanist plays
    assert np.isin(reported, truth_beat).mean() > 0.9
    assert len(reported) > 0.5 * len(truth_beat)
    assert np.all(np.diff(reported) > 0)
    assert sum(e.velocity > 0 for e in events) > 20


def test_cli_replays_a_wav_and_writes_the_mix(brahms, tmp_path):
    from musicgym.audio.io import read_audio, write_audio
    from musicgym.cli import main
    from musicgym.follow.duets import default_duets_dir

    _, take, audio = brahms
    wav = write_audio(tmp_path / "take.wav", audio[None], SR)
    folder = Path(default_duets_dir()) / "brahms_hungarian_dance_5"
    reference = sorted((folder / "match").glob("*Primo*_1.match"))[0]
    code = main(["live", "accompany", "--score",
                 str(folder / "musicxml" / "Brahms_Hungarian-Dance-5_Full.musicxml"),
                 "--tempo-model", "kalman", "--follower", "hmm", "--reference", str(reference),
                 "--replay", str(wav), "--speed", "0", "-o", str(tmp_path / "out"),
                 "--wav", str(tmp_path / "mix.wav"), "--bpm", "140"])
    assert code == 0
    assert (tmp_path / "out" / "duet.mid").is_file()
    mix, sr = read_audio(tmp_path / "mix.wav")
    assert sr == SR and mix.shape[0] == 2 and mix.shape[1] >= audio.size
