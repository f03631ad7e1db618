"""Accompany a soloist as it plays: MIDI in, follower, tempo model or trained agent, MIDI out.

:class:`LiveAccompanist` is the engine, one call per input frame: it plays its part on at its
beat period up to now, feeds the frame to the OLTW follower and, when the follower reports a new
solo onset, re-synchronises if lost and asks its controller (a tempo model, or a trained
RecurrentPPO agent seeing the observation ``musicgym/Accompany-v0`` would show it) for the
next beat period: the env's dynamics, driven by time instead of by a recorded report stream.
Two drivers feed it: :func:`replay` (a recorded MIDI or match performance, in real time,
faster, or as fast as possible)
and :func:`play_ports` (mido input and output ports); :func:`played_notes` turns what was
played into a note array and :func:`write_duet_midi` writes it. The accompanist joins at
the soloist's first reported onset (the soloist's first note is its cue), at ``beat_period_s``.
"""

from __future__ import annotations

import contextlib
import copy
import heapq
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgym.errors import AccompanyConfigError, ScoreFileError
from musicgym.follow.accompanist import RESYNC_S, Episode, bar_lines
from musicgym.follow.followers import N_KEYS, ONSET_DECAY, SUSTAIN_WEIGHT, OLTWFollower
from musicgym.follow.tempo import (
    MAX_BEAT_PERIOD_S,
    MIN_BEAT_PERIOD_S,
    TempoModel,
    make_tempo_model,
)
from musicgym.music.midi import open_midi
from musicgym.music.notes import NOTE_DTYPE
from musicgym.music.score import MIDI_SUFFIXES, read_match


class MidiPortError(AccompanyConfigError):
    """A MIDI port that cannot be opened (no backend, no such port)."""


@dataclass(frozen=True, order=True)
class NoteEvent:
    """One accompaniment MIDI event: ``velocity`` 0 is a note-off."""

    time_s: float
    pitch: int
    velocity: int


class FrameBuilder:
    """Turns note-on/off messages into the frames :class:`OLTWFollower` compares.

    The same features as :func:`musicgym.follow.followers.piano_roll`: a sounding key weighs
    ``SUSTAIN_WEIGHT``, an onset adds ``ONSET_DECAY`` over its first frames.
    """

    def __init__(self) -> None:
        self._sounding = np.zeros(N_KEYS, dtype=bool)
        self._in_frame = np.zeros(N_KEYS, dtype=bool)  # sounded at some time in this frame
        self._onsets: list[tuple[int, int]] = []  # (pitch, frames since onset)

    def note_on(self, pitch: int) -> None:
        self._sounding[pitch] = self._in_frame[pitch] = True
        self._onsets.append((pitch, 0))

    def note_off(self, pitch: int) -> None:
        self._sounding[pitch] = False

    def next_frame(self) -> np.ndarray:
        """The frame for the time since the last call, shape (128,), float32."""
        frame = np.where(self._in_frame, SUSTAIN_WEIGHT, 0.0).astype(np.float32)
        kept = []
        for pitch, age in self._onsets:
            frame[pitch] += ONSET_DECAY[age]
            if age + 1 < len(ONSET_DECAY):
                kept.append((pitch, age + 1))
        self._onsets = kept
        self._in_frame = self._sounding.copy()
        return frame


class TempoModelController:
    """A tempo model as the live accompanist's controller."""

    def __init__(self, model: TempoModel) -> None:
        self.model = model

    def start(self, accompanist: LiveAccompanist) -> None:
        a = accompanist
        self.model.reset(time_s=a.report_onset_sec[-1], solo_beat=a.report_beat[-1],
                         beat_period_s=a.beat_period_s)

    def decide(self, accompanist: LiveAccompanist) -> float:
        a = accompanist
        solo_beat = a.report_beat[-1]
        return self.model.update(
            time_s=a.report_onset_sec[-1], now_s=a.time_s, solo_beat=solo_beat,
            accompanist_beat=a.position_beat, beat_period_s=a.beat_period_s,
            horizon_beats=a.horizon_beats(solo_beat),
        )


