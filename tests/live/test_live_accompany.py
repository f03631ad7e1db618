"""The live accompanist fed frame by frame from a real Brahms take (file-driven mode)."""

from __future__ import annotations

import time

import mido
import numpy as np
import pytest

from musicgym.errors import AccompanyConfigError, ScoreFileError
from musicgym.follow.corpus import brahms_takes
from musicgym.follow.duets import BRAHMS, default_duets_dir, onsets, tempo_curve
from musicgym.follow.followers import OLTWFollower, piano_roll
from musicgym.follow.tempo import make_tempo_model
from musicgym.live.accompany import (
    FrameBuilder,
    LiveAccompanist,
    MidiPortError,
    TempoModelController,
    midi_backend,
    open_ports,
    performance_messages,
    played_notes,
    read_performance,
    rehearsal_curves,
    replay,
    write_duet_midi,
)


@pytest.fixture(scope="module")
def takes():
    if not (default_duets_dir() / BRAHMS).is_dir():
        pytest.skip(f"real duets not found under {default_duets_dir()}: set MUSICGYM_DUETS_DIR")
    return brahms_takes()


def _accompanist(takes, model="kalman", **options):
    reference, take6 = takes[0], takes[5]
    return LiveAccompanist(
        take6.solo.score, take6.accompaniment.score, OLTWFollower(reference.solo.performed),
        TempoModelController(make_tempo_model(model)), beat_period_s=0.45, **options)


def _asynchrony_ms(accompanist, take):
    """Accompanist minus soloist at the shared onsets the accompanist played (ms)."""
    beat, sec = np.asarray(accompanist.played_beat), np.asarray(accompanist.played_sec)
    solo_beat, solo_sec = onsets(take.solo.score)
    shared, i_acc, i_solo = np.intersect1d(beat, solo_beat, return_indices=True)
    return 1000.0 * (sec[i_acc] - solo_sec[i_solo])


def test_frames_match_the_offline_piano_roll(takes):
    performed = takes[5].solo.performed[:200]
    offline = piano_roll(performed, 0.02)
    frames, messages, i = FrameBuilder(), performance_messages(performed), 0
    live = []
    for n in range(1, len(offline) + 1):
        while i < len(messages) and messages[i][0] < n * 0.02:
            _, pitch, velocity = messages[i]
            frames.note_on(pitch) if velocity else frames.note_off(pitch)
            i += 1
        live.append(frames.next_frame())
    same = np.all(np.isclose(np.array(live), offline, atol=1e-6), axis=1)
    assert same.mean() > 0.97  # rounding at frame edges differs by a frame here and there


def test_replaying_a_held_out_take_keeps_together(takes):
    accompanist = _accompanist(takes)
    replay(takes[5].solo.performed, accompanist, speed=0)
    asynchrony = np.abs(_asynchrony_ms(accompanist, takes[5]))
    # measured: 70 % within 50 ms, 88 % within 100 ms, median 28 ms: near the offline Kalman row
    assert len(asynchrony) > 250
    assert np.mean(asynchrony <= 100) > 0.8
    assert np.median(asynchrony) < 60
    assert len(accompanist.report_beat) > 400 and accompanist.resyncs < 100


def test_rehearsed_timing_keeps_closer_live(takes):
    from musicgym.follow.duets import tempo_curve
    from musicgym.follow.tempo import RehearsedTiming

    take = takes[5]
    curves = [tempo_curve(t.solo.score) for t in takes[:5]]  # takes 1-5, before take 6
    shares = {}
    for name, model in (("plain", make_tempo_model("kalman")),
                        ("timing", RehearsedTiming(make_tempo_model("kalman"), curves))):
        accompanist = LiveAccompanist(
            take.solo.score, take.accompaniment.score, OLTWFollower(takes[0].solo.performed),
            TempoModelController(model), beat_period_s=0.45)
        replay(take.solo.performed, accompanist, speed=0)
        shares[name] = np.mean(np.abs(_asynchrony_ms(accompanist, take)) <= 50)
    # measured on take 6: 70 % -> 89 % of the shared onsets played within 50 ms (take 7: 69 -> 87)
    assert shares["timing"] > shares["plain"] + 0.1


def test_replay_in_real_time_waits_and_faster_does_not(takes):
    excerpt = takes[5].solo.performed
    excerpt = excerpt[excerpt["onset_sec"] < 1.5]
    for speed, low, high in ((1.0, 2.3, 4.0), (10.0, 0.2, 1.0)):
        start = time.perf_counter()
        replay(excerpt, _accompanist(takes), speed=speed)
        assert low < time.perf_counter() - start < high  # 1.5 s of music + 1 s of tail


def test_duet_midi_file_holds_both_parts(takes, tmp_path):
    performed = takes[5].solo.performed
    accompanist = _accompanist(takes)
    replay(performed[performed["onset_sec"] < 20.0], accompanist, speed=0)
    notes = played_notes(performed[performed["onset_sec"] < 20.0], accompanist)
    path = write_duet_midi(tmp_path / "duet.mid", notes)
    midi = mido.MidiFile(path)
    counts = [sum(m.type == "note_on" for m in track) for track in midi.tracks]
    assert counts == [int(np.sum(notes["voice"] == 0)), len(accompanist.played)]
    assert counts[1] > 50
    again = read_performance(path)  # a MIDI performance replays as well
    assert len(again) == len(notes)
    assert np.allclose(np.sort(again["onset_sec"]), np.sort(notes["onset_sec"]), atol=2e-3)


