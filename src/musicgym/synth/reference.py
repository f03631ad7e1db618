"""The reference backend: the real Glicol engine, run offline.

It drives ``glicol_wasm.wasm`` from the npm registry's ``glicol@0.4.0`` package with the
``wasmtime`` Python package, exactly as the engine's own AudioWorklet glue does, with live-coding
mode off (code takes effect at the first sample) and a fresh instance per render (no state leaks
from one render to the next). It is the oracle of the conformance tests and a fallback for code
the NumPy backend does not run. It is slow: a Python call per 128-sample block, one instance per
parameter set.

The package is installed by ``make setup`` (``npm install --prefix DIR glicol@0.4.0``) into
``$MUSICGYM_GLICOL_DIR`` (default ``~/.cache/musicgym/glicol``); nothing is downloaded at run time.
"""

from __future__ import annotations

import atexit
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from musicgym.errors import (
    EngineTrapError,
    GlicolSyntaxError,
    MissingReferenceError,
    MissingSampleError,
    ReferenceEngineMissingError,
)

GLICOL_VERSION = "0.4.0"
BLOCK = 128
_RESULT_BYTES = 256
_ENV_VAR = "MUSICGYM_GLICOL_DIR"


def glicol_dir() -> Path:
    """The folder the npm package is installed under (``$MUSICGYM_GLICOL_DIR`` or the default)."""
    env = os.environ.get(_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "musicgym" / "glicol"


def wasm_path() -> Path:
    """Path of ``glicol_wasm.wasm`` inside the installed npm package."""
    return glicol_dir() / "node_modules" / "glicol" / "glicol_wasm.wasm"


def is_installed() -> bool:
    """Whether the real Glicol engine is installed where musicgym looks for it."""
    return wasm_path().is_file()


@lru_cache(maxsize=2)
def _compiled_module(path: str):
    import wasmtime

    engine = wasmtime.Engine()
    return engine, wasmtime.Module.from_file(engine, path)


# free the compiled engine before the interpreter tears down wasmtime's ctypes bindings (else
# its finalisers print "Exception ignored ... 'NoneType' object is not callable" at exit)
atexit.register(_compiled_module.cache_clear)


def _load_module():
    path = wasm_path()
    if not path.is_file():
        raise ReferenceEngineMissingError(
            f"the real Glicol engine is not installed: {path} does not exist. Run `make setup`, "
            f"or `npm install --prefix {glicol_dir()} glicol@{GLICOL_VERSION}`, or set "
            f"{_ENV_VAR} to the folder where it is installed."
        )
    return _compiled_module(str(path))


_PARSE_MSG = re.compile(r"pos\[(\d+)\], line\[(\d+)\], col\[(\d+)\], positives(\[.*?\]), negatives")


class _Instance:
    """One fresh instance of the wasm engine (its Rust globals start from scratch)."""

    def __init__(self, sr: int, bpm: float, seed: int) -> None:
        import wasmtime

        engine, module = _load_module()
        self.store = wasmtime.Store(engine)
        now = wasmtime.Func(self.store, wasmtime.FuncType([], [wasmtime.ValType.f64()]),
                            lambda: 0.0)
        self.instance = wasmtime.Instance(self.store, module, [now])
        exports = self.instance.exports(self.store)
        self.memory = exports["memory"]
        self.fn = {name: exports[name] for name in (
            "alloc", "alloc_uint8array", "process", "update", "add_sample", "live_coding_mode",
            "set_bpm", "set_sr", "set_seed")}
        self.fn["live_coding_mode"](self.store, 0)
        self.fn["set_sr"](self.store, float(sr))
        self.fn["set_seed"](self.store, float(seed))
        self.fn["set_bpm"](self.store, float(bpm))
        self.out_ptr = self.fn["alloc"](self.store, 2 * BLOCK)
        self.in_ptr = self.fn["alloc"](self.store, BLOCK)
        self.result_ptr = self.fn["alloc_uint8array"](self.store, _RESULT_BYTES)

    def _write(self, ptr: int, data: bytes) -> None:
        self.memory.write(self.store, data, ptr)

    def add_sample(self, name: str, frames: np.ndarray, sr: int) -> None:
        """Register a sample (frames: (channels, n)) under ``name`` exactly as given."""
        frames = np.ascontiguousarray(np.atleast_2d(frames), dtype=np.float32)
        channels, _ = frames.shape
        flat = frames.reshape(-1)  # planar: all left frames, then all right
        data_ptr = self.fn["alloc"](self.store, flat.size)
        self._write(data_ptr, flat.tobytes())
        raw = name.encode("utf-8")
        name_ptr = self.fn["alloc_uint8array"](self.store, len(raw))
        self._write(name_ptr, raw)
        self.fn["add_sample"](self.store, name_ptr, len(raw), data_ptr, flat.size, channels,
                              int(sr))

    def update(self, code: str) -> None:
        raw = code.encode("utf-8")
        ptr = self.fn["alloc_uint8array"](self.store, max(1, len(raw)))
        self._write(ptr, raw)
        self.fn["update"](self.store, ptr, len(raw))

    def process(self) -> tuple[np.ndarray, bytes]:
        self.fn["process"](self.store, self.in_ptr, self.out_ptr, 2 * BLOCK, self.result_ptr)
        out = self.memory.read(self.store, self.out_ptr, self.out_ptr + 8 * BLOCK)
        result = self.memory.read(self.store, self.result_ptr, self.result_ptr + _RESULT_BYTES)
        return np.frombuffer(out, dtype=np.float32).reshape(2, BLOCK), bytes(result)


def _raise_engine_error(result: bytes, code: str) -> None:
    kind = result[0]
    message = result[2:].split(b"\x00", 1)[0].decode("utf-8", "replace")
    if kind == 1:
        m = _PARSE_MSG.search(message)
        if m:
            raise GlicolSyntaxError(
                f"the Glicol engine cannot parse this (it expected {m.group(4)})",
                source=code, line=int(m.group(2)), column=int(m.group(3)))
        raise GlicolSyntaxError(f"the Glicol engine cannot parse this: {message}", source=code)
    if kind == 2:
        raise MissingSampleError(f"{message}; load it with samples={{name: file}}")
    if kind == 3:
        raise MissingReferenceError(message)
    raise EngineTrapError(f"the Glicol engine reported error code {kind}: {message}")


def render_reference(
    code: str,
    n_samples: int,
    *,
    sr: int = 44100,
    bpm: float = 120.0,
    seed: int = 42,
    samples: dict[str, tuple[np.ndarray, int]] | None = None,
) -> np.ndarray:
    """Render ``code`` with the real Glicol engine.

    Parameters
    ----------
    code : str
        Glicol code, without template holes.
    n_samples : int
        Number of output frames.
    sr, bpm, seed : keyword-only
        Engine sample rate, tempo and random seed (Glicol's defaults: 44100, 120, 42).
    samples : dict, keyword-only
        ``{name: (frames, sample_rate)}`` with frames of shape (channels, n), registered under
        the name exactly as given (the code writes ``\\name``, so pass ``"\\\\name"``).

    Returns
    -------
    numpy.ndarray, shape (2, n_samples), float32

    Raises
    ------
    GlicolSyntaxError, MissingSampleError, MissingReferenceError
        The engine's error codes 1, 2 and 3.
    EngineTrapError
        The engine crashed (a Rust panic) on this code: it does not support it.
    """
    import wasmtime

    try:
        inst = _Instance(sr, bpm, seed)
        for name, (frames, sample_sr) in (samples or {}).items():
            inst.add_sample(name, frames, sample_sr)
        inst.update(code)
        n_blocks = -(-int(n_samples) // BLOCK)
        out = np.empty((2, max(1, n_blocks) * BLOCK), dtype=np.float32)
        for k in range(n_blocks):
            block, result = inst.process()
            if k == 0 and result[0] != 0:
                _raise_engine_error(result, code)
            out[:, k * BLOCK:(k + 1) * BLOCK] = block
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        raise EngineTrapError(
            "unsupported by the Glicol engine: glicol@0.4.0 crashed (a wasm trap) while running "
            f"this code. First line of the trap: {str(exc).splitlines()[0]}"
        ) from exc
    return out[:, :n_samples]
