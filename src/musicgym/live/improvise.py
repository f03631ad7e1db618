"""Live improvisation over OSC: a musician's descriptors or audio in, synth parameters out.

:class:`ImproviseServer` listens on a UDP port (python-osc's packet parser, one thread, one
decision per message) and answers every usable message with the :class:`Improviser`'s new
parameters. Messages it takes (``sr`` and the descriptor names are the improviser's):

==================================== ==========================================================
address and arguments                meaning
==================================== ==========================================================
``/musicgym/descriptors`` name value  the musician's descriptors as name-value pairs
``name value ...``                    (``loudness-dB``, ``specshape-centroid``, ``pitch``...; any
                                      name ``musicgym.audio.descriptors`` knows); those the
                                      improviser does not keep are ignored
``/musicgym/audio`` x0 x1 ...         the musician's next samples (floats, mono, at ``sr``), or
                                      one blob of float32 little-endian samples; the server
                                      analyses its latest window itself
``/feats/loudness`` 55 + 55 + N       RL-impro's live message: agent features, musician
floats (or 55)                        features and parameters in RL-impro's 55-column order;
                                      the musician's 35 FluCoMa columns are read, its 20
                                      sine-peak columns and the rest are ignored
==================================== ==========================================================

Replies, to ``reply_to`` (or to the sender when it is None):

- ``/musicgym/params`` with the N parameters in [0, 1];
- ``/musicgym/controls`` with the synth's name then its N physical controls (Hz, gains);
- ``/agent-params`` with one string "p0 p1 ..." (RL-impro's reply) to RL-impro's message.

A packet that cannot be parsed, a message to another address, or one whose arguments do not fit
its layout is counted in ``malformed`` (by reason) and ignored. Each decision's latency, from
the packet's arrival to the replies' sending, is kept (:meth:`ImproviseServer.summary`).
"""

from __future__ import annotations

import gc
import math
import os
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from musicgym.audio.descriptors import ALIASES, FEATURE_NAMES
from musicgym.envs.improvise_play import Improviser
from musicgym.errors import ImproviseConfigError, MusicgymError

DESCRIPTORS = "/musicgym/descriptors"
AUDIO = "/musicgym/audio"
RLIMPRO = "/feats/loudness"
REPLY_PARAMS = "/musicgym/params"
REPLY_CONTROLS = "/musicgym/controls"
REPLY_RLIMPRO = "/agent-params"
# RL-impro's 55 columns: FluCoMa's 35 (musicgym's order, "loudness-dB" being loudness-amp), then
# 10 sine-peak frequencies and 10 magnitudes that musicgym does not compute
RLIMPRO_COLUMNS: tuple[str | None, ...] = tuple(
    n for n in FEATURE_NAMES if not n.startswith("pitch")) + (None,) * 20
MAX_AUDIO_SAMPLES = 65536


GC_YOUNG_LIMIT = 2000   # serve(): a young-generation collection after the replies past this


# -- OSC 1.0 encoding and decoding -----------------------------------------------------------
# python-osc's parser decodes a packet three times over and its builder re-encodes every
# argument through generic code; a live decision is a few hundred microseconds, so the server
# reads and writes the OSC it uses itself (python-osc stays the reference in the tests, and
# parses whatever this reader does not know: arrays, MIDI, colours, time tags).
class _UnknownTag(Exception):
    """A type tag this reader does not decode: hand the message to python-osc."""


