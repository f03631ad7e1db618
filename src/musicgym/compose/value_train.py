"""Train the learned value of :mod:`musicgym.compose.value` by regression on finished pieces.

Data: on each generated training exercise (the policy trainer's, same seed, so Fux's cantus
firmi and the test set are never seen), the pieces of

* the expert (the guided beam search; reuse the policy trainer's ``--save-pieces`` JSON with
  ``--pieces``, or it is rerun),
* the policy's own rollouts: ``--samples`` pieces sampled from its masked probabilities at
  ``--temperature``, and its greedy piece,
* with ``--rounds 2``, the value decoder's own pieces (:func:`compose_value_beam` with the
  round-0 value), so the value also learns the states its decoder visits.

Every prefix of every piece is a sample: (value features, return still to come = final env
return - soft-rule penalties so far). The MLP fits them by mean squared error; 10 % of the
exercises (all their samples) are held out to report the fit.

Validation (``--validate N``): the decoders are compared on ``N`` generated exercises of
``generate_exercises(N, seed=VAL_SEED)``, a split disjoint from training and from the test
set, by RL-Musician's score of the finished pieces; this is what every choice was made on.

Run (what made the shipped value; see docs/compose.md)::

    OMP_NUM_THREADS=1 python -m musicgym.compose.value_train --exercises 400 --seed 1 \\
        --out DIR

torch is needed to train (not to compose).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from musicgym.compose import mlp
from musicgym.compose.policy import ComposerPolicy, compose_policy
from musicgym.compose.policy_train import TEST_SEED, expert_pieces, training_exercises
from musicgym.compose.value import ComposerValue, compose_value_beam, value_features
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.rules import score_piece
from musicgym.music.rules.species import ACTION_DURATIONS, ACTION_MOVES, CounterpointState

VAL_SEED = 2000  # generate_exercises(n, seed=VAL_SEED): the validation split


def excluded_cantus(train_seeds, n_train: int = 400) -> set[tuple]:
    """The cantus firmi validation leaves out: the held-out test ones and those of the
    ``n_train`` training exercises of each seed in ``train_seeds``."""
    from musicgym.compose.policy_train import held_out_cantus

    seen = held_out_cantus()
    for seed in train_seeds:
        seen |= {tuple(ex["cantus_firmus"]) for ex in training_exercises(n_train, seed=seed)}
    return seen


def validation_exercises(n: int, *, train_seed: int = 1, n_train: int = 400) -> list[dict]:
    """``n`` generated exercises for validation, none sharing a cantus with the training
    exercises of ``train_seed`` or with the held-out test cantus firmi."""
    from musicgym.music.cantus import generate_exercises

    seen = excluded_cantus([train_seed], n_train)
    return [ex for ex in generate_exercises(n, seed=VAL_SEED)
            if tuple(ex["cantus_firmus"]) not in seen]


def replay(env: CounterpointEnv, actions: list[int]) -> tuple[list[CounterpointState],
                                                               list[float], float] | None:
    """States before each note, penalties taken before each, and the final return of
    ``actions`` (None if they do not finish a piece)."""
    state = CounterpointState(env.setup)
    states, rewards, reward = [], [], 0.0
    for action in actions:
        states.append(state.copy())
        rewards.append(reward)
        reward += float(env.oracle.check(state)[1][action])
        state.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
        if state.finished:
            break
    if not state.finished:
        return None
    total = reward + score_piece(state, coefs=env.scoring_coefs,
                                 params=env.scoring_fn_params)["total"]
    return states, rewards, total


def sample_piece(env: CounterpointEnv, policy: ComposerPolicy, rng: np.random.Generator,
                 temperature: float) -> list[int]:
    """One piece sampled from the policy's masked probabilities at ``temperature``."""
    state = CounterpointState(env.setup)
    actions = []
    while not state.finished:
        mask = env.oracle.mask(state)
        if not mask.any():
            break
        lp = policy.log_probs(state, mask) / temperature
        p = np.exp(lp - lp.max())
        p /= p.sum()
        action = int(rng.choice(len(p), p=p))
        actions.append(action)
        state.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
    return actions