class AgentController:
    """A trained agent (:mod:`musicgym.follow.train`) as the live accompanist's controller."""

    def __init__(self, model, config) -> None:
        from musicgym.follow.train import AgentPolicy

        env = config.env_kwargs
        # live there are no earlier takes: the memory features read "none" (zeros, flag 0),
        # as the env shows them for a first take
        self.memory = bool(env.get("memory"))
        self.policy = AgentPolicy(model)
        self.history, self.lookahead = env.get("history", 6), env.get("lookahead", 4)
        self.max_log_ratio = env.get("max_log_ratio", 0.5)
        self.residual_scale = config.residual_scale
        # live there are no earlier takes to rehearse with: a "+rehearsal" base plays plain
        self.base = (TempoModelController(make_tempo_model(config.residual_on.partition("+")[0]))
                     if config.residual_on else None)

    def start(self, accompanist: LiveAccompanist) -> None:
        self.policy.reset()
        self._count_in_s = accompanist.beat_period_s
        if self.base is not None:
            self.base.start(accompanist)

    def decide(self, accompanist: LiveAccompanist) -> float:
        from musicgym.envs.accompany import accompany_observation, observation_bounds

        a = accompanist
        episode = a.heard_episode()
        k = len(a.report_beat) - 1
        first, last = a.solo_score_beat[0], a.solo_score_beat[-1]
        obs = accompany_observation(
            episode, k, a.position_beat, a.beat_period_s, count_in_s=self._count_in_s,
            progress=(a.report_beat[-1] - first) / max(last - first, 1e-9),
            history=self.history, lookahead=self.lookahead,
        )
        if self.memory:
            obs = np.concatenate([obs, np.zeros(self.lookahead + 1)])
        obs = np.clip(obs, *observation_bounds(self.history, self.lookahead, memory=self.memory))
        if self.base is None:
            action = float(self.policy.act(obs.astype(np.float32))[0])
        else:  # as ResidualOnTempoModel: the agent corrects the tempo model's action
            wanted = self.base.decide(a)
            base = float(np.clip(np.log(wanted / a.beat_period_s) / self.max_log_ratio, -1, 1))
            correction = float(self.policy.act(np.append(obs, base).astype(np.float32))[0])
            action = base + self.residual_scale * float(np.clip(correction, -1, 1))
        return a.beat_period_s * float(np.exp(np.clip(action, -1, 1) * self.max_log_ratio))