def test_bad_input_is_named(takes, tmp_path):
    with pytest.raises(AccompanyConfigError, match="beat_period_s must lie in"):
        _accompanist(takes).__class__(
            takes[5].solo.score, takes[5].accompaniment.score,
            OLTWFollower(takes[0].solo.performed),
            TempoModelController(make_tempo_model("kalman")), beat_period_s=10.0)
    with pytest.raises(AccompanyConfigError, match="speed must be >= 0"):
        replay(takes[5].solo.performed[:5], _accompanist(takes), speed=-1)
    with pytest.raises(ScoreFileError, match="does not exist"):
        read_performance(tmp_path / "missing.mid")
    (tmp_path / "take.txt").write_text("hello")
    with pytest.raises(ScoreFileError, match="must be a .match or MIDI"):
        read_performance(tmp_path / "take.txt")
    (tmp_path / "broken.mid").write_bytes(b"MThd not really")
    with pytest.raises(ScoreFileError, match="not a readable MIDI file"):
        read_performance(tmp_path / "broken.mid")
    with pytest.raises(ScoreFileError, match="rehearsal must be a .match file"):
        rehearsal_curves([tmp_path / "broken.mid"])
    with pytest.raises(ScoreFileError, match="rehearsal file .* does not exist"):
        rehearsal_curves([tmp_path / "missing.match"])


def test_playing_ahead_plays_the_same_notes_at_the_same_times(takes):
    # play_ports warms the follower up, then sends the next frame's notes at their own times
    # (play_ahead): they must be the notes feed() would have returned a frame later, at the
    # same times
    performed = takes[5].solo.performed
    messages = performance_messages(performed[performed["onset_sec"] < 20.0])
    by_frame, ahead = _accompanist(takes), _accompanist(takes)
    ahead.warm_up()  # as play_ports does first: it must leave the follower as it was
    frames = [FrameBuilder(), FrameBuilder()]
    late, early, i = [], [], 0
    for n in range(1, int(21.0 / by_frame.frame_s)):
        now = n * by_frame.frame_s
        while i < len(messages) and messages[i][0] < now:
            _, pitch, velocity = messages[i]
            for f in frames:
                f.note_on(pitch) if velocity else f.note_off(pitch)
            i += 1
        late += by_frame.feed(frames[0].next_frame(), now)
        early += ahead.feed(frames[1].next_frame(), now)
        batch = ahead.play_ahead((n + 1) * by_frame.frame_s)
        assert all(now < e.time_s <= (n + 1) * by_frame.frame_s for e in batch)
        early += batch
    assert len(late) > 100
    assert early[: len(late)] == late  # the same events, in order; up to a frame more ahead
    assert not [e for e in early[len(late):] if e.time_s <= now]


def test_ports_open_or_say_why():
    # this machine may have no MIDI system; either way the error names the port or the backend
    with pytest.raises(MidiPortError, match="no MIDI input port 'no such port'|--replay|JACK"):
        open_ports("no such port", None)


def test_a_missing_midi_api_or_server_says_what_to_do(monkeypatch):
    pytest.importorskip("rtmidi")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "musicgym-no-such-server")  # none runs so
    with pytest.raises(MidiPortError, match=r"no JACK server running: start one with `jackd "
                                            r"-d dummy|built without the jack MIDI API"):
        open_ports(None, None, virtual=True, api="jack")
    with pytest.raises(MidiPortError, match="unknown MIDI API 'beos': choose one of alsa, jack"):
        open_ports(None, None, api="beos")
    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")  # mido's own variable
    assert midi_backend().api == "UNIX_JACK" and midi_backend("alsa").api == "LINUX_ALSA"


def test_a_trained_agent_accompanies_live(takes, tmp_path):
    pytest.importorskip("sb3_contrib")
    from musicgym.live.accompany import agent_controller
    from musicgym.train.config import TrainConfig
    from musicgym.train.evaluate import load_run
    from musicgym.train.runner import train

    env_kwargs = {"sources": ["simulated"], "episode_reports": 32, "memory": True,
                  "residual_on": "kalman+timing"}
    config = TrainConfig(env_id="musicgym/Accompany-v0", algo="recurrent_ppo", steps=64,
                         n_envs=1, eval_episodes=1, env_kwargs=env_kwargs,
                         algo_kwargs={"n_steps": 64, "batch_size": 64, "n_epochs": 1})
    config, model = load_run(train(config, runs_root=tmp_path, progress=False))
    take = takes[5]
    curves = [tempo_curve(t.solo.score) for t in takes[:5]]  # as --rehearsal takes 1-5 gives
    accompanist = LiveAccompanist(
        take.solo.score, take.accompaniment.score, OLTWFollower(takes[0].solo.performed),
        agent_controller(model, config.env_kwargs, curves), beat_period_s=0.45)
    performed = take.solo.performed
    replay(performed[performed["onset_sec"] < 40.0], accompanist, speed=0)
    asynchrony = np.abs(_asynchrony_ms(accompanist, take))
    # a barely trained residual agent plays close to its Kalman+timing model
    assert len(asynchrony) > 80
    assert np.mean(asynchrony <= 100) > 0.8
