"""``musicgym demo``: what learning buys in sound matching, start to finish in about a minute.

1. **Amortisation.** The built-in Snare-v0 matcher (:meth:`Matcher.builtin`, trained on the
   patch's own sounds, then on SoundFont one-shots with the settings a search found for
   them; never on a real one-shot) names the settings of sounds it never heard in one forward pass,
   refines them in a 10-render episode (hearing its sound against the target), and seeds the
   hybrids (Nelder-Mead and CMA-ES from its guesses) at 100 evaluations, against random
   search and CMA-ES at 1,000 evaluations each. The targets are the held-out real one-shots
   (:data:`musicgym.train.match.HELD_OUT`, from :func:`musicgym.datapath.data_subdir`) when
   they are there, else sounds of the patch at seeded random settings, so the demo runs
   without the real data.
2. **A bass line's notes.** The built-in BassLine-v0 matcher names the 16 notes of the
   preset's bass line (additive saws, another synthesis model than the patch) in one pass,
   beside YIN (a pitch tracker) and CMA-ES on the sound's distance with ``hybrid_budget``
   renders a step, which finds darker sounds with the wrong notes.
3. **One target, honestly.** PPO trained on ``musicgym/Kick-v0`` (RaveForce's kick patch
   against a kick musicgym synthesises with a different model) against random search and
   CMA-ES with as many evaluations as the agent's training episodes: for one fixed target an
   agent is only a slow optimiser.

Writes ``out/demo/``: per held-out target ``TARGET/target.wav`` and, per method,
``TARGET/METHOD/`` as ``musicgym match`` writes it (``match.wav``, ``comparison.png``,
``params.json``, ``patch.glicol``); ``bassline/`` (``target.wav``, ``policy/``,
``cmaes/``); ``kick/`` with the single-target comparison
(``target.wav``, ``agent.wav``, ``random.wav``, ``cmaes.wav``, ``comparison.png``,
``curve.png``, the trained run); and ``summary.md``, which is also printed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from musicgym.errors import DataNotFoundError, OutputError, UsageError
from musicgym.train.config import TrainConfig

ENV_ID = "musicgym/Kick-v0"
DEFAULT_STEPS = 8192
MATCHER = "Snare-v0"  # a sine + filtered-noise drum voice: kicks, snares, hats and bells
DEFAULT_BUDGET = 1000
DEFAULT_HYBRID_BUDGET = 100
REFINE_BUDGET = 10  # renders of the refinement episode
TARGETS = ("auto", "real", "synthetic")


def demo(output: str | Path = "out/demo", *, steps: int | None = None,
         budget: int = DEFAULT_BUDGET, hybrid_budget: int = DEFAULT_HYBRID_BUDGET,
         targets: str = "auto", seed: int = 0) -> Path:
    """Run the demo and return the folder it wrote (see the module docstring).

    Parameters
    ----------
    output : str or Path
        Folder to write.
    steps : int, optional
        PPO's training steps on Kick-v0, and the searches' budget beside it (default 8192).
    budget : int
        Evaluations of random search and CMA-ES on the held-out targets (default 1000).
    hybrid_budget : int
        Evaluations of the matcher-seeded CMA-ES (default 100).
    targets : {"auto", "real", "synthetic"}
        The held-out real one-shots, sounds of the patch at seeded random settings, or the
        real ones when they are found (default).
    seed : int
        Seed of the searches and of the training.

    Raises
    ------
    UsageError
        An unknown ``targets``, or a budget that is not a positive integer.
    DataNotFoundError
        ``targets="real"`` and the one-shots are not found.
    OutputError
        The output folder cannot be written.
    """
    if targets not in TARGETS:
        raise UsageError(f"targets: choose one of {', '.join(TARGETS)}, got {targets!r}")
    for name, value in (("budget", budget), ("hybrid_budget", hybrid_budget)):
        # checked before any work (match_target would say so only after the warm-up)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{name}: must be a positive integer, got {value!r}")
    out = Path(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the demo's folder: {exc}") from None
    steps = steps or DEFAULT_STEPS
    budgets = {"policy": 1, "refine": REFINE_BUDGET, "policy+nm": hybrid_budget,
               "policy+cmaes": hybrid_budget, "cmaes": budget, "random": budget}
    held, source = held_out_targets(targets)
    print(f"1/3 the built-in {MATCHER} matcher on {len(held)} {source} it never trained on, "
          f"against search ({', '.join(f'{m} {b}' for m, b in budgets.items())} evaluations)")
    matches = match_held_out(out, held, budgets, seed=seed)
    print(f"2/3 a bass line: the built-in BassLine-v0 matcher names its 16 notes, against YIN "
          f"and CMA-ES with {hybrid_budget} renders a step")
    bass = bass_line(out / "bassline", budget=hybrid_budget, seed=seed)
    print(f"3/3 one target: PPO on {ENV_ID} for {steps} steps against search with as many "
          "evaluations")
    kick = single_target(out / "kick", steps=steps, seed=seed)
    summary = _summary(matches, source, budgets, kick, bass)
    (out / "summary.md").write_text(summary, encoding="utf-8")
    print()
    print(summary)
    print(f"Everything is in {out}/ (listen to each target's target.wav and its methods' "
          "match.wav).")
    return out


def held_out_targets(targets: str = "auto") -> tuple[list[tuple[str, object]], str]:
    """``([(name, file or clip), ...], description)`` of the demo's held-out targets."""
    from musicgym.datapath import data_subdir
    from musicgym.train.match import HELD_OUT, synthetic_targets
    from musicgym.train.matcher import patch_spec

    if targets != "synthetic":
        try:
            folder = data_subdir("oneshots")
        except DataNotFoundError:
            if targets == "real":
                raise
            folder = None
        files = [folder / f"{name}.flac" for name in HELD_OUT] if folder is not None else []
        if files and all(f.is_file() for f in files):
            return [(f.stem, f) for f in files], "held-out real one-shots"
        if targets == "real":
            raise DataNotFoundError(f"the held-out one-shots ({', '.join(HELD_OUT)}) are not "
                                    f"all in {folder}: set MUSICGYM_ONESHOTS_DIR to their folder")
    _, clips = synthetic_targets(patch_spec(MATCHER), len(HELD_OUT))
    return ([(f"synthetic_{i + 1}", clip) for i, clip in enumerate(clips)],
            f"sounds of the {MATCHER} patch at random settings")


