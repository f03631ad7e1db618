"""Compare the NumPy backend with the real Glicol engine on pieces of code.

Usage:
    python scripts/compare_backends.py -c 'o: sin 440'            # one program
    python scripts/compare_backends.py FILE [-v]                   # programs separated by ===
Prints OK/BAD, the max absolute difference, the first (channel, sample) over 1e-5 and, with -v,
both backends' samples there. A developer tool for conformance work; the tests live in tests/.
"""

import argparse

import numpy as np

from musicgym.synth import Patch
from musicgym.synth.reference import render_reference


def compare(code: str, n: int, verbose: bool, samples=None) -> bool:
    try:
        ours = Patch(code, samples=samples).render(n_samples=n)[0]
    except Exception as exc:  # a developer tool: report and go on
        print(f"ERR {type(exc).__name__}: {exc}\n    {code!r}")
        return False
    ref = render_reference(code, n, samples=Patch(code, samples=samples).samples)
    diff = np.abs(ours.astype(np.float64) - ref)
    bad = np.argwhere(diff > 1e-5)
    ok = bad.size == 0
    first = tuple(bad[0]) if not ok else None
    print(f"{'OK ' if ok else 'BAD'} {diff.max():.2e} first>{first} peak "
          f"{np.abs(ref).max():.3g} {code!r}")
    if verbose and first is not None:
        c, i = first
        print("   numpy", ours[c, i:i + 6], "\n   glicol", ref[c, i:i + 6])
    return ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?")
    ap.add_argument("-c", "--code")
    ap.add_argument("-n", type=int, default=88200)
    ap.add_argument("-v", action="store_true")
    ap.add_argument("--sample", action="append", default=[], help="name=path")
    args = ap.parse_args()
    samples = dict(s.split("=", 1) for s in args.sample) or None
    codes = [args.code] if args.code else \
        [c.strip() for c in open(args.file).read().split("\n===\n") if c.strip()]
    for code in codes:
        compare(code, args.n, args.v, samples)


if __name__ == "__main__":
    main()
