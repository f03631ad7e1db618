"""What every node of the NumPy backend is: a stateful processor of batched audio.

A node is built once per render (for B parameter sets at once) and then called chunk by chunk
with ``process(inputs, start, n)``: ``start`` is the absolute sample index since the node was
created (Glicol's nodes all start at sample 0 offline), ``n`` a multiple of Glicol's 128-sample
block except possibly the last chunk. ``inputs`` holds the main (chain) input first, when the node
has one, then the ``~ref`` sidechains in argument order, each of shape (B, C, n) with C = 1 or 2.
Nodes return (B, C, n) float32 with their own channel count.

Following the DDSP split (shared/STYLE.md), nodes take physical values (Hz, seconds, samples);
template parameters arrive already resolved into one value per batch row, shape (B,).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from musicgym.errors import UnsupportedNodeError
from musicgym.synth import ast

BLOCK = 128
F32 = np.float32


@dataclass
class Context:
    """What every node of one render shares: batch size, engine settings, loaded samples."""

    batch: int
    sr: int = 44100
    bpm: float = 120.0
    seed: int = 42
    compat: bool = True
    # name as written in the code (e.g. "\\bd") -> (frames (channels, n) float32, sample rate)
    samples: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)
    # the render's parameter matrix (B, P), for nodes whose structured arguments hold holes
    params: np.ndarray | None = None


def resolve(arg, ctx: Context):
    """A syntax-tree argument as a node receives it (see :class:`Node`): a number or a hole
    as one value per batch row, shape ``(B,)``; ``None`` for a ``~ref``; anything else (a
    pattern, notes, points, a sample name) as parsed."""
    if isinstance(arg, ast.Number):
        return np.full(ctx.batch, arg.value)
    if isinstance(arg, ast.Hole):
        return np.ascontiguousarray(ctx.params[:, arg.index])
    if isinstance(arg, ast.Ref):
        return None
    return arg


class Node:
    """Base class of NumPy-backend nodes. Subclasses set ``channels`` and implement ``process``.

    Parameters
    ----------
    ctx : Context
        The render's shared settings.
    args : list
        The node's arguments in order: ``(B,)`` float64 arrays for numbers and holes, ``None``
        where the argument is a ``~ref`` (its signal arrives in ``inputs``), or the parsed item
        itself (pattern, notes, points, sample name) for structured arguments.
    has_main : bool
        Whether the node has a chain input (it is not the first node of its chain).
    n_refs : int
        Number of ``~ref`` inputs.
    """

    name = "node"
    channels = 1
    # attributes (dotted paths into helper objects) that are the node's running state: what a
    # stream carries over a parameter change (phases, envelope positions, filter memories);
    # every other attribute is a control that ``setup`` derives from the arguments
    state_attrs: tuple[str, ...] = ()
    # True where the state is not one row per parameter set (plate's lanes, arrange's groups)
    rows_shared = False

    def __init__(self, ctx: Context, args: list, has_main: bool, n_refs: int) -> None:
        self.ctx = ctx
        self.args = args
        self.has_main = has_main
        self.n_refs = n_refs
        self.n_inputs = int(has_main) + n_refs
        self.setup()

    def setup(self) -> None:
        """Derive controls and allocate state (override)."""

    @classmethod
    def state_bytes(cls, ctx: Context, args: list) -> float:
        """Bytes of state ``setup`` would allocate for these arguments, computed without
        allocating (override where it grows with an argument: delay lines). The render guard
        adds it up over the graph before any node is built; inf stands for "beyond any limit".
        """
        return 0.0

    def process(self, inputs: list[np.ndarray], start: int, n: int) -> np.ndarray:
        raise NotImplementedError

    def process_into(self, inputs: list[np.ndarray], start: int, n: int,
                     out: np.ndarray) -> bool:
        """Like :meth:`process`, for the graph's last node: write the output's first
        ``out.shape[1]`` channels (1 or 2) straight into ``out``, a (B, C, n) view of the
        render's result, and return True; or return False without touching any state, and
        the runner calls :meth:`process` and copies (the default). Saves the copy where a
        node can do it (``mul``/``add`` of mono signals)."""
        return False

    # streaming -----------------------------------------------------------------------------
    def set_args(self, args: list) -> None:
        """New arguments (new parameter values), keeping the running state: the controls are
        derived again by ``setup`` and the ``state_attrs`` put back (override where the state's
        layout depends on an argument: delay lines)."""
        saved = [get_path(self, name) for name in self.state_attrs]
        self.args = args
        self.setup()
        for name, value in zip(self.state_attrs, saved, strict=True):
            set_path(self, name, value)

    def load_rows(self, rows: np.ndarray, other: Node) -> None:
        """Copy the running state of ``other`` (a node of the same code for ``len(rows)`` rows)
        into rows ``rows`` of this node."""
        for name in self.state_attrs:
            target = get_path(self, name)
            if self.rows_shared:
                target = None
            first = target[0] if isinstance(target, list) else target
            if not isinstance(first, np.ndarray) or first.shape[:1] != (self.ctx.batch,):
                raise UnsupportedNodeError(
                    f"'{self.name}' keeps one state for all rows ({name}): a stream cannot "
                    "restart some rows of it; reset the whole stream instead")
            copy_rows(target, rows, get_path(other, name))

    # helpers ---------------------------------------------------------------------------------
    def zeros(self, n: int, channels: int | None = None) -> np.ndarray:
        return np.zeros((self.ctx.batch, channels or self.channels, n), dtype=F32)


def get_path(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def set_path(obj, path: str, value) -> None:
    *head, last = path.split(".")
    for part in head:
        obj = getattr(obj, part)
    setattr(obj, last, value)


def relayout(ring: np.ndarray, first: np.ndarray, lengths: np.ndarray,
             new_lengths: np.ndarray) -> np.ndarray:
    """Ring buffers (B, >= L) with write positions ``first`` and lengths ``lengths`` as rings of
    ``new_lengths`` starting at position 0: each row keeps its latest ``new_lengths`` samples
    in time order (zeros before the oldest it has)."""
    B = ring.shape[0]
    out = np.zeros((B, max(1, int(np.max(new_lengths)))), dtype=ring.dtype)
    for b in range(B):
        L, f, M = int(lengths[b]), int(first[b]), int(new_lengths[b])
        history = np.concatenate([ring[b, f:L], ring[b, :f]])   # oldest first
        keep = history[max(0, L - M):]
        out[b, M - len(keep):M] = keep
    return out


def copy_rows(target, rows: np.ndarray, source) -> None:
    """``target[rows] = source`` for a state array (or a list of them) whose first axis is the
    batch; a narrower source (a shorter delay line) fills the start of each row."""
    if isinstance(target, list):
        for t, s in zip(target, source, strict=True):
            copy_rows(t, rows, s)
        return
    if target.ndim == 1:
        target[rows] = source
        return
    width = min(target.shape[1], source.shape[1])
    target[rows] = 0
    target[rows, :width] = source[:, :width]


def held_elsewhere(buffer: np.ndarray) -> bool:
    """Whether anything besides one attribute of its owner and the caller's local name holds
    ``buffer`` (or a view of it): call as ``held_elsewhere(out)`` right after
    ``out = self.attribute``. A node reuses its output buffer from chunk to chunk only where
    this is False: then no consumer kept last chunk's output (a feedback edge's previous
    block, a caller's array)."""
    return sys.getrefcount(buffer) > _OWNER_REFS