def match_held_out(out: Path, held: list, budgets: dict[str, int], *, seed: int = 0) -> dict:
    """Match every held-out target with every method; write the sounds and pictures.

    Returns ``{target: {method: {"mrstft", "mfcc", "evaluations", "seconds"}}}``."""
    from tqdm.auto import tqdm

    from musicgym.audio.io import write_wav
    from musicgym.envs.matcher_model import Matcher
    from musicgym.train.match import match_target, write_match
    from musicgym.train.matcher import patch_spec

    spec, matcher = patch_spec(MATCHER), Matcher.builtin(MATCHER)
    # the first render compiles the engine and the first search builds its env (about a
    # second): done before any clock starts, so each method's seconds are its own
    match_target(spec, held[0][1], "policy+cmaes", budget=8, matcher=matcher)
    results: dict[str, dict] = {}
    for name, target in tqdm(held, desc="matching", unit="target"):
        results[name] = {}
        for method, budget in budgets.items():
            r = match_target(spec, target, method, budget=budget, matcher=matcher, seed=seed)
            write_match(r, out / name / method)
            results[name][method] = {k: r[k] for k in ("mrstft", "mfcc", "evaluations",
                                                         "seconds")}
        write_wav(out / name / "target.wav", r["target_clip"], r["sr"])
    return results


