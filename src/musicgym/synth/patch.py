"""Patches: Glicol code, with optional template holes, compiled once and rendered in batches.

A :class:`Patch` is what the rest of musicgym uses to make sound::

    >>> from musicgym.synth import Patch
    >>> kick = Patch("~env: imp 0.1 >> envperc {attack} {decay}\\n"
    ...              "kick: sin {freq} >> mul ~env")
    >>> kick.params
    ('attack', 'decay', 'freq')
    >>> audio = kick.render([[0.001, 0.2, 60.0], [0.01, 0.5, 50.0]], seconds=1.0)
    >>> audio.shape, audio.dtype
    ((2, 2, 44100), dtype('float32'))

Holes are RaveForce's ``{}`` (numbered in order) or named ``{cutoff}`` (a name used twice is one
parameter); they may stand wherever a number stands: node arguments, seq notes (rounded to the
nearest integer), pattern and point values. ``backend="numpy"`` (default) renders the whole batch
at once; ``backend="glicol"`` substitutes each row into the code and runs the real engine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from musicgym.errors import (
    MissingSampleError,
    ParameterError,
    RenderLimitError,
)
from musicgym.synth import ast
from musicgym.synth.graph import Graph, Runner, chunk_length
from musicgym.synth.nodes.base import BLOCK, F32, Context, resolve
from musicgym.synth.parse import parse
from musicgym.threads import num_threads, row_blocks, run_blocks

BACKENDS = ("numpy", "glicol")
DEFAULT_MAX_BYTES = 2 * 1024**3
# raises the default max_bytes of every Patch (a big machine rendering big batches)
MAX_BYTES_ENV = "MUSICGYM_MAX_RENDER_BYTES"
_MIN_THREAD_ROWS = 8  # fewer rows per thread: the threads' overhead outweighs the work
DEFAULT_MAX_SECONDS = 3600.0

SampleSource = str | os.PathLike | tuple[np.ndarray, int]


def _check_settings(sr: int, bpm: float) -> None:
    if not isinstance(sr, (int, np.integer)) or not 1000 <= int(sr) <= 768000:
        raise RenderLimitError(f"sr must be an integer sample rate in Hz between 1000 and "
                               f"768000, got {sr!r}")
    if not (isinstance(bpm, (int, float, np.number)) and np.isfinite(bpm) and 0 < bpm <= 10000):
        raise RenderLimitError(f"bpm must be a tempo between 0 and 10000 beats per minute, "
                               f"got {bpm!r}")


def _default_max_bytes() -> int:
    text = os.environ.get(MAX_BYTES_ENV)
    if text is None:
        return DEFAULT_MAX_BYTES
    try:
        return int(float(text))
    except ValueError:
        raise RenderLimitError(f"{MAX_BYTES_ENV}={text!r} is not a number of bytes") from None


def sample_key(name: str) -> str:
    """The name the engine looks a sample up by: the code's ``\\bd`` (``bd`` -> ``\\bd``)."""
    return name if name.startswith(("\\", "'")) else "\\" + name


def load_sample(source: SampleSource) -> tuple[np.ndarray, int]:
    """A sample as (frames (channels, n) float32, sample rate) from a file or (array, sr)."""
    if isinstance(source, tuple):
        data, sr = source
        frames = np.atleast_2d(np.asarray(data, dtype=F32))
        if frames.shape[0] > frames.shape[1]:
            frames = frames.T
        return np.ascontiguousarray(frames), int(sr)
    from musicgym.audio.io import read_audio

    return read_audio(source)