class LiveAccompanist:
    """The accompanist's state as time goes on, one input frame at a time.

    Parameters
    ----------
    solo_score, accompaniment_score : numpy.ndarray
        Score note arrays (``onset_beat``, ``duration_beat``, ``pitch``, ``velocity``; bar
        columns where the score has them).
    follower : OLTWFollower or HMMFollower
        Follows the soloist; its frame length is the engine's.
    controller : TempoModelController or AgentController
        Chooses the beat period at each report.
    beat_period_s : float
        Beat period to start with (the expected tempo).
    resync_s : float or None
        Jump to the soloist when further apart than this (None: never).
    max_log_ratio : float
        Largest change of log beat period per report.
    """

    def __init__(
        self, solo_score: np.ndarray, accompaniment_score: np.ndarray, follower: OLTWFollower,
        controller, *, beat_period_s: float, resync_s: float | None = RESYNC_S,
        max_log_ratio: float = 0.5,
    ) -> None:
        if not MIN_BEAT_PERIOD_S <= beat_period_s <= MAX_BEAT_PERIOD_S:
            raise AccompanyConfigError(
                f"beat_period_s must lie in [{MIN_BEAT_PERIOD_S}, {MAX_BEAT_PERIOD_S}] s, got "
                f"{beat_period_s!r} (a --bpm of {60 / MAX_BEAT_PERIOD_S:g} to "
                f"{60 / MIN_BEAT_PERIOD_S:g})"
            )
        order = np.argsort(accompaniment_score["onset_beat"], kind="stable")
        self.notes = accompaniment_score[order]
        self.solo_score_beat = np.unique(solo_score["onset_beat"])
        self.accompaniment_beat = np.unique(self.notes["onset_beat"])
        self.bar_start_beat, self.beats_per_bar = bar_lines(solo_score, accompaniment_score)
        self.follower, self.controller = follower, controller
        self.frame_s = follower.frame_s
        self.resync_s, self.max_log_ratio = resync_s, max_log_ratio
        self.beat_period_s = beat_period_s
        self.time_s, self.position_beat = 0.0, float("nan")
        self.report_sec: list[float] = []
        self.report_beat: list[float] = []
        self.report_onset_sec: list[float] = []  # the follower's estimate of each onset
        self.resyncs = 0
        self._next_note = 0
        self._offs: list[NoteEvent] = []
        self.played: list[tuple[float, float, int, int]] = []  # onset_s, duration_s, pitch, vel
        self.played_beat: list[float] = []  # the score onset of each played note

    @property
    def started(self) -> bool:
        """Whether the soloist's first onset has been heard."""
        return bool(self.report_beat)

    def feed(self, frame: np.ndarray, now_s: float) -> list[NoteEvent]:
        """Play on up to ``now_s``, then hear one input frame (ending at ``now_s``).

        Returns
        -------
        list of NoteEvent
            Accompaniment events due by ``now_s``, in time order.
        """
        events = self._play_until(now_s) if self.started else []
        beat = self.follower.report(frame)
        if beat is not None:
            self._hear(now_s, beat)
        return events + self._due_offs(now_s)

    def warm_up(self) -> None:
        """Run a copy of the follower on one frame with a note, so that the first real onset
        does not pay for compiling its code (numba: about 0.5 s from the cache, seconds
        without), which live would hold up the input and the accompaniment. Once is enough;
        the follower itself is left as it was."""
        if getattr(self, "_warm", False):
            return
        frame = np.zeros(N_KEYS, dtype=np.float32)
        frame[60] = SUSTAIN_WEIGHT + ONSET_DECAY[0]
        copy.deepcopy(self.follower).report(frame)
        self._warm = True

    def play_ahead(self, until_s: float) -> list[NoteEvent]:
        """The events due by ``until_s`` (up to the next frame's end), ahead of time.

        The beat period changes only when a frame is heard, after the accompanist has played
        on to it, so the notes up to the next frame are the ones :meth:`feed` would return
        then, at the same times: a driver can send each at its own time instead of at the
        frame's end (:func:`play_ports`). :meth:`feed` does not return them again.
        """
        events = self._play_until(until_s) if self.started else []
        return events + self._due_offs(until_s)

    def finish(self) -> list[NoteEvent]:
        """The note-offs still pending (at the end of the performance)."""
        return self._due_offs(float("inf"))

    def _hear(self, now_s: float, beat: float) -> None:
        self.report_sec.append(now_s)
        self.report_beat.append(beat)
        heard_s = getattr(self.follower, "reported_onset_s", self.follower.last_onset_s)
        onset_s = min(max(heard_s, *self.report_onset_sec[-1:], 0.0), now_s)
        self.report_onset_sec.append(onset_s)
        if len(self.report_beat) == 1:
            self.time_s, self.position_beat = now_s, beat
            self._next_note = int(np.searchsorted(self.notes["onset_beat"], beat, side="right"))
            self.controller.start(self)
            return
        solo_now = beat + (now_s - onset_s) / self.beat_period_s
        if self.resync_s is not None and (
            abs(solo_now - self.position_beat) * self.beat_period_s > self.resync_s
        ):
            self.position_beat = solo_now  # notes already played stay played (_play_until)
            self.resyncs += 1
        wanted = self.controller.decide(self)
        low = max(self.beat_period_s * np.exp(-self.max_log_ratio), MIN_BEAT_PERIOD_S)
        high = min(self.beat_period_s * np.exp(self.max_log_ratio), MAX_BEAT_PERIOD_S)
        self.beat_period_s = float(min(max(wanted, low), high))

    def _play_until(self, now_s: float) -> list[NoteEvent]:
        new_position = self.position_beat + (now_s - self.time_s) / self.beat_period_s
        events = []
        onsets = self.notes["onset_beat"]
        while self._next_note < len(self.notes) and onsets[self._next_note] <= new_position:
            note = self.notes[self._next_note]
            self._next_note += 1
            if note["onset_beat"] <= self.position_beat:  # skipped by a jump ahead
                continue
            at = self.time_s + (note["onset_beat"] - self.position_beat) * self.beat_period_s
            pitch, velocity = int(note["pitch"]), int(note["velocity"]) or 64
            events.append(NoteEvent(at, pitch, velocity))
            duration_s = max(float(note["duration_beat"]), 0.05) * self.beat_period_s
            heapq.heappush(self._offs, NoteEvent(at + duration_s, pitch, 0))
            self.played.append((at, duration_s, pitch, velocity))
            self.played_beat.append(float(note["onset_beat"]))
        self.time_s, self.position_beat = now_s, new_position
        return events

    def _due_offs(self, now_s: float) -> list[NoteEvent]:
        due = []
        while self._offs and self._offs[0].time_s <= now_s:
            due.append(heapq.heappop(self._offs))
        return due

    def horizon_beats(self, solo_beat: float) -> float:
        """Score distance from ``solo_beat`` to the soloist's next score onset."""
        i = int(np.searchsorted(self.solo_score_beat, solo_beat + 1e-6, side="right"))
        return float(self.solo_score_beat[i] - solo_beat) if i < len(self.solo_score_beat) else 1.0

    def heard_episode(self) -> Episode:
        """What has been heard so far, as an :class:`Episode` (reports only, no future)."""
        reports_sec, reports_beat = np.asarray(self.report_sec), np.asarray(self.report_beat)
        empty = np.zeros(0)
        return Episode(
            name="live", piece="live", take=0, report_sec=reports_sec, report_beat=reports_beat,
            report_onset_sec=np.asarray(self.report_onset_sec),
            solo_beat=reports_beat, solo_sec=np.asarray(self.report_onset_sec),
            solo_score_beat=self.solo_score_beat,
            accompaniment_beat=self.accompaniment_beat, shared_beat=empty, shared_solo_sec=empty,
            bar_start_beat=self.bar_start_beat, beats_per_bar=self.beats_per_bar,
        )


