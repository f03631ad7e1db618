"""Compile a parsed Glicol program into a node graph and run it, batched, with NumPy.

The graph follows the real engine (reference/glicol-spec.md §1): chains named without ``~`` are
output tracks summed into the sink; ``~ref`` arguments add an edge from the last node of the
referenced chain; only what the sink reaches is computed; nodes run in depth-first post-order
from the sink, and an edge that closes a cycle delivers its source's previous 128-sample block.

Graphs without cycles are run in long chunks (every node keeps its state between chunks, and
block-dependent behaviour is computed from absolute sample indices), graphs with cycles block by
block, as the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicgym.errors import MissingReferenceError
from musicgym.synth import ast
from musicgym.synth.nodes import node_class
from musicgym.synth.nodes.base import BLOCK, F32, Context

CHUNK = 128 * 128
# samples per chunk x batch rows (one node's float32 chunk near 2 MiB): the per-chunk cost
# (Python, kernel set-up) against cache misses. Half of it, twice the chunks, made the kick
# and FM examples 5 % slower at B = 64 (paired runs), a quarter of it 5 % slower still;
# twice it was slower again (5 % for the kick)
CHUNK_ROWS_SAMPLES = 1 << 19
# one (B, 2, chunk) float32 buffer per node, with the output counted twice, bounded the peaks
# measured with tracemalloc (20-node chains up to B = 10^5: estimate 1.2-1.7x the peak)
_TEMPORARIES = 1


def chunk_length(batch: int, rows_samples: int | None = None) -> int:
    """Samples per chunk for an acyclic graph: a multiple of 128 between 1024 and CHUNK
    (``rows_samples``: samples x rows per chunk, default CHUNK_ROWS_SAMPLES)."""
    rows_samples = CHUNK_ROWS_SAMPLES if rows_samples is None else rows_samples
    return int(min(CHUNK, max(1024, (rows_samples // max(1, batch)) // 128 * 128)))


@dataclass
class _NodeSite:
    """A node's place in the graph: its syntax, and its inputs as node indices."""

    syntax: ast.Node
    chain: str
    main: int | None
    refs: list[int]


