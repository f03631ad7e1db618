"""`musicgym live improvise --model builtin:NAME`: a shipped agent plays out of the box, over
real UDP on loopback, with no SB3 model and no run folder."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pythonosc", reason="python-osc is in musicgym's 'live' extra")
from pythonosc.osc_message import OscMessage  # noqa: E402
from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402

from musicgym.cli import main  # noqa: E402

SR = 44100


def _message(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address=address)
    for a in args:
        builder.add_arg(a)
    return builder.build().dgram


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(argv: list[str], port: int, message: bytes, n: int) -> tuple[int, dict]:
    """Run the server in a thread, send ``message`` until it answers, ``n`` times in all."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(rc=main(argv)))
    thread.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    replies: dict = {}
    sent, deadline = 0, time.monotonic() + 30
    try:
        while sent < n and time.monotonic() < deadline:
            sock.sendto(message, ("127.0.0.1", port))
            try:
                for _ in range(2):
                    msg = OscMessage(sock.recvfrom(65536)[0])
                    replies[msg.address] = list(msg.params)
                sent += 1
            except TimeoutError:
                continue
        thread.join(timeout=20)
    finally:
        sock.close()
    assert not thread.is_alive()
    return result["rc"], replies


@pytest.mark.parametrize(("name", "n_controls"),
                         [("sine", 2), ("fm", 3), ("granular", 3), ("subtractive", 3)])
def test_live_improvise_plays_a_builtin_agent(name, n_controls, capsys):
    port = _free_port()
    tone = (0.4 * np.sin(2 * np.pi * 440.0 * np.arange(1024) / SR)).astype(np.float32)
    rc, replies = _serve(["live", "improvise", "--model", f"builtin:{name}", "--port",
                          str(port), "--reply-port", "0", "--max-packets", "3",
                          "--subdiv", "3"], port, _message("/musicgym/audio", tone.tobytes()),
                         3)
    assert rc == 0
    controls = replies["/musicgym/controls"]
    assert controls[0] == name and len(controls) == 1 + n_controls
    assert len(replies["/musicgym/params"]) == n_controls
    assert all(np.isfinite(controls[1:]))
    if name == "sine":      # the sine agent answers the tone's pitch
        assert abs(controls[1] - 440.0) < 40
    assert f"the policy of builtin:{name}" in capsys.readouterr().out


def test_live_improvise_refuses_an_unknown_builtin(capsys):
    assert main(["live", "improvise", "--model", "builtin:theremin", "--port", "0",
                 "--seconds", "0"]) == 1
    assert "no built-in improviser 'theremin'" in capsys.readouterr().err
