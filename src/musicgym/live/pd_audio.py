"""A user's Pd synth sounding live: Pure Data started with audio, fed the agent's parameters.

``musicgym live improvise --synth my/synth.pd --pd-audio`` plays the improviser's decisions
through the musician's own ``synth.pd`` (RL-impro's convention: a list of N parameters in
[0, 1] at its inlet, sound at its ``outlet~``). :class:`PdAudioOut` writes a small wrapper
patch beside a copy of the synth::

    [netreceive -u PORT]          FUDI over UDP from the server: "params p0 p1 ...;" or "quit;"
    |
    [route params quit]
    |                             \\
    [musicgym_user_synth]         [; pd quit(     (a copy of the user's synth.pd)
    |
    [dac~ 1 2]                    the synth's mono output on both channels

starts ``pd -nogui`` on an audio API (JACK by default, ALSA, OSS, PortAudio, or none), waits
until the patch has loaded (a ``[print]`` after ``loadbang`` that this module waits for on
Pd's standard error) and sends each decision's parameters as one UDP datagram (a
``sendto`` of a few dozen bytes: microseconds, nothing waits for Pd). Pd applies a message
at its next 64-sample block.

Failures raise :class:`~musicgym.errors.PdAudioError` with Pd's own messages: ``pd`` not
installed, Pd exiting or not loading within ``start_timeout_s``, an object of the synth that
Pd cannot create (``... couldn't create``), an audio API Pd cannot open (``JACK: couldn't
connect to server``), or Pd exiting while it plays.

Pd runs in a process group of its own (so the terminal's Ctrl-C reaches the server, which
then stops Pd cleanly), and on Linux it is told to die with the thread that started it
(``PR_SET_PDEATHSIG``), so a server that is killed outright leaves no Pd behind.
:meth:`PdAudioOut.close` sends ``quit``, waits, then terminates and kills the group.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from musicgym.envs.pd_synth import COPY_NAME, PdSynth, _pd_path, pd_binary
from musicgym.errors import PdAudioError

READY = "musicgym-pd-ready"      # what the wrapper prints once loaded, DSP on
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
APIS = {"jack": ["-jack"], "alsa": ["-alsa"], "oss": ["-oss"], "pa": ["-pa"],
        "none": ["-nosound"]}
# lines of Pd's log that mean the synth does not sound (before it is ready): Pd's own errors,
# an object it cannot create, ALSA's and OSS's device that does not open
FAILURES = ("couldn't create", "error:", "can't open", "audio I/O stuck", "ALSA output error",
            "(writeonly):")
# library chatter that is no failure: alsa-lib's configuration probing, libjack's attempts
# when PortAudio looks for a JACK server (a working PortAudio prints them too)
NOISE = ("ALSA lib ", "Cannot connect to server", "jack server is not running",
         "JackShmReadWritePtr")
AUDIO_WORDS = ("JACK", "ALSA", "audio", "writeonly")


def wrapper_patch(port: int, synth_dir: Path) -> str:
    """The wrapper patch: UDP FUDI in, the synth (its copy beside it) out on both channels."""
    return "\n".join([
        "#N canvas 0 50 600 400 12;",
        f"#X declare -path {_pd_path(synth_dir)};",                    # the synth's own dir
        f"#X obj 20 20 netreceive -u {int(port)};",                      # 0
        "#X obj 20 50 route params quit;",                               # 1
        f"#X obj 20 80 {COPY_NAME};",                                    # 2
        "#X obj 20 120 dac~ 1 2;",                                       # 3
        "#X msg 200 80 \\; pd quit;",                                    # 4
        "#X obj 300 20 loadbang;",                                       # 5
        "#X obj 300 50 t b b;",                                          # 6
        "#X msg 400 80 \\; pd dsp 1;",                                   # 7
        f"#X obj 300 80 print {READY};",                                 # 8
        "#X connect 0 0 1 0;",
        "#X connect 1 0 2 0;",
        "#X connect 2 0 3 0;",
        "#X connect 2 0 3 1;",
        "#X connect 1 1 4 0;",
        "#X connect 5 0 6 0;",
        "#X connect 6 1 7 0;",    # DSP on first (a trigger fires right to left), then ready
        "#X connect 6 0 8 0;",
    ]) + "\n"


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort: not Linux, no libc
        pass


class PdAudioOut:
    """A user's ``synth.pd`` sounding in a Pd that this object starts and stops.

    Parameters
    ----------
    synth : PdSynth or path-like
        The synth (``synth.pd``: N parameters in [0, 1] in, sound out).
    params : array_like, shape (N,), optional
        Parameters sent as soon as Pd is ready.
    api : str
        Pd's audio API: ``"jack"`` (default), ``"alsa"``, ``"oss"``, ``"pa"`` (PortAudio) or
        ``"none"`` (``-nosound``: Pd runs on its own clock, silent; for checks).
    sr : int
        Sample rate asked of ALSA, OSS and PortAudio (JACK's server sets its own).
    jack_name : str
        Pd's JACK client name (its ports are ``NAME:output_1`` and ``NAME:output_2``).
    jack_connect : bool
        Let Pd connect its outputs to JACK's ``system:playback`` ports (Pd's default).
    options : list of str or str, optional
        More ``pd`` flags (``-audiodev 3``, ``-blocksize 128``, ``-lib zexy``...).
    host : str
        The local address Pd listens on for the parameters.
    start_timeout_s : float
        How long Pd may take to load the patch and start its audio.
    start : bool
        Start Pd now (default); else call :meth:`start`.

    Raises
    ------
    PdAudioError
        ``pd`` missing, an unknown API, Pd failing to start or load the synth, or its audio
        failing to open (Pd's messages are quoted).
    ImproviseConfigError
        Not a Pd synth, or parameters of the wrong shape or outside [0, 1].
    """

    def __init__(self, synth, params=None, *, api: str = "jack", sr: int = 44100,
                 jack_name: str = "musicgym-pd", jack_connect: bool = True,
                 options=None, host: str = "127.0.0.1",
                 start_timeout_s: float = START_TIMEOUT_S, start: bool = True) -> None:
        self.synth = synth if isinstance(synth, PdSynth) else PdSynth(synth)
        if api not in APIS:
            raise PdAudioError(f"unknown Pd audio API {api!r}: use one of {sorted(APIS)}")
        self.api, self.sr, self.host = api, int(sr), host
        self.jack_name, self.jack_connect = jack_name, bool(jack_connect)
        self.options = shlex.split(options) if isinstance(options, str) else list(options or [])
        self.start_timeout_s = float(start_timeout_s)
        self.first = None if params is None else self._message(params)
        self.proc: subprocess.Popen | None = None
        self.messages = 0
        self.log: deque[str] = deque(maxlen=200)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        if start:
            self.start()

    # -- starting -------------------------------------------------------------------------
    def command(self, main: Path) -> list[str]:
        """The ``pd`` command line that plays ``main`` (the wrapper patch)."""
        pd = pd_binary()
        if pd is None:
            raise PdAudioError("sounding a Pd synth live needs Pure Data's pd: install it "
                               "(apt install puredata-core) or set MUSICGYM_PD")
        cmd = [pd, "-nogui", "-noprefs", "-nomidi", "-stderr", "-noadc", "-outchannels", "2",
               *APIS[self.api]]
        if self.api == "jack":
            cmd += ["-jackname", self.jack_name]
            if not self.jack_connect:
                cmd.append("-nojackconnect")
        elif self.api != "none":
            cmd += ["-r", str(self.sr)]
        return [*cmd, *self.options, "-path", str(main.parent), "-open", str(main)]

    def start(self) -> PdAudioOut:
        """Start Pd and wait until the synth is loaded and DSP is on.

        Raises
        ------
        PdAudioError
            See the class.
        """
        if self.proc is not None:
            raise PdAudioError("this Pd is already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="musicgym-pdaudio-")
        tmp = Path(self._tmp.name)
        try:
            shutil.copy(self.synth.path, tmp / f"{COPY_NAME}.pd")
            self.port = _free_udp_port(self.host)
            main = tmp / "main.pd"
            main.write_text(wrapper_patch(self.port, self.synth.path.parent))
            cmd = self.command(main)
            env = {**os.environ, "JACK_NO_START_SERVER": "1"}  # never start a JACK server
            try:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True, errors="replace", cwd=tmp, env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
            except OSError as exc:
                raise PdAudioError(f"cannot run {cmd[0]}: {exc}; install Pure Data (apt "
                                   "install puredata-core) or set MUSICGYM_PD") from exc
            self._reader = threading.Thread(target=self._read_log, name="pd-log", daemon=True)
            self._reader.start()
            self._wait_ready()
            # Pd has read the wrapper and the copy: nothing is left on disk even if the server
            # is killed outright
            self._tmp.cleanup()
            self._tmp = None
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if self.first is not None:
                self._send(self.first)
        except BaseException:
            self.close()
            raise
        return self

    def _read_log(self) -> None:
        # drains Pd's output for as long as it runs: a full pipe would block Pd
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.log.append(line)
            if line.startswith(READY):
                self._ready.set()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while not self._ready.wait(0.02):
            if self.proc.poll() is not None:
                self._reader.join(1.0)
                raise PdAudioError(f"pd exited (status {self.proc.returncode}) before the synth "
                                   f"{self.synth.name!r} was loaded: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise PdAudioError(f"pd did not load the synth {self.synth.name!r} within "
                                   f"{self.start_timeout_s:g} s (raise start_timeout_s on a "
                                   f"slow machine): {self.log_tail()}")
        loading = list(self.log)
        loading = loading[:next(i for i, line in enumerate(loading) if line.startswith(READY))]
        loading = [re.sub(r"^verbose\(\d+\): ", "", line) for line in loading]
        bad = []
        for i, line in enumerate(loading):
            if "couldn't create" in line and i:   # Pd names the object on the line before
                bad.append(f"[{loading[i - 1].strip()}] couldn't create")
            elif any(f in line for f in FAILURES) and not line.startswith(NOISE):
                bad.append(line)
        if bad:
            what = ("its audio did not open" if any(
                a in " ".join(bad) for a in AUDIO_WORDS) else
                "an object of the synth could not be created (a typo, or an external that is "
                "not installed)")
            hint = (" (is a JACK server running? start one with jackd, or choose another API)"
                    if self.api == "jack" and "JACK" in " ".join(bad) else "")
            raise PdAudioError(f"pd could not play the synth {self.synth.name!r}: {what}"
                               f"{hint}: {' | '.join(bad[-6:])}")

    def log_tail(self, lines: int = 12) -> str:
        """Pd's last messages, one line."""
        tail = [line for line in list(self.log)[-lines:] if line.strip()]
        return " | ".join(tail) if tail else "(pd printed nothing)"

    # -- playing --------------------------------------------------------------------------
    def _message(self, params) -> bytes:
        """FUDI ``params p0 p1 ...;`` (a few microseconds for the server's (N,) arrays)."""
        if isinstance(params, np.ndarray) and params.shape == (self.synth.n_params,):
            values = params.tolist()
        else:
            u = self.synth.check_params(params)
            if len(u) != 1:
                raise PdAudioError(f"one row of {self.synth.n_params} parameters at a time, "
                                   f"got {len(u)}")
            values = u[0].tolist()
        if not all(0.0 <= v <= 1.0 for v in values):   # NaN fails this too
            self.synth.check_params(values)            # raises, saying what is wrong
        return ("params " + " ".join([f"{v:.7g}" for v in values]) + ";\n").encode()

    def _send(self, packet: bytes) -> None:
        self._sock.sendto(packet, (self.host, self.port))
        self.messages += 1

    def set_params(self, params) -> None:
        """Sound these parameters (N,) in [0, 1] from Pd's next block on.

        Raises
        ------
        PdAudioError
            Pd is not running (it exited: its last messages are quoted).
        """
        if self.proc is None or self._sock is None:
            raise PdAudioError("Pd is not started: call start()")
        if self.proc.poll() is not None:
            raise PdAudioError(f"pd stopped while playing (status {self.proc.returncode}): "
                               f"{self.log_tail()}")
        self._send(self._message(params))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- stopping -------------------------------------------------------------------------
    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Stop Pd: ``quit`` over the socket, then SIGTERM, then SIGKILL to its process group
        (Pd's ``pd-watchdog`` included). Returns Pd's exit status (None if never started)."""
        proc, status = self.proc, None
        if proc is not None:
            signals = [signal.SIGTERM, signal.SIGKILL]
            if proc.poll() is None and self._sock is not None:   # Pd is ready: ask it first
                try:
                    self._sock.sendto(b"quit;\n", (self.host, self.port))
                    signals.insert(0, None)
                except OSError:
                    pass
            for sig in signals:
                if sig is not None:
                    try:
                        os.killpg(proc.pid, sig)
                    except (ProcessLookupError, PermissionError):
                        pass
                try:
                    proc.wait(timeout_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
            try:  # whatever Pd left in its group (its watchdog) goes with it
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            status = proc.returncode
            if self._reader is not None:
                self._reader.join(2.0)
            proc.stdout.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return status

    def __enter__(self) -> PdAudioOut:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def summary(self) -> dict:
        """What the exit summary reports: messages sent, Pd's status."""
        return {"pd_messages": self.messages,
                "pd_exit": None if self.proc is None else self.proc.poll()}

