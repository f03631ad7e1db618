"""MIDI ports for live accompaniment (mido with python-rtmidi: ALSA, JACK, CoreMIDI, WinMM)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import deque
from pathlib import Path

from musicgym.errors import AccompanyConfigError
from musicgym.live.accompany.engine import FrameBuilder, LiveAccompanist, NoteEvent


class MidiPortError(AccompanyConfigError):
    """A MIDI port that cannot be opened (no backend, no such port)."""


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
