"""Parse Glicol code (the grammar of npm ``glicol@0.4.0``) into a syntax tree.

The grammar, from ``glicol.pest`` and checked against the real engine (reference/glicol-spec.md §2):

* a program is lines ``name: node >> node ...`` separated by newlines and/or ``;``; a chain goes
  on over the next line only when that line starts with ``>>``;
* ``//`` comments, whole-line or at the end of a line; whitespace is space, tab, ``,`` and ``|``;
* names match ``(~|_)?[a-z][a-z0-9_]*``; a reference may end in ``..`` (prefix match, for mix);
* integers ``[+-]?[0-9]+``; floats need digits before a ``.``: ``1.``, ``-0.5``, ``1.5e2``;
* samples ``\\name`` or ``'name'``; patterns ``"v@t v@t"(span)``; points ``[t=>v, ...]*k!``;
  backtick code for ``meta``/``script``/``eval``/``psynth``;
* template holes ``{}`` and ``{name}`` (musicgym's addition) wherever a number stands.

Every error is a :class:`~musicgym.errors.GlicolError` subclass with line, column, the line with a
caret and, where it helps, a suggestion.
"""

from __future__ import annotations

import difflib
import re

from musicgym.errors import ArgumentError, GlicolSyntaxError, UnknownNodeError
from musicgym.synth.ast import (
    Arg,
    Chain,
    Code,
    Hole,
    Node,
    Number,
    Pattern,
    Point,
    Points,
    Pos,
    Program,
    Ref,
    Rest,
    SeqNotes,
    Symbol,
)

# Argument kinds: "num" number or hole; "numref" number, hole or ~ref; "numrefpat" adds a
# pattern; "int" integer literal; "ref" ~ref; "sym" sample name; "code" backtick code.
# A trailing "+" repeats the last kind (at least once).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "sin": ("numref",), "saw": ("numref",), "squ": ("numref",), "tri": ("numref",),
    "imp": ("num",), "noise": ("num",), "noiz": ("num",),
    "sig": ("numrefpat",), "constsig": ("numrefpat",),
    "mul": ("numref",), "add": ("numref",), "pan": ("numref",),
    "mix": ("mixref+",), "get": ("ref",), "balance": ("ref", "ref"),
    "envperc": ("num", "num"), "adsr": ("num", "num", "num", "num"),
    "lpf": ("numrefpat", "num"), "hpf": ("numref", "num"), "rhpf": ("numref", "num"),
    "onepole": ("numref",), "apfmsgain": ("numref", "num"), "apfgain": ("numref", "num"),
    "delayn": ("numref",), "delayms": ("numref",), "plate": ("num",),
    "reverb": ("num", "num", "num", "num", "num"),
    "seq": ("notes",), "speed": ("num",), "choose": ("int+",), "arrange": ("refnum+",),
    "sp": ("sym",), "sampler": ("sym",), "spmono": ("sym",), "psampler": ("sympat",),
    "bd": ("num",), "sn": ("num",), "hh": ("num",),
    "sawsynth": ("num", "num"), "squsynth": ("num", "num"), "trisynth": ("num", "num"),
    "meta": ("code",), "script": ("code",), "eval": ("code",), "psynth": ("code",),
    "expr": ("code",), "msgsynth": ("sym", "num", "num"), "sendpass": ("ref+",),
}

_WS = " \t,|"
_NAME = re.compile(r"[~_]?[a-z][a-z0-9_]*")
_FLOAT = re.compile(r"[+-]?[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?")
_INT = re.compile(r"[+-]?[0-9]+")  # ASCII only: str.isdigit() also admits "①", int() does not
_HOLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)?\}")
# a new chain may follow the previous one after mere whitespace: `o: sin 440 p: saw 2`
_NEXT_CHAIN = re.compile(r"[~_]?[a-z][a-z0-9_]*[ \t,|]*:")
_TIME_OFFSET = re.compile(r"([+-])([0-9]+(?:\.[0-9]*)?)_(ms|s)")


