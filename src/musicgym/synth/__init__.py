"""The Glicol-compatible synth engine: parse, compile, render (batched), and the real engine.

* :class:`Patch` -- code with template holes, compiled once, rendered for (B, P) parameters;
* :func:`render` -- render code once;
* :func:`parse` -- code to syntax tree;
* ``musicgym.synth.reference`` -- the real Glicol engine (npm glicol@0.4.0) via wasmtime.
"""

from musicgym.synth.parse import parse
from musicgym.synth.patch import Patch, render

__all__ = ["Patch", "parse", "render"]
