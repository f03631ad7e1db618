"""Evaluate improvisers on held-out corpus tracks: per-descriptor error and time-to-match.

Every method plays every held-out track (``split="test"``) frame by frame, as it would live:
at frame t it sees the env's observation (its own descriptors, the musician's frame t, its
parameters), moves, and is scored against frame t + 1, as ``musicgym/Improvise-v0`` scores.
All methods start each track from the same seeded parameters. Methods:

- ``agent``: a trained policy (when a model is given);
- ``oracle``: the nearest-neighbour lookup (jump to the grid state nearest the musician's frame
  in the reward's descriptors; no step limit), the bound of what the table allows;
- ``random``: each parameter moves up, stays or moves down by ``step_size`` at random;
- ``hold``: never moves.

Per method: the mean absolute error of each descriptor (its own units, and in the env's
normalised units), the reward's weighted RMSE, and the time to match (the first time the RMSE
falls to ``match_rmse`` or below; tracks never matched are counted apart).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from musicgym.envs.improvise_core import resolve_corpus
from musicgym.envs.improvise_play import (
    HoldStill,
    Improviser,
    NearestNeighbour,
    PolicyController,
    RandomMoves,
    make_core,
)
from musicgym.errors import ImproviseConfigError

METHODS = ("agent", "oracle", "random", "hold")


def play_track(improviser: Improviser, frames_z: np.ndarray) -> np.ndarray:
    """The agent's descriptors, raw (T - 1, F), after each decision on frames 0 .. T - 2."""
    heard = []
    for frame in frames_z[:-1]:
        improviser.decide_normalised(frame)
        heard.append(improviser.agent_raw.copy())
    return np.asarray(heard)


def evaluate_improvisers(env_kwargs: dict[str, Any], *, model=None, methods=None,
                         listen: str | None = None, match_rmse: float = 0.2, seed: int = 0,
                         subdiv: int = 11, hop_length: int = 512) -> dict:
    """Play the held-out tracks of ``env_kwargs["corpus"]`` with each method; the report.

    Parameters
    ----------
    env_kwargs : dict
        ``gym.make`` keywords of ``musicgym/Improvise-v0`` (a run's ``env_kwargs``); must
        name a ``corpus`` with held-out tracks. ``split`` and ``training_mode`` are set here.
    model : SB3 model, optional
        The ``agent`` method's policy.
    methods : sequence of str, optional
        Among ``METHODS`` (default: all, ``agent`` only with a model).
    listen : "render" or "lookup", optional
        Overrides the env's ``mode`` (how the agent hears itself).
    match_rmse : float
        The RMSE (normalised units, the reward's descriptors) that counts as a match.

    Returns
    -------
    dict
        ``{"tracks": [...], "features": [...], "hop_s": ..., "methods": {name: {"rmse",
        "time_to_match_s" (median over matched tracks), "matched_tracks", "matched_frames",
        "mae": {descriptor: error}, "mae_z": {...}, "per_track": [...]}}}``.

    Raises
    ------
    ImproviseConfigError
        No corpus, an unknown method, ``agent`` without a model, or a bad ``match_rmse``.
    """
    if env_kwargs.get("corpus") is None:
        raise ImproviseConfigError("evaluation needs a corpus with held-out tracks: pass "
                                   "corpus= (a folder of audio files)")
    methods = list(methods or [m for m in METHODS if m != "agent" or model is not None])
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ImproviseConfigError(f"unknown methods {unknown}: choose among {METHODS}")
    if "agent" in methods and model is None:
        raise ImproviseConfigError("method 'agent' needs a trained model (--model RUN)")
    if not 0.0 < float(match_rmse):
        raise ImproviseConfigError(f"match_rmse must be positive, got {match_rmse!r}")
    core = make_core({**env_kwargs, "split": "test", "training_mode": "corpus"}, listen=listen)
    # an InverseAgent (musicgym.envs.improvise_agents) binds itself; an SB3 model is wrapped
    controllers = {"agent": lambda: model.controller(core) if hasattr(model, "controller")
                   else PolicyController(model, core),
                   "oracle": lambda: NearestNeighbour.from_core(core, subdiv=subdiv),
                   "random": lambda: RandomMoves(core.step_size, seed),
                   "hold": HoldStill}
    starts = np.random.default_rng(seed).random((len(core.tracks), core.n_params))
    report: dict[str, Any] = {"tracks": [t.name for t in core.tracks],
                              "features": list(core.features), "match_rmse": float(match_rmse),
                              "reward_features": [f for f, w in zip(core.features, core.weights,
                                                                    strict=True) if w],
                              "hop_s": hop_length / core.sr, "methods": {}}
    for method in methods:
        improviser = Improviser(core, controllers[method](), hop_length=hop_length)
        per_track = []
        for track, frames_z, start in zip(core.tracks, core.tracks_z, starts, strict=True):
            if len(frames_z) < 2:
                continue
            improviser.reset(start)
            heard = play_track(improviser, frames_z)
            per_track.append(_score(core, heard, track.features[1:], track.name, hop_length))
        report["methods"][method] = _summarise(per_track, core.features, match_rmse)
    return report