class _Parser:
    def __init__(self, source: str) -> None:
        self.src = source
        self.i = 0
        self.holes: list[Hole] = []
        self._named: dict[str, int] = {}
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]

    # -- positions and errors -------------------------------------------------------------
    def pos(self, offset: int | None = None) -> Pos:
        offset = self.i if offset is None else offset
        lo, hi = 0, len(self._line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return Pos(lo + 1, offset - self._line_starts[lo] + 1, offset)

    def error(self, message: str, offset: int | None = None, *, cls=GlicolSyntaxError,
              suggestion: str | None = None):
        p = self.pos(offset)
        return cls(message, source=self.src, line=p.line, column=p.column,
                   suggestion=suggestion)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.src[j] if j < len(self.src) else ""

    def at_line_end(self) -> bool:
        c = self.peek()
        return c in ("", "\n", ";") or self.src.startswith("//", self.i) or \
            _NEXT_CHAIN.match(self.src, self.i) is not None

    def skip_ws(self) -> bool:
        start = self.i
        while self.peek() and self.peek() in _WS:
            self.i += 1
        return self.i > start

    def skip_comment(self) -> None:
        if self.src.startswith("//", self.i):
            while self.peek() not in ("", "\n"):
                self.i += 1

    def describe_here(self) -> str:
        if not self.peek():
            return "the end of the code"
        if self.peek() == "\n":
            return "the end of the line"
        return repr(self.src[self.i:self.i + 12].split("\n")[0])

    # -- program structure -----------------------------------------------------------------
    def program(self) -> Program:
        # block = (newline|ws)* ((line|comment) ws* ";"? ws* (newline ws*)*)* EOI: a separator
        # is optional (whitespace alone separates two chains), and at most one ';' follows each
        chains: list[Chain] = []
        self.skip_ws_nl()
        while self.peek():
            if self.src.startswith("//", self.i):
                self.skip_comment()
            else:
                if self.peek() == ";":
                    raise self.error("a ';' must follow a chain",
                                     suggestion="remove the extra ';'")
                chains.append(self.chain())
            self.skip_ws()
            if self.peek() == ";":
                self.i += 1
            self.skip_ws_nl()
        return Program(self.src, tuple(chains), tuple(self.holes))

    def chain(self) -> Chain:
        start = self.i
        m = _NAME.match(self.src, self.i)
        if not m:
            hint = None
            word = re.match(r"[A-Za-z_~][A-Za-z0-9_]*", self.src[self.i:])
            if word and word.group(0).lower() != word.group(0):
                hint = "chain names are lower case: write " + word.group(0).lower()
            raise self.error(f"expected a chain name such as 'out' or '~lfo', found "
                             f"{self.describe_here()}", suggestion=hint)
        name = m.group(0)
        self.i = m.end()
        self.skip_ws()
        if self.peek() != ":":
            raise self.error(f"expected ':' after the chain name {name!r}, found "
                             f"{self.describe_here()}",
                             suggestion=f"write '{name}: sin 440' to define a chain")
        self.i += 1
        self.skip_ws()
        nodes = [self.node()]
        while True:
            save = self.i
            self.skip_ws()
            if self.src.startswith(">>", self.i):
                self.i += 2
            elif self.peek() == "\n":
                # a chain goes on over the next line only if that line starts with >>
                j = self.i + 1
                while j < len(self.src) and self.src[j] in _WS:
                    j += 1
                if self.src.startswith(">>", j):
                    self.i = j + 2
                else:
                    self.i = save
                    break
            else:
                self.i = save
                break
            self.skip_ws()
            if self.at_line_end():
                raise self.error("a chain cannot end with '>>': a node must follow it",
                                 suggestion="put the next node on the same line after '>>', "
                                            "or start the continuation line with '>>'")
            nodes.append(self.node())
        return Chain(name, tuple(nodes), self.pos(start))

    # -- nodes -------------------------------------------------------------------------------
    def node(self) -> Node:
        start = self.i
        if self.peek() == "~":
            ref = self.reference()
            return Node("get", (ref,), self.pos(start))
        if self.peek() == "[":
            # automation points are written as a bare list, `o: [0=>0.1, 1/2=>0.9]*1`
            return Node("points", (self.points(),), self.pos(start))
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.src, self.i)
        if not m:
            raise self.error(f"expected a node such as 'sin 440', found {self.describe_here()}")
        name = m.group(0)
        if name not in SIGNATURES:
            after = self.src[m.end():m.end() + 1]
            if _NAME.fullmatch(name) and (after == "" or after in "\n;>" or
                                         self._rest_of_node_empty(m.end())):
                # a bare name stands for `get name` (the engine treats it as a reference)
                self.i = m.end()
                return Node("get", (Ref(name, self.pos(start)),), self.pos(start))
            close = difflib.get_close_matches(name.lower(), SIGNATURES, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else \
                "run `musicgym nodes` for the list of nodes"
            raise self.error(f"unknown node {name!r}", start, cls=UnknownNodeError,
                             suggestion=hint)
        self.i = m.end()
        args = self.arguments(name, start)
        return Node(name, tuple(args), self.pos(start))

    def _rest_of_node_empty(self, j: int) -> bool:
        while j < len(self.src) and self.src[j] in _WS:
            j += 1
        return j >= len(self.src) or self.src[j] in "\n;" or self.src.startswith(">>", j) \
            or self.src.startswith("//", j)

    def arguments(self, name: str, start: int) -> list[Arg]:
        kinds = SIGNATURES[name]
        args: list[Arg] = []
        for k, kind in enumerate(kinds):
            repeat = kind.endswith("+")
            base = kind.rstrip("+")
            while True:
                had_ws = self.skip_ws()
                if self.at_line_end() or self.src.startswith(">>", self.i):
                    if repeat and k == len(kinds) - 1 and args and len(args) >= len(kinds):
                        return args
                    raise self._missing(name, kinds, args, start)
                if not had_ws:
                    raise self.error(f"put a space between '{name}' and its argument")
                args.extend(self.argument(base, name))
                if not repeat:
                    break
                save = self.i
                self.skip_ws()
                if self.at_line_end() or self.src.startswith(">>", self.i):
                    self.i = save
                    return args
                self.i = save
        save = self.i
        self.skip_ws()
        if not (self.at_line_end() or self.src.startswith(">>", self.i)):
            raise self.error(f"too many arguments for '{name}': it takes "
                             f"{_describe(kinds)}", cls=ArgumentError,
                             suggestion=f"write it as: {name} {_usage(name)}")
        self.i = save
        return args

    def _missing(self, name, kinds, args, start):
        return self.error(f"'{name}' takes {_describe(kinds)}; found {len(args)} "
                          f"argument{'s' if len(args) != 1 else ''}", start, cls=ArgumentError,
                          suggestion=f"write it as: {name} {_usage(name)}")

    def argument(self, kind: str, node: str) -> list[Arg]:
        c = self.peek()
        if kind == "notes":
            return [self.seq_notes()]
        if kind == "code":
            return [self.code()]
        if kind == "points":
            return [self.points()]
        if kind == "sym":
            return [self.symbol()]
        if kind == "sympat":
            return [self.pattern(symbols=True)]
        if kind in ("ref", "mixref"):
            return [self.reference(allow_prefix=kind == "mixref")]
        if kind == "refnum":
            ref = self.reference()
            if not self.skip_ws() or self.at_line_end():
                raise self.error("arrange takes pairs of a ~reference and a number of bars",
                                 cls=ArgumentError, suggestion="write: arrange ~a 2 ~b 1")
            return [ref, self.number()]
        if kind == "int":
            return [self.number(integer_only=True)]
        if c == "~" and kind in ("numref", "numrefpat"):
            return [self.reference()]
        if c == '"' and kind == "numrefpat":
            return [self.pattern(symbols=False)]
        return [self.number()]

    # -- leaves ------------------------------------------------------------------------------
    def reference(self, allow_prefix: bool = False) -> Ref:
        start = self.i
        m = _NAME.match(self.src, self.i)
        if not m or not m.group(0).startswith("~"):
            raise self.error(f"expected a reference such as '~lfo', found {self.describe_here()}")
        self.i = m.end()
        prefix = False
        if allow_prefix and self.src.startswith("..", self.i):
            self.i += 2
            prefix = True
        return Ref(m.group(0), self.pos(start), prefix)

    def hole(self, integer: bool) -> Hole:
        start = self.i
        m = _HOLE.match(self.src, self.i)
        if not m:
            raise self.error("a template hole is written {} or {name}")
        self.i = m.end()
        name = m.group(1)
        if name is None:
            index = len({h.index for h in self.holes})
            name = str(index)
            while name in self._named:
                name += "_"
        elif name in self._named:
            index = self._named[name]
        else:
            index = len({h.index for h in self.holes})
        self._named.setdefault(name, index)
        hole = Hole(index, name, integer, self.pos(start))
        self.holes.append(hole)
        return hole

    def number(self, integer_only: bool = False) -> Number | Hole:
        start = self.i
        if self.peek() == "{":
            return self.hole(integer=integer_only)
        fm = _FLOAT.match(self.src, self.i)
        im = _INT.match(self.src, self.i)
        if fm and not integer_only:
            self.i = fm.end()
            return Number(float(fm.group(0)), fm.group(0), self.pos(start))
        if im and not (self.peek_at(im.end()) == "."):
            if self.peek_at(im.end()).isalpha() or self.peek_at(im.end()) == "_":
                hint = "exponents need a decimal point: write 1.0e3, not 1e3" \
                    if self.peek_at(im.end()) in "eE" else None
                raise self.error(f"{self.describe_here()} is not a number", suggestion=hint)
            self.i = im.end()
            return Number(float(im.group(0)), im.group(0), self.pos(start))
        if integer_only:
            raise self.error(f"expected an integer, found {self.describe_here()}",
                             cls=ArgumentError)
        hint = None
        if self.peek() == "." or (self.peek() in "+-" and self.peek(1) == "."):
            hint = "floats need a digit before the point: write 0.5, not .5"
        elif re.match(r"[+-]?[0-9]+[eE]", self.src[self.i:]):
            hint = "exponents need a decimal point: write 1.0e3, not 1e3"
        elif re.match(r"[a-z]", self.peek()):
            hint = "to use another chain's signal here, write a reference: ~name"
        raise self.error(f"expected a number, found {self.describe_here()}", suggestion=hint)

    def peek_at(self, j: int) -> str:
        return self.src[j] if j < len(self.src) else ""

    def symbol(self) -> Symbol:
        start = self.i
        if self.peek() == "\\":
            m = re.compile(r"\\[A-Za-z0-9_]*").match(self.src, self.i)
        elif self.peek() == "'":
            m = re.compile(r"'[^'\n]*'").match(self.src, self.i)
        else:
            m = None
        if not m:
            raise self.error(f"expected a sample name such as \\bd, found {self.describe_here()}",
                             suggestion="sample names start with a backslash: sp \\bd")
        self.i = m.end()
        return Symbol(m.group(0), self.pos(start))

    def code(self) -> Code:
        start = self.i
        if self.peek() != "`":
            raise self.error("expected code in backticks, e.g. `output.pad(128, 0.0)`")
        end = self.src.find("`", self.i + 1)
        if end < 0:
            raise self.error("this backtick code is never closed", start)
        self.i = end + 1
        return Code(self.src[start + 1:end], self.pos(start))

    def seq_notes(self) -> SeqNotes:
        start = self.i
        compounds = []
        while True:
            elems: list = []
            while True:
                c = self.peek()
                p = self.pos()
                if c == "_":
                    self.i += 1
                    elems.append(Rest(p))
                elif c == "~":
                    m = re.compile(r"~[a-z]").match(self.src, self.i)
                    if not m:
                        raise self.error("a seq note reference is one lower-case letter: ~a")
                    self.i = m.end()
                    if self.peek().isalnum():
                        raise self.error("a seq note reference is a single lower-case letter "
                                         "such as ~a", p.offset)
                    elems.append(Ref(m.group(0), p))
                elif c == "{":
                    elems.append(self.hole(integer=True))
                elif _INT.match(self.src, self.i):
                    m = _INT.match(self.src, self.i)
                    if self.peek_at(m.end()) == ".":
                        raise self.error("seq notes are integer MIDI numbers", m.end(),
                                         cls=ArgumentError)
                    self.i = m.end()
                    elems.append(Number(float(m.group(0)), m.group(0), p))
                else:
                    break
            if not elems:
                raise self.error(f"expected seq notes (MIDI numbers, _ or ~x), found "
                                 f"{self.describe_here()}", cls=ArgumentError,
                                 suggestion="write e.g. seq 60 _ 62_64 67")
            compounds.append(tuple(elems))
            save = self.i
            if not self.skip_ws() or self.at_line_end() or self.src.startswith(">>", self.i):
                self.i = save
                break
        return SeqNotes(tuple(compounds), self.pos(start))

    def pattern(self, symbols: bool) -> Pattern:
        start = self.i
        if self.peek() != '"':
            raise self.error('expected a pattern such as "1@0 2@0.5"(1)')
        end = self.src.find('"', self.i + 1)
        if end < 0 or "\n" in self.src[self.i:end]:
            raise self.error("this pattern's quote is never closed", start)
        self.i += 1
        events = []
        while True:
            self.skip_ws()
            if self.i >= end:
                break
            value = self.symbol() if symbols else self.number()
            if self.peek() != "@":
                raise self.error("each pattern event is value@time, e.g. 440@0.5")
            self.i += 1
            t = self.number()
            if isinstance(t, Hole):
                raise self.error("pattern times cannot be template holes", t.pos.offset,
                                 cls=ArgumentError)
            events.append((value, t.value))
        self.i = end + 1
        span = None
        if self.peek() == "(":
            close = self.src.find(")", self.i)
            if close < 0:
                raise self.error("this pattern's '(' is never closed")
            self.i += 1
            num = self.number()
            if isinstance(num, Hole):
                raise self.error("a pattern's span cannot be a template hole", cls=ArgumentError)
            if self.peek() != ")":
                raise self.error("expected ')' after the pattern's span in bars")
            self.i += 1
            span = num.value
        return Pattern(tuple(events), span, self.pos(start))

    def points(self) -> Points:
        start = self.i
        if self.peek() != "[":
            raise self.error("expected automation points such as [0=>0.1, 1/2=>0.5]*1")
        self.i += 1
        pts = []
        while True:
            self.skip_ws_nl()
            if self.peek() == "]":
                self.i += 1
                break
            bars = self.point_time()
            self.skip_ws()
            if not self.src.startswith("=>", self.i):
                raise self.error("each point is time=>value, e.g. 1/2=>0.5")
            self.i += 2
            self.skip_ws()
            value = self.number()
            pts.append(Point(bars[0], bars[1], value))
            self.skip_ws_nl()
            if not self.peek():
                raise self.error("this '[' is never closed", start)
        if not pts:
            raise self.error("points need at least one point", start, cls=ArgumentError)
        span = None
        if self.peek() in "*/" and self.peek():
            op = self.peek()
            self.i += 1
            k = self.number()
            if isinstance(k, Hole):
                raise self.error("the span of points cannot be a template hole",
                                 cls=ArgumentError)
            span = k.value if op == "*" else 1.0 / k.value if k.value else float("inf")
        loop = False
        if self.peek() == "!":
            self.i += 1
            loop = True
        return Points(tuple(pts), span, loop, self.pos(start))

    def skip_ws_nl(self) -> None:
        while self.peek() and self.peek() in _WS + "\n":
            self.i += 1

    def point_time(self) -> tuple[float, float]:
        m = re.compile(r"([0-9]+)/([0-9]+)").match(self.src, self.i)
        if m:
            self.i = m.end()
            if int(m.group(2)) == 0:
                raise self.error("a point time a/b needs b > 0", cls=ArgumentError)
            bars = int(m.group(1)) / int(m.group(2))
        else:
            num = self.number()
            if isinstance(num, Hole):
                raise self.error("point times cannot be template holes", cls=ArgumentError)
            bars = num.value
        offset = 0.0
        m = _TIME_OFFSET.match(self.src, self.i)
        if m:
            self.i = m.end()
            offset = float(m.group(2)) * (1 if m.group(1) == "+" else -1)
            if m.group(3) == "ms":
                offset /= 1000.0
        return bars, offset


def _describe(kinds: tuple[str, ...]) -> str:
    words = {"num": "a number", "numref": "a number or ~ref", "numrefpat":
             "a number, ~ref or pattern", "ref": "a ~ref", "mixref": "~refs", "int": "integers",
             "notes": "notes", "sym": "a sample name", "sympat": "a sample pattern",
             "points": "points", "code": "backtick code", "refnum": "~ref/bars pairs"}
    parts = [words[k.rstrip("+")] + (" (one or more)" if k.endswith("+") else "") for k in kinds]
    return f"{len(kinds)} argument{'s' if len(kinds) != 1 else ''}: " + ", ".join(parts)


_USAGE = {
    "envperc": "0.01 0.2", "adsr": "0.01 0.1 0.5 0.3", "lpf": "1000.0 1.0", "hpf": "1000.0 1.0",
    "rhpf": "1000.0 1.0", "apfmsgain": "10.0 0.5", "apfgain": "10.0 0.5", "balance": "~l ~r",
    "mix": "~a ~b", "get": "~a", "seq": "60 _ 62_64 67", "choose": "60 64 67",
    "arrange": "~a 2 ~b 1", "sp": "\\bd", "sampler": "\\bd", "spmono": "\\bd",
    "psampler": '"\\bd@0 \\sn@0.5"(1)', "sawsynth": "0.01 0.1", "squsynth": "0.01 0.1",
    "trisynth": "0.01 0.1", "meta": "`output.pad(128, 0.0)`", "msgsynth": "\\saw 0.01 0.1",
    "reverb": "0.5 0.5 0.5 0.5 0.5", "noise": "42", "imp": "2", "plate": "0.1",
}


def _usage(name: str) -> str:
    return _USAGE.get(name, "440" if SIGNATURES[name][0].startswith("num") else "...")


def parse(source: str) -> Program:
    """Parse Glicol code into a :class:`~musicgym.synth.ast.Program`.

    Parameters
    ----------
    source : str
        Glicol code, possibly with template holes ``{}`` / ``{name}``.

    Returns
    -------
    Program
        Chains in source order (a duplicate name keeps both here; the compiler keeps the last),
        and the holes in order of appearance.

    Raises
    ------
    GlicolSyntaxError, UnknownNodeError, ArgumentError
        With line, column, the offending line with a caret, and a suggestion.
    """
    if not isinstance(source, str):
        raise TypeError(f"Glicol code must be a str, got {type(source).__name__}")
    return _Parser(source).program()
