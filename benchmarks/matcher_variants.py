"""Policy + search variants at exactly 100 renders, on the sounds choices are made on.

The harness behind docs/matching.md's "Policy + search at 100 renders" tables: each variant
gets a fresh :class:`musicgym.train.match.Evaluations` per target (every render counts, the
matcher's guesses included; a setting already rendered is free) and may spend at most the
budget. Targets: the one-shots' training half (``--set training``; never the held-out half)
or SoundFont one-shots (``--set sf:SEED:N``, :func:`musicgym.train.matcher.soundfont_oneshots`;
seed 1's are in the built-in codebook, so use others; ``drums:SEED:N`` and ``mixed:SEED:N``
for GM drum-kit one-shots and half of each). Prints the mean MR-STFT per variant,
on how many targets it is better / worse than the first variant named, and for the training
half the figure per sound.

    PYTHONPATH=src python benchmarks/matcher_variants.py --set training shipped nm sides@8
    PYTHONPATH=src python benchmarks/matcher_variants.py --set sf:3:100 --ood-neighbours 1 nm

A variant is ``NAME[@ARG...]`` (numeric arguments in the order of its function's keyword
arguments below), e.g. ``twostarts@42``, ``sides@16@4`` or ``probe@30@1.2``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import minimize

from musicgym.train.match import (
    MIN_SIGMA,
    NM_CANDIDATES,
    TRAINING,
    Evaluations,
    env_kwargs,
    guesses_spread,
    nelder_mead,
    policy_at_k,
)


class _Stall(Exception):
    pass


def _nm(ev, x, budget, size, scale=None, maxfev=None, simplex=None, adaptive=False):
    """One bounded Nelder-Mead run from x (at most maxfev more renders, within budget)."""
    d = x.size
    left = budget - ev.count if maxfev is None else min(maxfev, budget - ev.count)
    if left < d + 2:
        return
    if simplex is None:
        simplex = np.repeat(x[None], d + 1, axis=0)
        for i in range(d):
            s = size * (1.0 if scale is None else scale[i])
            simplex[i + 1, i] += s if x[i] + s <= 1.0 else -s
    minimize(lambda v: float(ev(v[None])[0][0]), x, method="Nelder-Mead",
             bounds=[(-1.0, 1.0)] * d,
             options={"maxfev": left, "initial_simplex": simplex, "xatol": 1e-3,
                      "fatol": 1e-4, "adaptive": adaptive})


def _restarts(ev, x, budget, size, scale=None, adaptive=False):
    """Nelder-Mead, restarted around the best with half the simplex, until the budget."""
    while ev.count < budget and size > 1e-4:
        before = ev.count
        _nm(ev, x, budget, size, scale, adaptive=adaptive)
        if ev.count == before:
            break
        x, size = ev.best.copy(), size * 0.5


def _guesses(m, clip, ev, g):
    cand = m.candidates(clip, int(g)).astype(np.float64)
    return cand, ev(cand)[0]


def _own_nearest(m, clip):
    """The nearest of the patch's own sounds in the codebook (its first meta['codebook'] rows:
    the matcher's guess before the SoundFont one-shots joined the codebook)."""
    f = m.features(np.atleast_2d(clip)[:1])
    z = ((f - m.mean) / m.std - m.pca_mean) @ m.pca
    d = ((z[:, None] - m.codebook[None]) ** 2).sum(-1)[0]
    d[int(m.meta.get("codebook", len(d))):] = np.inf
    return m.codebook_actions[int(np.argmin(d))].astype(np.float64)


# -- the variants: (matcher, target clip, Evaluations, budget, *args) --------------------------
def shipped(m, clip, ev, budget):
    """policy+nm as match_target runs it."""
    cand, costs = policy_at_k(m, clip, ev, min(NM_CANDIDATES, budget))
    nelder_mead(ev, ev.best, budget, max(MIN_SIGMA, m.spread), guesses_spread(cand, costs))


def nm(m, clip, ev, budget, g=16, adaptive=0):
    """policy+nm before: Nelder-Mead (square simplex) from the best of g guesses."""
    _guesses(m, clip, ev, g)
    _restarts(ev, ev.best.copy(), budget, max(MIN_SIGMA, m.spread), adaptive=bool(adaptive))


