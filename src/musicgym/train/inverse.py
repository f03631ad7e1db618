"""``algo: inverse``: the improvisation env's inverse improviser, trained by ``musicgym train``.

The inverse improviser (:class:`~musicgym.envs.improvise_agents.InverseAgent`: the musician's
descriptors -> the synth parameters that sound like them) is what beats the simple players on
held-out tracks (docs/improvise.md). It learns from the synth's lookup table and the corpus's
training tracks by supervised distillation and analysis by synthesis
(:func:`musicgym.train.improvise_agents.train_inverse`), not from env steps, so it is a learner
of the runner (:data:`musicgym.train.config.LEARNERS`) beside the Stable-Baselines3
algorithms, with the same run folder::

    env_id: musicgym/Improvise-v0
    algo: inverse
    seed: 0
    eval_every: 1000
    env_kwargs: {corpus: builtin:default}
    algo_kwargs: {synth: sine, features: lp}

``musicgym train CONFIG.yaml`` writes ``runs/<timestamp>-INVERSE/``:

* ``config.yaml``: the resolved configuration (every option of the recipe, ``steps`` = the
  Adam steps trained, the env keywords the agent plays in);
* ``model.npz`` and ``model.json``: the agent (``musicgym live improvise --model RUN``,
  ``musicgym evaluate RUN``, ``musicgym evaluate-improvise --model RUN``);
* ``evaluations.json``: at every ``eval_every`` Adam steps and at the end, the agent's RMSE
  on the corpus's held-out tracks (the reward's normalised error, as ``musicgym
  evaluate-improvise`` measures it), beside the nearest-neighbour oracle's, holding still's
  and random moves' (measured once: they do not learn), i.e. the learning curve;
* ``progress.csv``: the training loss every :data:`LOG_EVERY` steps; ``tensorboard/``: the
  same loss and the evaluations' RMSEs as TensorBoard scalars (``train/loss_distil``,
  ``train/loss_refine``, ``eval/rmse``, ``eval/oracle_rmse``...).

Options (``algo_kwargs``; :data:`OPTIONS` holds the defaults, those of ``musicgym
train-improviser``): ``synth`` (or ``env_kwargs.synth``; default the env's, fm),
``features`` (``lp``, ``lps``, ``lpsm``), ``search``, ``subdiv``, ``hidden``,
``distil_steps``, ``refine_steps``, ``batch_size``, ``max_frames``, ``anchor``, and the
play-time search's ``search_grid``, ``stay_margin``, ``search_from_current`` (any of them
implies ``search``; they change how the agent plays, not its weights); the seed is
the config's ``seed``. The budget is ``distil_steps + refine_steps`` Adam steps: the config's
``steps`` is set to it (one line says so when it differs). The same seed gives the same
agent, bit for bit (the evaluations on the way draw nothing from the training's random
generators). A run does not resume: it trains in minutes, and training it again gives the same
agent.
"""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path
from typing import Any

from musicgym.errors import ConfigError, UsageError
from musicgym.train.config import TrainConfig, family_defaults

OPTIONS: dict[str, Any] = {"synth": None, "features": "lps", "search": False, "subdiv": None,
                           "hidden": [128, 128], "distil_steps": 3000, "refine_steps": 3000,
                           "batch_size": 512, "max_frames": 40000, "anchor": 0.1,
                           "search_grid": False, "stay_margin": 0.0,
                           "search_from_current": False}
# env keywords an inverse run reads: the rest of the env's would not reach its training
ENV_KEYS = ("synth", "corpus", "mode", "features_keep", "features_reward")
EVAL_KEYS = ("mode",)
BASELINES = ("oracle", "hold", "random")
LOG_EVERY = 50
MODEL = "model.npz"


def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UsageError(f"algo_kwargs.{name}: must be an integer >= {low}, got {value!r}")
    return value


