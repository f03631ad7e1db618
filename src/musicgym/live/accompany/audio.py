"""Audio in and out of the live accompanist: follow a recording, render the duet to a WAV.

:func:`replay_audio` feeds a recording of the soloist (a WAV, or audio in memory) to a
:class:`~musicgym.live.accompany.engine.LiveAccompanist` block by block, through the streaming
front end (:class:`~musicgym.follow.audio_input.AudioFrames`), as a microphone would;
:func:`render_duet` renders what the accompanist played through the SoundFont with one General
MIDI program (an orchestra's strings by default, or a piano) and mixes it with the solo audio.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from musicgym.errors import AccompanyConfigError
from musicgym.follow.audio_input import AudioFrames, DatedFollower
from musicgym.live.accompany.engine import LiveAccompanist, NoteEvent

DEFAULT_ORCHESTRA_PROGRAM = "strings"


def read_take_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """A recording of the soloist, mixed to mono: ``(audio (n,), sr)``."""
    from musicgym.audio.io import read_audio

    audio, sr = read_audio(path, max_seconds=3600.0)
    return audio.mean(axis=0).astype(np.float32), int(sr)


def replay_audio(audio: np.ndarray, sr: int, accompanist: LiveAccompanist, *,
                 instrument: str = "piano", speed: float = 0.0,
                 block: int = 512) -> list[NoteEvent]:
    """Play a recording to the accompanist, block by block, as a live input would.

    Parameters
    ----------
    audio : numpy.ndarray, shape (n,)
        The soloist, mono.
    sr : int
    accompanist : LiveAccompanist
    instrument : {"piano", "mono"}, keyword-only
        The front end's mode.
    speed : float, keyword-only
        1 real time, 0 as fast as the machine can.
    block : int, keyword-only
        Samples per block (a sound card's buffer).

    Returns
    -------
    list of NoteEvent
        The accompaniment in recording time (seconds), note-offs included.
    """
    if speed < 0 or not np.isfinite(speed):
        raise AccompanyConfigError(f"speed must be >= 0 (0: no waiting), got {speed!r}")
    source = AudioFrames(sr, frame_s=accompanist.frame_s, instrument=instrument)
    if not isinstance(accompanist.follower, DatedFollower):  # date onsets less the latency
        accompanist.follower = DatedFollower(accompanist.follower, source.frontend.latency_s)
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    tail = np.zeros(int(sr), dtype=np.float32)  # a second more, for the last reports
    x = np.concatenate([x, tail])
    events: list[NoteEvent] = []
    n_frames, wall_start = 0, time.perf_counter()
    for i in range(0, x.size, block):
        if speed > 0:
            time.sleep(max(wall_start + i / sr / speed - time.perf_counter(), 0.0))
        for frame in source.push(x[i : i + block]):
            n_frames += 1
            events += accompanist.feed(frame, n_frames * accompanist.frame_s)
    return events + accompanist.finish()


def render_duet(solo_audio: np.ndarray, sr: int, played, *,
                program: int | str = DEFAULT_ORCHESTRA_PROGRAM,
                accompaniment_gain: float = 1.0) -> np.ndarray:
    """The solo recording mixed with the accompaniment rendered through the SoundFont.

    Parameters
    ----------
    solo_audio : numpy.ndarray, shape (n,)
    sr : int
    played : sequence of (onset_s, duration_s, pitch, velocity)
        What the accompanist played (:attr:`LiveAccompanist.played`).
    program : int or str
        General MIDI program of the accompaniment (a name of
        :data:`musicgym.audio.soundfont.GM_PROGRAMS`, or 0-127).

    Returns
    -------
    numpy.ndarray, shape (2, n)
        Stereo: the solo a little left, the accompaniment a little right; peak at most 1.
    """
    from musicgym.audio.soundfont import Part, render_notes

    solo = np.asarray(solo_audio, dtype=np.float32).reshape(-1)
    notes = [(float(a), float(a + d), int(p), int(v)) for a, d, p, v in played
             if np.isfinite(a) and a >= 0]
    end_s = max([solo.size / sr] + [n[1] + 1.0 for n in notes])
    n = int(round(end_s * sr))
    mix = np.zeros((2, n), dtype=np.float32)
    mix[0, : solo.size] += 0.6 * solo
    mix[1, : solo.size] += 0.4 * solo
    if notes:
        acc = render_notes(Part(notes, program=program, gain=accompaniment_gain), sr=sr,
                           duration=end_s)[0]
        mix[0, : acc.size] += 0.4 * acc[:n]
        mix[1, : acc.size] += 0.6 * acc[:n]
    peak = float(np.abs(mix).max()) if mix.size else 0.0
    return mix / peak if peak > 1.0 else mix


def listen_audio(accompanist: LiveAccompanist, *, device: int | str | None = None,
                 sr: int | None = None, seconds: float | None = None,
                 instrument: str = "piano", block: int = 512,
                 keep_audio: bool = False,
                 orchestra: Orchestra | None = None) -> tuple[list[NoteEvent], np.ndarray, int]:
    """Follow a soloist through a sound card's input (sounddevice over PortAudio: ALSA, JACK...).

    The stream's callback only queues the blocks; this thread runs the front end, the follower
    and the accompanist, frame by frame, on the input's own clock (samples heard).

    Parameters
    ----------
    device : int, str or None
        PortAudio input device (index or name part; None: the default input).
    sr : int or None
        Sample rate (None: the device's default).
    seconds : float or None
        Stop after this much audio (None: until Ctrl-C).
    keep_audio : bool
        Also return what was heard (for a mixed WAV).
    orchestra : Orchestra or None
        Sound the accompaniment live: after each frame the events up to ``now +
        orchestra.latency_s`` (:meth:`LiveAccompanist.play_ahead`) are queued, each started
        that much early. Its clock and the input's start together (both streams opened here).

    Returns
    -------
    events, audio, sr
        The accompaniment events (input time), the audio heard (empty unless ``keep_audio``),
        the sample rate.

    Raises
    ------
    AccompanyConfigError
        No such input device, or the stream cannot be opened (the message names the device).
    """
    import queue

    try:
        import sounddevice as sd
    except OSError as exc:  # the package is there, libportaudio is not
        raise AccompanyConfigError(f"audio input needs PortAudio (apt-get install "
                                   f"libportaudio2): {exc}") from None
    try:
        info = sd.query_devices(device, "input")
        rate = int(sr or info["default_samplerate"])
        blocks: queue.Queue = queue.Queue()

        def callback(indata, frames, time_info, status):  # PortAudio's thread: queue only
            blocks.put(indata[:, 0].copy())

        stream = sd.InputStream(device=device, channels=1, samplerate=rate, blocksize=block,
                                dtype="float32", callback=callback)
    except (ValueError, sd.PortAudioError) as exc:
        raise AccompanyConfigError(
            f"cannot open audio input {device!r}: {exc}; list the devices with "
            "`python -m sounddevice`") from None
    source = AudioFrames(rate, frame_s=accompanist.frame_s, instrument=instrument)
    if not isinstance(accompanist.follower, DatedFollower):
        accompanist.follower = DatedFollower(accompanist.follower, source.frontend.latency_s)
    accompanist.warm_up()
    events: list[NoteEvent] = []
    heard: list[np.ndarray] = []
    n_samples = n_frames = 0
    limit = None if seconds is None else int(seconds * rate)
    if orchestra is not None:
        orchestra.__enter__()
    with stream:
        try:
            while limit is None or n_samples < limit:
                x = blocks.get(timeout=2.0)
                n_samples += x.size
                if keep_audio:
                    heard.append(x)
                for frame in source.push(x):
                    n_frames += 1
                    now_s = n_frames * accompanist.frame_s
                    due = accompanist.feed(frame, now_s)
                    if orchestra is not None:
                        due += accompanist.play_ahead(now_s + orchestra.latency_s)
                        orchestra.play(due)
                    events += due
        except queue.Empty:
            raise AccompanyConfigError(f"audio input {device!r} delivered nothing for 2 s "
                                       "(is the JACK server running?)") from None
        except KeyboardInterrupt:
            pass
        finally:
            if orchestra is not None:
                orchestra.__exit__(None, None, None)
    audio = np.concatenate(heard) if heard else np.zeros(0, dtype=np.float32)
    return events + accompanist.finish(), audio, rate


def measure_round_trip_s(device: int | str | None = None, *, sr: int = 44100,
                         block: int = 256, loopback=None, seconds: float = 1.0) -> float:
    """The sound card's round trip (output to input), measured with a click.

    A duplex stream plays one click; the input must hear the output (a cable, or in JACK a
    connection of the stream's ports, which ``loopback()`` can make once the stream runs). The
    delay from the click's sample to the first input sample above half its height is the round
    trip: what the accompaniment's sound lags the time it is sent, plus the input's delay.

    Raises
    ------
    AccompanyConfigError
        The stream cannot be opened, or the click never came back.
    """
    import threading

    import sounddevice as sd

    click_at = int(0.3 * sr)
    total = int((seconds + 0.3) * sr)
    recorded = np.zeros(total, dtype=np.float32)
    state = {"pos": -1}  # -1: not started (the loopback is not made yet)
    ready = threading.Event()

    def callback(indata, outdata, frames, time_info, status):
        outdata[:] = 0.0
        i = state["pos"]
        if i < 0 or i >= total:
            return
        n = min(frames, total - i)
        if i <= click_at < i + n:
            outdata[click_at - i, 0] = 0.9
        recorded[i : i + n] = indata[:n, 0]
        state["pos"] = i + n
        if state["pos"] >= total:
            ready.set()

    try:
        stream = sd.Stream(device=device, channels=1, samplerate=sr, blocksize=block,
                           dtype="float32", callback=callback)
    except (ValueError, sd.PortAudioError) as exc:
        raise AccompanyConfigError(f"cannot open audio device {device!r} both ways: {exc}") \
            from None
    with stream:
        if loopback is not None:
            loopback()
        state["pos"] = 0
        ready.wait(seconds + 5.0)
    heard = np.flatnonzero(np.abs(recorded[click_at:]) > 0.45)
    if heard.size == 0:
        raise AccompanyConfigError(
            f"the click played on {device!r} never came back to its input: connect the "
            "output to the input (a cable; in JACK, jack_connect the stream's ports)")
    return float(heard[0] / sr)


class Orchestra:
    """The accompaniment played live through the SoundFont to a sound card (FluidSynth fed
    from a PortAudio output callback, one General MIDI program).

    Events are queued with their performance time; the callback starts each at the sample its
    time falls on, ``latency_s`` (the measured round trip, or the output latency) early, so
    that it *sounds* on time: pair it with :meth:`LiveAccompanist.play_ahead` up to
    ``now + latency_s``.
    """

    def __init__(self, *, program: int | str = DEFAULT_ORCHESTRA_PROGRAM,
                 device: int | str | None = None, sr: int = 44100, block: int = 256,
                 latency_s: float = 0.0, soundfont=None) -> None:
        import sounddevice as sd

        from musicgym.audio.soundfont import Part, _fluidsynth, find_soundfont

        self.program, _ = Part([], program=program).checked("orchestra")
        if not 0.0 <= latency_s < 1.0:
            raise AccompanyConfigError(f"latency_s must be in [0, 1) s, got {latency_s!r}")
        self.sr, self.latency_s = int(sr), float(latency_s)
        fluidsynth = _fluidsynth()
        self.synth = fluidsynth.Synth(samplerate=float(sr), gain=0.5)
        sfid = self.synth.sfload(str(find_soundfont(soundfont)))
        self.synth.program_select(0, sfid, 0, self.program)
        self._queue: list[NoteEvent] = []
        self._sample = 0  # samples played so far: the orchestra's clock
        self.peak = 0.0
        try:
            self.stream = sd.OutputStream(device=device, channels=2, samplerate=sr,
                                          blocksize=block, dtype="float32",
                                          callback=self._callback)
        except (ValueError, sd.PortAudioError) as exc:
            self.synth.delete()
            raise AccompanyConfigError(f"cannot open audio output {device!r}: {exc}") \
                from None

    def play(self, events: list[NoteEvent]) -> None:
        """Queue events (performance time, seconds since the orchestra started)."""
        self._queue = sorted(self._queue + list(events))

    def _callback(self, outdata, frames, time_info, status) -> None:
        start, chunks = self._sample, []
        end = start + frames
        pos = start
        while self._queue:
            at = int(round((self._queue[0].time_s - self.latency_s) * self.sr))
            if at >= end:
                break
            event = self._queue.pop(0)
            at = max(at, pos)
            if at > pos:
                chunks.append(self.synth.get_samples(at - pos))
                pos = at
            if event.velocity:
                self.synth.noteon(0, event.pitch, event.velocity)
            else:
                self.synth.noteoff(0, event.pitch)
        if end > pos:
            chunks.append(self.synth.get_samples(end - pos))
        audio = np.concatenate(chunks).reshape(-1, 2).astype(np.float32) / 32768.0
        outdata[:] = audio[:frames]
        self.peak = max(self.peak, float(np.abs(audio).max(initial=0.0)))
        self._sample = end

    def __enter__(self) -> Orchestra:
        self.stream.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stream.stop()
        self.stream.close()
        self.synth.delete()
