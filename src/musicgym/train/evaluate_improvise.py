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

from typing import Any

import numpy as np

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
    controllers = {"agent": lambda: PolicyController(model, core),
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


def write_agent_take(model, env_kwargs: dict[str, Any], out_dir, *, hop_length: int = 512
                     ) -> dict:
    """``musicgym evaluate`` for an improvisation run: the agent following one corpus track.

    Plays the first track of the evaluation split (``env_kwargs["split"]``, default the
    training one) with the trained policy and writes ``agent.wav`` (the synth as it played)
    and ``descriptors.png`` (musician vs agent, one panel per descriptor, own units). Without a
    corpus there is no musician to follow: nothing is written.

    Returns
    -------
    dict
        ``{"track", "rmse"}`` (the reward's error over the track), or ``{}`` without a corpus.
    """
    from pathlib import Path

    if env_kwargs.get("corpus") is None:
        return {}
    core = make_core({**env_kwargs, "training_mode": "corpus"})
    track, frames_z = core.tracks[0], core.tracks_z[0]
    if len(frames_z) < 2:
        return {}
    improviser = Improviser(core, PolicyController(model, core), hop_length=hop_length)
    heard = play_track(improviser, frames_z)
    out_dir = Path(out_dir)
    improviser.write_wav(out_dir / "agent.wav")
    _traces_png(out_dir / "descriptors.png", core.features, track.features[1:], heard,
                hop_length / core.sr, track.name)
    score = _score(core, heard, track.features[1:], track.name, hop_length)
    return {"track": track.name, "rmse": float(score["rmse_per_frame"].mean())}


def _traces_png(path, features, musician: np.ndarray, agent: np.ndarray, hop_s: float,
                name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(agent)) * hop_s
    fig, axes = plt.subplots(len(features), 1, figsize=(8, 2.2 * len(features)), sharex=True,
                             squeeze=False)
    for k, (ax, feature) in enumerate(zip(axes[:, 0], features, strict=True)):
        ax.plot(t, musician[:, k], label="musician")
        ax.plot(t, agent[:, k], label="agent")
        ax.set_ylabel(feature)
    axes[0, 0].set_title(f"descriptors: musician vs agent ({name})")
    axes[0, 0].legend()
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
