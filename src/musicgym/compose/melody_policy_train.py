"""Train the melody policy of :mod:`musicgym.compose.melody_policy` (needs torch).

Two stages, both on random melody settings (tonic, mode, range, length, metre, with or
without the key as a hard mask) drawn by a seeded generator that never draws the held-out
tonic/mode pairs of :data:`HELD_OUT` (C major, the env's default, among them):

1. **Imitation** (expert iteration, round 0): :func:`~musicgym.compose.melody.beam_melody`
   (width ``--width``, temperature 1) writes a melody per setting; every step of it is a
   sample (the features of all actions, the mask, the expert's action), and the MLP learns
   the expert's action by cross-entropy over the allowed actions.
2. **REINFORCE** on the env's return (``--rl-updates``): batches of sampled melodies on
   fresh random settings, reward-to-go minus the batch's mean at the same step, plus a
   cross-entropy term towards the imitation policy's greedy action so the policy does not
   drift far from what the expert taught.

``python -m musicgym.compose.melody_policy_train --settings 240 --width 48 --seed 1
--epochs 40 --rl-updates 150 --out DIR`` writes ``DIR/melody.npz`` and ``DIR/melody.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from musicgym.compose.melody import beam_melody
from musicgym.compose.melody_policy import (
    FEATURE_VERSION,
    MelodyPolicy,
    action_features,
    n_features,
)
from musicgym.envs.melody import MelodyEnv
from musicgym.music.scales import MODES

TONICS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# tonic/mode pairs training never draws: the benchmark's held-out settings
HELD_OUT = (("C", "ionian"), ("D", "dorian"), ("F#", "lydian"), ("Bb", "harmonic_minor"),
            ("E", "phrygian"), ("A", "aeolian"))
HIDDEN = 128


def random_setting(rng: np.random.Generator) -> dict:
    """Env arguments of one random training setting (never a :data:`HELD_OUT` pair)."""
    while True:
        tonic, mode = TONICS[rng.integers(12)], list(MODES)[rng.integers(len(MODES))]
        if (tonic, mode) not in HELD_OUT:
            break
    spb = int(rng.choice([6, 8]))
    return {"tonic": tonic, "mode": mode, "lowest_midi": int(rng.choice([48, 53, 55, 60])),
            "n_pitches": int(rng.choice([24, 36])), "steps_per_bar": spb,
            "n_steps": spb * int(rng.choice([2, 3, 4, 4, 6])),
            "masks": ["rl_tuner_key"] if rng.random() < 0.25 else []}


def held_out_settings() -> list[dict]:
    """The benchmark's settings, on the :data:`HELD_OUT` tonic/mode pairs only: each pair in
    Melody-v0's default form (4 bars of 8 eighths, C3..B5; C major is Melody-v0's default),
    in 4 bars of 6 eighths over G3..F#5, and in 6 bars of 8 with the key as a hard mask."""
    variants = ({}, {"lowest_midi": 55, "n_pitches": 24, "steps_per_bar": 6, "n_steps": 24},
                {"n_steps": 48, "masks": ["rl_tuner_key"]})
    return [{"tonic": t, "mode": "major" if m == "ionian" else m, **v}
            for v in variants for t, m in HELD_OUT]


def expert_samples(n_settings: int, *, seed: int, width: int, log=print) -> dict:
    """Beam-search melodies on ``n_settings`` random settings, as imitation samples."""
    rng = np.random.default_rng(seed)
    feats, masks, targets, groups, returns = [], [], [], [], []
    t0 = time.perf_counter()
    for k in range(n_settings):
        env = MelodyEnv(**random_setting(rng))
        total, actions = beam_melody(env, seed=seed * 100_000 + k, beam_width=width,
                                     temperature=1.0)
        returns.append(total)
        state = env.empty_state()
        for action in actions:
            mask, reward, outputs = env.judge(state)
            feats.append(action_features(state, outputs, reward))
            masks.append(mask)
            targets.append(action)
            groups.append(k)
            state.add(action)
        if (k + 1) % 20 == 0:
            log(f"expert {k + 1}/{n_settings}: mean return {np.mean(returns):.1f} "
                f"({time.perf_counter() - t0:.0f} s)")
    return {"feats": feats, "masks": masks, "targets": np.array(targets),
            "groups": np.array(groups), "returns": np.array(returns)}