def _score(core, heard: np.ndarray, target: np.ndarray, name: str, hop: int) -> dict:
    err_z = core.normalise(heard) - core.normalise(target)
    rmse = np.sqrt(err_z ** 2 @ core.weights / core.weights.sum())
    return {"track": name, "rmse_per_frame": rmse, "mae": np.abs(heard - target).mean(axis=0),
            "mae_z": np.abs(err_z).mean(axis=0), "hop_s": hop / core.sr}


def _summarise(per_track: list[dict], features, match_rmse: float) -> dict:
    if not per_track:
        raise ImproviseConfigError("no held-out track is two frames long: use longer tracks")
    times, frames_matched, frames = [], 0, 0
    for t in per_track:
        hit = np.flatnonzero(t["rmse_per_frame"] <= match_rmse)
        t["time_to_match_s"] = float((hit[0] + 1) * t["hop_s"]) if len(hit) else None
        if len(hit):
            times.append(t["time_to_match_s"])
        frames_matched += len(hit)
        frames += len(t["rmse_per_frame"])
    mae = np.mean([t["mae"] for t in per_track], axis=0)
    mae_z = np.mean([t["mae_z"] for t in per_track], axis=0)
    return {
        "rmse": float(np.mean(np.concatenate([t["rmse_per_frame"] for t in per_track]))),
        "time_to_match_s": float(np.median(times)) if times else None,
        "matched_tracks": len(times), "n_tracks": len(per_track),
        "matched_frames": frames_matched / frames,
        "mae": dict(zip(features, mae.tolist(), strict=True)),
        "mae_z": dict(zip(features, mae_z.tolist(), strict=True)),
        "per_track": [{"track": t["track"], "rmse": float(t["rmse_per_frame"].mean()),
                       "time_to_match_s": t["time_to_match_s"]} for t in per_track]}


def method_summaries(report: dict) -> dict:
    """Per method of an :func:`evaluate_improvisers` report, its figures without the per-track
    lists (RMSE, time to match, matched and all tracks, per-descriptor errors): what the
    benchmarks keep in their JSON."""
    return {m: {"rmse": r["rmse"], "time_to_match_s": r["time_to_match_s"],
                "matched_tracks": r["matched_tracks"], "n_tracks": r["n_tracks"],
                "mae": r["mae"], "mae_z": r["mae_z"]}
            for m, r in report["methods"].items()}