def bass_line(out: Path, *, budget: int, seed: int = 0) -> dict:
    """BassLine-v0's own target: the built-in matcher (one render a step), YIN (no render)
    and CMA-ES (``budget`` renders a step) name its notes; writes ``out/target.wav`` and
    ``out/<method>/`` and returns ``{method: {"notes", "mrstft", "mfcc", "evaluations",
    "seconds"}}`` (YIN's sound measures are ``None``)."""
    from musicgym.audio.io import write_wav
    from musicgym.envs.matcher_model import Matcher
    from musicgym.envs.presets import BASS_NOTES, bassline_target
    from musicgym.train.match import match_target, write_match
    from musicgym.train.matcher import patch_spec
    from musicgym.train.matcher_steps import note_accuracy, yin_notes

    spec, matcher = patch_spec("BassLine-v0"), Matcher.builtin("BassLine-v0")
    target = bassline_target()
    rows = {}
    t0 = time.perf_counter()
    named = yin_notes(target.reshape(spec["steps"], -1))
    rows["yin"] = {"notes": note_accuracy(named, BASS_NOTES), "mrstft": None, "mfcc": None,
                   "evaluations": 0, "seconds": time.perf_counter() - t0}
    for method, b in (("policy", None), ("cmaes", budget)):
        r = match_target(spec, target, method, budget=b, matcher=matcher, seed=seed)
        write_match(r, out / method)
        rows[method] = {"notes": note_accuracy(r["params"][:, 0].astype(int), BASS_NOTES),
                        **{k: r[k] for k in ("mrstft", "mfcc", "evaluations", "seconds")}}
    write_wav(out / "target.wav", r["target_clip"], r["sr"])
    return rows


