"""Train the composing policy of :mod:`musicgym.compose.policy` by expert iteration.

Round 0 (imitation): the guided beam search (the expert) writes one piece on each of many
generated exercises (:func:`musicgym.music.cantus.generate_exercises`, species 1-5, all six
modes); every state it passed through becomes a sample (features, the note it chose), and an MLP
learns to pick that note among the allowed ones (cross-entropy over the masked logits).
Further rounds (``--rounds N``): with ``--relabel K``, DAgger (the policy writes a piece
greedily, the expert continues from K of its prefixes, and the states from each cut on join the
data); otherwise (or the last ``--improve-last`` rounds) an improvement round (the
policy-guided search rewrites the pieces; where its piece scores higher, its states replace the
expert's). ``--strong-rounds S``: expert iteration with a stronger expert, S times: wider
searches with the policy so far as their prior rewrite the pieces of ``--strong-species``
(:func:`stronger_pieces`), and the whole recipe is rerun on them.

Fux's cantus firmi and the test exercises (``generate_exercises(n, seed=TEST_SEED)``) are never
trained on: a generated cantus equal to one of them is skipped.

Run (what made the shipped policy, about 30 min on one core; see docs/compose.md)::

    OMP_NUM_THREADS=1 python -m musicgym.compose.policy_train --exercises 400 --seed 1 \\
        --width 300 --epochs 25 --rounds 2 --relabel 2 --relabel-width 200 \\
        --strong-rounds 2 --out DIR

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
from musicgym.compose.policy import ComposerPolicy, features, policy_guided_search
from musicgym.compose.search import guided_beam_search
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.rules.species import (
    ACTION_DURATIONS,
    ACTION_MOVES,
    CANTUS_FIRMI,
    CounterpointState,
)

TEST_SEED = 1000  # generate_exercises(n, seed=TEST_SEED): the held-out test set
EXPERT_WIDTH = 200


def held_out_cantus(n_test: int = 60) -> set[tuple[str, ...]]:
    """Cantus firmi never trained on: Fux's and those of the generated test set."""
    from musicgym.music.cantus import generate_exercises

    out = {tuple(spec["notes"]) for spec in CANTUS_FIRMI.values()}
    out |= {tuple(ex["cantus_firmus"]) for ex in generate_exercises(n_test, seed=TEST_SEED)}
    return out


def training_exercises(n: int, *, seed: int) -> list[dict]:
    """``n`` generated exercises (species cycling 1-5, modes cycling) with no held-out cantus."""
    from musicgym.music.cantus import generate_exercises

    held = held_out_cantus()
    return [ex for ex in generate_exercises(n, seed=seed)
            if tuple(ex["cantus_firmus"]) not in held]


