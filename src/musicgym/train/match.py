"""Match sounds with a patch: a trained matcher, search, or the matcher seeding search.

Methods (each gives one setting of the patch per target):

* ``policy``: the matcher's proposal, one forward pass and one render (:mod:`.matcher`);
* ``policy+cmaes``: CMA-ES whose mean starts at the proposal and whose step size is the
  matcher's validation RMSE (its spread, at least 0.05), population 8: the literature's
  "net init + short search" (spiegelib's WS-NSGA);
* ``policy@k``: the proposal and the settings of the ``k - 1`` training sounds nearest the
  target (the matcher's codebook), each rendered once, the best kept (``k`` = the budget);
* ``refine``: a refinement episode of K renders (K = the budget): from the best of the
  matcher's first ``REFINE_CANDIDATES`` guesses, at each step the matcher hears
  the current sound and the target, and the settings move by the difference of its two
  readings (``a += step * (net(target) - net(current))``; a step that makes the sound worse
  is undone and the step halved), the best sound kept;
* ``policy+nm``: Nelder-Mead from the best of ``policy@k`` (k = ``NM_CANDIDATES``), its
  simplex as wide as the matcher's spread, restarted smaller around the best while budget
  is left;
* ``cmaes``: CMA-ES from the centre of the action space, step 0.5;
* ``random``: best of uniformly random settings.

Every method's sound is scored the same way (:func:`musicgym.train.evaluate.sound_metrics`:
MR-STFT distance and 13-MFCC mean absolute error against the target clip).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from musicgym.envs.matcher_model import Matcher
from musicgym.envs.matching import MatchCore
from musicgym.errors import OutputError, UsageError
from musicgym.train.evaluate import sound_metrics

METHODS = ("policy", "policy@k", "refine", "policy+nm", "policy+cmaes", "cmaes", "random")
DEFAULT_BUDGET = {"policy": 1, "policy@k": 16, "refine": 10, "policy+nm": 100,
                  "policy+cmaes": 100, "cmaes": 1000, "random": 1000}
MIN_SIGMA = 0.05
# smaller than CMA-ES's 16: more generations in a budget of 100 from a good start; chosen on
# the one-shots' training half (benchmarks/matcher.py TRAINING): 2.04 mean MR-STFT against
# 2.13 with 16, CMA-ES@1000 1.98
HYBRID_POPSIZE = 8
# the one-shots (musicgym.datapath) no choice was made on: the benchmark and the demo test here
HELD_OUT = ("bd_haus", "drum_cymbal_closed", "elec_hi_snare", "perc_bell", "sn_zome")
TRAINING = ("bass_hit_c", "bd_808", "bd_pure", "elec_blip", "sn_dub")
SYNTHETIC_SEED = 777_000  # apart from the training seeds (0...)
NM_CANDIDATES = 16  # proposals tried before Nelder-Mead starts from the best of them
# the Nelder-Mead simplex's side along each setting follows that setting's spread over the
# best NM_SCALE_GUESSES guesses (guesses_spread); chosen on the one-shots' training half and
# 100 SoundFont one-shots (seed 3), confirmed on 100 fresh ones (seed 4): docs/matching.md
NM_SCALE_GUESSES = 4
# the refinement's first step (a fraction of the readings' difference) and the proposals it
# starts from (the best of them); chosen on the one-shots' training half and synthetic targets
# of seed 555: 4 proposals 2.252 MR-STFT against 2.533 from the proposal alone (real), and
# settings error 0.0026 against 0.0147 for the proposal (synthetic); step 0.5 was worse
REFINE_STEP = 1.0
REFINE_CANDIDATES = 4


class Evaluations:
    """Renders candidate settings of one target and scores them with the env's distance,
    counting evaluations and keeping the best (the searches' unit of cost).

    A setting already rendered for this target is not rendered again, nor counted (a
    Nelder-Mead restart's first vertex is the best point so far)."""

    def __init__(self, core: MatchCore) -> None:
        self.core = core
        self.count = 0
        self.best_cost = np.inf
        self.best = None
        self.best_clip = None
        self._seen: dict[bytes, tuple[float, np.ndarray]] = {}

    def __call__(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(costs (N,), clips (N, samples)) of (N, d) actions (clipped to [-1, 1])."""
        actions = np.clip(np.atleast_2d(np.asarray(actions, np.float64)), -1.0, 1.0)
        keys = [row.tobytes() for row in actions]
        new: list[int] = []  # rows never rendered, each once
        for i, key in enumerate(keys):
            if key not in self._seen and all(keys[j] != key for j in new):
                new.append(i)
        if new:
            rows = actions[new]
            _, seg = self.core.render_segments(rows.astype(np.float32), len(rows))
            seg = np.nan_to_num(seg, nan=0.0)
            costs = np.asarray(self.core.distances(seg, np.zeros(len(rows), np.int64), 0),
                               np.float64)
            self.count += len(rows)
            for j, i in enumerate(new):
                self._seen[keys[i]] = (float(costs[j]), seg[j])
            j = int(np.argmin(costs))
            if costs[j] < self.best_cost:
                self.best_cost, self.best = float(costs[j]), rows[j].copy()
                self.best_clip = seg[j].copy()
        costs = np.array([self._seen[k][0] for k in keys])
        return costs, np.stack([self._seen[k][1] for k in keys])


def policy_at_k(matcher: Matcher, clip: np.ndarray, evaluate: Evaluations,
                k: int) -> tuple[np.ndarray, np.ndarray]:
    """Render the matcher's ``k`` guesses (:meth:`Matcher.guesses`: chosen by its critic
    where it has one, else :meth:`Matcher.candidates`); best kept.
    Returns (candidates (k, d), their costs (k,))."""
    candidates = matcher.guesses(clip, k)
    return candidates, evaluate(candidates)[0]


def guesses_spread(candidates: np.ndarray, costs: np.ndarray,
                   top: int = NM_SCALE_GUESSES) -> np.ndarray | None:
    """(d,) relative simplex sides: each setting's spread (standard deviation) over the
    ``top`` best guesses, kept within [0.05, 0.5] and scaled to a root mean square of 1;
    ``None`` with fewer than two guesses. Where the good guesses disagree, the search
    should look wider; where they agree, closer."""
    if len(candidates) < 2:
        return None
    best = np.asarray(candidates, np.float64)[np.argsort(costs)[:max(2, top)]]
    sides = np.clip(best.std(axis=0), 0.05, 0.5)
    return sides / np.sqrt(np.mean(sides ** 2))


def refine(matcher: Matcher, clip: np.ndarray, evaluate: Evaluations, steps: int, *,
           step: float = REFINE_STEP, candidates: int = REFINE_CANDIDATES) -> None:
    """A refinement episode of ``steps`` renders from the best of the matcher's first
    ``candidates`` guesses (:meth:`Matcher.candidates`).

    The matcher reads the target once and the current sound at every step; the settings move
    by ``step`` times the difference of the two readings (where the current sound's reading
    falls short of the target's, the settings go further). A step that makes the sound worse
    goes back to the best settings and halves ``step``."""
    target_reading = matcher.forward(matcher.features(clip[None]))[0].astype(np.float64)
    evaluate(matcher.candidates(clip, max(1, min(candidates, steps - 1))))
    current, seg = evaluate.best.copy(), evaluate.best_clip[None]
    while evaluate.count < steps:
        reading = matcher.forward(matcher.features(seg))[0].astype(np.float64)
        candidate = np.clip(current + step * (target_reading - reading), -1.0, 1.0)
        before = evaluate.best_cost
        costs, seg = evaluate(candidate[None])
        if costs[0] < before:
            current = candidate
        else:  # back to the best sound, smaller steps
            current, seg = evaluate.best.copy(), evaluate.best_clip[None]
            step *= 0.5


def nelder_mead(evaluate: Evaluations, x0: np.ndarray, budget: int, size: float,
                scale: np.ndarray | None = None) -> None:
    """Nelder-Mead (SciPy) from ``x0`` in [-1, 1]^d until ``evaluate`` has spent ``budget``,
    restarting around the best with half the simplex each time it converges. The simplex's
    side along setting ``i`` is ``size * scale[i]`` (``scale`` default: all ones)."""
    from scipy.optimize import minimize

    d = x0.size
    x = np.clip(np.asarray(x0, np.float64), -1.0, 1.0)
    while evaluate.count < budget and size > 1e-4:
        left = budget - evaluate.count
        if left < d + 2:
            break
        # the simplex: x and one step of ``size`` along each axis (inwards at a bound)
        simplex = np.repeat(x[None], d + 1, axis=0)
        for i in range(d):
            side = size * (1.0 if scale is None else float(scale[i]))
            simplex[i + 1, i] += side if x[i] + side <= 1.0 else -side
        minimize(lambda v: float(evaluate(v[None])[0][0]), x, method="Nelder-Mead",
                 bounds=[(-1.0, 1.0)] * d,
                 options={"maxfev": left, "initial_simplex": simplex, "xatol": 1e-3,
                          "fatol": 1e-4})
        x, size = evaluate.best.copy(), size * 0.5


def env_kwargs(spec: dict, target) -> dict:
    """Keyword arguments of ``musicgym/SynthMatch-v0`` for a patch spec and one target."""
    return {"code": spec["code"], "target": target, "total_step": 1,
            "step_len": spec["seconds"], "action_space": spec["action_space"],
            "flat_actions": True}


def synthetic_targets(spec: dict, n: int, *, seed: int = SYNTHETIC_SEED, sr: int = 44100,
                      limit: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(actions (n, d), clips (n, samples))``: the patch at settings drawn uniformly in
    ``[-limit, limit]`` of the normalised action space with ``seed`` (targets whose answers
    are known)."""
    from musicgym.envs.spaces import ParameterMap
    from musicgym.synth import Patch

    patch = Patch(spec["code"])
    pmap = ParameterMap(spec["action_space"], n_holes=patch.n_params, flat=True)
    actions = np.random.default_rng(seed).uniform(-limit, limit, (n, pmap.space.shape[0]))
    clips = patch.render(pmap.params(actions, n), n_samples=int(spec["seconds"] * sr),
                         progress=False)[:, 0]
    return actions, clips


def match_target(spec: dict, target, method: str, *, budget: int | None = None,
                 matcher: Matcher | None = None, seed: int = 0) -> dict:
    """Match one target (a file or an array at 44.1 kHz) with ``method``.

    Returns
    -------
    dict
        ``actions`` (d,), ``params`` (P,), ``clip`` and ``target_clip`` (the rendered match
        and the target cut or padded to the patch's length), ``sr``, ``evaluations``,
        ``seconds`` (wall time of the method, the final render included) and the metrics
        ``mrstft`` and ``mfcc``. A sequencer's spec (``spec["steps"]`` > 1, BassLine-v0) is
        matched step by step: ``actions`` (steps, d) and ``params`` (steps, P), ``steps``
        and ``step_seconds`` added (:func:`_match_steps`).

    Raises
    ------
    UsageError
        An unknown method, a bad budget, or a policy method without a matcher."""
    from musicgym.train.baselines import cmaes, random_search

    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    budget = DEFAULT_BUDGET[method] if budget is None else budget
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise UsageError(f"budget: must be a positive integer, got {budget!r}")
    if (method.startswith("policy") or method == "refine") and matcher is None:
        raise UsageError(f"method {method} needs a matcher (--policy builtin or a path)")
    if spec.get("steps", 1) > 1:
        return _match_steps(spec, target, method, budget, matcher, seed)
    t0 = time.perf_counter()
    core = MatchCore(**env_kwargs(spec, target))
    kwargs = env_kwargs(spec, core.target_clips[0])
    clip = core.target_clips[0]
    if method in ("policy@k", "refine", "policy+nm"):
        evaluate = Evaluations(core)
        if method == "policy@k":
            policy_at_k(matcher, clip, evaluate, budget)
        elif method == "refine":
            refine(matcher, clip, evaluate, budget)
        else:
            candidates, costs = policy_at_k(matcher, clip, evaluate, min(NM_CANDIDATES, budget))
            nelder_mead(evaluate, evaluate.best, budget, max(MIN_SIGMA, matcher.spread),
                        guesses_spread(candidates, costs))
        actions, evaluations = evaluate.best, evaluate.count
    elif method.startswith("policy"):
        actions = matcher.propose(core.target_clips[:1])[0].astype(np.float64)
        evaluations = 1
        if method == "policy+cmaes" and budget > 1:
            result = cmaes("musicgym/SynthMatch-v0", budget, seed=seed, env_kwargs=kwargs,
                           x0=actions, sigma0=max(MIN_SIGMA, matcher.spread),
                           popsize=HYBRID_POPSIZE)
            actions, evaluations = np.asarray(result["best_actions"])[0], result["evaluations"]
    else:
        search = cmaes if method == "cmaes" else random_search
        result = search("musicgym/SynthMatch-v0", budget, seed=seed, env_kwargs=kwargs)
        actions, evaluations = np.asarray(result["best_actions"])[0], result["evaluations"]
    actions = np.clip(actions, -1.0, 1.0)
    params, seg = core.render_segments(actions[None].astype(np.float32), 1)
    seconds = time.perf_counter() - t0
    clip = np.nan_to_num(seg[0], nan=0.0)
    out = {"actions": actions, "params": params[0], "clip": clip,
           "target_clip": core.target_clips[0], "sr": core.sr, "evaluations": int(evaluations),
           "seconds": seconds, "patch": core.patch}
    out.update(sound_metrics(clip, core.target_clips[0], core.sr))
    return out


def _match_steps(spec: dict, target, method: str, budget: int, matcher: Matcher | None,
                 seed: int) -> dict:
    """:func:`match_target` for a sequencer patch of ``spec["steps"]`` steps: each step is
    rendered from a fresh engine state (as the env renders it), so the target is cut into
    its steps and each step matched on its own with ``method`` (``budget`` renders of one
    step each); the clip is the steps' sounds one after the other. ``actions`` and
    ``params`` get one row per step; ``evaluations`` counts step renders."""
    t0 = time.perf_counter()
    steps = int(spec["steps"])
    core = MatchCore(code=spec["code"], target=target, total_step=steps,
                     step_len=spec["seconds"], action_space=spec["action_space"],
                     flat_actions=True)
    target_clip = core.target_clips[0]
    n = len(target_clip) // steps
    one = dict(spec, steps=1)
    parts = [match_target(one, target_clip[k * n:(k + 1) * n], method, budget=budget,
                          matcher=matcher, seed=seed) for k in range(steps)]
    clip = np.concatenate([r["clip"] for r in parts])
    out = {"actions": np.stack([r["actions"] for r in parts]),
           "params": np.stack([r["params"] for r in parts]), "clip": clip,
           "target_clip": target_clip, "sr": core.sr,
           "evaluations": int(sum(r["evaluations"] for r in parts)),
           "seconds": time.perf_counter() - t0, "patch": parts[0]["patch"], "steps": steps,
           "step_seconds": float(spec["seconds"])}
    out.update(sound_metrics(clip, target_clip, core.sr))
    return out


STEP_MARK = "// step "  # starts each step's code in a sequencer's patch.glicol


def steps_code(patch, params: np.ndarray, step_seconds: float) -> str:
    """One Glicol file for a sequencer's match: each step's code with its holes filled, after a
    ``// step k`` line; ``musicgym render FILE --steps N --seconds T`` renders each for T / N
    seconds from a fresh state and joins them (the env's sound)."""
    steps = len(params)
    lines = [f"// musicgym: {steps} steps of {step_seconds:g} s, each from a fresh state; "
             f"render with: musicgym render patch.glicol --steps {steps} "
             f"--seconds {steps * step_seconds:g}"]
    for k, row in enumerate(params):
        lines += [f"{STEP_MARK}{k + 1}", patch.fill(row)]
    return "\n".join(lines) + "\n"


def write_match(result: dict, out_dir: Path, *, plots: bool = True) -> None:
    """``params.json``, ``patch.glicol``, ``match.wav`` and ``comparison.png`` of a match.

    A sequencer's match (``result["steps"]``) writes ``params.json`` as
    ``{"step_seconds": s, "steps": [{hole: value}, ...]}`` and ``patch.glicol`` as
    :func:`steps_code`."""
    from musicgym.audio.io import write_wav
    from musicgym.train.evaluate import comparison_png

    patch = result["patch"]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if "steps" in result:
            params = {"step_seconds": result["step_seconds"], "steps": [
                {name: float(v) for name, v in zip(patch.params, row, strict=True)}
                for row in result["params"]]}
            code = steps_code(patch, result["params"], result["step_seconds"])
        else:
            params = {name: float(v)
                      for name, v in zip(patch.params, result["params"], strict=True)}
            code = patch.fill(result["params"]) + "\n"
        (out_dir / "params.json").write_text(json.dumps(params, indent=2) + "\n")
        (out_dir / "patch.glicol").write_text(code)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot write the match: {exc}") from None
    write_wav(out_dir / "match.wav", result["clip"], result["sr"])
    if plots:
        comparison_png(out_dir / "comparison.png", result["target_clip"], result["clip"],
                       result["sr"])
