"""The live tests' JACK server: one ``jackd --no-realtime -d dummy`` (no sound card needed) per
test module that asks for it, under a name of its own, stopped afterwards.

- ``jack_server``: the server; tests that need only libjack clients (MIDI ports, Pd's
  ``-jack``) use it. ``JACK_DEFAULT_SERVER`` names it while the module runs, and
  ``JACK_NO_START_SERVER`` keeps clients from starting another.
- ``jack_audio``: the same server seen by PortAudio through ``sounddevice`` (device
  ``"system"``), skipped where sounddevice is missing.

Skipped with the reason where ``jackd`` (apt install jackd2) is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

JACK_RATE = 44100
JACK_PERIOD = 256


class JackServer:
    """A running ``jackd -d dummy``: its ``name``, ``proc``, and :meth:`log`."""

    def __init__(self, jackd: str, name: str) -> None:
        self.name = name
        self._log = tempfile.TemporaryFile()
        self.portaudio_on = False
        self.proc = subprocess.Popen(
            [jackd, "--no-realtime", "--name", name, "-d", "dummy", "-r", str(JACK_RATE),
             "-p", str(JACK_PERIOD)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        """The end of the server's log (for failure messages)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def ports(self) -> list[str]:
        """Every JACK port now (``jack_lsp``)."""
        return subprocess.run(["jack_lsp"], capture_output=True, text=True, check=True,
                              timeout=10).stdout.split("\n")

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        if shutil.which("jack_lsp") is None:   # jackd2 ships it; otherwise give it time
            time.sleep(1.5)
            return
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"jackd -d dummy did not start: {self.log()}")
            done = subprocess.run(["jack_lsp"], capture_output=True, timeout=10)
            if done.returncode == 0 and b"system:playback_1" in done.stdout:
                return
            time.sleep(0.1)

    def portaudio(self):
        """sounddevice, re-initialised so that PortAudio lists this server (its JACK host API
        is looked for when PortAudio starts); skips where sounddevice is missing."""
        sd = pytest.importorskip("sounddevice", reason="sounddevice (live extra) is not "
                                                       "installed")
        sd._terminate()
        sd._initialize()
        self.portaudio_on = True
        apis = [api["name"] for api in sd.query_hostapis()]
        if not any("JACK" in api for api in apis):
            pytest.fail(f"PortAudio sees no JACK server ({apis}): {self.log()}")
        return sd

    def stop(self) -> None:
        sd = sys.modules.get("sounddevice") if self.portaudio_on else None
        if sd is not None:
            sd._terminate()   # PortAudio's JACK client goes before its server does
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        for leftover in Path("/dev/shm").glob(f"jack_sem.*_{self.name}_*"):  # a killed client's
            leftover.unlink(missing_ok=True)
        if sd is not None:
            sd._initialize()  # PortAudio as other modules expect it, without this server


@pytest.fixture(scope="module")
def jack_server():
    """A JACK server (dummy driver) for this test module; see the module docstring."""
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd is not installed (apt install jackd2): no JACK server to test with")
    server = JackServer(jackd, f"musicgym-test-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JACK_DEFAULT_SERVER", server.name)  # libjack reads it at each client's start
        env.setenv("JACK_NO_START_SERVER", "1")
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def jack_audio(jack_server):
    """``jack_server`` with sounddevice (PortAudio) seeing it: yields the server."""
    jack_server.portaudio()
    return jack_server
