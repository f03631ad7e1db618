"""Species 5 on the VALIDATION splits: where the shipped composing decoder loses to the best
piece a wider search finds, score by score, and where the best piece's prefix leaves the
shipped search's beam.

The exercises are the species-5 ones of the two validation splits the decoder's settings were
chosen on (never the test set): A, ``validation_exercises(60)`` (10 of species 5), and B, the
further ones of ``validation_exercises(200)`` (28). On each:

* ``shipped``: the shipped decoder (``compose_value_and_search`` at its defaults: the
  policy-guided search width 300, top 3, logp 0.1, then the polish);
* the reference searches of ``--refs`` (default: the policy-guided search at width 1000 and
  3000, top 3, logp 0.1, i.e. the shipped search's own ranking, wider; ``guided3000`` adds the
  plain guided search at width 3000, seed 0);
* ``best``: the highest-scoring of all these pieces.

Every piece is judged from its notes (``compose_policy.judge``: RL-Musician's five scores;
0 hard violations and 0 parallel perfects checked). Then the shipped decoder's search is run
once more (the same search, so the same piece before the polish) with its pruning watched:
for the best piece, the first eighth at which its prefix is no longer among the partial pieces
the search keeps, and why:

* ``prior``: the prefix's next note is not among the policy's 3 likeliest (never tried);
* ``beam``: tried, but ranked below the width (its rank among the group's candidates by the
  search's estimate is given); an equivalent partial piece kept instead (the same future, as
  the search merges them) counts as kept, and the watch follows it;
* ``kept``: never dropped, so the search scored the best piece itself.

Run: ``OMP_NUM_THREADS=1 nice python benchmarks/compose_gap.py`` (``--refs``, ``--cache``;
about 15 min of CPU at the defaults on one core). Results per exercise are cached as JSON in
``--cache`` (default /tmp/compose_gap), so a rerun only computes what is missing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from compose_policy import judge  # the benchmark's own judge

import musicgym.compose.search as search_module
from musicgym.compose.policy import ComposerPolicy, policy_guided_search
from musicgym.compose.search import guided_beam_search
from musicgym.compose.value import (
    DEFAULT_SEARCH_LOGP,
    DEFAULT_SEARCH_WIDTH,
    ComposerValue,
    compose_value_and_search,
)
from musicgym.compose.value_train import validation_exercises
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.rules import SCORE_NAMES

# compose_value_and_search's species-5 search defaults (the log-probability weight was 0.1
# when the tables of docs/compose.md's diagnosis were made)
SHIPPED_TOP_K, SHIPPED_LOGP = 3, DEFAULT_SEARCH_LOGP[5]
SHORTAGE = 0.3  # climax_explicity's shortage penalty a step (its default, the search's estimate)


def species5_splits() -> list[tuple[str, int, dict]]:
    """(split, index, exercise) for the species-5 exercises of validation A and B."""
    a = validation_exercises(60)
    seen = {tuple(e["cantus_firmus"]) for e in a}
    b = [e for e in validation_exercises(200) if tuple(e["cantus_firmus"]) not in seen]
    out = []
    for split, exercises in (("A", a), ("B", b)):
        for k, ex in enumerate(e for e in exercises if e["species"] == 5):
            out.append((split, k, ex))
    return out


def reference_methods(policy: ComposerPolicy, names: list[str]) -> dict:
    methods = {}
    for name in names:
        if name.startswith("pg"):
            width = int(name[2:])
            methods[name] = (lambda env, w=width: policy_guided_search(
                env, policy, beam_width=w, top_k=SHIPPED_TOP_K, logp_weight=SHIPPED_LOGP))
        elif name.startswith("guided"):
            width = int(name[6:])
            methods[name] = lambda env, w=width: guided_beam_search(env, seed=0, beam_width=w)
        else:
            raise SystemExit(f"unknown reference {name!r}: give pgWIDTH or guidedWIDTH")
    return methods


def watch_prefix(env: CounterpointEnv, policy: ComposerPolicy, target: list[int],
                 value: ComposerValue | None = None) -> dict:
    """Run the shipped search with its pruning watched; where ``target``'s prefix is dropped.

    Returns a dict with ``fate`` ("kept", "prior" or "beam"), ``eighth`` (onset of the dropped
    note), ``notes`` (how many of the target's notes were kept), ``rank`` and ``candidates``
    (for "beam": the prefix's rank by the search's estimate, noise left out, and the group's
    size), ``merged`` (times an equivalent partial piece stood in for the prefix)."""
    original = search_module._prune
    watch = {"fate": "kept", "notes": 0, "merged": 0, "eighth": None}
    path = [None]  # the kept node of each prefix length; path[0]: the root (found below)

    def key_of(node):
        return (node.make_state().signature(), node.counts, node.skips, node.peak,
                node.repeats, node.tail)

    import math

    setup = env.setup
    log_pitches = math.log(setup.highest_position - setup.lowest_position + 1)

    def facts(node) -> dict:
        """The terms of the search's estimate (see guided_beam_search) for one node."""
        n = node.n_notes
        return {"estimate": float(node.estimate), "logp": float(node.logp),
                "entropy_so_far": (math.log(n) - node.clogc / n) / log_pitches,
                "notes": n, "distinct": sum(1 for c in node.counts if c),
                "steps_below_top": setup.highest_position - node.peak,
                "repeats": node.repeats, "skips": node.skips, "narrow": float(node.narrow),
                "reward": float(node.reward)}

    def prune(nodes, beam_width, noise, rng):
        kept = original(nodes, beam_width, noise, rng)
        if watch["fate"] != "kept" or watch.get("done"):
            return kept
        if path[0] is None:  # the root's group
            path[0] = kept[0]
            return kept
        i = len(path)  # the prefix of i notes is due in this group if its onset is now
        if i > len(target):
            return kept
        parent = path[-1]
        # this group's time: the prefix's onset must match, else it is not due yet
        time_now = nodes[0].time
        mine = [n for n in nodes if n.parent is parent and n.action == target[i - 1]]
        if not mine:
            # the prefix's child is due in a later group, or it was never tried
            child_time = parent.time + search_module._DURATIONS[target[i - 1]]
            if child_time != time_now:
                return kept
            watch.update(fate="prior", eighth=time_now, notes=i - 1)
            return kept
        node = mine[0]
        if any(n is node for n in kept):
            path.append(node)
            watch["notes"] = i
            return kept
        key = key_of(node)
        twin = [n for n in kept if key_of(n) == key]
        if twin:  # an equivalent partial piece kept instead: follow it
            watch["merged"] += 1
            target[:i] = twin[0].actions()
            path.append(twin[0])
            watch["notes"] = i
            return kept
        order = np.argsort(-np.array([n.estimate for n in nodes]), kind="stable").tolist()
        rank = next(r for r, j in enumerate(order) if nodes[j] is node)
        cutoff = min(kept, key=lambda n: n.estimate)
        # the prefix's rank had the estimate left out a term (the group shares its time)
        est = np.array([n.estimate for n in nodes])
        logp = SHIPPED_LOGP * np.array([n.logp for n in nodes])
        progress = time_now / setup.total_eighths
        shortage = SHORTAGE * progress * np.array([setup.highest_position - n.peak
                                                   for n in nodes])
        j = next(j for j, n in enumerate(nodes) if n is node)

        def rank_by(keys):
            return int((keys > keys[j]).sum()) + 1

        watch["ranks"] = {"search": rank_by(est), "no logp": rank_by(est - logp),
                          "no climax shortage": rank_by(est + shortage),
                          "shortage x progress": rank_by(est + shortage * (1 - progress)),
                          "neither": rank_by(est - logp + shortage)}
        if value is not None:  # the learned value (penalties so far + the return to come)
            learned = np.array([n.reward for n in nodes]) + value(
                [n.make_state() for n in nodes])
            watch["ranks"]["learned value"] = rank_by(learned)
            watch["ranks"]["learned value + logp"] = rank_by(learned + logp)
        watch.update(fate="beam", eighth=time_now, notes=i - 1, rank=rank + 1,
                     candidates=len(nodes), kept=len(kept), dropped=facts(node),
                     cutoff=facts(cutoff), top=facts(nodes[order[0]]))
        return kept

    search_module._prune = prune
    try:
        result = policy_guided_search(env, policy, beam_width=DEFAULT_SEARCH_WIDTH[5],
                                      top_k=SHIPPED_TOP_K, logp_weight=SHIPPED_LOGP)
    finally:
        search_module._prune = original
    watch["search_return"] = float(result[0])
    watch["target_notes"] = len(target)
    return watch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refs", default="pg1000,pg3000",
                        help="reference searches: pgWIDTH (policy-guided, the shipped "
                             "ranking), guidedWIDTH (plain guided search), comma-separated")
    parser.add_argument("--cache", default="/tmp/compose_gap")
    parser.add_argument("--only", default="", help="only these splits, e.g. A")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    policy, value = ComposerPolicy.load("builtin"), ComposerValue.load("builtin")
    refs = [r for r in args.refs.split(",") if r]
    methods = {"shipped": lambda env: compose_value_and_search(env, policy, value),
               **reference_methods(policy, refs)}
    rows = []
    for split, k, ex in species5_splits():
        if args.only and split not in args.only:
            continue
        env = CounterpointEnv(**ex)
        env.reset()
        row = {"split": split, "k": k, "bars": len(ex["cantus_firmus"]), "methods": {}}
        for name, run in methods.items():
            path = cache / f"{split}{k}_{name}.json"
            if path.exists():
                row["methods"][name] = json.loads(path.read_text())
                continue
            c0 = time.process_time()
            ret, actions = run(env)
            cpu = time.process_time() - c0
            judged = judge(env, ret, actions, detail=True)
            judged["cpu_seconds"] = cpu
            path.write_text(json.dumps(judged))
            row["methods"][name] = judged
        for name, r in row["methods"].items():
            assert r["finished"] and r["hard_violations"] == 0 and r["parallel_perfects"] == 0, \
                (split, k, name)
        best = max(row["methods"], key=lambda m: row["methods"][m]["score"])
        row["best_method"] = best
        path = cache / f"{split}{k}_watch4_{best}.json"
        if path.exists():
            row["watch"] = json.loads(path.read_text())
        else:
            row["watch"] = watch_prefix(env, policy, list(row["methods"][best]["actions"]),
                                        value)
            path.write_text(json.dumps(row["watch"]))
        # the best piece the policy's top 3 can write (the shipped or a policy-guided one)
        best_pg = max((m for m in row["methods"] if m == "shipped" or m.startswith("pg")),
                      key=lambda m: row["methods"][m]["score"])
        row["best_pg_method"] = best_pg
        if best_pg == best:
            row["watch_pg"] = row["watch"]
        else:
            path = cache / f"{split}{k}_watch4_{best_pg}.json"
            if path.exists():
                row["watch_pg"] = json.loads(path.read_text())
            else:
                row["watch_pg"] = watch_prefix(env, policy,
                                               list(row["methods"][best_pg]["actions"]), value)
                path.write_text(json.dumps(row["watch_pg"]))
        rows.append(row)
        s, b = row["methods"]["shipped"], row["methods"][best]
        w = row["watch"]
        print(f"{split}{k:<3} bars {row['bars']:>2} shipped {s['score']:.4f} best {b['score']:.4f}"
              f" ({best}) gap {b['score'] - s['score']:.4f} | fate {w['fate']} at eighth "
              f"{w['eighth']} after {w['notes']}/{w['target_notes']} notes"
              + (f", rank {w['rank']} of {w['candidates']}" if w["fate"] == "beam" else ""),
              flush=True)
    report(rows, list(methods))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