def sides(m, clip, ev, budget, g=16, top=8, adaptive=0):
    """Nelder-Mead whose sides follow the spread of the top best guesses."""
    cand, costs = _guesses(m, clip, ev, g)
    _restarts(ev, ev.best.copy(), budget, max(MIN_SIGMA, m.spread),
              guesses_spread(cand, costs, int(top)), bool(adaptive))


def race(m, clip, ev, budget, k=2, r=20, delta=0.0, g=16):
    """r-render Nelder-Mead from each of the k best guesses (at least delta apart), then on
    from the best with half the simplex."""
    cand, costs = _guesses(m, clip, ev, g)
    starts = []
    for i in np.argsort(costs):
        if len(starts) < int(k) and all(np.linalg.norm(cand[i] - cand[j]) > delta
                                        for j in starts):
            starts.append(i)
    size = max(MIN_SIGMA, m.spread)
    for i in starts:
        _nm(ev, np.clip(cand[i], -1, 1), budget, size, maxfev=int(r))
    _restarts(ev, ev.best.copy(), budget, size * 0.5)


def twostarts(m, clip, ev, budget, r=42, g=16):
    """r renders from the best guess, r from the nearest of the patch's own sounds, the rest
    from the best."""
    cand, costs = _guesses(m, clip, ev, g)
    own = _own_nearest(m, clip)
    ev(own[None])
    size = max(MIN_SIGMA, m.spread)
    for x in (cand[np.argmin(costs)], own):
        _nm(ev, np.clip(x, -1, 1), budget, size, maxfev=int(r))
    _restarts(ev, ev.best.copy(), budget, size * 0.5)


def gate(m, clip, ev, budget, r=30, th=0.0, half=1, sides_own=1, g=16):
    """Per target, one Nelder-Mead (shipped) or two starts. The gate opens when the nearest
    of the patch's own sounds is among the g guesses (``th`` = 0: free, no threshold) or,
    with ``th`` > 0, when its cost is under ``th`` times the best guess's (1 render). Open:
    ``r`` renders of Nelder-Mead from the best guess and ``r`` from the own sound (simplex
    sides from the guesses' spread; ``sides_own`` = 0: square for the own start), then
    Nelder-Mead from the best so far (``half`` = 1: half the simplex) to the budget."""
    cand, costs = policy_at_k(m, clip, ev, min(int(g), budget))
    size, scale = max(MIN_SIGMA, m.spread), guesses_spread(cand, costs)
    own = np.clip(_own_nearest(m, clip), -1, 1)
    guesses = np.clip(np.asarray(cand, np.float64), -1, 1)
    if th > 0:
        opened = float(ev(own[None])[0][0]) < th * float(np.min(costs))
    else:
        opened = any(np.array_equal(own, c) for c in guesses)
    best = ev.best.copy()
    if opened and not np.array_equal(own, best):
        _nm(ev, best, budget, size, scale, maxfev=int(r))
        _nm(ev, own, budget, size, scale if sides_own else None, maxfev=int(r))
        nelder_mead(ev, ev.best, budget, size * (0.5 if half else 1.0), scale)
    else:
        nelder_mead(ev, best, budget, size, scale)


def probe(m, clip, ev, budget, r=25, th=0.0, sides_own=0, g=16):
    """The gate of :func:`gate`; open: ``r`` renders of Nelder-Mead from the nearest of the
    patch's own sounds first (``sides_own`` = 0: square simplex), then the shipped
    Nelder-Mead from the best so far (the own basin if the probe beat the best guess, else
    the best guess) to the budget. Closed: shipped."""
    cand, costs = policy_at_k(m, clip, ev, min(int(g), budget))
    size, scale = max(MIN_SIGMA, m.spread), guesses_spread(cand, costs)
    own = np.clip(_own_nearest(m, clip), -1, 1)
    guesses = np.clip(np.asarray(cand, np.float64), -1, 1)
    if th > 0:
        opened = float(ev(own[None])[0][0]) < th * float(np.min(costs))
    else:
        opened = any(np.array_equal(own, c) for c in guesses)
    _probe_then_nm(ev, own, budget, size, scale, opened, r, sides_own)


def _probe_then_nm(ev, own, budget, size, scale, opened, r, sides_own=0):
    if opened and not np.array_equal(own, ev.best):
        _nm(ev, own, budget, size, scale if sides_own else None, maxfev=int(r))
    nelder_mead(ev, ev.best, budget, size, scale)