def _pad(feats: list[np.ndarray], masks: list[np.ndarray]):
    import torch

    width = max(len(m) for m in masks)
    x = np.zeros((len(feats), width, n_features()), np.float32)
    m = np.zeros((len(feats), width), bool)
    for i, (f, mask) in enumerate(zip(feats, masks, strict=True)):
        x[i, :len(f)] = f
        m[i, :len(mask)] = mask
    return torch.from_numpy(x), torch.from_numpy(m)


def _net():
    import torch

    return torch.nn.Sequential(torch.nn.Linear(n_features(), HIDDEN), torch.nn.ReLU(),
                               torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
                               torch.nn.Linear(HIDDEN, 1))


def _masked_logits(net, x, m):
    return net(x).squeeze(-1).masked_fill(~m, -1e9)


def imitate(data: dict, *, seed: int, epochs: int, log=print):
    """Fit the MLP to the expert's actions; (net, record) with held-out sample accuracy
    (10 % of the settings, by setting)."""
    import torch

    torch.manual_seed(seed)
    x, m = _pad(data["feats"], data["masks"])
    y = torch.from_numpy(data["targets"])
    val = torch.from_numpy(data["groups"] % 10 == 0)
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
    idx = torch.nonzero(~val).squeeze(1)
    record = {}
    for epoch in range(epochs):
        perm = idx[torch.randperm(len(idx))]
        losses = []
        for start in range(0, len(perm), 256):
            b = perm[start:start + 256]
            loss = torch.nn.functional.cross_entropy(_masked_logits(net, x[b], m[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        with torch.no_grad():
            acc = float((_masked_logits(net, x[val], m[val]).argmax(1) == y[val]).float().mean())
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                  "val_accuracy": acc, "n_train": int(len(idx)), "n_val": int(val.sum())}
        if (epoch + 1) % 5 == 0:
            log(f"epoch {epoch + 1}: loss {record['train_loss']:.3f}, held-out accuracy "
                f"{acc:.3f}")
    return net, record


def reinforce(net, *, seed: int, updates: int, batch: int, lr: float, anchor: float,
              log=print) -> dict:
    """REINFORCE on the env's return, on fresh random settings (see the module docstring)."""
    import copy

    import torch

    rng = np.random.default_rng(seed + 7)
    torch.manual_seed(seed + 7)
    teacher = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    t0 = time.perf_counter()
    for update in range(updates):
        episodes = []
        for _ in range(batch):
            env = MelodyEnv(**random_setting(rng))
            state = env.empty_state()
            feats, masks, acts, rewards = [], [], [], []
            while state.step < env.n_steps:
                mask, reward, outputs = env.judge(state)
                f = action_features(state, outputs, reward)
                with torch.no_grad():
                    logits = net(torch.from_numpy(f)).squeeze(-1).numpy()
                logits = np.where(mask, logits, -np.inf)
                p = np.exp(logits - logits.max())
                a = int(rng.choice(len(p), p=p / p.sum()))
                feats.append(f)
                masks.append(mask)
                acts.append(a)
                rewards.append(float(reward[a]))
                state.add(a)
            episodes.append((feats, masks, acts, np.array(rewards)))
        # reward-to-go, baseline: the batch's mean reward-to-go at the same share of the piece
        togo = [np.cumsum(r[::-1])[::-1] for *_, r in episodes]
        frac = [np.arange(len(g)) / len(g) for g in togo]
        all_frac, all_togo = np.concatenate(frac), np.concatenate(togo)
        bins = np.minimum((all_frac * 8).astype(int), 7)
        base = np.array([all_togo[bins == b].mean() if np.any(bins == b) else 0.0
                         for b in range(8)])
        adv = all_togo - base[bins]
        adv = adv / (adv.std() + 1e-6)
        feats = [f for e in episodes for f in e[0]]
        masks = [mk for e in episodes for mk in e[1]]
        acts = torch.tensor([a for e in episodes for a in e[2]])
        x, m = _pad(feats, masks)
        logits = _masked_logits(net, x, m)
        logp = torch.log_softmax(logits, 1).gather(1, acts[:, None]).squeeze(1)
        loss = -(logp * torch.from_numpy(adv).float()).mean()
        with torch.no_grad():
            target = _masked_logits(teacher, x, m).argmax(1)
        loss = loss + anchor * torch.nn.functional.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        mean_return = float(np.mean([r.sum() for *_, r in episodes]))
        history.append(mean_return)
        if (update + 1) % 10 == 0:
            log(f"update {update + 1}/{updates}: sampled mean return "
                f"{np.mean(history[-10:]):.1f} ({time.perf_counter() - t0:.0f} s)")
    return {"updates": updates, "batch": batch, "lr": lr, "anchor": anchor,
            "first_10_mean_return": float(np.mean(history[:10])) if history else None,
            "last_10_mean_return": float(np.mean(history[-10:])) if history else None}


def to_policy(net, info: dict) -> MelodyPolicy:
    """The torch MLP's weights as a NumPy :class:`MelodyPolicy`."""
    linears = [layer for layer in net if hasattr(layer, "weight")]
    layers = [(lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy())
              for lin in linears]
    return MelodyPolicy(layers, info)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", type=int, default=240, help="expert melodies (one per setting)")
    p.add_argument("--width", type=int, default=48, help="the expert beam search's width")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--rl-updates", type=int, default=150)
    p.add_argument("--rl-batch", type=int, default=16)
    p.add_argument("--rl-lr", type=float, default=3e-4)
    p.add_argument("--rl-anchor", type=float, default=0.1)
    p.add_argument("--data", help="cache of the expert samples (.npz): read if it exists, "
                                  "else written")
    p.add_argument("--out", required=True, help="folder for melody.npz and melody.json")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cache = Path(args.data) if args.data else None
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=True)
        data = {k: z[k] for k in z.files}
        data["feats"], data["masks"] = list(data["feats"]), list(data["masks"])
    else:
        data = expert_samples(args.settings, seed=args.seed, width=args.width)
        if cache is not None:
            np.savez(cache, feats=np.array(data["feats"], dtype=object),
                     masks=np.array(data["masks"], dtype=object), targets=data["targets"],
                     groups=data["groups"], returns=data["returns"])
    t_expert = time.perf_counter() - t0
    net, record = imitate(data, seed=args.seed, epochs=args.epochs)
    rl = reinforce(net, seed=args.seed, updates=args.rl_updates, batch=args.rl_batch,
                   lr=args.rl_lr, anchor=args.rl_anchor) if args.rl_updates else None
    info = {"command": "python -m musicgym.compose.melody_policy_train " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "seed": args.seed, "settings": args.settings, "expert": "beam_melody",
            "expert_width": args.width, "expert_temperature": 1.0,
            "expert_mean_return": float(np.mean(data["returns"])),
            "held_out_pairs": [list(h) for h in HELD_OUT],
            "imitation": record, "reinforce": rl, "expert_seconds": t_expert,
            "train_seconds": time.perf_counter() - t0 - t_expert,
            "feature_version": FEATURE_VERSION, "n_features": n_features(),
            "hidden": [HIDDEN, HIDDEN]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    to_policy(net, info).save(out / "melody.npz")
    print(f"wrote {out / 'melody.npz'} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