def report(rows: list[dict], methods: list[str]) -> None:
    splits = sorted({r["split"] for r in rows})
    for split in splits + (["A+B"] if len(splits) > 1 else []):
        sel = [r for r in rows if split == "A+B" or r["split"] == split]
        means = {m: np.mean([r["methods"][m]["score"] for r in sel]) for m in methods}
        best = np.mean([r["methods"][r["best_method"]]["score"] for r in sel])
        print(f"{split} ({len(sel)}): " + ", ".join(f"{m} {v:.4f}" for m, v in means.items())
              + f", best {best:.4f}")
    gaps = np.array([r["methods"][r["best_method"]]["score"] - r["methods"]["shipped"]["score"]
                     for r in rows])
    print(f"gap: mean {gaps.mean():.4f}; exercises with gap > 0.001: {(gaps > 0.001).sum()}, "
          f"> 0.01: {(gaps > 0.01).sum()}, > 0.05: {(gaps > 0.05).sum()}; share of the total "
          f"gap in the 5 largest: {np.sort(gaps)[-5:].sum() / max(gaps.sum(), 1e-12):.2f}")
    terms = {}
    for name in SCORE_NAMES:
        d = [r["methods"][r["best_method"]]["scores"][name]
             - r["methods"]["shipped"]["scores"][name] for r in rows]
        terms[name] = float(np.mean(d))
    print("mean (best - shipped) per score: "
          + ", ".join(f"{k} {v:+.4f}" for k, v in terms.items()))
    fates = {}
    for r, g in zip(rows, gaps, strict=True):
        if g > 0.001:
            fates.setdefault(r["watch"]["fate"], []).append(r["watch"]["eighth"])
    print("where the best piece's prefix leaves the shipped search (gap > 0.001): "
          + ", ".join(f"{f}: {len(v)} (eighths {sorted(e for e in v if e is not None)})"
                      for f, v in fates.items()))
    # the best piece the policy's top 3 can write: why its prefix ranked below the width
    dropped = [r["watch_pg"] for r, g in zip(rows, gaps, strict=True)
               if g > 0.001 and r["watch_pg"]["fate"] == "beam"]
    reached = sum(1 for r, g in zip(rows, gaps, strict=True)
                  if g > 0.001 and r["watch_pg"]["fate"] == "kept")
    print(f"the best policy-reachable piece (shipped or pg*), gap > 0.001: dropped by the beam "
          f"on {len(dropped)} exercises, kept to the end on {reached}")
    if dropped:
        print(f"  rank of its prefix when dropped: median "
              f"{np.median([w['rank'] for w in dropped]):.0f} of median "
              f"{np.median([w['candidates'] for w in dropped]):.0f} candidates (width "
              f"{DEFAULT_SEARCH_WIDTH[5]}), at eighth median "
              f"{np.median([w['eighth'] for w in dropped]):.0f}")
        print("  its estimate's terms minus the last kept partial piece's (mean over those):")
        for variant in dropped[0]["ranks"]:
            ranks = [w["ranks"][variant] for w in dropped]
            print(f"  its rank with the estimate's {variant:<20}: median {np.median(ranks):.0f}"
                  f", within the width on {sum(r <= DEFAULT_SEARCH_WIDTH[5] for r in ranks)}")
        for fact in ("estimate", "logp", "entropy_so_far", "notes", "distinct",
                     "steps_below_top", "repeats", "skips", "narrow", "reward"):
            diff = [w["dropped"][fact] - w["cutoff"][fact] for w in dropped]
            print(f"    {fact:<16} {np.mean(diff):+.4f}  (dropped lower on "
                  f"{sum(d < 0 for d in diff)}, higher on {sum(d > 0 for d in diff)})")


if __name__ == "__main__":
    raise SystemExit(main())