def _refs(buffer: np.ndarray) -> int:
    return sys.getrefcount(buffer)


class _Owner:
    buffer: np.ndarray


def _owner_refs() -> int:
    """The count :func:`held_elsewhere` sees for a buffer held only by an attribute and a
    local name, measured by code of the same shape (so it stays right where an interpreter
    counts the references of locals or arguments differently)."""
    owner = _Owner()
    owner.buffer = np.empty(1)
    out = owner.buffer
    return _refs(out)


_OWNER_REFS = _owner_refs()


def mono(x: np.ndarray) -> np.ndarray:
    """Channel 0 of an input, shape (B, n) (mono nodes fed stereo use only the left)."""
    return x[:, 0, :]


def to_stereo(x: np.ndarray) -> np.ndarray:
    """A (B, C, n) signal as (B, 2, n): a mono signal goes to both channels.

    The result may be a read-only view whose two channels share memory (see :func:`is_dual`):
    nodes never write into their inputs.
    """
    if x.shape[1] == 2:
        return x
    return np.broadcast_to(x, (x.shape[0], 2, x.shape[2]))


def is_dual(x: np.ndarray) -> bool:
    """Whether both channels of x are the same memory (a mono signal, or its stereo view)."""
    return x.shape[1] == 1 or x.strides[1] == 0


def dual(y: np.ndarray) -> np.ndarray:
    """A (B, 1, n) result as a (B, 2, n) stereo view of identical channels."""
    return np.broadcast_to(y, (y.shape[0], 2, y.shape[2]))


def left_only_buffer(batch: int, n: int) -> np.ndarray:
    """A zeroed (B, 2, n) output for a node that writes only its left channel (kernels fill
    ``out[:, 0, :]`` in place; the untouched right channel costs no memory traffic)."""
    return np.zeros((batch, 2, n), dtype=F32)


def column(value: np.ndarray | float, batch: int, dtype=np.float64) -> np.ndarray:
    """A per-row parameter as a contiguous (B,) array."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=dtype), (batch,)))
