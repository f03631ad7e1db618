"""A generator of random valid Glicol programs from the subset the NumPy backend runs.

Programs mix sources, LFO references, arithmetic, envelopes, filters, delays, mixes, sequencers,
samplers and feedback, with seeded random arguments in musically sensible ranges (stable
filters, audible frequencies), so that a difference between the backends is a real difference.
"""

from __future__ import annotations

import numpy as np

from musicgym.synth.nodes import NODES


def _f(r: np.random.Generator, lo: float, hi: float) -> str:
    return f"{r.uniform(lo, hi):.3f}"


def _source(r: np.random.Generator, lfos: list[str]) -> str:
    kinds = ["sin", "saw", "squ", "tri", "imp", "noise", "sig"]
    if "seq" in NODES:
        kinds += ["seq", "seq"]
    kind = kinds[r.integers(len(kinds))]
    if kind in ("sin", "saw", "squ", "tri"):
        if lfos and r.random() < 0.3:
            return f"{kind} {lfos[r.integers(len(lfos))]}"
        return f"{kind} {_f(r, 30, 3000)}"
    if kind == "imp":
        return f"imp {_f(r, 0.5, 30)}"
    if kind == "noise":
        return f"noise {int(r.integers(0, 1000))}"
    if kind == "sig":
        return f"sig {_f(r, -1, 1)}"
    compounds = []
    for _ in range(int(r.integers(1, 5))):
        elements, last_int = [], False
        for _ in range(int(r.integers(1, 4))):
            if last_int or r.random() < 0.3:  # two integers cannot touch: 6064 is one note
                elements.append("_")
                last_int = False
            else:
                elements.append(str(int(r.integers(36, 84))))
                last_int = True
        compounds.append("".join(elements))
    return "seq " + " ".join(compounds)


def _processor(r: np.random.Generator, lfos: list[str], ctrls: list[str]) -> str:
    kinds = ["mul", "add", "lpf", "hpf", "onepole", "envperc", "delayn", "delayms", "apfmsgain",
             "mul_ref", "lpf_ref"]
    if "sawsynth" in NODES:
        kinds += ["synth"]
    if "plate" in NODES:
        kinds += ["plate"]
    kind = kinds[r.integers(len(kinds))]
    if kind == "mul":
        return f"mul {_f(r, -1.5, 1.5)}"
    if kind == "add":
        return f"add {_f(r, -0.5, 0.5)}"
    if kind == "lpf":
        return f"lpf {_f(r, 100, 8000)} {_f(r, 0.5, 4)}"
    if kind == "hpf":
        return f"hpf {_f(r, 100, 8000)} {_f(r, 0.7, 2)} >> mul 0.02"
    if kind == "onepole":
        return f"onepole {_f(r, 0.005, 0.3)}"
    if kind == "envperc":
        return f"envperc {_f(r, 0.0, 0.05)} {_f(r, 0.05, 0.5)}"
    if kind == "delayn":
        return f"delayn {int(r.integers(0, 3000))}"
    if kind == "delayms":
        return f"delayms {_f(r, 0, 60)}"
    if kind == "apfmsgain":
        return f"apfmsgain {_f(r, 1, 30)} {_f(r, -0.8, 0.8)}"
    if kind == "mul_ref" and lfos:
        return f"mul {lfos[r.integers(len(lfos))]}"
    if kind == "lpf_ref" and ctrls:
        return f"lpf {ctrls[r.integers(len(ctrls))]} {_f(r, 0.5, 2)}"
    if kind == "synth":
        name = ["sawsynth", "squsynth", "trisynth"][r.integers(3)]
        return f"{name} {_f(r, 0.001, 0.05)} {_f(r, 0.05, 0.4)}"
    if kind == "plate":
        return f"plate {_f(r, 0, 1)}"
    return "mul 0.5"


def random_program(seed: int) -> str:
    """One random valid program (deterministic in ``seed``)."""
    r = np.random.default_rng(seed)
    lines, lfos, ctrls = [], [], []
    for i in range(int(r.integers(0, 3))):
        name = f"~lfo{i}"
        lines.append(f"{name}: sin {_f(r, 0.2, 8)} >> mul {_f(r, 10, 300)} "
                     f">> add {_f(r, 300, 900)}")
        lfos.append(name)
    if r.random() < 0.4:
        lines.append(f"~ctl: sin {_f(r, 0.2, 4)} >> mul {_f(r, 100, 500)} "
                     f">> add {_f(r, 600, 3000)}")
        ctrls.append("~ctl")
    n_out = int(r.integers(1, 3))
    outs = []
    for k in range(n_out):
        chain = [_source(r, lfos)]
        for _ in range(int(r.integers(0, 4))):
            chain.append(_processor(r, lfos, ctrls))
        if chain[0].startswith("seq") and r.random() < 0.6:
            chain.insert(1, "envperc 0.001 0.1")
        chain.append(f"mul {_f(r, 0.1, 0.5)}")
        name = f"~v{k}"
        lines.append(f"{name}: " + " >> ".join(chain))
        outs.append(name)
    if r.random() < 0.15:
        # a feedback loop through a delay, damped
        lines.append(f"~fb: get ~v0 >> delayn {int(r.integers(1, 2000))} >> mul {_f(r, 0.1, 0.6)}")
        lines[lines.index(next(x for x in lines if x.startswith("~v0:")))] += " >> add ~fb"
    if len(outs) > 1 and r.random() < 0.5:
        lines.append("out: mix " + " ".join(outs))
    else:
        for k, name in enumerate(outs):
            lines.append(f"o{k}: get {name}")
    order = r.permutation(len(lines))  # forward references are legal
    return "\n".join(lines[i] for i in order)