class Patch:
    """Glicol code compiled once, rendered for a batch of parameter sets.

    Parameters
    ----------
    code : str
        Glicol code, with optional holes ``{}`` / ``{name}``.
    sr : int, keyword-only
        Sample rate in Hz (default 44100).
    bpm : float, keyword-only
        Tempo (default 120: one bar = 2 s).
    seed : int, keyword-only
        Engine seed (used by ``choose``; default 42 as in Glicol).
    backend : {"numpy", "glicol"}, keyword-only
        ``"numpy"``: the batched NumPy engine. ``"glicol"``: the real engine, row by row.
    samples : mapping, keyword-only
        Sample name (``"bd"`` or ``"\\\\bd"``) to an audio file path or ``(array, sr)``.
    compat : bool, keyword-only
        True (default) reproduces the real engine, bugs included. False fixes the known bugs
        (see ``musicgym nodes``); only the NumPy backend has this option.
    max_bytes : int, keyword-only
        Renders whose estimated peak memory (output, every node's buffers, delay lines, for
        the whole batch) is larger are refused before allocating, with a ``RenderLimitError``
        naming the largest node (default 2 GiB, or the environment variable
        ``MUSICGYM_MAX_RENDER_BYTES``).
    max_seconds : float, keyword-only
        Longest render accepted (default 3600 s).
    threads : int, keyword-only
        Threads the NumPy backend renders a batch with, each a contiguous block of rows (at
        least 8 rows each); the audio is bit-identical to one thread. Default: the environment
        variable ``MUSICGYM_NUM_THREADS``, else 1 (see :mod:`musicgym.threads`).

    Raises
    ------
    GlicolSyntaxError, UnknownNodeError, ArgumentError, MissingReferenceError
        Bad code, located by line and column.
    MissingSampleError, AudioFileError
        A sampler names a sample that was not given, or a sample file cannot be read.
    UnsupportedNodeError
        A node the NumPy backend does not run (use ``backend="glicol"``).
    """

    chunk_rows_samples: int | None = None
    """Samples x rows per chunk of an acyclic graph's render, for each thread's block of rows
    (None: the graph's ``CHUNK_ROWS_SAMPLES``, chosen for the engine benchmark's B = 64 1 s
    renders on one thread). The audio does not depend on it: every node keeps its state
    between chunks. The sound-matching vector env's step sets its own (see
    ``musicgym.envs.matching``)."""

    def __init__(
        self,
        code: str,
        *,
        sr: int = 44100,
        bpm: float = 120.0,
        seed: int = 42,
        backend: str = "numpy",
        samples: Mapping[str, SampleSource] | None = None,
        compat: bool = True,
        max_bytes: int | None = None,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        threads: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        _check_settings(sr, bpm)
        self.code = code
        self.sr = int(sr)
        self.bpm = float(bpm)
        self.seed = int(seed)
        self.backend = backend
        self.compat = bool(compat)
        self.max_bytes = _default_max_bytes() if max_bytes is None else int(max_bytes)
        self.max_seconds = float(max_seconds)
        self.threads = None if threads is None else num_threads(threads)
        self.program = parse(code)
        self.samples = {sample_key(k): load_sample(v) for k, v in (samples or {}).items()}
        self._check_samples()
        self.graph = Graph(self.program) if backend == "numpy" else None
        self._int_columns = sorted({h.index for h in self.program.holes if h.integer})

    @property
    def params(self) -> tuple[str, ...]:
        """The parameter names, one per column of the parameter matrix."""
        return self.program.hole_names

    @property
    def n_params(self) -> int:
        return len(self.params)

    def _check_samples(self) -> None:
        for chain in self.program.chains:
            for node in chain.nodes:
                for arg in node.args:
                    symbols = [arg] if isinstance(arg, ast.Symbol) else []
                    if isinstance(arg, ast.Pattern):
                        symbols = [v for v, _ in arg.events if isinstance(v, ast.Symbol)]
                    for sym in symbols:
                        if node.name == "msgsynth" or sym.name in self.samples:
                            continue
                        loaded = ", ".join(sorted(self.samples)) or "none"
                        raise MissingSampleError(
                            f"no sample named {sym.name} is loaded (loaded: {loaded})",
                            source=self.code, line=sym.pos.line, column=sym.pos.column,
                            suggestion=f"pass samples={{'{sym.name.lstrip(chr(92))}': "
                                       "'path/to/file.wav'}")

    # -- parameters ------------------------------------------------------------------------
    def check_params(self, params) -> np.ndarray:
        """Validate a parameter matrix: shape (B, P) float64, finite; a (P,) row becomes (1, P)."""
        if params is None:
            params = np.zeros((1, 0))
        arr = np.asarray(params, dtype=np.float64)
        if arr.ndim == 1 and self.n_params > 0 and arr.shape[0] == self.n_params:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n_params:
            raise ParameterError(
                f"expected a parameter matrix of shape (B, {self.n_params}) for the holes "
                f"{list(self.params)}, got shape {np.shape(params)}")
        if arr.shape[0] < 1:
            raise ParameterError("the parameter matrix has no rows: give at least one set")
        bad = ~np.isfinite(arr)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            raise ParameterError(
                f"parameter {self.params[col]!r} (column {col}) is {arr[row, col]} in row {row}: "
                "every parameter must be a finite number")
        if self._int_columns:
            arr = arr.copy()
            arr[:, self._int_columns] = np.rint(arr[:, self._int_columns])
        return arr

    def n_samples(self, seconds: float) -> int:
        """Frames in ``seconds`` at this patch's rate, after checking the duration."""
        if not isinstance(seconds, (int, float, np.number)) or not np.isfinite(seconds) \
                or seconds <= 0:
            raise RenderLimitError(f"seconds must be a positive finite duration, got {seconds!r}")
        if seconds > self.max_seconds:
            raise RenderLimitError(
                f"a render of {seconds} s exceeds max_seconds={self.max_seconds}; render in "
                "pieces or raise max_seconds")
        return max(1, int(round(seconds * self.sr)))

    def fill(self, row) -> str:
        """The code with one parameter row written into its holes (for the real engine)."""
        row = self.check_params(row)[0]
        out, last = [], 0
        for hole in sorted(self.program.holes, key=lambda h: h.pos.offset):
            start = hole.pos.offset
            end = self.code.index("}", start) + 1
            out.append(self.code[last:start])
            value = row[hole.index]
            out.append(str(int(value)) if hole.integer else glicol_float(value))
            last = end
        out.append(self.code[last:])
        return "".join(out)

    # -- rendering -------------------------------------------------------------------------
    def stream(self, params=None) -> PatchStream:
        """A :class:`PatchStream`: this patch rendered piece by piece, its parameters changing
        between pieces while every node's state carries on (NumPy backend only).

        Examples
        --------
        >>> from musicgym.synth import Patch
        >>> s = Patch("o: sin {freq}").stream([[440.0]])
        >>> a = s.render(512); s.set_params([[660.0]]); b = s.render(512)
        >>> a.shape, s.position
        ((1, 2, 512), 1024)
        """
        return PatchStream(self, params)

    def render(self, params=None, *, seconds: float | None = None, n_samples: int | None = None,
               progress: bool | None = None, left_only: bool = False,
               out: np.ndarray | None = None) -> np.ndarray:
        """Render every parameter row.

        Parameters
        ----------
        params : array_like, shape (B, P) or (P,), optional
            One row per parameter set (P = ``n_params``); omit for code without holes.
        seconds : float, keyword-only
            Duration to render (or give ``n_samples``).
        n_samples : int, keyword-only
            Number of frames to render.
        progress : bool, keyword-only
            Show a progress bar (default: only for long renders, over 60 s of audio in all).
        left_only : bool, keyword-only
            Return only the left channel, (B, n) (what the sound-matching envs use): the
            same samples as ``render(...)[:, 0]``, without writing the right channel.
        out : numpy.ndarray, keyword-only
            Write the result into this float32 array of the result's shape (a view is fine,
            e.g. a span of a longer clip) instead of a new one, and return it: no allocation
            (the NumPy backend renders into it directly).

        Returns
        -------
        numpy.ndarray, shape (B, 2, n) (``left_only``: (B, n)), float32
        """
        params, n_samples = self._checked(params, seconds, n_samples, left_only, out)
        if progress is None:
            progress = params.shape[0] * n_samples > 60 * self.sr
        if self.backend == "glicol":
            audio = self._render_reference(params, n_samples, progress)
            audio = np.ascontiguousarray(audio[:, 0, :]) if left_only else audio
            if out is None:
                return audio
            out[...] = audio
            return out
        target = None if out is None else (out[:, None, :] if left_only else out)
        audio = self._render_numpy(params, n_samples, progress, 1 if left_only else 2, target)
        if out is not None:
            return out
        return audio[:, 0, :] if left_only else audio

    def prepare_left(self, params, n_samples: int, out: np.ndarray):
        """The Python half of ``render(params, n_samples=n_samples, left_only=True, out=out)``
        on one thread (the NumPy backend): the same checks, then the nodes' set-up. Returns a
        function that runs the compiled kernels into ``out`` (the same bits as that render),
        on any thread: a caller rendering blocks of rows side by side does the set-ups first,
        so its threads' renders do not wait for each other's Python (the GIL)."""
        if self.backend != "numpy":
            raise RenderLimitError("prepare_left runs the NumPy backend only")
        if n_samples is None:
            raise RenderLimitError(f"n_samples must be a positive integer, got {n_samples!r}")
        params, _ = self._checked(params, None, n_samples, True, out, out_required=True)
        runner = self._runner(params)

        def run() -> np.ndarray:
            runner.run(out[:, None, :])
            return out

        return run

    def _checked(self, params, seconds, n_samples, left_only: bool, out, *,
                 out_required: bool = False) -> tuple[np.ndarray, int]:
        """A render's arguments checked (the parameters, the duration, the memory it needs,
        ``out``'s shape, given or ``out_required``): (params as (B, P), frames)."""
        params = self.check_params(params)
        if n_samples is None:
            if seconds is None:
                raise RenderLimitError("give the duration: seconds=... or n_samples=...")
            n_samples = self.n_samples(seconds)
        elif not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise RenderLimitError(f"n_samples must be a positive integer, got {n_samples!r}")
        else:
            self.n_samples(n_samples / self.sr)
        n = int(n_samples)
        self._check_memory(params, n)
        shape = (params.shape[0], n) if left_only else (params.shape[0], 2, n)
        if (out is not None or out_required) and (
                not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != F32
                or not out.flags.writeable):
            raise RenderLimitError(
                f"out must be a writeable float32 array of shape {shape}, got "
                f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
        return params, n

    def _runner(self, params: np.ndarray) -> Runner:
        """The live nodes of one render of these parameter rows (the NumPy backend)."""
        ctx = Context(batch=params.shape[0], sr=self.sr, bpm=self.bpm, seed=self.seed,
                      compat=self.compat, samples=self.samples)
        ctx.params = params
        return Runner(self.graph, ctx, lambda arg: resolve(arg, ctx), self.chunk_rows_samples)

    def _check_memory(self, params: np.ndarray, n: int) -> None:
        """Refuse, before allocating anything, a render whose estimated peak is over max_bytes."""
        batch = params.shape[0]
        # the output, and the padded copy a graph with feedback renders into
        need, what = batch * 2 * n * 4.0 * 2, "the output"
        if self.graph is not None:
            ctx = Context(batch=batch, sr=self.sr, bpm=self.bpm, seed=self.seed,
                          compat=self.compat, samples=self.samples)
            ctx.params = params
            graph_bytes, largest = self.graph.memory_bytes(ctx, lambda a: resolve(a, ctx), n)
            need, what = need + graph_bytes, largest
        if need > self.max_bytes:
            raise RenderLimitError(
                f"rendering {batch} x {n} frames needs about {need / 2**20:.0f} MiB (largest "
                f"part: {what}), over max_bytes={self.max_bytes / 2**20:.0f} MiB: render fewer "
                f"rows, a shorter span or smaller delays at a time, or raise max_bytes (or "
                f"{MAX_BYTES_ENV})")

    def _render_numpy(self, params: np.ndarray, n: int, progress: bool,
                      channels: int = 2, out: np.ndarray | None = None) -> np.ndarray:
        batch = params.shape[0]
        if out is None:
            out = np.empty((batch, channels, n), dtype=F32)  # channels=1: the left only
        # rows are independent: each block of rows gets its own runner (the same code on the
        # same samples as one runner for the batch, so the audio is bit-identical)
        blocks = row_blocks(batch, num_threads(self.threads), _MIN_THREAD_ROWS)
        bar = _progress(n, progress, "render")

        def render_rows(k: int, lo: int, hi: int) -> None:
            # the first block's progress stands for the render's (the blocks run side by side)
            self._runner(params[lo:hi]).run(out[lo:hi], bar if k == 0 else None)

        try:
            run_blocks(render_rows, blocks)
        finally:
            if bar is not None:
                bar.close()
        return out

    def _render_reference(self, params: np.ndarray, n: int, progress: bool) -> np.ndarray:
        from musicgym.synth.reference import render_reference

        out = np.empty((params.shape[0], 2, n), dtype=F32)
        bar = _progress(params.shape[0], progress, "render (glicol)")
        for b in range(params.shape[0]):
            out[b] = render_reference(self.fill(params[b:b + 1]), n, sr=self.sr, bpm=self.bpm,
                                      seed=self.seed, samples=self.samples)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return out


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame" if "glicol" not in desc else "row",
                unit_scale=True, leave=False)


def glicol_float(value: float) -> str:
    """A float as a Glicol literal: digits, a point, more digits, never an exponent."""
    text = np.format_float_positional(float(value), unique=True, trim="0")
    return text if "." in text else text + ".0"


def render(code: str, *, seconds: float, sr: int = 44100, bpm: float = 120.0,
           samples: Mapping[str, SampleSource] | None = None, backend: str = "numpy",
           params=None, **options) -> np.ndarray:
    """Render Glicol code once: the (2, n) float32 output (or (B, 2, n) given a params matrix).

    Examples
    --------
    >>> from musicgym.synth import render
    >>> render("o: sin 440 >> mul 0.5", seconds=0.5).shape
    (2, 22050)
    """
    patch = Patch(code, sr=sr, bpm=bpm, samples=samples, backend=backend, **options)
    audio = patch.render(params, seconds=seconds)
    return audio[0] if params is None or np.ndim(params) == 1 else audio


class PatchStream:
    """A patch playing on: rendered piece by piece while its parameters change.

    Made by :meth:`Patch.stream`. Every node keeps its state between :meth:`render` calls
    (oscillator phases, envelope positions, filter and delay memories, sampler voices) and
    :meth:`set_params` changes only the controls the parameters drive, so turning a knob
    sounds like a synth whose knob is turned: no restart, no click. The stream's audio is
    bit-identical to one long render whose parameters change at the same samples.

    The engine runs whole 128-sample blocks (as Glicol does): a render of n samples runs the
    blocks it needs and keeps what is left over for the next call, so a parameter change
    takes effect at the first block not yet run (exactly at the next sample when every
    render is a multiple of 128 samples).

    Parameters
    ----------
    patch : Patch
        A patch of the NumPy backend.
    params : array_like, shape (B, P) or (P,)
        The starting parameters (B streams side by side, each its own row).
    """

    def __init__(self, patch: Patch, params=None) -> None:
        if patch.graph is None:
            raise ValueError("a stream needs the numpy backend (the real engine renders only "
                             "whole pieces)")
        self.patch = patch
        self.params = patch.check_params(params)
        self.batch = self.params.shape[0]
        # nodes whose arguments hold a hole: the only ones a parameter change touches
        self._driven = [i for i in patch.graph.order
                        if any(_holds_hole(a) for a in patch.graph.sites[i].syntax.args)]
        self.reset()

    @property
    def position(self) -> int:
        """Samples delivered since the stream (re)started."""
        return self._runner.start - self._pending.shape[-1]

    def _context(self, params: np.ndarray) -> Context:
        p = self.patch
        ctx = Context(batch=params.shape[0], sr=p.sr, bpm=p.bpm, seed=p.seed, compat=p.compat,
                      samples=p.samples)
        ctx.params = params
        return ctx

    def _runner_for(self, params: np.ndarray) -> Runner:
        ctx = self._context(params)
        return Runner(self.patch.graph, ctx, lambda arg: resolve(arg, ctx))

    def reset(self, rows=None, *, preroll: int = 0) -> np.ndarray | None:
        """Restart the stream (``rows=None``: every row from silence at sample 0), or restart
        only ``rows`` on the stream's clock.

        A row restart renders those rows afresh at their current parameters, as if they had
        started ``preroll`` samples ago (never before the stream's start), and puts their new
        state in place: the other rows play on untouched.

        Returns
        -------
        numpy.ndarray or None
            For a row restart, the restarted rows' last ``preroll`` samples (len(rows), 2,
            preroll), silence before the stream's start; None for a full reset.

        Raises
        ------
        UnsupportedNodeError
            A row restart of a patch with a node whose state all rows share (plate, arrange,
            psampler).
        """
        if rows is None:
            self._checked = 0
            self._runner = self._runner_for(self.params)
            self._pending = np.zeros((self.batch, 2, 0), dtype=F32)
            return None
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.batch):
            raise ParameterError(f"rows must be in [0, {self.batch}), got {rows.tolist()}")
        preroll = int(preroll)
        if preroll < 0:
            raise RenderLimitError(f"preroll must be >= 0 samples, got {preroll}")
        pending = self._pending.shape[-1]
        clock = self._runner.start
        # run whole blocks from a block boundary, ending exactly at the main runner's clock
        begin = max(0, (clock - pending - preroll) // BLOCK * BLOCK)
        sub = self._runner_for(self.params[rows])
        sub.start = begin
        audio = np.empty((rows.size, 2, clock - begin), dtype=F32)
        while sub.start < clock:
            n = min(chunk_length(rows.size), clock - sub.start)
            sub._advance(audio[:, :, sub.start - begin:sub.start - begin + n], n)
            sub.start += n
        for i, node in self._runner.nodes.items():
            node.load_rows(rows, sub.nodes[i])
        for src, buf in sub.prev.items():
            if src in self._runner.prev:
                self._runner.prev[src][rows] = buf
        if pending:
            self._pending[rows] = audio[:, :, audio.shape[-1] - pending:]
        out = np.zeros((rows.size, 2, preroll), dtype=F32)
        heard = audio[:, :, :audio.shape[-1] - pending][:, :, -preroll:] if preroll else \
            audio[:, :, :0]
        if heard.shape[-1]:
            out[:, :, preroll - heard.shape[-1]:] = heard
        return out

    def set_params(self, params) -> None:
        """New parameters (B, P) from the next block on, every node's state carried over."""
        params = self.patch.check_params(params)
        if params.shape[0] != self.batch:
            raise ParameterError(f"this stream plays {self.batch} rows; got {params.shape[0]}"
                                 " parameter rows (make a new stream for another batch)")
        self.params = params
        ctx = self._context(params)
        runner = self._runner
        runner.ctx = ctx
        for i in self._driven:
            node = runner.nodes[i]
            node.ctx = ctx
            node.set_args([resolve(a, ctx) for a in self.patch.graph.sites[i].syntax.args])

    def render(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` of every row: (B, 2, n) float32."""
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
            raise RenderLimitError(f"n_samples must be a non-negative integer, got "
                                   f"{n_samples!r}")
        n = int(n_samples)
        have = self._pending.shape[-1]
        if have >= n:
            out, self._pending = self._pending[:, :, :n], self._pending[:, :, n:]
            return np.ascontiguousarray(out)
        need = -(-(n - have) // BLOCK) * BLOCK
        if need > self._checked:   # the memory guard once per larger render, not every call
            self.patch._check_memory(self.params, need)
            self._checked = need
        fresh = np.empty((self.batch, 2, have + need), dtype=F32)
        fresh[:, :, :have] = self._pending
        runner, done = self._runner, have
        step = BLOCK if self.patch.graph.back_edges else chunk_length(self.batch)
        while done < have + need:
            k = min(step, have + need - done)
            runner._advance(fresh[:, :, done:done + k], k)
            runner.start += k
            done += k
        self._pending = fresh[:, :, n:]
        return fresh[:, :, :n]


def _holds_hole(arg) -> bool:
    """Whether a syntax-tree argument holds a template hole anywhere inside it."""
    if isinstance(arg, ast.Hole):
        return True
    if isinstance(arg, (ast.Number, ast.Ref, ast.Symbol)) or arg is None:
        return False
    if isinstance(arg, (list, tuple)):
        return any(_holds_hole(a) for a in arg)
    fields = getattr(arg, "__dataclass_fields__", None)
    if fields:
        return any(_holds_hole(getattr(arg, f)) for f in fields)
    return False