class Graph:
    """The compiled, parameter-independent structure of a program.

    Parameters
    ----------
    program : ast.Program
        The parsed program.

    Raises
    ------
    MissingReferenceError
        A ``~ref`` names no chain.
    UnsupportedNodeError
        A node the NumPy backend does not run (the message names the reference backend).
    """

    def __init__(self, program: ast.Program) -> None:
        self.program = program
        chains: dict[str, ast.Chain] = {}
        for chain in program.chains:
            chains.pop(chain.name, None)  # a duplicate name replaces the earlier chain
            chains[chain.name] = chain
        self.chains = chains
        self.sites: list[_NodeSite] = []
        last: dict[str, int] = {}
        for chain in chains.values():
            prev = None
            for node in chain.nodes:
                node_class(node.name, program.source, node.pos)  # fail early if unsupported
                self.sites.append(_NodeSite(node, chain.name, prev, []))
                prev = len(self.sites) - 1
            last[chain.name] = prev
        for site in self.sites:
            # the engine keys a node's inputs by source node: a repeated source counts once
            refs = []
            for name in self._ref_names(site.syntax, chains):
                src = last[name]
                if src not in refs and src != site.main:
                    refs.append(src)
            site.refs = refs
        self.outputs = [last[c.name] for c in chains.values() if c.is_output]
        self.order, self.back_edges = self._schedule()
        # the node that may write the render's result itself (Node.process_into): the only
        # output, run last, whose chunk no other node reads (no feedback edge leaves it)
        self.direct = self.outputs[0] if len(self.outputs) == 1 and \
            self.order[-1] == self.outputs[0] and \
            not any(src == self.outputs[0] for src, _ in self.back_edges) else None

    def _ref_names(self, node: ast.Node, chains: dict) -> list[str]:
        names = []
        for arg in node.args:
            refs = [arg] if isinstance(arg, ast.Ref) else []
            if isinstance(arg, ast.SeqNotes):
                refs = [e for comp in arg.compounds for e in comp if isinstance(e, ast.Ref)]
            for ref in refs:
                if ref.prefix:
                    matched = [name for name in chains if name.startswith(ref.name)]
                    if not matched:
                        raise self._missing(ref)
                    names.extend(matched)
                elif ref.name in chains:
                    names.append(ref.name)
                else:
                    raise self._missing(ref)
        return names

    def _missing(self, ref: ast.Ref) -> MissingReferenceError:
        from difflib import get_close_matches

        close = get_close_matches(ref.name, list(self.chains), n=1)
        hint = f"did you mean '{close[0]}'?" if close else \
            f"define it on its own line, e.g. '{ref.name}: sin 1.0'"
        return MissingReferenceError(f"there is no chain named {ref.name}",
                                     source=self.program.source, line=ref.pos.line,
                                     column=ref.pos.column, suggestion=hint)

    def memory_bytes(self, ctx: Context, resolve, n_samples: int) -> tuple[float, str]:
        """Estimated peak bytes of running this graph for ``ctx.batch`` rows, and its largest part.

        Counts what :class:`Runner` holds at once, besides the output: every node's chunk buffer
        (with room for the temporaries its ``process`` makes) and every node's state
        (:meth:`Node.state_bytes`: delay lines grow with their argument). Nothing is allocated.
        """
        step = BLOCK if self.back_edges else chunk_length(ctx.batch)
        step = min(step, -(-n_samples // BLOCK) * BLOCK)
        total, largest, what = 0.0, 0.0, "the output"
        for i in self.order:
            site = self.sites[i]
            cls = node_class(site.syntax.name, self.program.source, site.syntax.pos)
            args = [resolve(arg) for arg in site.syntax.args]
            buffers = _TEMPORARIES * ctx.batch * 2 * step * 4.0
            state = cls.state_bytes(ctx, args)
            total += buffers + state
            if buffers + state > largest:
                largest = buffers + state
                pos = site.syntax.pos
                what = f"'{site.syntax.name}' at line {pos.line}, column {pos.column} " \
                    f"({(buffers + state) / 2**20:.0f} MiB for {ctx.batch} rows)"
        return total, what

    def inputs_of(self, i: int) -> list[int]:
        site = self.sites[i]
        return ([site.main] if site.main is not None else []) + site.refs

    def _schedule(self) -> tuple[list[int], set[tuple[int, int]]]:
        """Depth-first post-order from the sink; edges into a node on the stack are back edges."""
        order: list[int] = []
        state: dict[int, int] = {}  # 1 on the stack, 2 done
        back: set[tuple[int, int]] = set()
        for root in self.outputs:
            if root in state:
                continue
            stack = [(root, iter(self.inputs_of(root)))]
            state[root] = 1
            while stack:
                node, it = stack[-1]
                for src in it:
                    if state.get(src) == 1:
                        back.add((src, node))
                    elif src not in state:
                        state[src] = 1
                        stack.append((src, iter(self.inputs_of(src))))
                        break
                else:
                    stack.pop()
                    state[node] = 2
                    order.append(node)
        return order, back


class Runner:
    """One render's live node instances for a batch of parameter sets."""

    def __init__(self, graph: Graph, ctx: Context, resolve,
                 chunk_rows_samples: int | None = None) -> None:
        self.graph = graph
        self.chunk_rows_samples = chunk_rows_samples  # None: CHUNK_ROWS_SAMPLES
        self.ctx = ctx
        self.nodes = {}
        for i in graph.order:
            site = graph.sites[i]
            cls = node_class(site.syntax.name, graph.program.source, site.syntax.pos)
            args = [resolve(arg) for arg in site.syntax.args]
            self.nodes[i] = cls(ctx, args, site.main is not None, len(site.refs))
        self.prev: dict[int, np.ndarray] = {}
        self.start = 0

    def run(self, out: np.ndarray, progress=None) -> None:
        """Fill ``out`` (B, 2, n) with the summed output tracks (B, 1, n: their left channel)."""
        n_total = out.shape[-1]
        if self.graph.back_edges:
            # with feedback the engine's 128-sample blocks are observable: run whole blocks
            padded = -(-n_total // BLOCK) * BLOCK
            target = out if padded == n_total else np.empty(out.shape[:2] + (padded,), F32)
            step = BLOCK
        else:
            padded, target, step = n_total, out, chunk_length(self.ctx.batch,
                                                              self.chunk_rows_samples)
        while self.start < padded:
            n = min(step, padded - self.start)
            self._advance(target[:, :, self.start:self.start + n], n)
            self.start += n
            if progress is not None:
                progress.update(min(n, max(0, n_total - self.start + n)))
        if target is not out:
            out[...] = target[:, :, :n_total]

    def _advance(self, out: np.ndarray, n: int) -> None:
        g = self.graph
        current: dict[int, np.ndarray] = {}
        written = False
        for i in g.order:
            ins = []
            for src in g.inputs_of(i):
                if (src, i) in g.back_edges:
                    prev = self.prev.get(src)
                    ins.append(prev if prev is not None else
                               np.zeros((self.ctx.batch, self.nodes[src].channels, n), F32))
                else:
                    ins.append(current[src])
            if i == g.direct and self.nodes[i].process_into(ins, self.start, n, out):
                written = True  # the one output node wrote its result into out itself
            else:
                current[i] = self.nodes[i].process(ins, self.start, n)
        if g.back_edges:
            self.prev = {src: current[src] for src, _ in g.back_edges}
        if written:
            return
        for k, i in enumerate(g.outputs):
            y = current[i][:, :out.shape[1]]  # out may hold the left channel only
            if k == 0:
                out[...] = y
            else:
                out += y
        if not g.outputs:
            out[...] = 0.0
