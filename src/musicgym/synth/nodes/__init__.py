"""The nodes of the NumPy backend, by Glicol name.

``NODES`` maps each supported name to its class; :func:`node_class` raises a clear
:class:`~musicgym.errors.UnsupportedNodeError` for the rest, naming the reference backend where
the real engine runs the node, and saying so where the real engine crashes on it too.
"""

from __future__ import annotations

from musicgym.errors import UnsupportedNodeError
from musicgym.synth.nodes import (
    arith,
    delays,
    envelopes,
    filters,
    instruments,
    plate,
    sampling,
    sequencing,
    sources,
)

NODES: dict[str, type] = {}


def _register(*classes, aliases: dict[str, type] | None = None) -> None:
    for cls in classes:
        NODES[cls.name] = cls
    NODES.update(aliases or {})


_register(sources.Sin, sources.Saw, sources.Squ, sources.Tri, sources.Imp, sources.Noise,
          sources.Sig, aliases={"noiz": sources.Noise, "constsig": sources.Sig})
_register(arith.Mul, arith.Add, arith.Mix, arith.Get, arith.Balance)
_register(envelopes.EnvPerc, envelopes.Adsr)
_register(filters.Lpf, filters.Hpf, filters.OnePole, filters.ApfMsGain,
          aliases={"rhpf": filters.Hpf, "apfgain": filters.ApfMsGain})
_register(delays.DelayN, delays.DelayMs)
_register(sampling.Sampler, sampling.MonoSampler, sampling.PSampler,
          aliases={"sampler": sampling.Sampler})
_register(instruments.Bd, instruments.Sn, instruments.Hh, instruments.SawSynth,
          instruments.SquSynth, instruments.TriSynth)
_register(plate.Plate)
_register(sequencing.Seq, sequencing.Speed, sequencing.Choose, sequencing.Arrange,
          sequencing.Points)

# The real engine runs these, the NumPy backend does not (yet).
REFERENCE_ONLY = {"meta", "script", "eval", "psynth", "msgsynth"}
# glicol@0.4.0 parses these but crashes (a Rust panic) when it runs them.
ENGINE_TRAPS = {"pan", "reverb", "expr", "sendpass"}


def node_class(name: str, source: str | None = None, pos=None) -> type:
    """The NumPy-backend class for node ``name``, or an UnsupportedNodeError that says why."""
    cls = NODES.get(name)
    if cls is not None:
        return cls
    where = {"source": source, "line": pos.line if pos else None,
             "column": pos.column if pos else None}
    if name in ENGINE_TRAPS:
        raise UnsupportedNodeError(
            f"'{name}' is not supported: glicol@0.4.0 parses it but crashes when it runs it, "
            "so neither backend can render it", **where)
    raise UnsupportedNodeError(
        f"'{name}' is not supported by the NumPy backend", **where,
        suggestion="render this code with backend='glicol' (the real Glicol engine)")