def single_target(out: Path, *, steps: int, seed: int = 0) -> dict:
    """PPO on Kick-v0 against random search and CMA-ES at ``steps`` evaluations; writes
    ``out/`` and returns ``{method: (distance, cost)}``."""
    from musicgym.audio.io import write_wav
    from musicgym.train.baselines import cmaes, random_search, render_actions
    from musicgym.train.evaluate import comparison_png, curve_png, load_run, run_episodes
    from musicgym.train.runner import train

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    config = TrainConfig(env_id=ENV_ID, algo="ppo", steps=steps, n_envs=16, seed=seed,
                         eval_every=max(512, steps // 8), eval_episodes=1,
                         algo_kwargs={"n_steps": 32, "batch_size": 128, "n_epochs": 10,
                                      "learning_rate": 3e-3, "ent_coef": 0.0})
    run_dir = train(config, runs_root=out / "runs", progress=True)
    train_s = time.perf_counter() - t0
    config, model = load_run(run_dir)
    agent = run_episodes(model, config, 1)[0]
    results = {name: search(ENV_ID, steps, seed=seed)
               for name, search in (("random", random_search), ("cmaes", cmaes))}
    target, sr = agent["target"], agent["sr"]
    write_wav(out / "target.wav", target, sr)
    write_wav(out / "agent.wav", agent["clip"], sr)
    for name, result in results.items():
        clip, _, _ = render_actions(ENV_ID, np.asarray(result["best_actions"]))
        write_wav(out / f"{name}.wav", clip, sr)
    comparison_png(out / "comparison.png", target, agent["clip"], sr)
    evaluations = json.loads((run_dir / "evaluations.json").read_text())
    curve_png(out / "curve.png", evaluations, title=f"PPO on {ENV_ID}",
              baselines={name: r["best_distance"] for name, r in results.items()})
    rows = {"PPO agent (one forward pass)": (agent["clip_distance"],
                                             f"{train_s:.0f} s training")}
    rows.update({f"{name} search, best of {r['evaluations']}":
                 (r["best_distance"], f"{r['seconds']:.1f} s") for name, r in results.items()})
    return {"rows": rows, "steps": steps, "run_dir": run_dir}


def _summary(matches: dict, source: str, budgets: dict[str, int], kick: dict,
             bass: dict) -> str:
    names = {"policy": "matcher (one pass)", "refine": "matcher, refinement episode",
             "policy+nm": "matcher + Nelder-Mead", "policy+cmaes": "matcher + CMA-ES",
             "cmaes": "CMA-ES", "random": "random search"}
    lines = ["# musicgym demo: hear a new sound, name the synth settings", "",
             f"## 1. A learnt matcher against search on {source}", "",
             f"The built-in {MATCHER} matcher learnt its patch (a sine + filtered-noise drum "
             "voice) from the patch's own sounds, then from SoundFont one-shots with the "
             "settings a search found for them; it never heard these targets. It names the "
             "settings in one forward pass; search renders the patch once per evaluation. "
             "Lower is better; seconds are wall time per target (rendering the match "
             "included).", "",
             "| target | method | MR-STFT | MFCC MAE | evaluations | seconds |",
             "|---|---|---|---|---|---|"]
    for target, per in matches.items():
        lines += [f"| {target} | {names[m]} | {r['mrstft']:.3f} | {r['mfcc']:.2f} | "
                  f"{r['evaluations']} | {r['seconds']:.2f} |" for m, r in per.items()]
    means = {}
    for m in budgets:
        rs = [per[m] for per in matches.values()]
        mean = {k: float(np.mean([r[k] for r in rs]))
                for k in ("mrstft", "mfcc", "evaluations", "seconds")}
        lines.append(f"| **mean** | {names[m]} | {mean['mrstft']:.3f} | {mean['mfcc']:.2f} | "
                     f"{mean['evaluations']:.0f} | {mean['seconds']:.2f} |")
        means[m] = mean["mrstft"]
    if "cmaes" in means:
        lines += ["", f"Mean MR-STFT relative to CMA-ES at {budgets['cmaes']} evaluations "
                  f"(positive: worse): the matcher alone "
                  f"{_percent(means['policy'], means['cmaes'])} with one evaluation, its "
                  f"refinement episode {_percent(means['refine'], means['cmaes'])} with "
                  f"{budgets['refine']} (it hears its sound against the target and adjusts), "
                  f"the matcher + Nelder-Mead {_percent(means['policy+nm'], means['cmaes'])} "
                  f"and + CMA-ES {_percent(means['policy+cmaes'], means['cmaes'])} with "
                  f"{budgets['policy+cmaes']}."]
    names_bass = {"yin": "YIN pitch tracker (no render)",
                  "policy": "matcher (one pass: a render a step)",
                  "cmaes": f"CMA-ES, {budgets['policy+nm']} renders a step"}
    lines += ["", "## 2. A bass line: name the notes", "",
              "BassLine-v0 (a saw through a low-pass filter, 16 steps of a note and a cutoff) "
              "against its own target, additive saws the patch cannot make exactly. The "
              "matcher's note head learnt from SoundFont bass lines of other instruments; "
              "CMA-ES minimises the sound's distance, which prefers darker sounds with the "
              "wrong notes (docs/matching.md).", "",
              "| method | notes right | MR-STFT | MFCC MAE | renders | seconds |",
              "|---|---|---|---|---|---|"]
    for m, r in bass.items():
        sound = "- | -" if r["mrstft"] is None else f"{r['mrstft']:.3f} | {r['mfcc']:.2f}"
        lines.append(f"| {names_bass[m]} | {r['notes'] * 16:.0f} / 16 | {sound} | "
                     f"{r['evaluations']} | {r['seconds']:.2f} |")
    lines += ["", "## 3. One fixed target: an agent is a slow optimiser", "",
              f"Task `{ENV_ID}`: RaveForce's kick patch (attack, decay, frequency of a sine "
              "kick) against a swept-sine kick synthesised by a different model, so no setting "
              "matches it exactly. Distance: multi-resolution STFT.", "",
              "| method | distance to the target | time |", "|---|---|---|"]
    lines += [f"| {name} | {dist:.4f} | {cost} |" for name, (dist, cost) in kick["rows"].items()]
    lines += ["", f"Budget: {kick['steps']} synthesiser evaluations for every method (the "
              f"agent's training episodes). The trained run is in `{kick['run_dir']}`."]
    return "\n".join(lines) + "\n"


def _percent(value: float, reference: float) -> str:
    return f"{100.0 * (value / reference - 1.0):+.1f} %"
