"""Bring your own Pd synth: a user's ``synth.pd`` (RL-impro's convention) played by an agent.

RL-impro's users write their synth as a Pure Data abstraction: a list of N parameters in [0, 1]
arrives at its inlet, sound leaves its ``outlet~``. :class:`PdSynth` renders such a synth
offline through ``pd -batch`` (Debian's ``puredata-core``, no audio device): one Pd run plays
every parameter row in turn, each for a segment (the synth plays on from row to row, as it does
live), records the output with ``writesf~``, and the segments are cut out in Python. That is
enough to build the synth's lookup table (``build_lookup``), train on it (``mode="lookup"``)
and play it live: the server sends the agent's parameters over OSC to the musician's Pd, which
plays the same ``synth.pd``.

    >>> env = gymnasium.make("musicgym/Improvise-v0", synth="my/synth.pd", mode="lookup")

A Pd synth has no rendering mode (a Pd run per step would be far too slow): use the lookup
mode.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from musicgym.envs.synths import Control
from musicgym.errors import ImproviseConfigError

PD_BLOCK = 64            # Pd's DSP block: messages take effect between blocks
PD_TIMEOUT_S = 600.0
# the synth's copy beside the wrapper: a name no user's abstraction has. Pd looks in a
# [declare -path] folder (the synth's own, for the abstractions it uses) before the patch's
# folder, so a copy named synth.pd would lose to a different synth.pd beside the user's file.
COPY_NAME = "musicgym_user_synth"


def pd_binary() -> str | None:
    """The ``pd`` executable (``$MUSICGYM_PD`` or ``pd`` on the PATH), or None."""
    return os.environ.get("MUSICGYM_PD") or shutil.which("pd")


def count_params(path: Path) -> int | None:
    """The parameter count of a synth.pd: the outlets of the first ``unpack`` its inlet feeds."""
    text = path.read_text(errors="replace")
    objects = [m.group(1).strip() for m in
               re.finditer(r"#X (?:obj|msg|text|floatatom|symbolatom|array|restore)"
                           r"\s+-?\d+\s+-?\d+\s*([^;]*);", text)]
    for line in objects:
        parts = line.split()
        if parts and parts[0] == "unpack":
            return max(1, len(parts) - 1) if len(parts) > 1 else 2
    return None


class PdSynth:
    """A user's Pd abstraction played through N parameters in [0, 1].

    Parameters
    ----------
    path : str or path-like
        The ``synth.pd`` file: parameters (a list of N floats in [0, 1]) at its inlet, sound at
        its ``outlet~``. Abstractions beside it are found (``declare -path``).
    n_params : int, optional
        N; by default the outlets of the first ``unpack`` in the file.
    preroll_s : float
        Sound played before the window the agent hears at each new row.

    Raises
    ------
    ImproviseConfigError
        No such file, not a ``.pd`` file, or N not given and not found.
    """

    def __init__(self, path, *, n_params: int | None = None, preroll_s: float = 0.0) -> None:
        self.path = Path(path).expanduser().resolve()
        if self.path.suffix != ".pd" or not self.path.is_file():
            raise ImproviseConfigError(f"no Pd synth at {path}: give a synth.pd file (a list of "
                                       "parameters in [0, 1] in, sound out)")
        n = count_params(self.path) if n_params is None else n_params
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ImproviseConfigError(f"cannot tell how many parameters {self.path.name} takes "
                                       "(no [unpack] in it): give n_params")
        self.n_params = int(n)
        self.name = self.path.stem
        self.preroll_s = float(preroll_s)
        self.param_names = tuple(f"p{i}" for i in range(self.n_params))
        # Pd maps the parameters to sound itself: the controls the server reports
        # (/musicgym/controls) are the parameters as sent
        self.controls = tuple(Control(name, 0.0, 1.0) for name in self.param_names)

    def check_params(self, u) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        if u.ndim == 1:
            u = u[None, :]
        if u.ndim != 2 or u.shape[1] != self.n_params:
            raise ImproviseConfigError(f"Pd synth {self.name!r} takes parameters shaped (B, "
                                       f"{self.n_params}), got {np.shape(u)}")
        if not np.isfinite(u).all() or (u < 0).any() or (u > 1).any():
            raise ImproviseConfigError(f"Pd synth {self.name!r}: parameters must be finite and "
                                       "in [0, 1]; clip them first")
        return u

    def get_controls(self, u) -> dict[str, np.ndarray]:
        """The parameters as they are sent to Pd (Pd maps them to sound itself)."""
        u = self.check_params(u)
        return {name: u[:, i] for i, name in enumerate(self.param_names)}

    def render(self, u, *, n_samples: int, sr: int = 44100, preroll: int | None = None
               ) -> np.ndarray:
        """Mono audio (B, preroll + n_samples) float32: the synth playing each row in turn.

        Row k is sent at the start of its segment and the synth plays on from row k - 1 (its
        oscillators and filters carry over, as live); the audio returned for it starts one Pd
        block after the change and lasts ``preroll + n_samples``.

        Raises
        ------
        ImproviseConfigError
            ``pd`` is not installed (``apt install puredata-core``), or the Pd run failed
            (its messages are quoted).
        """
        u = self.check_params(u)
        if preroll is None:
            preroll = int(round(self.preroll_s * sr))
        length = int(preroll) + int(n_samples)
        # a segment: whole Pd blocks, one block of slack before the part returned
        seg = -(-length // PD_BLOCK) * PD_BLOCK + PD_BLOCK
        audio = self._run(u, seg, sr)
        out = np.zeros((len(u), length), dtype=np.float32)
        for k in range(len(u)):
            piece = audio[k * seg + PD_BLOCK:k * seg + PD_BLOCK + length]
            out[k, :len(piece)] = piece
        return out

    def _run(self, u: np.ndarray, seg: int, sr: int) -> np.ndarray:
        pd = pd_binary()
        if pd is None:
            raise ImproviseConfigError("rendering a Pd synth needs Pure Data's pd: install it "
                                       "(apt install puredata-core) or set MUSICGYM_PD")
        from musicgym.audio.io import read_audio

        with tempfile.TemporaryDirectory(prefix="musicgym-pd-") as tmp:
            tmp = Path(tmp)
            shutil.copy(self.path, tmp / f"{COPY_NAME}.pd")
            seg_ms = seg * 1000.0 / sr
            lines = []
            for k, row in enumerate(u):
                values = " ".join(f"{v:.9g}" for v in row)
                lines.append(f"{seg_ms:.9f} mgparams {values};" if k else
                             f"mgparams {values};")
            lines.append(f"{seg_ms:.9f} mgdone bang;")
            (tmp / "rows.txt").write_text("\n".join(lines) + "\n")
            wav = tmp / "out.wav"
            (tmp / "main.pd").write_text(_wrapper(self.path.parent, tmp / "rows.txt", wav,
                                                  (len(u) + 1) * seg_ms, len(u) * seg))
            cmd = [pd, "-batch", "-nosound", "-nomidi", "-noprefs", "-r", str(int(sr)),
                   "-path", str(tmp), "-open", str(tmp / "main.pd")]
            try:
                run = subprocess.run(cmd, capture_output=True, text=True, timeout=PD_TIMEOUT_S,
                                     cwd=tmp)
            except subprocess.TimeoutExpired:
                raise ImproviseConfigError(f"pd -batch rendering {self.path.name} ran past "
                                           f"{PD_TIMEOUT_S:.0f} s") from None
            if run.returncode != 0 or not wav.is_file():
                raise ImproviseConfigError(
                    f"pd -batch could not render {self.path.name} (exit {run.returncode}): "
                    f"{(run.stderr or run.stdout).strip()[-800:]}")
            data, file_sr = read_audio(wav)
        if file_sr != sr:
            raise ImproviseConfigError(f"pd rendered at {file_sr} Hz, not {sr}")
        need = len(u) * seg
        mono = data[0]
        if len(mono) < need:
            mono = np.concatenate([mono, np.zeros(need - len(mono), np.float32)])
        return mono


def _wrapper(synth_dir: Path, rows: Path, wav: Path, total_ms: float, n_frames: int) -> str:
    """A patch that plays the rows through the synth's copy into an array, writes it to ``wav`` and
    quits (and does so anyway a little after ``total_ms``, so a sequence that fails cannot run
    forever). [tabwrite~] + [soundfiler] write synchronously: [writesf~]'s disk thread may not
    have written anything when a batch run quits."""
    return "\n".join([
        "#N canvas 0 50 600 400 12;",
        f"#X declare -path {_pd_path(synth_dir)};",
        "#X obj 20 20 loadbang;",                                         # 0
        f"#X msg 20 50 \\; pd dsp 1 \\; mgrec bang \\; mgseq read {_pd_path(rows)} "
        "\\; mgseq bang;",                                               # 1
        "#X obj 20 100 r mgseq;",                                         # 2
        "#X obj 20 130 qlist;",                                           # 3
        "#X obj 200 100 r mgparams;",                                     # 4
        f"#X obj 200 130 {COPY_NAME};",                                   # 5
        "#X obj 200 170 tabwrite~ mgout;",                                # 6
        "#X obj 350 100 r mgrec;",                                        # 7
        "#X obj 20 200 r mgdone;",                                        # 8
        f"#X msg 20 230 \\; mgwrite write -bytes 4 {_pd_path(wav)} mgout \\; pd quit;",  # 9
        f"#X obj 120 20 delay {total_ms + 200.0:.3f};",                   # 10
        f"#X obj 350 20 array define mgout {int(n_frames)};",             # 11
        "#X obj 350 200 r mgwrite;",                                      # 12
        "#X obj 350 230 soundfiler;",                                     # 13
        # (the #X declare line is not an object: loadbang is object 0)
        "#X connect 0 0 1 0;",
        "#X connect 2 0 3 0;",
        "#X connect 4 0 5 0;",
        "#X connect 5 0 6 0;",
        "#X connect 7 0 6 0;",
        "#X connect 8 0 9 0;",
        "#X connect 0 0 10 0;",
        "#X connect 10 0 9 0;",
        "#X connect 12 0 13 0;",
    ]) + "\n"


def _pd_path(path: Path) -> str:
    text = str(path)
    if any(c in text for c in " ;,$\\{}"):
        raise ImproviseConfigError(f"Pd cannot take the path {text!r} (spaces or ; , $ \\ in "
                                   "it): move the synth to a plain path")
    return text
