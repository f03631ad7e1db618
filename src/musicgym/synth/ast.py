"""The syntax tree of a Glicol program, with line and column kept on every item.

Produced by :func:`musicgym.synth.parse.parse`; consumed by the compiler (``graph``) and by the
template layer, which substitutes holes. Items are small frozen dataclasses; a number that came
from a template hole is a :class:`Hole` and is resolved to a value per parameter set at render
time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pos:
    """A place in the source: 1-based line and column, 0-based character offset."""

    line: int
    column: int
    offset: int


@dataclass(frozen=True)
class Number:
    """A numeric literal; ``text`` is the literal as written."""

    value: float
    text: str
    pos: Pos


@dataclass(frozen=True)
class Hole:
    """A template hole ``{}`` (positional) or ``{name}``; ``index`` is its parameter column."""

    index: int
    name: str
    integer: bool
    pos: Pos


@dataclass(frozen=True)
class Ref:
    """A reference to a chain, ``~name``; ``prefix`` when written ``~name..`` (used by mix)."""

    name: str
    pos: Pos
    prefix: bool = False


@dataclass(frozen=True)
class Symbol:
    """A sample name, looked up verbatim as written (``\\bd`` or ``'bd'``)."""

    name: str
    pos: Pos


@dataclass(frozen=True)
class Rest:
    """A rest ``_`` in a ``seq``."""

    pos: Pos


@dataclass(frozen=True)
class Pattern:
    """``"v@t v@t"(span)``: events (value, time as a fraction of a bar), span in bars or None."""

    events: tuple[tuple[Number | Hole | Symbol, float], ...]
    span: float | None
    pos: Pos


@dataclass(frozen=True)
class SeqNotes:
    """The notes of a ``seq``: compounds of elements (MIDI ints, rests, one-letter refs, holes)."""

    compounds: tuple[tuple[Number | Rest | Ref | Hole, ...], ...]
    pos: Pos


@dataclass(frozen=True)
class Point:
    """One automation point: time in bars plus an offset in seconds, and the value."""

    bars: float
    offset_s: float
    value: Number | Hole


@dataclass(frozen=True)
class Points:
    """``[t=>v, ...]`` with an optional span (``*k`` or ``/k``, in bars) and loop flag ``!``."""

    points: tuple[Point, ...]
    span: float | None
    loop: bool
    pos: Pos


@dataclass(frozen=True)
class Code:
    """Backtick code for ``meta``/``script``/``eval``/``psynth``."""

    text: str
    pos: Pos


Arg = Number | Hole | Ref | Symbol | Pattern | SeqNotes | Points | Code


@dataclass(frozen=True)
class Node:
    """One node of a chain: its name as written and its arguments."""

    name: str
    args: tuple[Arg, ...]
    pos: Pos


@dataclass(frozen=True)
class Chain:
    """``name: node >> node >> ...``; names without ``~`` are output tracks."""

    name: str
    nodes: tuple[Node, ...]
    pos: Pos

    @property
    def is_output(self) -> bool:
        return "~" not in self.name


@dataclass(frozen=True)
class Program:
    """A parsed program: its chains in source order and its template holes by column."""

    source: str
    chains: tuple[Chain, ...]
    holes: tuple[Hole, ...] = field(default=())

    @property
    def hole_names(self) -> tuple[str, ...]:
        """The parameter names, one per column of the parameter matrix."""
        seen: dict[int, str] = {}
        for hole in self.holes:
            seen.setdefault(hole.index, hole.name)
        return tuple(seen[i] for i in sorted(seen))