def format_report(report: dict) -> str:
    """A plain-text table: one row per method, the reward's error and its descriptors' errors."""
    features = report["reward_features"]
    head = f"{'method':<8} {'rmse':>7} {'match s':>8} {'matched':>8} {'frames':>7} " + \
        " ".join(f"{f[:18]:>18}" for f in features)
    lines = [f"held-out tracks: {', '.join(report['tracks'])}; mean absolute error per "
             f"descriptor in its own units; match = rmse <= {report['match_rmse']}", head]
    for method, m in report["methods"].items():
        ttm = "never" if m["time_to_match_s"] is None else f"{m['time_to_match_s']:.3f}"
        lines.append(f"{method:<8} {m['rmse']:>7.3f} {ttm:>8} "
                     f"{m['matched_tracks']:>4}/{m['n_tracks']:<3} {m['matched_frames']:>7.1%} "
                     + " ".join(f"{m['mae'][f]:>18.4g}" for f in features))
    return "\n".join(lines)


def write_agent_take(model, env_kwargs: dict[str, Any], out_dir, *,
                     hop_length: int | None = None, seed: int = 20_000) -> dict:
    """``musicgym evaluate`` for an improvisation run: one take of the agent, to hear and see.

    With a corpus, the agent follows the first track of the evaluation split
    (``env_kwargs["split"]``, default the training one) frame by frame, as in
    :func:`evaluate_improvisers`; ``target.wav`` is that track (mono, at the env's rate) and
    ``descriptors.png`` shows the musician's descriptors vs the agent's in their own units.
    Without one, the agent plays one deterministic episode of the env against the env's own
    target (synthetic: the synth at random parameters, static or redrawn, as ``training_mode``
    says; ``seed`` seeds it as ``reset(seed=seed)`` would); ``target.wav`` is the synth playing
    the target's parameters and ``descriptors.png`` shows both in the env's normalised units,
    each step's agent against the target it is scored on.

    Either way ``agent.wav`` is the synth playing the agent's parameters, one state per hop
    (:func:`musicgym.envs.improvise_play.render_states`: per-step windows overlap-added).

    Parameters
    ----------
    model : SB3 model
        The trained policy (recurrent ones too), acting deterministically.
    env_kwargs : dict
        The run's evaluation keywords of ``musicgym/Improvise-v0``.
    out_dir : path
        The folder written.
    hop_length : int, optional
        Samples per step (default: the env's ``hop_length``, 512).
    seed : int
        The synthetic episode's seed.

    Returns
    -------
    dict
        With a corpus ``{"track", "rmse"}``; without ``{"target_mode", "take_steps",
        "take_return", "rmse"}`` (``target_mode``: ``static_random`` or ``dynamic_random``;
        the return is the episode's, as the env's seeded episode gives it); ``rmse`` is the
        reward's mean error over the take. ``{}`` when the track is under two frames.
    """
    from pathlib import Path

    from musicgym.audio.io import write_wav

    out_dir = Path(out_dir)
    if hop_length is None:
        hop_length = int(env_kwargs.get("hop_length", 512))
    if env_kwargs.get("corpus") is None:
        return _synthetic_take(model, env_kwargs, out_dir, hop_length, seed)
    core = make_core({**env_kwargs, "training_mode": "corpus"})
    track, frames_z = core.tracks[0], core.tracks_z[0]
    if len(frames_z) < 2:
        return {}
    controller = model.controller(core) if hasattr(model, "controller") else \
        PolicyController(model, core)   # an InverseAgent binds itself
    improviser = Improviser(core, controller, hop_length=hop_length)
    heard = play_track(improviser, frames_z)
    improviser.write_wav(out_dir / "agent.wav")
    musician = _track_audio(resolve_corpus(env_kwargs["corpus"]), track.name, core.sr)
    if musician is not None:
        write_wav(out_dir / "target.wav", musician, core.sr)
    _traces_png(out_dir / "descriptors.png", core, track.features[1:], heard,
                hop_length / core.sr, f"musician vs agent ({track.name})", "musician")
    score = _score(core, heard, track.features[1:], track.name, hop_length)
    return {"track": track.name, "rmse": float(score["rmse_per_frame"].mean())}