def resolve_inverse(config: TrainConfig) -> tuple[TrainConfig, str | None]:
    """The run's full config (every option filled in) and the line saying a changed budget.

    Raises
    ------
    UsageError
        The env is not an improvisation env, an option is unknown or out of range, or an env
        keyword the training would not honour.
    """
    from musicgym.envs.synths import SYNTHS
    from musicgym.train.improvise_agents import FEATURE_SETS

    family, defaults = family_defaults(config.env_id)
    if family != "improvise":
        ids = defaults.get("env_ids") or family_defaults("musicgym/Improvise-v0")[1]["env_ids"]
        raise UsageError(f"algo inverse trains an improvisation env ({', '.join(ids)}), "
                         f"not {config.env_id}: choose another algo (ppo...) for it")
    given = dict(config.algo_kwargs)
    for key in given:
        if key not in OPTIONS:
            close = difflib.get_close_matches(str(key), list(OPTIONS), n=1)
            hint = (" (the seed is the config's own field: seed)" if key == "seed" else
                    f" (did you mean {close[0]!r}?)" if close else "")
            raise UsageError(f"algo_kwargs: unknown option {key!r} of algo inverse{hint}; its "
                             f"options: {', '.join(OPTIONS)}")
    env = dict(config.env_kwargs)
    bad = sorted(set(env) - set(ENV_KEYS))
    if bad:
        raise UsageError(f"env_kwargs: {bad} do not apply to algo inverse, which trains on the "
                         f"synth's table and the corpus's training tracks; it reads "
                         f"{', '.join(ENV_KEYS)}")
    bad = sorted(set(config.eval_env_kwargs) - set(EVAL_KEYS))
    if bad:
        raise UsageError(f"eval_env_kwargs: {bad} do not apply to algo inverse (it is evaluated "
                         f"on the corpus's held-out tracks); it reads {', '.join(EVAL_KEYS)}")
    opts = {**OPTIONS, **given}
    # the env's own default synth when neither names one
    synth = opts["synth"] if opts["synth"] is not None else env.get("synth", "fm")
    if synth not in SYNTHS:
        raise UsageError(f"algo_kwargs.synth: {synth!r} is not one of {sorted(SYNTHS)} (a Pd "
                         "synth trains with algo ppo or dqn in lookup mode)")
    if "synth" in env and env["synth"] != synth:
        raise UsageError(f"env_kwargs.synth {env['synth']!r} and algo_kwargs.synth {synth!r} "
                         "differ: give the synth once")
    if opts["features"] not in FEATURE_SETS:
        raise UsageError(f"algo_kwargs.features: {opts['features']!r} is not one of "
                         f"{sorted(FEATURE_SETS)}")
    features = FEATURE_SETS[opts["features"]]
    for key in ("features_keep", "features_reward"):
        if key in env and list(env[key]) != features:
            raise UsageError(f"env_kwargs.{key}: algo inverse keeps and rewards its feature "
                             f"set's descriptors ({opts['features']}: {features}); drop it")
    for key in ("mode",):
        for where, kw in (("env_kwargs", env), ("eval_env_kwargs", config.eval_env_kwargs)):
            if key in kw and kw[key] not in ("render", "lookup"):
                raise UsageError(f"{where}.mode: 'render' or 'lookup', got {kw[key]!r}")
    for key in ("search", "search_grid", "search_from_current"):
        if not isinstance(opts[key], bool):
            raise UsageError(f"algo_kwargs.{key}: true or false, got {opts[key]!r}")
    margin = opts["stay_margin"]
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise UsageError(f"algo_kwargs.stay_margin: a number in [0, 1), got {margin!r}")
    if opts["subdiv"] is not None:
        _positive_int("subdiv", opts["subdiv"], 2)
    for key in ("distil_steps", "refine_steps"):
        _positive_int(key, opts[key], 0)
    for key in ("batch_size", "max_frames"):
        _positive_int(key, opts[key])
    if opts["distil_steps"] + opts["refine_steps"] < 1:
        raise UsageError("algo_kwargs: distil_steps + refine_steps must be at least 1")
    hidden = opts["hidden"]
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = [hidden]
    if not isinstance(hidden, (list, tuple)) or not hidden:
        raise UsageError(f"algo_kwargs.hidden: a list of layer widths, got {hidden!r}")
    opts["hidden"] = [_positive_int("hidden", h) for h in hidden]
    anchor = opts["anchor"]
    if isinstance(anchor, bool) or not isinstance(anchor, (int, float)) or not anchor >= 0:
        raise UsageError(f"algo_kwargs.anchor: a number >= 0, got {anchor!r}")
    opts["synth"] = synth
    env = {**env, "synth": synth, "features_keep": features, "features_reward": features,
           "corpus": env.get("corpus", "builtin:default")}
    total = opts["distil_steps"] + opts["refine_steps"]
    data = {**config.to_dict(), "env_kwargs": env, "algo_kwargs": opts, "steps": total,
            "n_envs": 1}
    note = None if config.steps == total else (
        f"steps {config.steps} -> {total}: algo inverse trains distil_steps + refine_steps "
        f"Adam steps ({opts['distil_steps']} + {opts['refine_steps']})")
    return TrainConfig.from_dict(data), note