def nearown(m, clip, ev, budget, r=30, ratio=2.0, g=16):
    """:func:`probe` with a gate that costs no render: open when the target's distance (the
    matcher's codebook space) to the nearest of the patch's own sounds is under ``ratio``
    times its distance to the nearest codebook sound, SoundFont one-shots included (a
    target nearer the patch's sounds than the SoundFont ones it learnt from)."""
    cand, costs = policy_at_k(m, clip, ev, min(int(g), budget))
    size, scale = max(MIN_SIGMA, m.spread), guesses_spread(cand, costs)
    f = m.features(np.atleast_2d(clip)[:1])
    z = ((f - m.mean) / m.std - m.pca_mean) @ m.pca
    d = ((z[:, None] - m.codebook[None]) ** 2).sum(-1)[0]
    d_own = d[:int(m.meta.get("codebook", len(d)))].min()
    opened = d_own < ratio * max(float(d.min()), 1e-12)
    own = np.clip(_own_nearest(m, clip), -1, 1)
    _probe_then_nm(ev, own, budget, size, scale, opened, r)


def own(m, clip, ev, budget, g=16):
    """the guesses, then Nelder-Mead from the nearest of the patch's own sounds only."""
    _guesses(m, clip, ev, g)
    _restarts(ev, np.clip(_own_nearest(m, clip), -1, 1), budget, max(MIN_SIGMA, m.spread))


def stall(m, clip, ev, budget, window=20, tol=0.003, g=16):
    """Nelder-Mead from the best guess until no gain of tol (relative) in window renders,
    then from the nearest of the patch's own sounds likewise, the rest from the best."""
    cand, costs = _guesses(m, clip, ev, g)
    size = max(MIN_SIGMA, m.spread)

    def run(x):
        hist = []

        def f(v):
            if ev.count >= budget:
                raise _Stall
            y = float(ev(v[None])[0][0])
            hist.append(min([y, *hist[-1:]]))
            if len(hist) > window and hist[-1] > hist[-1 - int(window)] * (1 - tol):
                raise _Stall
            return y
        simplex = np.repeat(x[None], x.size + 1, axis=0)
        for i in range(x.size):
            simplex[i + 1, i] += size if x[i] + size <= 1.0 else -size
        try:
            minimize(f, x, method="Nelder-Mead", bounds=[(-1.0, 1.0)] * x.size,
                     options={"maxfev": 10 ** 6, "initial_simplex": simplex, "xatol": 1e-3,
                              "fatol": 1e-4})
        except _Stall:
            pass
    run(np.clip(cand[np.argmin(costs)], -1, 1))
    if budget - ev.count > 10:
        run(np.clip(_own_nearest(m, clip), -1, 1))
    _restarts(ev, ev.best.copy(), budget, size * 0.5)


def cobyqa(m, clip, ev, budget, g=16):
    """SciPy's COBYQA (quadratic models in a trust region) from the best guess."""
    _guesses(m, clip, ev, g)
    x, size = ev.best.copy(), max(MIN_SIGMA, m.spread)
    while budget - ev.count > 2 * x.size + 2:
        before = ev.count
        minimize(lambda v: float(ev(v[None])[0][0]), x, method="COBYQA",
                 bounds=[(-1.0, 1.0)] * x.size,
                 options={"maxfev": budget - ev.count, "initial_tr_radius": size,
                          "final_tr_radius": 1e-3})
        if ev.count == before:
            break
        x, size = ev.best.copy(), size * 0.5
    _restarts(ev, ev.best.copy(), budget, size)


def cmaes_guesses(m, clip, ev, budget, pop=6, top=8, g=16, seed=0):
    """CMA-ES: mean = the best guess, per-setting step = the spread of the top guesses."""
    import cma

    cand, costs = _guesses(m, clip, ev, g)
    sd = np.clip(cand[np.argsort(costs)[:int(top)]].std(0), 0.03, 0.5)
    es = cma.CMAEvolutionStrategy(np.clip(ev.best, -0.99, 0.99), 1.0,
                                  {"bounds": [-1, 1], "popsize": int(pop), "seed": int(seed) + 1,
                                   "verbose": -9, "CMA_stds": sd})
    while budget - ev.count >= int(pop):
        xs = es.ask()
        es.tell(xs, ev(np.asarray(xs))[0].tolist())