def _osc_string(text: str | bytes) -> bytes:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return raw + b"\0" * (4 - len(raw) % 4)


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("utf-8"), pos + ((end - pos) // 4 + 1) * 4


@lru_cache(maxsize=512)
def _tag_plan(tags: str) -> tuple[tuple[str, int], ...]:
    """Runs of one type tag: "sfff" -> (("s", 1), ("f", 3)); unknown tags raise _UnknownTag."""
    plan: list[tuple[str, int]] = []
    for tag in tags:
        if tag not in "ifdhsSbTFNI":
            raise _UnknownTag(tag)
        if plan and plan[-1][0] == tag and tag in "ifdh":
            plan[-1] = (tag, plan[-1][1] + 1)
        else:
            plan.append((tag, 1))
    return tuple(plan)


_NUMBER = {"i": ("i", 4), "f": ("f", 4), "d": ("d", 8), "h": ("q", 8)}
_CONSTANT = {"T": True, "F": False, "N": None, "I": math.inf}


def _parse_message(data: bytes) -> tuple[str, list]:
    address, pos = _read_string(data, 0)
    if not address.startswith("/"):
        raise ValueError(f"an OSC address starts with '/', got {address[:40]!r}")
    if pos >= len(data):
        return address, []
    tags, pos = _read_string(data, pos)
    if not tags.startswith(","):
        raise ValueError("no type tag string")
    args: list = []
    for tag, count in _tag_plan(tags[1:]):
        if tag in _NUMBER:
            code, size = _NUMBER[tag]
            args.extend(struct.unpack_from(f">{count}{code}", data, pos))
            pos += count * size
        elif tag in "sS":
            value, pos = _read_string(data, pos)
            args.append(value)
        elif tag == "b":
            (size,), pos = struct.unpack_from(">i", data, pos), pos + 4
            if size < 0 or pos + size > len(data):
                raise ValueError("blob runs past the packet")
            args.append(data[pos:pos + size])
            pos += (size + 3) // 4 * 4
        else:
            args.append(_CONSTANT[tag])
    if pos > len(data):
        raise ValueError("arguments run past the packet")
    return address, args


def parse_packet(data: bytes, depth: int = 0) -> list[tuple[str, list]]:
    """The (address, arguments) of every message in one OSC packet, bundles flattened.

    Arguments decode as python-osc decodes them (int, float, str, bytes, True, False, None,
    inf); tags this reader does not know are decoded by python-osc.

    Raises
    ------
    ValueError
        Bytes that are no OSC packet (the server counts them as "unparsable packet").
    """
    if data.startswith(b"#bundle\0"):
        if depth > 8:
            raise ValueError("bundles nested too deep")
        messages, pos = [], 16
        while pos < len(data):
            (size,) = struct.unpack_from(">i", data, pos)
            if size <= 0 or pos + 4 + size > len(data):
                raise ValueError("bundle element runs past the packet")
            messages.extend(parse_packet(data[pos + 4:pos + 4 + size], depth + 1))
            pos += 4 + size
        return messages
    try:
        return [_parse_message(data)]
    except _UnknownTag:
        from pythonosc.osc_message import OscMessage

        message = OscMessage(data)
        return [(message.address, list(message.params))]


@lru_cache(maxsize=64)
def _head(address: str, tags: str) -> bytes:
    return _osc_string(address) + _osc_string("," + tags)


def osc_message(address: str, args: Iterable) -> bytes:
    """One OSC message: str -> s, float -> f (float32), int -> i, bytes -> b."""
    tags, body = [], []
    for value in args:
        if isinstance(value, str):
            tags.append("s")
            body.append(_osc_string(value))
        elif isinstance(value, bytes):
            tags.append("b")
            body.append(struct.pack(">i", len(value)) + value + b"\0" * (-len(value) % 4))
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            tags.append("i")
            body.append(struct.pack(">i", value))
        else:
            tags.append("f")
            body.append(struct.pack(">f", value))
    return _head(address, "".join(tags)) + b"".join(body)


class MalformedMessageError(MusicgymError, ValueError):
    """An OSC message whose address or arguments fit no layout the server takes."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


class OscPortError(ImproviseConfigError):
    """A UDP address the server cannot listen on (in use, not local, bad port)."""


def _numbers(args: Iterable, layout: str) -> np.ndarray:
    if not all(type(a) is float or type(a) is int for a in args) and not all(
            isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise MalformedMessageError("bad argument type", f"{layout} takes numbers only")
    values = np.array(args, dtype=np.float64)
    if not np.isfinite(values).all():
        raise MalformedMessageError("non-finite value", f"{layout} got NaN or inf")
    return values


@lru_cache(maxsize=64)
def _name_index(features: tuple[str, ...]) -> dict[str, int]:
    """Every descriptor name and alias -> its column in ``features`` (-1: not kept)."""
    index = {name: features.index(name) if name in features else -1 for name in FEATURE_NAMES}
    index.update({alias: index[name] for alias, name in ALIASES.items()})
    return index


def read_message(improviser: Improviser, address: str, args: tuple
                 ) -> tuple[np.ndarray, str]:
    """The musician's raw descriptors (F,) a message carries (NaN where not carried), and
    which layout it used (``"descriptors"``, ``"audio"`` or ``"rl-impro"``).

    Raises
    ------
    MalformedMessageError
        With ``reason``: an unknown address, a bad argument type or count, a non-finite value,
        an unknown descriptor name, or no descriptor the improviser keeps.
    """
    features = improviser.features
    target = np.full(len(features), np.nan)
    index = _name_index(features)
    if address == AUDIO:
        if len(args) == 1 and isinstance(args[0], bytes):
            if len(args[0]) % 4:
                raise MalformedMessageError("bad audio blob", "blob length is not a multiple "
                                            "of 4 (float32 samples)")
            samples = np.frombuffer(args[0], dtype="<f4").astype(np.float64)
            if not np.isfinite(samples).all():
                raise MalformedMessageError("non-finite value", f"{AUDIO} got NaN or inf")
        else:
            samples = _numbers(args, AUDIO)
        if not 1 <= len(samples) <= MAX_AUDIO_SAMPLES:
            raise MalformedMessageError("bad argument count", f"{AUDIO} takes 1 to "
                                        f"{MAX_AUDIO_SAMPLES} samples, got {len(samples)}")
        return improviser.hear_audio(samples), "audio"
    if address == DESCRIPTORS:
        if len(args) == 0 or len(args) % 2:
            raise MalformedMessageError("bad argument count", f"{DESCRIPTORS} takes name value "
                                        f"pairs, got {len(args)} arguments")
        names, values = args[0::2], _numbers(args[1::2], DESCRIPTORS)
        for name, value in zip(names, values, strict=True):
            i = index.get(name) if type(name) is str else None
            if i is None:
                if not isinstance(name, str):
                    raise MalformedMessageError("bad argument type", f"{DESCRIPTORS}: a "
                                                f"descriptor name must be a string, got "
                                                f"{name!r}")
                raise MalformedMessageError("unknown descriptor", f"{name!r} is none of "
                                            f"{sorted(FEATURE_NAMES)}")
            if i >= 0:
                target[i] = value
        layout = "descriptors"
    elif address == RLIMPRO:
        values = _numbers(args, RLIMPRO)
        n = improviser.core.n_params
        if len(values) not in (55, 110 + n):
            raise MalformedMessageError("bad argument count", f"{RLIMPRO} takes 55 musician "
                                        f"features or 55 + 55 + {n} values, got {len(values)}")
        musician = values[55:110] if len(values) > 55 else values
        for name, value in zip(RLIMPRO_COLUMNS, musician, strict=True):
            if name in features:
                target[features.index(name)] = value
        layout = "rl-impro"
    else:
        raise MalformedMessageError("unknown address", f"{address!r} is none of {DESCRIPTORS}, "
                                    f"{AUDIO}, {RLIMPRO}")
    if np.isnan(target).all():
        raise MalformedMessageError("no kept descriptor", f"{address} carried none of the "
                                    f"improviser's descriptors {list(features)}")
    return target, layout


REALTIME_PRIORITY = 10   # SCHED_FIFO priority of --realtime (JACK's clients use 5-70)


def set_realtime(priority: int = REALTIME_PRIORITY) -> str:
    """Ask the OS to run this process ahead of ordinary ones (Linux ``SCHED_FIFO``).

    On a busy machine a decision that loses its CPU to another process waits out that
    process's time slice (milliseconds); real-time scheduling, as audio servers such as JACK
    and Pd's ``-rt`` use, lets the server take the CPU as soon as a packet arrives. The server
    sleeps between packets, so it takes little from others. Returns what was done, in words;
    where the OS refuses (no ``CAP_SYS_NICE``, no ``ulimit -r``, not Linux) nothing changes
    and the words say why.
    """
    if not hasattr(os, "sched_setscheduler"):
        return "real-time scheduling is not available on this OS; normal priority"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (PermissionError, OSError) as exc:
        return (f"real-time scheduling refused ({exc.strerror or exc}): it needs "
                "CAP_SYS_NICE or a real-time limit (ulimit -r, /etc/security/limits.conf); "
                "normal priority")
    return f"real-time scheduling (SCHED_FIFO, priority {int(priority)})"


class AudioOut:
    """The improviser's synth sounding on an audio device, so a musician needs no Pd to hear
    it: a PortAudio output stream (``sounddevice``) whose callback plays a
    :class:`~musicgym.synth.PatchStream` of the synth, the latest decision's parameters
    applied at the next block (the synth plays on: no restart between decisions).

    Parameters
    ----------
    synth : Synth
        A musicgym synth (a Pd synth sounds in Pd itself).
    params : array_like, shape (N,)
        The starting parameters in [0, 1].
    sr : int
    device : int or str, optional
        The output device (sounddevice's name or index; default: the system's).
    blocksize : int
        Frames per callback (default 512).

    Raises
    ------
    ImproviseConfigError
        A Pd synth, or no such device / the device cannot be opened (PortAudio's message).
    """

    def __init__(self, synth, params, *, sr: int = 44100, device=None,
                 blocksize: int = 512) -> None:
        if not hasattr(synth, "patch"):
            raise ImproviseConfigError(f"--audio-out plays musicgym's own synths; the Pd synth "
                                       f"{synth.name!r} sounds in Pd itself: use --pd-audio")
        import sounddevice as sd

        self.synth, self.sr = synth, int(sr)
        self._stream = synth.patch(self.sr).stream(synth.hole_matrix(np.asarray(params)[None],
                                                                     self.sr))
        # compile and load the engine's kernels now, not in the first audio callback (a slow
        # first callback gets the client dropped by JACK)
        synth.patch(self.sr).stream(synth.hole_matrix(np.asarray(params)[None], self.sr)) \
            .render(int(blocksize))
        self._pending = None
        self.blocks = 0
        self.underflows = 0
        try:
            self.out = sd.OutputStream(samplerate=self.sr, blocksize=int(blocksize),
                                       channels=1, dtype="float32", device=device,
                                       callback=self._callback)
        except (sd.PortAudioError, ValueError) as exc:
            raise ImproviseConfigError(f"cannot open audio output {device!r}: {exc}; list the "
                                       "devices with python -m sounddevice") from exc

    def set_params(self, params) -> None:
        """Sound these parameters (N,) from the next block on (called by the server)."""
        # the hole values are computed here, the audio thread only swaps them in
        self._pending = self.synth.hole_matrix(np.asarray(params)[None], self.sr)

    def _callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.underflows += 1
        pending, self._pending = self._pending, None
        if pending is not None:
            self._stream.set_params(pending)
        outdata[:, 0] = self._stream.render(frames).mean(axis=1)[0]
        self.blocks += 1

    def start(self) -> AudioOut:
        self.out.start()
        return self

    def close(self) -> None:
        self.out.stop()
        self.out.close()


class ImproviseServer:
    """An OSC/UDP server around an :class:`Improviser` (see the module docstring).

    Parameters
    ----------
    improviser : Improviser
    host, port : str, int
        Where to listen (port 0: any free port; the bound one is ``self.port``).
    reply_to : (host, port), optional
        Where replies go; None (default) answers each message's sender.
    audio_out : AudioOut or PdAudioOut, optional
        Where the synth also sounds (each decision's parameters go to its ``set_params``).

    Raises
    ------
    OscPortError
        The address cannot be bound.
    """

    def __init__(self, improviser: Improviser, *, host: str = "127.0.0.1", port: int = 6666,
                 reply_to: tuple[str, int] | None = None, audio_out=None) -> None:
        self.improviser, self.reply_to, self.audio_out = improviser, reply_to, audio_out
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, int(port)))
        except (OSError, OverflowError, ValueError) as exc:
            self.sock.close()
            raise OscPortError(f"cannot listen on UDP {host}:{port}: {exc}; choose another "
                               "--port (0 picks a free one)") from exc
        self.host, self.port = host, self.sock.getsockname()[1]
        self.packets = 0
        self.decisions: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.latencies_s: list[float] = []
        self.send_errors = 0
        self._stop = False

    def handle_packet(self, data: bytes, sender: tuple[str, int]) -> int:
        """Decide on and answer every usable message of one packet; how many were answered."""
        start = time.perf_counter()
        self.packets += 1
        try:
            messages = parse_packet(data)
        except Exception:  # noqa: BLE001 - untrusted bytes: any parse failure is "malformed"
            self.malformed["unparsable packet"] += 1
            return 0
        answered = 0
        for address, args in messages:
            try:
                target, layout = read_message(self.improviser, address, tuple(args))
            except MalformedMessageError as exc:
                self.malformed[exc.reason] += 1
                continue
            params = self.improviser.decide(target)
            self._reply(params, layout, self.reply_to or sender)
            if self.audio_out is not None:
                self.audio_out.set_params(params)
            self.decisions[layout] += 1
            self.latencies_s.append(time.perf_counter() - start)
            answered += 1
        return answered

    def _reply(self, params: np.ndarray, layout: str, to: tuple[str, int]) -> None:
        values = params.tolist()
        replies = [osc_message(REPLY_PARAMS, values),
                   osc_message(REPLY_CONTROLS, [self.improviser.synth.name,
                                                *self.improviser.controls().values()])]
        if layout == "rl-impro":
            replies.append(osc_message(REPLY_RLIMPRO, [" ".join(str(p) for p in values)]))
        for packet in replies:
            try:
                self.sock.sendto(packet, to)
            except OSError:   # a listener that went away must not stop the music
                self.send_errors += 1

    def serve(self, *, seconds: float | None = None, max_packets: int | None = None,
              on_packet=None) -> dict:
        """Serve until :meth:`stop`, ``seconds`` elapsed or ``max_packets`` received.

        ``on_packet(server)`` is called after each packet (progress display). Returns
        :meth:`summary`.

        Python's cyclic garbage collector would otherwise pause a decision now and then
        (it runs when allocations reach a threshold, wherever that happens): while serving,
        what exists at start-up is frozen out of its sight (``gc.freeze``), automatic
        collection is off, and the young generation is collected after a packet's replies
        are sent (past ``GC_YOUNG_LIMIT`` new objects) and whenever no packet came for 50 ms;
        the collector's state is restored on return.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        self.sock.settimeout(0.05)
        was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            while not self._stop and (max_packets is None or self.packets < max_packets):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    data, sender = self.sock.recvfrom(1 << 16)
                except TimeoutError:
                    gc.collect(1)
                    continue
                self.handle_packet(data, sender)
                if gc.get_count()[0] > GC_YOUNG_LIMIT:
                    gc.collect(0)
                if on_packet is not None:
                    on_packet(self)
        finally:
            gc.unfreeze()
            if was_enabled:
                gc.enable()
        return self.summary()

    def stop(self) -> None:
        """Ask :meth:`serve` (in another thread) to return within 50 ms."""
        self._stop = True

    def close(self) -> None:
        self.sock.close()

    def summary(self) -> dict:
        """Packets, decisions by layout, malformed messages by reason, and decision latency."""
        lat = np.asarray(self.latencies_s) * 1e3
        return {"packets": self.packets, "decisions": dict(self.decisions),
                "malformed": sum(self.malformed.values()),
                "malformed_by_reason": dict(self.malformed), "send_errors": self.send_errors,
                "latency_ms_median": float(np.median(lat)) if len(lat) else None,
                "latency_ms_p99": float(np.percentile(lat, 99)) if len(lat) else None}