def samples_of(env: CounterpointEnv, actions: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(value features, return still to come) of every prefix of a finished piece."""
    played = replay(env, actions)
    if played is None:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
    states, rewards, total = played
    x = np.stack([value_features(s) for s in states])
    y = np.asarray([total - r for r in rewards], dtype=np.float32)
    return x, y


def train_value(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, hidden: int = 128,
                epochs: int = 30, lr: float = 2e-3, seed: int = 0,
                log=print) -> tuple[ComposerValue, dict]:
    """Fit the MLP to (features, return to come) by mean squared error; the samples of 10 %
    of the exercises (``groups``: exercise index per sample) are held out for the fit figures.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    names = np.unique(groups)
    held = set(rng.choice(names, size=max(1, len(names) // 10), replace=False).tolist())
    is_val = np.array([g in held for g in groups])
    tr, val = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                        nn.ReLU(), nn.Linear(hidden, 1))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    batch = 256
    figures: dict = {}
    for epoch in range(epochs):
        net.train()
        perm = torch.from_numpy(rng.permutation(tr))
        total = 0.0
        for start in range(0, len(perm), batch):
            idx = perm[start:start + batch]
            loss = nn.functional.mse_loss(net(xt[idx])[:, 0], yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        if epoch == epochs - 1 or epoch % 10 == 0:
            net.eval()
            with torch.no_grad():
                pred = net(xt[torch.from_numpy(val)])[:, 0].numpy()
            err = pred - y[val]
            var = float(np.var(y[val])) or 1.0
            figures = {"epoch": epoch + 1, "train_mse": total / len(tr),
                       "val_mse": float(np.mean(err ** 2)), "val_mae": float(np.mean(
                           np.abs(err))), "val_r2": 1.0 - float(np.mean(err ** 2)) / var,
                       "n_train": int(len(tr)), "n_val": int(len(val))}
            log(f"  epoch {epoch + 1}: train mse {figures['train_mse']:.3f}, held-out mse "
                f"{figures['val_mse']:.3f}, r2 {figures['val_r2']:.3f}")
    return ComposerValue(mlp.torch_weights(net)), figures


def collect(exercises: list[dict], pieces_of: dict[int, list[list[int]]]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack the samples of every piece: (x, y, exercise index)."""
    xs, ys, gs = [], [], []
    for i, piece_list in pieces_of.items():
        env = CounterpointEnv(**exercises[i])
        for actions in piece_list:
            x, y = samples_of(env, actions)
            if len(y):
                xs.append(x)
                ys.append(y)
                gs.append(np.full(len(y), i))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)


def validate(exercises: list[dict], decoders: dict, log=print) -> dict:
    """Mean RL-Musician score (and seconds a piece) of each decoder per species."""
    from musicgym.compose.evaluate import evaluate_piece
    from musicgym.compose.piece import piece_from_counterpoint

    rows: dict = {}
    for ex in exercises:
        env = CounterpointEnv(**ex)
        species = env.setup.species
        for name, run in decoders.items():
            t0 = time.perf_counter()
            _, actions = run(env)
            seconds = time.perf_counter() - t0
            env.reset()
            for a in actions:
                env.step(a)
            score = evaluate_piece(piece_from_counterpoint(env.state, actions=actions)
                                   )["scores"]["total"]
            rows.setdefault(name, {}).setdefault(species, []).append((score, seconds))
    out = {name: {f"s{s}": {"score": float(np.mean([r[0] for r in rs])),
                            "max_seconds": float(np.max([r[1] for r in rs])),
                            "n": len(rs)} for s, rs in sorted(by.items())}
           for name, by in rows.items()}
    for name, by in out.items():
        log(f"  {name:<40} " + "  ".join(f"{s} {v['score']:6.3f} ({v['max_seconds']:.2f}s)"
                                          for s, v in by.items()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m musicgym.compose.value_train",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--exercises", type=int, default=400, help="generated training exercises")
    p.add_argument("--seed", type=int, default=1, help="generate_exercises seed (not "
                                                       f"{TEST_SEED} or {VAL_SEED})")
    p.add_argument("--policy", default="builtin", help="composing policy to roll out")
    p.add_argument("--width", type=int, default=300, help="expert's beam width")
    p.add_argument("--pieces", help="expert pieces JSON of policy_train --save-pieces")
    p.add_argument("--samples", type=int, default=4, help="sampled policy pieces per exercise")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=1, help="2: add the value decoder's pieces")
    p.add_argument("--beam", type=int, default=8, help="decoder beam (rounds and validation)")
    p.add_argument("--top-k", type=int, default=4, help="decoder's notes per partial piece")
    p.add_argument("--logp", type=float, default=0.0, help="decoder's logp_weight (rounds "
                   "and validation)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--validate", type=int, default=0, help="validation exercises (0: none)")
    p.add_argument("--out", default="runs/composer_value", help="output folder")
    args = p.parse_args(argv)
    if args.seed in (TEST_SEED, VAL_SEED):
        p.error(f"--seed {args.seed} is the test or validation seed")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def log(m):
        print(m, flush=True)

    policy = ComposerPolicy.load(args.policy)
    exercises = training_exercises(args.exercises, seed=args.seed)
    log(f"{len(exercises)} training exercises (seed {args.seed})")
    if args.pieces:
        expert = json.loads(Path(args.pieces).read_text(encoding="utf-8"))["pieces"]
    else:
        expert = expert_pieces(exercises, width=args.width, log=log)
    pieces_of: dict[int, list[list[int]]] = {i: [] for i in range(len(exercises))}
    for piece in expert:
        if np.isfinite(piece["return"]) and piece["index"] in pieces_of:
            pieces_of[piece["index"]].append(piece["actions"])
    rng = np.random.default_rng(args.seed)
    for i, ex in enumerate(exercises):
        env = CounterpointEnv(**ex)
        pieces_of[i].append(compose_policy(env, policy)[1])
        for _ in range(args.samples):
            pieces_of[i].append(sample_piece(env, policy, rng, args.temperature))
        if (i + 1) % 50 == 0:
            log(f"  rollouts: {i + 1}/{len(exercises)}, {time.perf_counter() - t0:.0f} s")
    x, y, g = collect(exercises, pieces_of)
    log(f"{len(x)} samples from {sum(len(v) for v in pieces_of.values())} pieces")
    value, figures = train_value(x, y, g, hidden=args.hidden, epochs=args.epochs,
                                 seed=args.seed, log=log)
    rounds = [{"round": 0, "samples": int(len(x)), **figures}]
    value.save(out / "round0" / "counterpoint_value.npz")  # to compare rounds on validation
    for r in range(1, args.rounds):
        for i, ex in enumerate(exercises):
            env = CounterpointEnv(**ex)
            pieces_of[i].append(compose_value_beam(env, policy, value, beam=args.beam,
                                                   top_k=args.top_k,
                                                   logp_weight=args.logp)[1])
            if (i + 1) % 50 == 0:
                log(f"  round {r} decoding: {i + 1}/{len(exercises)}, "
                    f"{time.perf_counter() - t0:.0f} s")
        x, y, g = collect(exercises, pieces_of)
        value, figures = train_value(x, y, g, hidden=args.hidden, epochs=args.epochs,
                                     seed=args.seed + r, log=log)
        rounds.append({"round": r, "samples": int(len(x)), **figures})
    value.meta = {
        "command": "python -m musicgym.compose.value_train " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "seed": args.seed, "exercises": len(exercises), "policy": args.policy,
        "expert": "guided_beam_search", "expert_width": args.width,
        "samples_per_exercise": args.samples, "temperature": args.temperature,
        "test_seed": TEST_SEED, "validation_seed": VAL_SEED, "rounds": rounds,
        "train_seconds": time.perf_counter() - t0}
    path = value.save(out / "counterpoint_value.npz")
    log(f"wrote {path} in {time.perf_counter() - t0:.0f} s")
    if args.validate:
        val = validation_exercises(args.validate, train_seed=args.seed,
                                   n_train=args.exercises)
        log(f"validation on {len(val)} exercises (seed {VAL_SEED})")
        results = validate(val, {
            f"policy beam {args.beam}": lambda env: compose_policy(env, policy,
                                                                   beam=args.beam),
            f"value beam {args.beam} top {args.top_k}": lambda env: compose_value_beam(
                env, policy, value, beam=args.beam, top_k=args.top_k,
                logp_weight=args.logp)}, log=log)
        (out / "validation.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