def simplex_guesses(m, clip, ev, budget, g=16, pull=1.0):
    """Nelder-Mead whose first simplex is the d + 1 best guesses, pulled towards the best."""
    cand, costs = _guesses(m, clip, ev, g)
    order, d = np.argsort(costs), cand.shape[1]
    x = np.clip(cand[order[0]], -1, 1)
    simplex = np.asarray([x] + [x + pull * (np.clip(cand[i], -1, 1) - x)
                                for i in order[1:d + 1]])
    size = max(MIN_SIGMA, m.spread)
    if len(simplex) == d + 1 and np.linalg.matrix_rank(simplex[1:] - simplex[0]) == d:
        _nm(ev, x, budget, size, simplex=simplex)
        size *= 0.5
    _restarts(ev, ev.best.copy(), budget, size)


def cmaes1000(m, clip, ev, budget, evaluations=1000, seed=0):
    """CMA-ES from the centre, step 0.5, population 16 (the baseline; ignores the budget)."""
    import cma

    es = cma.CMAEvolutionStrategy(np.zeros(m.action_dim), 0.5,
                                  {"bounds": [-1, 1], "popsize": 16, "seed": int(seed) + 1,
                                   "verbose": -9})
    while ev.count < evaluations:
        xs = es.ask()[:int(evaluations) - ev.count]
        costs = ev(np.asarray(xs))[0]
        if len(xs) == 16:
            es.tell(xs, costs.tolist())


def policy(m, clip, ev, budget):
    """the single guess (Matcher.propose, 1 render)."""
    ev(m.propose(clip[None]))


def net(m, clip, ev, budget):
    """the net's own answer, without the codebook (1 render)."""
    ev(m.forward(m.features(clip[None])))


def atk(m, clip, ev, budget, k=16):
    """policy@k: the matcher's k guesses (Matcher.candidates)."""
    policy_at_k(m, clip, ev, int(k))


def _critic(m):
    if m.critic is None:
        raise SystemExit("the critic variants need --critic PATH (or a matcher with one)")
    return m.critic


def critic(m, clip, ev, budget):
    """the critic's single guess: the lowest predicted of the candidate pool (1 render)."""
    ev(_critic(m).choose(m, m.features(clip[None]))[0][None])


def critic_gate(m, clip, ev, budget, margin=0.5):
    """the critic's single guess with a margin gate (1 render): its pick only where its
    (ensemble-averaged) prediction beats the proposal's by margin x the standard deviation of
    the pool's predictions, else the proposal (Critic.choose with ``margin``)."""
    c = _critic(m)
    before = c.margin
    c.margin = float(margin)
    try:
        ev(c.choose(m, m.features(clip[None]))[0][None])
    finally:
        c.margin = before


def critic_atk(m, clip, ev, budget, k=16):
    """policy@k with the critic choosing: the proposal and the k - 1 lowest predicted."""
    ev(_critic(m).guesses(m, m.features(clip[None]), int(k)))


def critic_nm(m, clip, ev, budget, g=16):
    """policy+nm from critic_atk's guesses (the simplex from their spread, as shipped)."""
    cand = _critic(m).guesses(m, m.features(clip[None]), int(g)).astype(np.float64)
    costs = ev(cand)[0]
    nelder_mead(ev, ev.best, budget, max(MIN_SIGMA, m.spread), guesses_spread(cand, costs))


VARIANTS = {f.__name__: f for f in (policy, net, atk, critic, critic_gate, critic_atk, critic_nm,
                                    shipped, nm, sides, race, twostarts, gate, probe, nearown,
                                    own, stall, cobyqa, cmaes_guesses, simplex_guesses,
                                    cmaes1000)}