def heldout(agent, config: TrainConfig, methods) -> dict:
    """:func:`~musicgym.train.evaluate_improvise.evaluate_improvisers` on the run's corpus's
    held-out tracks, with the run's evaluation keywords and seed."""
    from musicgym.train.evaluate_improvise import evaluate_improvisers

    return evaluate_improvisers(config.eval_kwargs, model=agent, methods=list(methods),
                                seed=config.seed)


class InverseLearner:
    """The runner's ``inverse`` algorithm (see the module docstring)."""

    def train(self, config: TrainConfig, *, runs_root: str | Path = "runs",
              progress: bool = True, resume: str | Path | None = None) -> Path:
        """Train a run (as :func:`musicgym.train.runner.train`); return its folder.

        Raises
        ------
        UsageError
            A bad option (nothing written): see :func:`resolve_inverse`.
        ConfigError
            ``resume``: an inverse run does not resume.
        """
        import torch
        import yaml

        from musicgym.envs.improvise_core import resolve_corpus
        from musicgym.train.evaluate_improvise import method_summaries
        from musicgym.train.improvise_agents import train_inverse
        from musicgym.train.runfiles import new_run_dir, write_atomically

        if resume is not None:
            raise ConfigError(f"--resume {resume}: an inverse run does not resume (it trains "
                              "in minutes); train its config.yaml again: the same seed gives "
                              "the same agent")
        config, note = resolve_inverse(config)
        if note:
            print(note)
        torch.set_num_threads(1)
        opts = config.algo_kwargs
        corpus = resolve_corpus(config.env_kwargs["corpus"])   # built once, then cached
        run_dir = new_run_dir(runs_root, config.algo)
        write_atomically(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(),
                                                                 sort_keys=False))
        evaluations: list[dict] = []
        losses: list[tuple[int, str, float]] = []
        baselines: dict[str, float] = {}
        spent = {"eval": 0.0}
        start = time.perf_counter()
        board = _board(run_dir)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.steps, desc=f"train inverse {opts['synth']}/"
                       f"{opts['features']}", unit="step", dynamic_ncols=True)

        def evaluate(step: int, agent, loss: float) -> None:
            began = time.perf_counter()
            if not baselines:   # they do not learn: measured once
                base = method_summaries(heldout(None, config, BASELINES))
                baselines.update({m: base[m]["rmse"] for m in BASELINES})
            rmse = method_summaries(heldout(agent, config, ["agent"]))["agent"]["rmse"]
            spent["eval"] += time.perf_counter() - began
            evaluations.append({
                "steps": step, "rmse": rmse, **{f"{m}_rmse": v for m, v in baselines.items()},
                "agent_over_oracle": rmse / baselines["oracle"], "loss": loss,
                "train_seconds": round(time.perf_counter() - start - spent["eval"], 1)})
            write_atomically(run_dir / "evaluations.json", json.dumps(evaluations, indent=2))
            _write_progress(run_dir, losses)
            if board is not None:
                for key in ("rmse", "oracle_rmse", "hold_rmse", "random_rmse"):
                    board.add_scalar(f"eval/{key}", evaluations[-1][key], step)
                board.flush()
            if bar is not None:
                bar.set_postfix(rmse=f"{rmse:.3f}", oracle=f"{baselines['oracle']:.3f}")

        def on_step(step: int, loss: float, agent) -> None:
            if step % LOG_EVERY == 0 or step in (1, config.steps):
                stage = "distil" if step <= opts["distil_steps"] else "refine"
                losses.append((step, stage, loss))
                if board is not None:
                    board.add_scalar(f"train/loss_{stage}", loss, step)
            if bar is not None:
                bar.update(1)
                if step % LOG_EVERY == 0:
                    bar.set_postfix(loss=f"{loss:.4f}")
            if config.eval_every and step % config.eval_every == 0 and step < config.steps:
                evaluate(step, agent(), loss)

        try:
            agent = train_inverse(opts["synth"], opts["features"], corpus, seed=config.seed,
                                  subdiv=opts["subdiv"], hidden=tuple(opts["hidden"]),
                                  distil_steps=opts["distil_steps"],
                                  refine_steps=opts["refine_steps"],
                                  batch_size=opts["batch_size"], max_frames=opts["max_frames"],
                                  anchor=opts["anchor"], search=opts["search"],
                                  search_grid=opts["search_grid"],
                                  stay_margin=float(opts["stay_margin"]),
                                  search_from_current=opts["search_from_current"],
                                  on_step=on_step)
            agent.meta["train_seconds"] = round(time.perf_counter() - start - spent["eval"], 1)
            evaluate(config.steps, agent, losses[-1][2] if losses else float("nan"))
        finally:
            if bar is not None:
                bar.close()
            if board is not None:
                board.close()
        agent.meta["run"] = run_dir.name
        agent.meta["heldout"] = {"agent": {"rmse": round(evaluations[-1]["rmse"], 4)},
                                 **{m: {"rmse": round(v, 4)} for m, v in baselines.items()}}
        agent.meta["corpus"] = Path(str(corpus)).name
        agent.save(run_dir / MODEL)
        return run_dir

    def load(self, run_dir: Path, config: TrainConfig):
        """The run's agent (``model.npz`` + ``model.json``; nothing is unpickled).

        Raises
        ------
        ConfigError
            No model there, or one that is not the config's synth.
        """
        from musicgym.envs.improvise_agents import InverseAgent
        from musicgym.errors import ImproviseConfigError

        path = Path(run_dir) / MODEL
        if not path.is_file():
            raise ConfigError(f"{run_dir}: no {MODEL} there (an inverse run writes its model "
                              "when it ends: was it killed before?)")
        try:
            agent = InverseAgent.load(path)
        except ImproviseConfigError as exc:
            raise ConfigError(f"{run_dir}: {exc}") from None
        if agent.synth != config.env_kwargs.get("synth"):
            raise ConfigError(f"{path}: plays {agent.synth!r}, its config.yaml says "
                              f"{config.env_kwargs.get('synth')!r}")
        return agent

    def evaluate(self, model, config: TrainConfig, out_dir: Path, *, plots: bool = True
                 ) -> dict:
        """``musicgym evaluate RUN``: the agent beside the oracle, hold and random on the
        held-out tracks (``heldout.json``: per descriptor and per track) and one held-out
        take to hear and see (``agent.wav``, ``target.wav``, ``descriptors.png``)."""
        from musicgym.train.evaluate_improvise import method_summaries, write_agent_take

        report = heldout(model, config, ["agent", *BASELINES])
        summary = method_summaries(report)
        (Path(out_dir) / "heldout.json").write_text(json.dumps(report, indent=2,
                                                               default=_plain))
        rewarded = report["reward_features"]
        agent = summary["agent"]
        metrics: dict[str, Any] = {"heldout_tracks": len(report["tracks"]),
                                   "rmse": agent["rmse"]}
        metrics.update({f"{m}_rmse": summary[m]["rmse"] for m in BASELINES})
        metrics["agent_over_oracle"] = agent["rmse"] / summary["oracle"]["rmse"]
        for m in ("hold", "random"):
            metrics[f"beats_{m}_on"] = (
                f"{sum(agent['mae_z'][f] < summary[m]['mae_z'][f] for f in rewarded)}/"
                f"{len(rewarded)} descriptors")
        metrics["time_to_match_s"] = agent["time_to_match_s"]
        metrics["matched_tracks"] = f"{agent['matched_tracks']}/{agent['n_tracks']}"
        take = write_agent_take(model, {**config.eval_kwargs, "split": "test"}, out_dir)
        metrics.update({f"take_{k}": v for k, v in take.items()})
        return metrics


def _board(run_dir: Path):
    """A TensorBoard writer on ``run_dir/tensorboard`` (as the SB3 runs have), or None
    without TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _plain(value):
    """NumPy values in a report as JSON numbers and lists."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _write_progress(run_dir: Path, losses: list[tuple[int, str, float]]) -> None:
    from musicgym.train.runfiles import write_atomically

    write_atomically(run_dir / "progress.csv", "steps,stage,loss\n" + "".join(
        f"{s},{stage},{loss:.6g}\n" for s, stage, loss in losses))


LEARNER = InverseLearner()