def performance_messages(performed: np.ndarray) -> list[tuple[float, int, int]]:
    """A performance's notes as ``(time_s, pitch, velocity)`` messages, note-offs at velocity 0,
    in time order (a note-off before a note-on at the same time)."""
    ons = [(float(n["onset_sec"]), int(n["pitch"]), max(int(n["velocity"]), 1))
           for n in performed]
    offs = [(float(n["onset_sec"] + max(np.nan_to_num(n["duration_sec"]), 0.01)),
             int(n["pitch"]), 0) for n in performed]
    return sorted(ons + offs, key=lambda m: (m[0], m[2] > 0))


def replay(
    performed: np.ndarray, accompanist: LiveAccompanist, *, speed: float = 0.0
) -> list[NoteEvent]:
    """Play a recorded performance to the accompanist, frame by frame, as a live input would.

    Parameters
    ----------
    performed : numpy.ndarray
        The soloist's notes (``onset_sec``, ``duration_sec``, ``pitch``, ``velocity``).
    accompanist : LiveAccompanist
    speed : float, keyword-only
        1 plays in real time, 2 twice as fast, 0 as fast as the machine can (no waiting).

    Returns
    -------
    list of NoteEvent
        The accompaniment, in performance time (seconds), note-offs included.
    """
    if speed < 0 or not np.isfinite(speed):
        raise AccompanyConfigError(f"speed must be >= 0 (0: no waiting), got {speed!r}")
    frames = FrameBuilder()
    messages = performance_messages(performed)
    end_s = messages[-1][0] + 1.0 if messages else 0.0
    events: list[NoteEvent] = []
    wall_start, i = time.perf_counter(), 0
    for n in range(1, int(np.ceil(end_s / accompanist.frame_s)) + 1):
        now = n * accompanist.frame_s
        while i < len(messages) and messages[i][0] < now:
            _, pitch, velocity = messages[i]
            frames.note_on(pitch) if velocity else frames.note_off(pitch)
            i += 1
        if speed > 0:
            time.sleep(max(wall_start + now / speed - time.perf_counter(), 0.0))
        events += accompanist.feed(frames.next_frame(), now)
    return events + accompanist.finish()


