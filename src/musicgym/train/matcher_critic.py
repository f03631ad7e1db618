"""Train a critic that ranks a matcher's candidate settings (:mod:`musicgym.envs.matcher_critic`).

Learned critics over actions: a one-step matching episode's value ``Q(target, settings)`` is
minus the MR-STFT distance of the rendered settings to the target. The critic is fitted to
that distance on rendered data (unlimited: any target, any candidate, the env's own distance)
and then picks, among a pool of a matcher's candidates, the one to render (as a value function
picks an action without trying them all; as AlphaZero's / ExIt's learnt evaluator replaces
rollouts). Two losses together: a listwise ranking loss (ListNet, Cao 2007: the softmax of
minus the predicted distances against the softmax of minus the true ones, per target), since
only the order inside one target's pool matters for the choice, and a regression on the
distance (centred per target) that keeps its scale.

    python -m musicgym.train.matcher_critic pools --set sf:20:1000 -o /tmp/rank/sf20.npz
    python -m musicgym.train.matcher_critic train /tmp/rank/sf20.npz ... --seed 0 \\
        -o /tmp/rank/Snare-v0.critic.npz

Targets: SoundFont one-shots (:func:`musicgym.train.matcher.soundfont_oneshots`) of seeds in
no evaluation set (20 and up), synthetic sounds of the patch (``syn:SEED:N``), or the real
one-shots' training half (``training``, for measuring only).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from musicgym.envs.matcher_critic import (
    POOL_MEDIANS,
    POOL_NEAREST,
    Critic,
    candidate_pool,
    critic_inputs,
    gated_pick,
    read_weights,
)
from musicgym.envs.matcher_model import Matcher
from musicgym.errors import ConfigError, OutputError


def target_set(which: str, spec: dict) -> list[tuple[str, np.ndarray]]:
    """Named target clips: ``training`` (the real one-shots' training half), ``sf:SEED:N``
    (SoundFont one-shots) or ``syn:SEED:N`` (the patch's own sounds at random settings).

    Raises
    ------
    ConfigError
        ``which`` is none of these."""
    from musicgym.train.match import TRAINING, synthetic_targets
    from musicgym.train.matcher import soundfont_oneshots

    if which == "training":
        from musicgym.audio.io import read_audio
        from musicgym.datapath import require_data_subdir

        root = require_data_subdir("oneshots")
        return [(n, np.atleast_2d(read_audio(root / f"{n}.flac", sr=44100)[0]).mean(0))
                for n in TRAINING]
    try:
        kind, seed, n = which.split(":")
        seed, n = int(seed), int(n)
        if kind not in ("sf", "syn") or seed < 0 or n < 1:
            raise ValueError
    except ValueError:
        raise ConfigError(f"target set {which!r}: give training, sf:SEED:N or syn:SEED:N "
                          "(whole numbers, N >= 1)") from None
    clips = (soundfont_oneshots(n, seed=seed) if kind == "sf"
             else synthetic_targets(spec, n, seed=seed)[1])
    return [(f"{kind}{seed}_{i}", c) for i, c in enumerate(clips)]


def rendered_pools(matcher: Matcher, spec: dict, targets, *, nearest: int = POOL_NEAREST,
                   log=print) -> dict[str, np.ndarray]:
    """Each target's candidate pool (:func:`candidate_pool`), every candidate rendered and
    scored with the env's distance (as ``benchmarks/matcher.py``), for training and measuring.

    Returns arrays ``z`` (T, n_pca), ``actions`` (T, n, d), ``extra`` (T, n, e), ``costs``
    (T, n) and ``names`` (T,)."""
    from musicgym.envs.matching import MatchCore
    from musicgym.train.match import Evaluations, env_kwargs

    out: dict[str, list] = {"z": [], "actions": [], "extra": [], "costs": [], "names": []}
    t0 = time.perf_counter()
    for i, (name, clip) in enumerate(targets):
        ev = Evaluations(MatchCore(**env_kwargs(spec, clip)))
        target = ev.core.target_clips[0]
        actions, z, extra = candidate_pool(matcher, matcher.features(target[None]),
                                           nearest=nearest)
        costs, _ = ev(actions)
        for key, v in zip(out, (z, actions, extra, costs.astype(np.float32), name), strict=True):
            out[key].append(v)
        if (i + 1) % 100 == 0:
            log(f"{i + 1}/{len(targets)} targets in {time.perf_counter() - t0:.0f} s")
    return {k: np.asarray(v) for k, v in out.items()}


def _distinct_first(actions: np.ndarray, order, k: int) -> list[int]:
    """The first ``k`` indices of ``order`` whose settings in ``actions`` are not repeats of
    an earlier one's."""
    out: list[int] = []
    seen: set[bytes] = set()
    for i in order:
        if len(out) >= k:
            break
        key = np.asarray(actions[i], np.float32).tobytes()
        if key not in seen:
            seen.add(key)
            out.append(int(i))
    return out


def atk_order(actions: np.ndarray, k: int) -> list[int]:
    """Indices into a pool of :meth:`Matcher.candidates` ``(k)``: the proposal, the net's
    answer, the nearest codebook sounds, without repeats."""
    return _distinct_first(actions, [0, 1, *range(2 + len(POOL_MEDIANS), len(actions))], k)


def train_critic(pools: list[dict], *, epochs: int = 40, hidden=(128, 128), lr: float = 1e-3,
                 seed: int = 0, temperature: float = 0.1, regression: float = 1.0,
                 batch_targets: int = 64, val_fraction: float = 0.1,
                 split_seed: int | None = None,
                 log=print) -> tuple[dict[str, np.ndarray], dict]:
    """Fit the critic on rendered pools: listwise (ListNet) + regression loss, Adam, cosine.

    The validation targets are a ``val_fraction`` of the pools' targets drawn with
    ``split_seed`` (default ``seed``): an ensemble's nets trained with different seeds and one
    split seed all leave out the same targets, on which the ensemble can then be measured.

    Returns the weights (``in_mean``, ``in_std``, ``W0``, ``b0``, ...) and a report (the
    validation targets' mean true distance of the critic's choice, of the proposal, of the
    best in the pool)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.stack([critic_inputs(z, a, e) for z, a, e in
                                  zip(p["z"], p["actions"], p["extra"], strict=True)])
                        for p in pools])
    y = np.concatenate([p["costs"] for p in pools]).astype(np.float32)
    n_t, n_c, n_in = x.shape
    order = rng.permutation(n_t)
    if split_seed is not None and split_seed != seed:
        order = validation_order(n_t, split_seed)
    n_val = max(1, int(round(val_fraction * n_t)))
    val, tr = order[:n_val], order[n_val:]
    flat = x[tr].reshape(-1, n_in)
    in_mean, in_std = flat.mean(0), flat.std(0)
    in_std = np.where(in_std < 1e-6, 1.0, in_std).astype(np.float32)
    xt = torch.from_numpy((x - in_mean) / in_std)
    yt = torch.from_numpy(y)
    layers: list = []
    width = n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 1))
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    batch_targets = max(1, min(batch_targets, len(tr)))
    steps = epochs * max(1, len(tr) // batch_targets)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)

    def loss_of(idx):
        q = net(xt[idx]).squeeze(-1)  # (B, n_c)
        c = yt[idx]
        target = torch.softmax(-c / temperature, dim=1)
        listwise = -(target * torch.log_softmax(-q / temperature, dim=1)).sum(1).mean()
        reg = ((q - q.mean(1, keepdim=True)) - (c - c.mean(1, keepdim=True))).pow(2).mean()
        level = (q.mean(1) - c.mean(1)).pow(2).mean()
        return listwise + regression * (reg + level)

    def chosen(idx):
        with torch.no_grad():
            q = net(xt[idx]).squeeze(-1).numpy()
        return y[idx, np.argmin(q, axis=1)]

    t0 = time.perf_counter()
    for epoch in range(epochs):
        perm = rng.permutation(tr)
        for b in range(0, len(perm) - batch_targets + 1, batch_targets):
            loss = loss_of(torch.from_numpy(perm[b:b + batch_targets]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 10 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1}/{epochs}: loss {float(loss.detach()):.4f}, validation choice "
                f"{chosen(val).mean():.4f} (proposal {y[val, 0].mean():.4f}, best "
                f"{y[val].min(1).mean():.4f}), {time.perf_counter() - t0:.0f} s")
    weights = {"in_mean": in_mean.astype(np.float32), "in_std": in_std}
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        weights[f"W{i}"] = lin.weight.detach().numpy().T.copy()
        weights[f"b{i}"] = lin.bias.detach().numpy().copy()
    report = {"val_targets": int(n_val), "val_choice": float(chosen(val).mean()),
              "val_proposal": float(y[val, 0].mean()), "val_best": float(y[val].min(1).mean()),
              "train_targets": int(len(tr)), "pool": int(n_c),
              "split_seed": int(seed if split_seed is None else split_seed)}
    return weights, report


def validation_order(n_targets: int, split_seed: int) -> np.ndarray:
    """The target order :func:`train_critic` splits on: its first ``round(val_fraction *
    n_targets)`` are the validation targets."""
    return np.random.default_rng(split_seed).permutation(n_targets)


def ensemble_table(pools: list[dict], weight_files: list[str], margins, *,
                   validation_split: int | None = None, val_fraction: float = 0.1,
                   names: list[str] | None = None) -> list[dict]:
    """The single guess of an ensemble of the first m nets (m = 1 .. len(weight_files)),
    gated at each margin (:func:`musicgym.envs.matcher_critic.gated_pick`), on rendered pools
    (no render): per pool (or, with ``validation_split``, on the validation targets of the
    pools taken together as :func:`train_critic` splits them), the mean true distance of the
    pick, of the proposal and of the pool's best, how many targets changed, and the worst
    pick's excess over the proposal."""
    nets = Critic([read_weights(Path(f)) for f in weight_files], {})
    sets: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    preds = []
    for p in pools:
        x = np.stack([critic_inputs(z, a, e) for z, a, e in
                      zip(p["z"], p["actions"], p["extra"], strict=True)])
        n_t, n_c, n_in = x.shape
        preds.append(nets.predict_members(x.reshape(-1, n_in)).reshape(-1, n_t, n_c))
    if validation_split is not None:
        costs = np.concatenate([p["costs"] for p in pools])
        actions = np.concatenate([p["actions"] for p in pools])
        q_all = np.concatenate(preds, axis=1)
        val = validation_order(len(costs), validation_split)[
            :max(1, int(round(val_fraction * len(costs))))]
        sets.append(("validation", costs[val], q_all[:, val], actions[val]))
    else:
        for i, (p, q) in enumerate(zip(pools, preds, strict=True)):
            sets.append((names[i] if names else f"pools {i}", p["costs"], q, p["actions"]))
    rows = []
    for name, costs, q, actions in sets:
        for m in range(1, len(weight_files) + 1):
            mean_q = q[:m].mean(0)
            at16 = float(np.mean([c[guess_order(a, qi, 16)].min()
                                  for c, a, qi in zip(costs, actions, mean_q, strict=True)]))
            for margin in margins:
                pick = (np.argmin(mean_q, 1) if margin is None
                        else gated_pick(mean_q, float(margin)))
                chosen = costs[np.arange(len(costs)), pick]
                rows.append({"set": name, "members": m, "margin": margin,
                             "targets": len(costs), "pick": float(chosen.mean()),
                             "proposal": float(costs[:, 0].mean()),
                             "best": float(costs.min(1).mean()),
                             "changed": int((pick != 0).sum()),
                             "worse": int((chosen > costs[:, 0] + 1e-9).sum()),
                             "worst_excess": float((chosen - costs[:, 0]).max()),
                             "at16": at16})
    return rows


def guess_order(actions: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    """Indices into a pool of :meth:`Critic.guesses` ``(k)``: the proposal (index 0), then the
    ``k - 1`` distinct candidates with the lowest predictions ``q``."""
    return _distinct_first(actions, [0, *np.argsort(q, kind="stable")], k)


def main(argv: list[str] | None = None) -> int:
    """``pools`` (render and score candidate pools) or ``train`` (fit a critic on them)."""
    ap = argparse.ArgumentParser(prog="python -m musicgym.train.matcher_critic",
                                 description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pools", help="render and score each target's candidate pool")
    p.add_argument("--set", required=True, help="training, sf:SEED:N or syn:SEED:N")
    p.add_argument("--matcher", default=None, help="NAME of a matcher (default: built-in "
                   "Snare-v0)")
    p.add_argument("--nearest", type=int, default=POOL_NEAREST)
    p.add_argument("-o", "--out", required=True)
    t = sub.add_parser("train", help="fit a critic on pools files")
    t.add_argument("pools", nargs="+")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--temperature", type=float, default=0.1)
    t.add_argument("--regression", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--split-seed", type=int, default=None,
                   help="seed of the validation tenth (default --seed); give an ensemble's "
                        "nets one split seed so they all leave out the same targets")
    e = sub.add_parser("ensemble", help="the gated single guess of ensembles of critics on "
                       "rendered pools, per margin (no render)")
    e.add_argument("pools", nargs="+")
    e.add_argument("--critics", nargs="+", required=True,
                   help="NAME.critic.npz files; ensembles of the first 1, 2, ... of them")
    e.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    e.add_argument("--validation", type=int, default=None, metavar="SPLIT_SEED",
                   help="measure on the validation tenth of the pools taken together (as "
                        "train splits them with this split seed) instead of on each pool")
    t.add_argument("-o", "--out", required=True, help="NAME.critic.npz (+ NAME.critic.json)")
    args = ap.parse_args(argv)
    from musicgym.train.matcher import patch_spec

    spec = patch_spec("Snare-v0")
    if args.cmd == "pools":
        m = Matcher.builtin("Snare-v0") if args.matcher is None else Matcher.load(args.matcher)
        data = rendered_pools(m, spec, target_set(args.set, spec), nearest=args.nearest)
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.out, **data)
        except OSError as exc:
            raise OutputError(f"{args.out}: cannot write ({exc})") from None
        c = data["costs"]
        best = {k: np.mean([c[i, atk_order(data["actions"][i], k)].min()
                            for i in range(len(c))]) for k in (16, 64, 256)}
        print(f"{args.set}: {len(c)} targets, pool {c.shape[1]}; mean MR-STFT: proposal "
              f"{c[:, 0].mean():.4f}, " + ", ".join(f"best of {k} {v:.4f}"
                                                   for k, v in best.items())
              + f", best in pool {c.min(1).mean():.4f}")
        return 0
    pools = []
    for f in args.pools:
        try:
            with np.load(f, allow_pickle=False) as d:
                pools.append({k: d[k] for k in ("z", "actions", "extra", "costs")})
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ConfigError(f"{f}: not a pools file ({exc}); write one with the pools "
                              "command") from None
    if args.cmd == "ensemble":
        rows = ensemble_table(pools, args.critics, [None, *args.margins],
                              validation_split=args.validation, names=args.pools)
        print("| set | nets | margin | targets | pick | proposal | best | changed | worse | "
              "worst excess | guesses@16 |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            margin = "none" if r["margin"] is None else f"{r['margin']:g}"
            print(f"| {Path(r['set']).name} | {r['members']} | {margin} | {r['targets']} | "
                  f"{r['pick']:.4f} | {r['proposal']:.4f} | {r['best']:.4f} | {r['changed']} | "
                  f"{r['worse']} | {r['worst_excess']:.3f} | {r['at16']:.4f} |")
        return 0
    weights, report = train_critic(pools, epochs=args.epochs, hidden=tuple(args.hidden),
                                   lr=args.lr, seed=args.seed, temperature=args.temperature,
                                   regression=args.regression, split_seed=args.split_seed)
    meta = {"nearest": report["pool"] - 2 - len(POOL_MEDIANS), "medians": list(POOL_MEDIANS),
            "z_clip": 20.0,
            "command": "python -m musicgym.train.matcher_critic " + shlex.join(
                sys.argv[1:] if argv is None else argv), "seed": args.seed, **report}
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, **weights)
        out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the critic ({exc})") from None
    Critic(weights, meta)  # the file reads back as a critic
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