def piece_samples(env: CounterpointEnv, actions: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(features, chosen action) of every state along ``actions`` from the start."""
    state = CounterpointState(env.setup)
    xs, ys = [], []
    for action in actions:
        mask = env.oracle.mask(state)
        xs.append(features(state, mask))
        ys.append(action)
        state.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
        if state.finished:
            break
    return np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.int64)


def expert_pieces(exercises: list[dict], *, width: int = EXPERT_WIDTH, seed: int = 0,
                  policy: ComposerPolicy | None = None, top_k: int = 3,
                  log=print) -> list[dict]:
    """One piece per exercise by the guided search (or, given ``policy``, the policy-guided
    search): dicts with the exercise index, its return and actions."""
    out = []
    t0 = time.perf_counter()
    for i, ex in enumerate(exercises):
        env = CounterpointEnv(**ex)
        if policy is None:
            ret, actions = guided_beam_search(env, seed=seed + i, beam_width=width)
        else:
            ret, actions = policy_guided_search(env, policy, seed=seed + i, beam_width=width,
                                                top_k=top_k)
        out.append({"index": i, "return": float(ret), "actions": actions})
        if (i + 1) % 25 == 0:
            log(f"  {i + 1}/{len(exercises)} pieces, {time.perf_counter() - t0:.0f} s, "
                f"mean return {np.mean([p['return'] for p in out]):.3f}")
    return out


class _PrefixOracle:
    """The env's oracle with the first notes forced to ``prefix`` (one allowed action each)."""

    def __init__(self, oracle, prefix: list[int]) -> None:
        self._oracle, self._prefix = oracle, list(prefix)

    def mask(self, state: CounterpointState) -> np.ndarray:
        mask = self._oracle.mask(state)
        k = len(state.moves)
        if k < len(self._prefix):
            forced = np.zeros_like(mask)
            forced[self._prefix[k]] = mask[self._prefix[k]]
            return forced
        return mask

    def check(self, state: CounterpointState):
        return self._oracle.check(state)

    def step_rewards(self, state: CounterpointState) -> np.ndarray:
        return self._oracle.step_rewards(state)


class _PrefixEnv:
    """What the guided search reads from an env, with the first notes forced."""

    def __init__(self, env, prefix: list[int]) -> None:
        self.setup = env.setup
        self.oracle = _PrefixOracle(env.oracle, prefix)
        self.scoring_coefs = env.scoring_coefs
        self.scoring_fn_params = env.scoring_fn_params
        self.reward_for_dead_end = env.reward_for_dead_end

    @property
    def unwrapped(self):
        return self


def expert_continuation(env: CounterpointEnv, prefix: list[int], *,
                        width: int = EXPERT_WIDTH, seed: int = 0) -> tuple[float, list[int]]:
    """The guided search's best piece that starts with ``prefix`` (the expert asked what to
    do in a state the policy reached): (return, all actions, the prefix's included)."""
    return guided_beam_search(_PrefixEnv(env.unwrapped, prefix), seed=seed, beam_width=width)


def relabelled_samples(exercises: list[dict], policy: ComposerPolicy, *, cuts: int = 2,
                       width: int = EXPERT_WIDTH, seed: int = 0, log=print
                       ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """DAgger: on each exercise the policy writes a piece greedily; at ``cuts`` random points
    of it the expert continues from the policy's prefix, and the states from the cut on, with
    the expert's notes, become samples. Returns (x, y, the expert's pieces)."""
    from musicgym.compose.policy import compose_policy

    rng = np.random.default_rng(seed)
    xs, ys, pieces = [], [], []
    t0 = time.perf_counter()
    for i, ex in enumerate(exercises):
        env = CounterpointEnv(**ex)
        _, rollout = compose_policy(env, policy)
        if len(rollout) < 2:
            continue
        for cut in sorted(rng.choice(np.arange(1, len(rollout)), size=min(cuts, len(rollout)
                                                                          - 1), replace=False)):
            ret, actions = expert_continuation(env, rollout[:cut], width=width,
                                               seed=seed + i)
            if not np.isfinite(ret):
                continue
            x, y = piece_samples(env, actions)
            xs.append(x[cut:])
            ys.append(y[cut:])
            pieces.append({"index": i, "cut": int(cut), "return": float(ret),
                           "actions": actions})
        if (i + 1) % 25 == 0:
            log(f"  relabelled {i + 1}/{len(exercises)}, {time.perf_counter() - t0:.0f} s")
    return np.concatenate(xs), np.concatenate(ys), pieces


STRONG_WIDTH = 3000  # the stronger expert's beam width (--strong-rounds)


def stronger_pieces(exercises: list[dict], pieces: list[dict], policy: ComposerPolicy, *,
                    species: tuple[int, ...] = (5,), width: int = STRONG_WIDTH,
                    guided: bool = True, log=print) -> tuple[list[dict], int]:
    """Expert iteration with a stronger expert. On the exercises of ``species``: the plain
    guided search at ``width`` (with ``guided``) and the policy-guided search at ``width``
    with ``policy`` as its prior (top 3; log-probability weight 0.1, then 0: the two rankings
    lose different lines) each write a piece; the best (the env's return; the first of ties)
    is polished (:func:`musicgym.compose.polish.polish_piece`, the shipped decoder's
    settings) and replaces the exercise's piece in ``pieces`` where it scores higher. Other
    exercises keep their pieces. Returns (the pieces, how many were replaced)."""
    from musicgym.compose.polish import polish_piece
    from musicgym.compose.value import DEFAULT_POLISH

    out, replaced = [dict(q) for q in pieces], 0
    t0 = time.perf_counter()
    chosen = [k for k, q in enumerate(out) if exercises[q["index"]]["species"] in species]
    for n, k in enumerate(chosen):
        i = out[k]["index"]
        env = CounterpointEnv(**exercises[i])
        env.reset()
        found = [guided_beam_search(env, seed=i, beam_width=width)] if guided else []
        for logp in (0.1, 0.0):
            found.append(policy_guided_search(env, policy, seed=i, beam_width=width, top_k=3,
                                              logp_weight=logp))
        best = max(range(len(found)), key=lambda j: found[j][0])
        ret, actions = polish_piece(env, list(found[best][1]), **DEFAULT_POLISH)
        if ret > out[k]["return"] + 1e-9:
            out[k] = {"index": i, "return": float(ret), "actions": [int(a) for a in actions]}
            replaced += 1
        if (n + 1) % 10 == 0 or n + 1 == len(chosen):
            log(f"  stronger expert {n + 1}/{len(chosen)}, {time.perf_counter() - t0:.0f} s, "
                f"{replaced} replaced, mean return "
                f"{np.mean([out[j]['return'] for j in chosen[:n + 1]]):.4f}")
    return out, replaced


def dataset(exercises: list[dict], pieces: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Stack the samples of every finished piece."""
    xs, ys = [], []
    for piece in pieces:
        if not np.isfinite(piece["return"]):
            continue
        x, y = piece_samples(CounterpointEnv(**exercises[piece["index"]]), piece["actions"])
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def train_policy(x: np.ndarray, y: np.ndarray, *, hidden: int = 256, epochs: int = 40,
                 lr: float = 2e-3, seed: int = 0, log=print) -> tuple[ComposerPolicy, dict]:
    """Fit the MLP to (features, action) by cross-entropy over the allowed actions; 10 % of
    the samples are held out to report accuracy. Returns the policy and its training figures.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = max(1, len(x) // 10)
    val, tr = order[:n_val], order[n_val:]
    from musicgym.compose.policy import n_features
    from musicgym.music.rules.species import N_ACTIONS

    mask_slice = slice(n_features() - 2 - N_ACTIONS, n_features() - 2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                        nn.ReLU(), nn.Linear(hidden, N_ACTIONS))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)

    def masked(xb):
        logits = net(xb)
        return logits.masked_fill(xb[:, mask_slice] < 0.5, -1e9)

    batch = 256
    figures = {}
    for epoch in range(epochs):
        net.train()
        perm = torch.from_numpy(rng.permutation(tr))
        total = 0.0
        for start in range(0, len(perm), batch):
            idx = perm[start:start + batch]
            loss = nn.functional.cross_entropy(masked(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        if epoch == epochs - 1 or epoch % 10 == 0:
            net.eval()
            with torch.no_grad():
                vx, vy = xt[torch.from_numpy(val)], yt[torch.from_numpy(val)]
                acc = float((masked(vx).argmax(1) == vy).float().mean())
            figures = {"epoch": epoch + 1, "train_loss": total / len(tr),
                       "val_accuracy": acc, "n_train": int(len(tr)), "n_val": int(n_val)}
            log(f"  epoch {epoch + 1}: loss {total / len(tr):.3f}, held-out accuracy {acc:.3f}")
    return ComposerPolicy(mlp.torch_weights(net)), figures


def fit_rounds(exercises: list[dict], pieces: list[dict], args: argparse.Namespace, out: Path,
               log=print) -> tuple[ComposerPolicy, list[dict], list[dict]]:
    """Round 0 (imitation of ``pieces``) and the further rounds of ``args`` (DAgger or
    improvement): (the policy, each round's figures, the pieces, improved ones replaced)."""
    pieces = [dict(q) for q in pieces]
    x, y = dataset(exercises, pieces)
    log(f"{len(x)} samples from {len(pieces)} expert pieces")
    policy, figures = train_policy(x, y, hidden=args.hidden, epochs=args.epochs,
                                   seed=args.seed, log=log)
    rounds = [{"round": 0, "samples": int(len(x)), **figures,
               "expert_mean_return": float(np.mean([q["return"] for q in pieces]))}]
    dagger_x, dagger_y = x[:0], y[:0]
    for r in range(1, args.rounds):
        if args.relabel and r < args.rounds - args.improve_last:
            # DAgger: aggregate the expert's notes on the states the policy reaches
            xr, yr, relabelled = relabelled_samples(
                exercises, policy, cuts=args.relabel, width=args.relabel_width or args.width,
                seed=10_000 * r, log=log)
            x, y = np.concatenate([x, xr]), np.concatenate([y, yr])
            dagger_x, dagger_y = np.concatenate([dagger_x, xr]), np.concatenate([dagger_y, yr])
            log(f"round {r}: {len(relabelled)} expert continuations, {len(xr)} new "
                f"samples; {len(x)} in all")
            policy, figures = train_policy(x, y, hidden=args.hidden, epochs=args.epochs,
                                           seed=args.seed + r, log=log)
            rounds.append({"round": r, "relabelled": len(relabelled), "samples": int(len(x)),
                           **figures})
            policy.save(out / f"round{r}" / "counterpoint.npz")
            continue
        better = expert_pieces(exercises, width=args.width, policy=policy, seed=10_000 * r,
                               log=log)
        n_better = 0
        for k, piece in enumerate(better):
            if piece["return"] > pieces[k]["return"]:
                pieces[k], n_better = piece, n_better + 1
        x, y = dataset(exercises, pieces)
        x, y = np.concatenate([x, dagger_x]), np.concatenate([y, dagger_y])
        log(f"round {r}: {n_better} pieces improved; {len(x)} samples")
        policy, figures = train_policy(x, y, hidden=args.hidden, epochs=args.epochs,
                                       seed=args.seed + r, log=log)
        rounds.append({"round": r, "improved": n_better, "samples": int(len(x)), **figures,
                       "expert_mean_return": float(np.mean([q["return"] for q in pieces]))})
    return policy, rounds, pieces


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m musicgym.compose.policy_train",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--exercises", type=int, default=400, help="generated training exercises")
    p.add_argument("--seed", type=int, default=1, help="generate_exercises seed (not "
                                                       f"{TEST_SEED}, the test set's)")
    p.add_argument("--width", type=int, default=EXPERT_WIDTH, help="expert's beam width")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--rounds", type=int, default=1, help="1: imitation only; 2: one round "
                                                         "of improvement")
    p.add_argument("--relabel", type=int, default=0, help="rounds 1+: DAgger with this "
                   "many expert continuations per exercise from the policy's own prefixes "
                   "(0: the improvement round instead)")
    p.add_argument("--improve-last", type=int, default=0, help="with --relabel: the last "
                   "this many rounds are improvement rounds (the policy-guided search's pieces "
                   "replace the expert's where they score higher), the DAgger samples kept")
    p.add_argument("--relabel-width", type=int, default=0, help="expert's beam width when "
                   "relabelling (0: --width)")
    p.add_argument("--pieces", help="reuse the expert pieces of a previous run (the JSON "
                                    "its --save-pieces wrote)")
    p.add_argument("--save-pieces", help="write the expert pieces to this JSON")
    p.add_argument("--strong-rounds", type=int, default=0, help="expert iteration with a "
                   "stronger expert: this many times, the searches at --strong-width with the "
                   "policy so far as their prior rewrite the pieces of --strong-species, the "
                   "better ones kept, and the recipe is rerun on them")
    p.add_argument("--strong-species", type=int, nargs="+", default=[5],
                   choices=range(1, 6), help="species the stronger expert rewrites")
    p.add_argument("--strong-width", type=int, default=STRONG_WIDTH,
                   help="the stronger expert's beam width")
    p.add_argument("--save-final-pieces", help="write the pieces the final policy imitated "
                   "(the stronger expert's included) to this JSON (value_train --pieces)")
    p.add_argument("--out", default="runs/composer", help="output folder")
    args = p.parse_args(argv)

    def log(message: str) -> None:
        print(message, flush=True)

    if args.seed == TEST_SEED:
        p.error(f"--seed {TEST_SEED} is the test set's seed")
    if args.strong_rounds < 0 or args.strong_width < 1:
        p.error("--strong-rounds must be 0 or more and --strong-width 1 or more")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    exercises = training_exercises(args.exercises, seed=args.seed)
    print(f"{len(exercises)} training exercises (seed {args.seed})", flush=True)
    if args.pieces:
        pieces = [q for q in json.loads(Path(args.pieces).read_text(encoding="utf-8"))[
            "pieces"] if q["index"] < len(exercises)]
    else:
        pieces = expert_pieces(exercises, width=args.width, log=log)
    if args.save_pieces:
        Path(args.save_pieces).write_text(json.dumps({"width": args.width, "seed": args.seed,
                                                     "pieces": pieces}), encoding="utf-8")
    policy, rounds, pieces = fit_rounds(exercises, pieces, args, out, log)
    base_rounds, strong = rounds, []
    for k in range(1, args.strong_rounds + 1):
        # expert iteration with a stronger expert: the policy of the rounds before is the
        # prior of a wider search on the chosen species, and the whole recipe is rerun on
        # the better pieces
        pieces, replaced = stronger_pieces(
            exercises, pieces, policy, species=tuple(args.strong_species),
            width=args.strong_width, guided=k == 1, log=log)
        log(f"stronger expert round {k}: {replaced} pieces replaced")
        policy.save(out / f"strong{k - 1}" / "counterpoint.npz")
        policy, rounds, pieces = fit_rounds(exercises, pieces, args, out, log)
        strong.append({"round": k, "replaced": replaced, "rounds": rounds})
    if args.save_final_pieces:
        Path(args.save_final_pieces).write_text(json.dumps(
            {"width": args.width, "seed": args.seed, "pieces": pieces}), encoding="utf-8")
    policy.meta = {
        "command": "python -m musicgym.compose.policy_train " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "seed": args.seed, "exercises": len(exercises), "expert": "guided_beam_search",
        "expert_width": args.width, "test_seed": TEST_SEED, "rounds": rounds,
        "base_rounds": base_rounds, "strong_rounds": strong,
        "strong_species": list(args.strong_species), "strong_width": args.strong_width,
        "train_seconds": time.perf_counter() - t0}
    path = policy.save(out / "counterpoint.npz")
    print(f"wrote {path} in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