def rehearsal_curves(paths: list[str | Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The soloist's tempo curves (score beats, seconds) in earlier takes, from match files of
    the solo part, for :class:`~musicgym.follow.tempo.RehearsedTiming` live.

    Raises
    ------
    ScoreFileError
        When a file is missing or is not a ``.match`` file (its notes need score positions).
    """
    from musicgym.follow.duets import tempo_curve

    curves = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ScoreFileError(f"rehearsal file {str(path)!r} does not exist")
        if path.suffix.lower() != ".match":
            raise ScoreFileError(
                f"{str(path)!r}: a rehearsal must be a .match file of the solo part (its notes "
                "need score positions)"
            )
        curves.append(tempo_curve(read_match(path).score))
    return curves


def read_performance(path: str | Path) -> np.ndarray:
    """A recorded performance: a match file's performed notes, or a MIDI file's notes in
    seconds (all tracks, tempo changes applied).

    Returns
    -------
    numpy.ndarray, dtype NOTE_DTYPE
        ``onset_sec``, ``duration_sec``, ``pitch``, ``velocity`` filled; ``onset_beat`` is the
        score position for a match file's matched notes and NaN otherwise.

    Raises
    ------
    ScoreFileError
        When the file is missing, is neither ``.match`` nor MIDI, or holds no notes.
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"performance file {str(path)!r} does not exist")
    if path.suffix.lower() == ".match":
        return read_match(path).performed
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise ScoreFileError(
            f"{str(path)!r}: a performance to replay must be a .match or MIDI (.mid, .midi) file"
        )
    midi = open_midi(path)
    now, sounding, notes = 0.0, {}, []
    for message in midi:  # merged tracks, times in seconds
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding.setdefault(message.note, []).append((now, message.velocity))
        elif message.type in ("note_on", "note_off") and sounding.get(message.note):
            onset, velocity = sounding[message.note].pop(0)
            notes.append((onset, now - onset, message.note, velocity))
    if not notes:
        raise ScoreFileError(f"{str(path)!r} holds no notes to replay")
    out = np.zeros(len(notes), dtype=NOTE_DTYPE)
    out["onset_beat"] = np.nan
    columns = np.array(notes, dtype=float)
    for i, field_name in enumerate(("onset_sec", "duration_sec", "pitch", "velocity")):
        out[field_name] = columns[:, i]
    return np.sort(out, order=["onset_sec", "pitch"])


def played_notes(performed: np.ndarray, accompanist: LiveAccompanist) -> np.ndarray:
    """The solo (voice 0) and what the accompanist played (voice 1) as one note array (times
    in seconds; ``onset_beat`` and ``duration_beat`` hold the same numbers)."""
    played = np.array(accompanist.played, dtype=float).reshape(-1, 4)
    out = np.zeros(len(performed) + len(played), dtype=NOTE_DTYPE)
    solo, acc = out[: len(performed)], out[len(performed) :]
    solo["onset_sec"], solo["duration_sec"] = performed["onset_sec"], performed["duration_sec"]
    solo["pitch"], solo["velocity"] = performed["pitch"], np.maximum(performed["velocity"], 1)
    acc["onset_sec"], acc["duration_sec"] = played[:, 0], played[:, 1]
    acc["pitch"], acc["velocity"], acc["voice"] = played[:, 2], played[:, 3], 1
    out["onset_beat"], out["duration_beat"] = out["onset_sec"], out["duration_sec"]
    return np.sort(out, order=["onset_sec", "pitch"])


def write_duet_midi(path: str | Path, notes: np.ndarray) -> Path:
    """Write :func:`played_notes` to a MIDI file: one track and channel per voice (solo,
    accompaniment), 12-TET keys, 120 bpm with 480 ticks a beat (960 ticks a second)."""
    import mido

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi = mido.MidiFile(ticks_per_beat=480)
    for voice, name in enumerate(("solo", "accompaniment")):
        part = notes[notes["voice"] == voice]
        events = sorted(
            [(float(n["onset_sec"]), 1, int(n["pitch"]), int(n["velocity"])) for n in part]
            + [(float(n["onset_sec"] + n["duration_sec"]), 0, int(n["pitch"]), 0) for n in part]
        )
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        if voice == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
        last = 0
        for time_s, is_on, pitch, velocity in events:
            tick = int(round(time_s * 960))
            track.append(mido.Message("note_on" if is_on else "note_off", channel=voice,
                                      note=pitch, velocity=velocity, time=tick - last))
            last = tick
        midi.tracks.append(track)
    midi.save(path)
    return path


MIDI_APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE",
             "winmm": "WINDOWS_MM"}
