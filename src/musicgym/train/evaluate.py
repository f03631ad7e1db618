"""Evaluate a training run of any family: metrics as JSON, and what to look at or listen to.

``evaluate_run(run_dir, episodes)`` writes ``run_dir/eval/`` (or ``output``):

* always ``metrics.json`` (mean/std/min/max episode return and the family's measures) and
  ``curve.png`` (the learning curve from the run's ``evaluations.json``);
* sound matching: the clip distance (the env's reward distance), the MR-STFT distance and the
  13-MFCC mean absolute error; ``target.wav``, ``agent_best.wav`` (the best episode),
  ``agent_final.wav`` (the last) and ``comparison.png`` (target / agent / difference
  spectrograms);
* composition: ``piece/`` (MIDI, MusicXML, WAV, piano roll...: :mod:`.evaluate_compose`);
* improvisation: ``agent.wav``, ``target.wav`` and ``descriptors.png`` on a corpus track, or
  without a corpus on one episode against the env's synthetic target
  (:func:`.evaluate_improvise.write_agent_take`);
* accompaniment: ``duet.mid``, ``duet.wav`` and ``asynchrony.png``
  (:mod:`.evaluate_accompany`).

The family is the defaults file that lists the run's env (``train/defaults/*.yaml``); an env
no file lists gets the returns and the curve.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np

from musicgym.errors import OutputError
from musicgym.train.config import LEARNERS, TrainConfig, family_defaults, learner
from musicgym.train.runfiles import load_run


def run_episodes(model, config: TrainConfig, episodes: int, seed: int = 20_000, *,
                 keep_audio: bool = True) -> list[dict]:
    """Deterministic episodes; each with its return and, for sound-matching envs, the final
    clip distance and (``keep_audio``) the clip and its target."""
    import musicgym  # noqa: F401

    env = gym.make(config.env_id, **config.eval_kwargs)
    out = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        state, start, done, total = None, np.ones((1,), dtype=bool), False, 0.0
        while not done:
            if config.algo == "recurrent_ppo":
                action, state = model.predict(obs, state=state, episode_start=start,
                                              deterministic=True)
                start = np.zeros((1,), dtype=bool)
            elif config.algo == "maskable_ppo" and hasattr(env.unwrapped, "action_masks"):
                action, _ = model.predict(obs, deterministic=True,
                                          action_masks=env.unwrapped.action_masks())
            else:
                action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
        record = {"return": total}
        core = getattr(env.unwrapped, "core", None)
        if core is not None and hasattr(env.unwrapped, "clip_audio"):
            record["clip_distance"] = float(info["clip_distance"])
            if keep_audio:
                record["clip"] = env.unwrapped.clip_audio
                record["target"] = core.target_clips[int(env.unwrapped.target[0])]
                record["sr"] = core.sr
        out.append(record)
    env.close()
    return out


def sound_metrics(clip: np.ndarray, target: np.ndarray, sr: int) -> dict[str, float]:
    """MR-STFT distance and 13-MFCC mean absolute error (spiegelib's metric) of one clip."""
    from musicgym.audio.distances import make_distance

    out = {}
    for name in ("mrstft", "mfcc"):
        d = make_distance(name, sr=sr)
        out[name] = float(d(clip[None], d.prepare(target))[0])
    return out


def evaluate_run(run_dir: str | Path, episodes: int = 8, *, output: str | Path | None = None,
                 plots: bool = True) -> dict:
    """Evaluate a run of any family and write its files (see the module docstring).

    Parameters
    ----------
    run_dir : path
        A folder made by ``musicgym train`` (loaded without unpickling: see
        :func:`musicgym.train.runfiles.load_run`).
    episodes : int
        Deterministic evaluation episodes (seeds 20000, 20001...).
    output : path, keyword-only
        The folder written (default ``run_dir/eval``).
    plots : bool, keyword-only
        Draw the PNGs.

    Returns
    -------
    dict
        The metrics, as written to ``metrics.json``.
    """
    run_dir = Path(run_dir)
    config, model = load_run(run_dir)
    out_dir = Path(output) if output is not None else run_dir / "eval"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot create the evaluation folder: {exc}") from None
    metrics = evaluate_model(model, config, episodes, out_dir, plots=plots)
    if plots and (run_dir / "evaluations.json").is_file():
        curve_png(out_dir / "curve.png", json.loads((run_dir / "evaluations.json").read_text()),
                  title=f"{config.algo} on {config.env_id}")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def evaluate_model(model, config: TrainConfig, episodes: int, out_dir: Path, *,
                   plots: bool = True) -> dict:
    """The family's evaluation of a model: its metrics, and its files written to ``out_dir``
    (the sounds and pictures of the module docstring, without ``curve.png``).

    ``musicgym evaluate`` and the training runs' TensorBoard media (one episode at each
    evaluation, :mod:`musicgym.train.runner`) both call this.
    """
    family, _ = family_defaults(config.env_id)
    metrics = {"env_id": config.env_id, "algo": config.algo, "family": family,
               "episodes": episodes}
    if config.algo in LEARNERS:   # its own evaluation (algo inverse: the held-out tracks)
        del metrics["episodes"]   # it plays every held-out track, not episodes
        metrics.update(learner(config.algo).evaluate(model, config, out_dir, plots=plots))
    elif family == "compose":
        from musicgym.train.evaluate_compose import evaluate_composition

        metrics.update(evaluate_composition(model, config, episodes, out_dir))
    elif family == "accompany":
        from musicgym.train.evaluate_accompany import evaluate_accompaniment

        metrics.update(evaluate_accompaniment(model, config, episodes, out_dir))
    else:
        metrics.update(_episodes_metrics(model, config, episodes, out_dir, plots))
        if family == "improvise":
            from musicgym.train.evaluate_improvise import write_agent_take

            metrics.update(write_agent_take(model, config.eval_kwargs, out_dir))
    return metrics


def _episodes_metrics(model, config: TrainConfig, episodes: int, out_dir: Path,
                      plots: bool) -> dict:
    """Returns of deterministic episodes; for sound matching, the sounds and their distances."""
    records = run_episodes(model, config, episodes)
    returns = np.array([r["return"] for r in records])
    metrics = {"mean_return": float(returns.mean()), "std_return": float(returns.std()),
               "min_return": float(returns.min()), "max_return": float(returns.max())}
    if "clip" in records[0]:  # a sound-matching env
        from musicgym.audio.io import write_wav

        per = [sound_metrics(r["clip"], r["target"], r["sr"]) for r in records]
        metrics["mean_clip_distance"] = float(np.mean([r["clip_distance"] for r in records]))
        metrics["mean_mrstft"] = float(np.mean([p["mrstft"] for p in per]))
        metrics["mean_mfcc_mae"] = float(np.mean([p["mfcc"] for p in per]))
        best = min(records, key=lambda r: r["clip_distance"])
        sr = records[0]["sr"]
        write_wav(out_dir / "target.wav", best["target"], sr)
        write_wav(out_dir / "agent_best.wav", best["clip"], sr)
        write_wav(out_dir / "agent_final.wav", records[-1]["clip"], sr)
        if plots:
            comparison_png(out_dir / "comparison.png", best["target"], best["clip"], sr)
    return metrics


def comparison_png(path: Path, target: np.ndarray, agent: np.ndarray, sr: int) -> None:
    """Target / agent / difference log-mel spectrograms (dB), one above the other; the mel
    axis shows the low range, where kicks and basses live, as well as the highs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from musicgym.audio.features import _mel_to_hz, log_mel

    n_mels = 96
    specs = [10.0 * log_mel(x, sr=sr, n_fft=2048, hop=256, n_mels=n_mels).T
             for x in (target, agent)]
    top = max(spec.max() for spec in specs)
    panels = [("target", specs[0], "magma"), ("agent", specs[1], "magma"),
              ("agent - target (dB)", specs[1] - specs[0], "coolwarm")]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    extent = [0, len(target) / sr, 0, n_mels]
    mel_edges = np.linspace(0.0, 2595.0 * np.log10(1.0 + sr / 2 / 700.0), n_mels + 2)[1:-1]
    ticks = [0, 24, 48, 72, 95]
    for ax, (title, spec, cmap) in zip(axes, panels, strict=True):
        diff = "-" in title
        vmax = max(1.0, np.percentile(np.abs(spec), 99)) if diff else top
        vmin = -vmax if diff else top - 80.0
        im = ax.imshow(spec, origin="lower", aspect="auto", extent=extent, cmap=cmap,
                       vmin=vmin, vmax=vmax)
        ax.set_title(title)
        ax.set_yticks(ticks, [f"{_mel_to_hz(mel_edges[t]):.0f}" for t in ticks])
        ax.set_ylabel("Hz (mel scale)")
        fig.colorbar(im, ax=ax, label="dB")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curve_png(path: Path, evaluations: list[dict], *, title: str,
              baselines: dict[str, float] | None = None) -> None:
    """Learning curve: evaluation return (and clip distance) against training steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["steps"] for e in evaluations]
    fig, ax = plt.subplots(figsize=(7, 4))
    if evaluations and "rmse" in evaluations[0]:   # algo inverse: held-out RMSE, baselines
        ax.plot(steps, [e["rmse"] for e in evaluations], "o-", label="agent")
        ax.set_ylabel("held-out RMSE (lower is better)")
        baselines = {**{m: evaluations[-1][f"{m}_rmse"] for m in ("oracle", "hold", "random")
                        if f"{m}_rmse" in evaluations[-1]}, **(baselines or {})}
    elif evaluations and "mean_clip_distance" in evaluations[0]:
        ax.plot(steps, [e["mean_clip_distance"] for e in evaluations], "o-", label="agent")
        ax.set_ylabel("clip distance to the target (lower is better)")
    else:
        ax.plot(steps, [e["mean_return"] for e in evaluations], "o-", label="agent")
        ax.set_ylabel("mean episode return")
    styles = {"random": ("--", "grey"), "oracle": ("-.", "tab:green"), "hold": (":", "black")}
    for name, value in (baselines or {}).items():
        style, colour = styles.get(name, ("--", "black"))
        ax.axhline(value, linestyle=style, color=colour, label=name)
    ax.set_xlabel("training steps" if not evaluations or "rmse" not in evaluations[0] else
                  "training steps (Adam steps)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
