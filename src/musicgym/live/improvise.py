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

import socket
import time
from collections import Counter
from collections.abc import Iterable

import numpy as np

from musicgym.audio.descriptors import ALIASES, FEATURE_NAMES
from musicgym.errors import ImproviseConfigError, MusicgymError
from musicgym.live.improviser import Improviser

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


class MalformedMessageError(MusicgymError, ValueError):
    """An OSC message whose address or arguments fit no layout the server takes."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


class OscPortError(ImproviseConfigError):
    """A UDP address the server cannot listen on (in use, not local, bad port)."""


def _numbers(args: Iterable, layout: str) -> np.ndarray:
    if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise MalformedMessageError("bad argument type", f"{layout} takes numbers only")
    values = np.asarray(list(args), dtype=np.float64)
    if not np.isfinite(values).all():
        raise MalformedMessageError("non-finite value", f"{layout} got NaN or inf")
    return values


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
            if not isinstance(name, str):
                raise MalformedMessageError("bad argument type", f"{DESCRIPTORS}: a descriptor "
                                            f"name must be a string, got {name!r}")
            name = ALIASES.get(name, name)
            if name not in FEATURE_NAMES:
                raise MalformedMessageError("unknown descriptor", f"{name!r} is none of "
                                            f"{sorted(FEATURE_NAMES)}")
            if name in features:
                target[features.index(name)] = value
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


class ImproviseServer:
    """An OSC/UDP server around an :class:`Improviser` (see the module docstring).

    Parameters
    ----------
    improviser : Improviser
    host, port : str, int
        Where to listen (port 0: any free port; the bound one is ``self.port``).
    reply_to : (host, port), optional
        Where replies go; None (default) answers each message's sender.

    Raises
    ------
    OscPortError
        The address cannot be bound.
    """

    def __init__(self, improviser: Improviser, *, host: str = "127.0.0.1", port: int = 6666,
                 reply_to: tuple[str, int] | None = None) -> None:
        self.improviser, self.reply_to = improviser, reply_to
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
        from pythonosc.osc_packet import OscPacket

        start = time.perf_counter()
        self.packets += 1
        try:
            messages = [m.message for m in OscPacket(data).messages]
        except Exception:  # noqa: BLE001 - untrusted bytes: any parse failure is "malformed"
            self.malformed["unparsable packet"] += 1
            return 0
        answered = 0
        for message in messages:
            try:
                target, layout = read_message(self.improviser, message.address,
                                              tuple(message.params))
            except MalformedMessageError as exc:
                self.malformed[exc.reason] += 1
                continue
            params = self.improviser.decide(target)
            self._reply(params, layout, self.reply_to or sender)
            self.decisions[layout] += 1
            self.latencies_s.append(time.perf_counter() - start)
            answered += 1
        return answered

    def _reply(self, params: np.ndarray, layout: str, to: tuple[str, int]) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        replies = [(REPLY_PARAMS, [float(p) for p in params]),
                   (REPLY_CONTROLS, [self.improviser.synth.name]
                    + list(self.improviser.controls().values()))]
        if layout == "rl-impro":
            replies.append((REPLY_RLIMPRO, [" ".join(str(float(p)) for p in params)]))
        for address, values in replies:
            builder = OscMessageBuilder(address=address)
            for v in values:
                builder.add_arg(v)
            try:
                self.sock.sendto(builder.build().dgram, to)
            except OSError:   # a listener that went away must not stop the music
                self.send_errors += 1

    def serve(self, *, seconds: float | None = None, max_packets: int | None = None,
              on_packet=None) -> dict:
        """Serve until :meth:`stop`, ``seconds`` elapsed or ``max_packets`` received.

        ``on_packet(server)`` is called after each packet (progress display). Returns
        :meth:`summary`.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        self.sock.settimeout(0.05)
        while not self._stop and (max_packets is None or self.packets < max_packets):
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                data, sender = self.sock.recvfrom(1 << 16)
            except TimeoutError:
                continue
            self.handle_packet(data, sender)
            if on_packet is not None:
                on_packet(self)
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