"""``--midi-api`` names and the python-rtmidi APIs they choose."""

START_JACK = "start one with `jackd -d dummy -r 44100` (no sound card needed) or `jackd -d alsa`"


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the C libraries' own lines (libasound, libjack) while probing a MIDI API: the
    error raised afterwards says what is wrong in one line."""
    sys.stderr.flush()
    try:
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no file descriptor 2 (embedded interpreters): probe as is
        yield
        return
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def midi_backend(api: str | None = None):
    """The mido backend to open ports with.

    Parameters
    ----------
    api : str or None
        ``alsa``, ``jack``, ``coremidi`` or ``winmm``: python-rtmidi with that API. None:
        mido's default backend, which honours the ``MIDO_BACKEND`` environment variable
        (e.g. ``mido.backends.rtmidi/UNIX_JACK``).

    Raises
    ------
    MidiPortError
        When ``api`` is not one of these, or python-rtmidi here was built without it.
    """
    import mido

    if api is None:
        return mido.Backend(load=True)
    if api not in MIDI_APIS:
        raise MidiPortError(f"unknown MIDI API {api!r}: choose one of {', '.join(MIDI_APIS)}")
    try:
        import rtmidi
    except ImportError as exc:
        raise MidiPortError(
            f"--midi-api {api} needs python-rtmidi: pip install python-rtmidi") from exc
    compiled = [rtmidi.get_api_name(a) for a in rtmidi.get_compiled_api()]
    if getattr(rtmidi, f"API_{MIDI_APIS[api]}", None) not in rtmidi.get_compiled_api():
        raise MidiPortError(
            f"python-rtmidi here was built without the {api} MIDI API (it has: "
            f"{', '.join(compiled) or 'none'}); choose another --midi-api or rebuild "
            "python-rtmidi with it")
    return mido.Backend(f"mido.backends.rtmidi/{MIDI_APIS[api]}", load=True)


def _why_no_ports(backend, exc: Exception) -> str:
    """One line on why ``backend`` could not list or open ports, and what to do."""
    api = (backend.api or "").upper()
    text = str(exc)
    if "JACK server not running" in text or ("JACK" in api and "initialize" in text):
        return f"no JACK server running: {START_JACK}, then run again"
    replay = "or use the file-driven mode: --replay PERFORMANCE -o OUT.mid"
    if "ALSA" in api or "ALSA sequencer" in text:
        seq = "there" if Path("/dev/snd/seq").exists() else "missing"
        return (f"no ALSA sequencer here (/dev/snd/seq is {seq}; rtmidi: {text.rstrip('.')}): "
                f"load the snd-seq module, or use JACK (--midi-api jack with a JACK server: "
                f"{START_JACK}), {replay}")
    return (f"MIDI ports cannot be opened here with {backend.name}"
            f"{'/' + backend.api if backend.api else ''} ({type(exc).__name__}: {text}); "
            "install python-rtmidi and run where a MIDI system exists (ALSA, JACK, CoreMIDI, "
            f"WinMM; choose it with --midi-api), {replay}")


def open_ports(input_name: str | None, output_name: str | None, *, virtual: bool = False,
               api: str | None = None):
    """Open mido input and output ports.

    Parameters
    ----------
    input_name, output_name : str or None
        Ports to connect to (None: the first there is), or with ``virtual`` the names of the
        ports to create (None: ``musicgym soloist`` and ``musicgym accompanist``), which
        other programs then connect to.
    virtual : bool, keyword-only
        Create ports instead of connecting to existing ones (ALSA, JACK and CoreMIDI).
    api : str or None, keyword-only
        The MIDI system: see :func:`midi_backend` (None: mido's default, ``MIDO_BACKEND``).

    Raises
    ------
    MidiPortError
        In one line: no such API, no MIDI system or server running (no JACK server, no ALSA
        sequencer), or no such port (the message lists the ports there are).
    """
    backend = midi_backend(api)
    try:
        with _quiet_stderr():
            names_in, names_out = backend.get_input_names(), backend.get_output_names()
    except Exception as exc:  # rtmidi raises its own types for a missing system or server
        raise MidiPortError(_why_no_ports(backend, exc)) from exc
    if not virtual:
        for name, names, what in ((input_name, names_in, "input"),
                                  (output_name, names_out, "output")):
            if name is not None and name not in names:
                raise MidiPortError(f"no MIDI {what} port {name!r}; ports here: {names}")
            if name is None and not names:
                raise MidiPortError(
                    f"no MIDI {what} ports here to connect to: name one another program "
                    "opened (--input / --output-port), or open virtual ports (--virtual)")
    if virtual:
        input_name, output_name = (input_name or "musicgym soloist",
                                   output_name or "musicgym accompanist")
    input_port = None
    try:
        input_port = backend.open_input(input_name, virtual=virtual)
        return input_port, backend.open_output(output_name, virtual=virtual)
    except Exception as exc:
        if input_port is not None:
            input_port.close()
        raise MidiPortError(_why_no_ports(backend, exc)) from exc


def play_ports(accompanist: LiveAccompanist, input_port, output_port, *,
               seconds: float | None = None) -> list[NoteEvent]:
    """Accompany what arrives on ``input_port`` in real time, playing to ``output_port``.

    Each input message is dated when it arrives (in the MIDI system's thread, where the port
    takes a callback) and goes into the frame of that time, so a moment's delay here (the
    machine busy) delays the frames but does not squeeze their notes together. The frames are
    heard at their ends; the accompaniment up to the next frame's end is known then
    (:meth:`LiveAccompanist.play_ahead`), and each event is sent at its own time within the
    frame rather than late at its end. Runs until ``seconds`` have passed (None: until
    interrupted); returns what was played, times from the start.
    """
    import mido

    accompanist.warm_up()
    frames, played = FrameBuilder(), []
    frame_s = accompanist.frame_s
    arrived: deque[tuple[float, object]] = deque()  # (perf_counter time, message)
    # rtmidi and portmidi ports call back from their own thread: dated as they arrive; other
    # ports are read at each frame's end
    callback = isinstance(getattr(type(input_port), "callback", None), property)
    if callback:
        input_port.callback = lambda message: arrived.append((time.perf_counter(), message))
    start = time.perf_counter()

    def send(events: list[NoteEvent]) -> None:
        for event in events:
            time.sleep(max(start + event.time_s - time.perf_counter(), 0.0))
            kind = "note_on" if event.velocity else "note_off"
            output_port.send(mido.Message(kind, note=event.pitch, velocity=event.velocity))
            played.append(event)

    n = 0
    try:
        while seconds is None or n * frame_s < seconds:
            n += 1
            now = n * frame_s
            time.sleep(max(start + now - time.perf_counter(), 0.0))
            if not callback:
                arrived.extend((time.perf_counter(), m) for m in input_port.iter_pending())
            while arrived and (not callback or arrived[0][0] < start + now):
                message = arrived.popleft()[1]
                if message.type == "note_on" and message.velocity > 0:
                    frames.note_on(message.note)
                elif message.type in ("note_on", "note_off"):
                    frames.note_off(message.note)
            send(accompanist.feed(frames.next_frame(), now))
            send(accompanist.play_ahead((n + 1) * frame_s))  # the next frame's end, exactly
    finally:
        if callback:
            input_port.callback = None
        for event in accompanist.finish():
            output_port.send(mido.Message("note_off", note=event.pitch, velocity=0))
    return played