def _synthetic_take(model, env_kwargs: dict[str, Any], out_dir, hop_length: int,
                    seed: int) -> dict:
    """One episode stepped as ``ImproviseEnv`` steps it (the same core calls, the same seeded
    generator), recording what the agent and the target play and sound like."""
    from musicgym.audio.io import write_wav
    from musicgym.envs.improvise_play import render_states

    core = make_core(env_kwargs)
    PolicyController(model, core)   # the model must fit the env: a clear error otherwise
    rng = np.random.default_rng(seed)
    core.reset(np.ones(1, dtype=bool), rng, None)
    mode = str(core.episode_mode[0])
    state, start = None, np.ones((1,), dtype=bool)
    params, target_params, agent_z, target_z, rmse, total = [], [], [], [], [], 0.0
    for _ in range(core.max_episode_steps):
        action, state = model.predict(core.observations()[0], state=state, episode_start=start,
                                      deterministic=True)
        start = np.zeros((1,), dtype=bool)
        reward, error, terminated, truncated = core.step([action], rng)
        total += float(reward[0])
        params.append(core.params[0].copy())
        target_params.append(core.target_params[0].copy())
        agent_z.append(core.agent[0].copy())
        target_z.append(core.target[0].copy())
        rmse.append(float(error[0]))
        if terminated[0] or truncated[0]:
            break
    write_wav(out_dir / "agent.wav", render_states(core.synth, np.array(params), sr=core.sr,
                                                   hop_length=hop_length), core.sr)
    write_wav(out_dir / "target.wav", render_states(core.synth, np.array(target_params),
                                                    sr=core.sr, hop_length=hop_length), core.sr)
    _traces_png(out_dir / "descriptors.png", core, np.array(target_z), np.array(agent_z),
                hop_length / core.sr, f"synthetic target ({mode}) vs agent", "target",
                normalised=True)
    return {"target_mode": mode, "take_steps": len(rmse), "take_return": total,
            "rmse": float(np.mean(rmse))}


def _track_audio(corpus, name: str, sr: int) -> np.ndarray | None:
    """The mono audio of the corpus track ``name``, at ``sr``, as the corpus was analysed
    (None if no file of the corpus has that name any more)."""
    from pathlib import Path

    from musicgym.envs.improvise_data import audio_files

    if isinstance(corpus, dict):
        return np.asarray(corpus[name], dtype=np.float64)
    from musicgym.audio.io import read_audio

    paths = audio_files(corpus) if isinstance(corpus, (str, os.PathLike)) else corpus
    path = next((p for p in paths if Path(p).stem == name), None)
    return None if path is None else read_audio(path, sr=sr)[0].mean(axis=0)


def _traces_png(path, core, target: np.ndarray, agent: np.ndarray, hop_s: float, title: str,
                target_label: str, *, normalised: bool = False) -> None:
    """One panel per descriptor, target and agent over time; the reward's descriptors say so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    features = core.features
    t = np.arange(1, len(agent) + 1) * hop_s
    fig, axes = plt.subplots(len(features), 1, sharex=True, squeeze=False,
                             figsize=(8, 0.6 + (2.2 if len(features) <= 8 else 1.5)
                                      * len(features)))
    for k, (ax, feature) in enumerate(zip(axes[:, 0], features, strict=True)):
        ax.plot(t, target[:, k], label=target_label)
        ax.plot(t, agent[:, k], label="agent")
        label = f"{feature} (z)" if normalised else feature
        ax.set_ylabel(f"{label}\nrewarded" if core.weights[k] else label, fontsize=8)
    units = "normalised units (z: the env's mean and std)" if normalised else "own units"
    axes[0, 0].set_title(f"{title}\ndescriptors in {units}", fontsize=10)
    axes[0, 0].legend()
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