def targets(which: str, oneshots, spec=None) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, clip, the settings that made it or None) per target of ``--set``."""
    from musicgym.audio.io import read_audio
    from musicgym.train.match import synthetic_targets
    from musicgym.train.matcher import soundfont_oneshots

    if which == "training":
        return [(n, np.atleast_2d(read_audio(oneshots / f"{n}.flac", sr=44100)[0]).mean(0),
                 None) for n in TRAINING]
    try:
        kind, seed, n = which.split(":")
        if kind not in ("sf", "syn", "drums", "mixed"):
            raise ValueError
        if kind == "syn":
            actions, clips = synthetic_targets(spec, int(n), seed=int(seed))
            return [(f"syn{seed}_{i}", c, a) for i, (c, a) in
                    enumerate(zip(clips, actions, strict=True))]
        clips = soundfont_oneshots(int(n), seed=int(seed),
                                   kind="melodic" if kind == "sf" else kind)
    except ValueError:
        raise SystemExit("--set: training, sf:SEED:N, drums:SEED:N, mixed:SEED:N or "
                         f"syn:SEED:N, got {which!r}") from None
    return [(f"{kind}{seed}_{i}", c, None) for i, c in enumerate(clips)]


def main() -> None:
    from musicgym.envs.matcher_model import Matcher
    from musicgym.envs.matching import MatchCore
    from musicgym.train.matcher import patch_spec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help=f"NAME[@ARG...]; names: {', '.join(VARIANTS)}")
    ap.add_argument("--set", default="training",
                    help="training, sf:SEED:N (melodic SoundFont one-shots), drums:SEED:N (GM "
                         "drum kits), mixed:SEED:N or syn:SEED:N (the patch's own sounds at "
                         "random settings: the median settings error is printed too)")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--ood-neighbours", type=int, default=None,
                    help="override the built-in Snare-v0's (1: the proposal before helper "
                         "'hybrid')")
    ap.add_argument("--matcher", default=None,
                    help="a matcher's NAME.npz/.json instead of the built-in Snare-v0")
    ap.add_argument("--critic", default=None,
                    help="a critic's NAME.critic.npz (+ .json) for the critic variants (and, "
                         "without --no-critic, policy@k's guesses)")
    ap.add_argument("--no-critic", action="store_true",
                    help="atk, shipped and the other variants guess without the matcher's "
                         "critic (as before it; the critic_* variants still use it)")
    args = ap.parse_args()
    for v in args.variants:
        if v.split("@")[0] not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}: choose from {', '.join(VARIANTS)}")
    oneshots = None
    if args.set == "training":
        from musicgym.datapath import require_data_subdir
        oneshots = require_data_subdir("oneshots")
    spec = patch_spec("Snare-v0")
    m = Matcher.builtin("Snare-v0") if args.matcher is None else Matcher.load(args.matcher)
    if args.critic is not None:
        m.attach_critic(args.critic)
    if args.no_critic:
        m.use_critic = False
    if args.ood_neighbours is not None:
        m.meta["ood_neighbours"] = args.ood_neighbours
    res: dict[str, list[float]] = {v: [] for v in args.variants}
    errors: dict[str, list[np.ndarray]] = {v: [] for v in args.variants}
    t0 = time.perf_counter()
    rows = targets(args.set, oneshots, spec)
    for _, clip, truth in rows:
        core = MatchCore(**env_kwargs(spec, clip))
        for v in args.variants:
            name, *rest = v.split("@")
            ev = Evaluations(core)
            VARIANTS[name](m, core.target_clips[0], ev, args.budget, *map(float, rest))
            if name != "cmaes1000" and ev.count > args.budget:
                raise SystemExit(f"{v} spent {ev.count} renders (budget {args.budget})")
            res[v].append(ev.best_cost)
            if truth is not None:  # settings error as benchmarks/matcher.py: |a - a*| / 2
                errors[v].append(np.abs(np.clip(ev.best, -1, 1) - truth) / 2.0)
    print(f"{args.set}, {len(rows)} targets, {time.perf_counter() - t0:.0f} s, mean MR-STFT:")
    first = np.asarray(res[args.variants[0]])
    for v, costs in res.items():
        change = np.asarray(costs) / first - 1.0  # per target, against the first variant
        print(f"  {v:24s} {np.mean(costs):.4f}  against {args.variants[0]}: "
              f"{int((change < -1e-9).sum())} better, {int((change > 1e-9).sum())} worse"
              + (f", median settings error {np.median(errors[v]):.4f}" if errors[v] else ""))
    if args.set == "training":
        print("per sound: " + " | ".join(res))
        for i, (name, _, _) in enumerate(rows):
            print(f"  {name:12s} " + "  ".join(f"{res[v][i]:.3f}" for v in res))


if __name__ == "__main__":
    main()
