"""The accompaniment report: every accompanist on the held-out Brahms takes, beside the human.

:func:`evaluate_accompanists` plays each held-out take with each follower (the oracle, the
MIDI OLTW and the MIDI HMM) and each accompanist (every tempo model with re-synchronisation,
the Kalman model without it, the Kalman model bent by the earlier takes' tempo curves, the
earlier takes' timing scaled to the soloist's present speed
(:class:`~musicgym.follow.tempo.RehearsedTiming`),
and a trained policy where one is given), and pools the figures of
:mod:`musicgym.follow.evaluate`: the share of shared onsets within 50/100/250 ms of the soloist,
mean and median |asynchrony|, tempo jitter; the human secondo of the same takes is the ceiling.
:func:`format_table` prints it. ``musicgym evaluate-accompany`` and ``benchmarks/accompany.py``
call these (they load a run with ``musicgym.train.evaluate.load_run`` and pass its model and
env settings down: nothing here reads run folders).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from musicgym.errors import AccompanyConfigError
from musicgym.follow.accompanist import (
    RESYNC_S,
    AccompanistRun,
    AgentController,
    Episode,
    Policy,
    make_episode,
    run_controller,
)
from musicgym.follow.corpus import TEST_TAKES, brahms_takes, earlier_curves, reference_take
from musicgym.follow.evaluate import (
    evaluate_tempo_model,
    human_metrics,
    pool_runs,
    run_tempo_model,
)
from musicgym.follow.followers import (
    follower_accuracy,
    follower_errors_ms,
    follower_names,
    make_follower,
)
from musicgym.follow.observation import run_observation
from musicgym.follow.tempo import (
    TEMPO_MODELS,
    RehearsedTempo,
    RehearsedTiming,
    build_tempo_model,
    make_tempo_model,
)

FOLLOWERS = follower_names(evaluated=True)
"""The followers evaluated by default (the registry's ``evaluated`` ones)."""

AGENT_ENV_DEFAULTS = {"max_log_ratio": 0.5, "resync_s": RESYNC_S, "history": 6, "lookahead": 4,
                      "memory": False, "residual_on": None, "residual_scale": 0.1,
                      "timing": False}
"""Accompany-v0's defaults for the settings an agent's evaluation reads from its env_kwargs."""


def evaluate_accompanists(
    policy: Policy | None = None,
    *,
    env_kwargs: dict[str, Any] | None = None,
    takes: tuple[int, ...] = TEST_TAKES,
    followers: tuple[str, ...] = FOLLOWERS,
    duets_dir: str | Path | None = None,
    all_takes: list | None = None,
) -> dict:
    """Evaluate every accompanist on held-out takes.

    Parameters
    ----------
    policy : Policy or None
        A trained agent (anything with Stable-Baselines3's ``predict(obs, state,
        episode_start, deterministic)``); None: tempo models and the human only.
    env_kwargs : dict or None, keyword-only
        The Accompany-v0 settings the policy was trained with (``residual_on``,
        ``residual_scale``, ``memory``, ``history``...); the follower is each of
        ``followers`` in turn.
    takes : tuple of int, keyword-only
        Takes to play (default: the test takes 6 and 7; only test takes are allowed).
    followers : tuple of str, keyword-only
        Registered followers (default: :data:`FOLLOWERS`).
    duets_dir : str, pathlib.Path or None, keyword-only
        Folder of the real duets (default: :func:`musicgym.follow.duets.default_duets_dir`).
    all_takes : list of DuetTake or None, keyword-only
        Another duet's takes (:func:`musicgym.follow.duets.find_duet_takes`) instead of the
        Brahms ones: ``takes`` are then any of their numbers, each followed against the first
        other take among takes 1-5 and timed by the takes before it (rehearsals).

    Returns
    -------
    dict
        ``rows`` (follower, accompanist, resync_s and the figures), ``followers`` (each
        follower's accuracy), ``takes``.
    """
    unknown = sorted(set(followers) - set(follower_names()))
    if unknown or not followers:
        raise AccompanyConfigError(
            f"followers must be among {follower_names()}, got {followers!r}")
    if all_takes is not None:
        numbers = tuple(t.take for t in all_takes)
        if not takes or set(takes) - set(numbers) or len(numbers) < 2:
            raise AccompanyConfigError(
                f"choose takes to test among {numbers} (another take is the reference), "
                f"got {takes!r}")
    elif not takes or set(takes) - set(TEST_TAKES):
        raise AccompanyConfigError(
            f"evaluate on held-out takes only: choose among {TEST_TAKES}, got {takes!r}"
        )
    else:
        all_takes = brahms_takes(Path(duets_dir) if duets_dir else None)
    held_out = [t for t in all_takes if t.take in takes]
    agent = None if policy is None else {**AGENT_ENV_DEFAULTS, **(env_kwargs or {})}
    results: dict = {"takes": list(takes), "rows": [], "followers": {}, "misses": {}}
    timed_runs: dict[str, list[AccompanistRun]] = {}
    for name in followers:
        episodes, errors, dated = [], [], []
        for t in held_out:
            reference = reference_take(all_takes, t.take).solo
            follower = make_follower(name, reference=reference.performed, seed=t.take,
                                     score=reference.score)
            episodes.append(make_episode(t.solo, t.accompaniment.score, follower=follower,
                                         accompaniment=t.accompaniment, piece=t.piece,
                                         take=t.take))
            errors.append(follower_errors_ms(episodes[-1].report_sec, episodes[-1].report_beat,
                                             t.solo.performed))
            dated.append(follower_errors_ms(episodes[-1].report_onset_sec,
                                            episodes[-1].report_beat, t.solo.performed))
        results["followers"][name] = follower_accuracy(np.concatenate(errors))
        results["followers"][name]["dated"] = follower_accuracy(np.concatenate(dated))
        rows = results["rows"]
        for model in TEMPO_MODELS:
            row = evaluate_tempo_model(episodes, lambda m=model: make_tempo_model(m))
            rows.append({"follower": name, "accompanist": model, "resync_s": RESYNC_S, **row})
        row = evaluate_tempo_model(episodes, lambda: make_tempo_model("kalman"), resync_s=None)
        rows.append({"follower": name, "accompanist": "kalman", "resync_s": None, **row})
        rehearsed = [
            run_tempo_model(ep, RehearsedTempo(make_tempo_model("kalman"), _earlier(all_takes, ep)))
            for ep in episodes
        ]
        rows.append({"follower": name, "accompanist": "kalman+rehearsal", "resync_s": RESYNC_S,
                     **pool_runs(rehearsed)})
        timed = [
            run_tempo_model(ep, RehearsedTiming(make_tempo_model("kalman"),
                                                _earlier(all_takes, ep)))
            for ep in episodes
        ]
        rows.append({"follower": name, "accompanist": "kalman+timing", "resync_s": RESYNC_S,
                     **pool_runs(timed)})
        timed_runs[name] = timed
        if agent is not None:
            runs = [agent_run(policy, ep, agent, earlier_curves(all_takes, ep.take))
                    for ep in episodes]
            label = "agent" + (f" (on {agent['residual_on']})" if agent["residual_on"] else "")
            rows.append({"follower": name, "accompanist": label, "resync_s": agent["resync_s"],
                         **pool_runs(runs)})
    if "oracle" in timed_runs:
        for name, runs in timed_runs.items():
            results["misses"][name] = {
                f"take {run.episode.take}": miss_sources(run, oracle_run)
                for run, oracle_run in zip(runs, timed_runs["oracle"], strict=True)
            }
    human = [human_metrics(make_episode(t.solo, t.accompaniment.score,
                                        accompaniment=t.accompaniment)) for t in held_out]
    pooled = {k: float(np.mean([h[k] for h in human])) for k in human[0]}
    results["rows"].append({"follower": "-", "accompanist": "human secondo", "resync_s": None,
                            **pooled})
    return results


def miss_sources(
    run: AccompanistRun, oracle_run: AccompanistRun, *, threshold_ms: float = 50.0,
    first_beats: float = 8.0, rest_s: float = 1.0,
) -> dict[str, int]:
    """Where a run's misses (shared onsets not within ``threshold_ms``) come from, against the
    same accompanist with the oracle follower on the same take.

    Returns counts: ``shared`` (onsets it should play), ``missed``; of the missed: ``skipped``
    (jumped over by a re-synchronisation), ``follower`` (played off, but on time with the
    oracle follower: the follower's error), ``tempo_model`` (off with the oracle too: the
    prediction's error); and, overlapping those, ``first_beats`` (within the first
    ``first_beats`` of the take) and ``after_rest`` (the soloist's first onset after a gap of
    more than ``rest_s``).
    """
    ep = run.episode
    played = dict(zip(*_asynchrony_by_onset(run), strict=True))
    with_oracle = dict(zip(*_asynchrony_by_onset(oracle_run), strict=True))
    gaps = np.diff(ep.solo_sec, prepend=-np.inf)
    out = dict.fromkeys(("shared", "missed", "skipped", "follower", "tempo_model",
                         "first_beats", "after_rest"), 0)
    expected = (ep.shared_beat > run.start_beat) & (ep.shared_beat <= run.end_beat)
    for beat in ep.shared_beat[expected].tolist():
        out["shared"] += 1
        a = played.get(beat)
        if a is not None and abs(a) <= threshold_ms:
            continue
        out["missed"] += 1
        if a is None:
            out["skipped"] += 1
        elif abs(with_oracle.get(beat, np.inf)) <= threshold_ms:
            out["follower"] += 1
        else:
            out["tempo_model"] += 1
        out["first_beats"] += int(beat < ep.solo_beat[0] + first_beats)
        i = int(np.searchsorted(ep.solo_beat, beat))
        out["after_rest"] += int(i < len(gaps) and ep.solo_beat[i] == beat and gaps[i] > rest_s)
    return out


def _asynchrony_by_onset(run: AccompanistRun) -> tuple[list[float], list[float]]:
    ep = run.episode
    beat, sec = np.asarray(run.played_beat), np.asarray(run.played_sec)
    _, i_played, i_shared = np.intersect1d(beat, ep.shared_beat, return_indices=True)
    asynchrony = 1000.0 * (sec[i_played] - ep.shared_solo_sec[i_shared])
    return ep.shared_beat[i_shared].tolist(), asynchrony.tolist()


def _earlier(all_takes, episode) -> list[tuple[np.ndarray, np.ndarray]]:
    """The soloist's tempo curves in all the takes before ``episode``'s (rehearsals, not it)."""
    return earlier_curves(all_takes, episode.take, limit=None)


def agent_run(
    policy: Policy, episode: Episode, env_kwargs: dict[str, Any],
    curves: list[tuple[np.ndarray, np.ndarray]],
) -> AccompanistRun:
    """Let a policy accompany a whole episode as Accompany-v0 (with ``env_kwargs``) would show
    it the episode: the same observation, the same residual mix, the same dynamics.

    Parameters
    ----------
    policy : Policy
    episode : Episode
    env_kwargs : dict
        Accompany-v0 settings (missing ones take the env's defaults).
    curves : list of (numpy.ndarray, numpy.ndarray)
        The earlier takes' solo tempo curves (the env's memory; ignored without ``memory``).

    Returns
    -------
    AccompanistRun
        Played through (feed it to :func:`musicgym.follow.evaluate.pool_runs`).
    """
    kw = {**AGENT_ENV_DEFAULTS, **env_kwargs}
    curves = curves if kw["memory"] else []
    run = AccompanistRun(episode, 0, len(episode.report_sec), max_log_ratio=kw["max_log_ratio"],
                         resync_s=kw["resync_s"])
    base = None if kw["residual_on"] is None else build_tempo_model(kw["residual_on"], curves)

    def observe(accompanist) -> np.ndarray:
        return run_observation(accompanist, history=kw["history"], lookahead=kw["lookahead"],
                               memory=kw["memory"], curves=curves, timing=kw["timing"])

    controller = AgentController(base, scale=kw["residual_scale"], policy=policy,
                                 observe=observe)
    return run_controller(run, controller)


def format_table(results: dict) -> str:
    """The rows of :func:`evaluate_accompanists` as a Markdown table."""
    lines = [
        "| follower | accompanist | resync | <= 50 ms | <= 100 ms | <= 250 ms | skipped | "
        "mean abs (ms) | median abs (ms) | tempo jitter |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        resync = "-" if r["resync_s"] is None else f"{r['resync_s']:.2f} s"
        lines.append(
            f"| {r['follower']} | {r['accompanist']} | {resync} | {r['within_50_ms']:.1%} | "
            f"{r['within_100_ms']:.1%} | {r['within_250_ms']:.1%} | {r['skipped']:.1%} | "
            f"{r['mean_abs_ms']:.0f} | "
            f"{r['median_abs_ms']:.0f} | {r['tempo_jitter']:.3f} |"
        )
    lines.append("")
    for name, takes in results.get("misses", {}).items():
        for take, m in takes.items():
            lines.append(
                f"kalman+timing with {name}, {take}: {m['missed']} of {m['shared']} shared "
                f"onsets missed (> 50 ms): {m['skipped']} skipped, {m['follower']} follower, "
                f"{m['tempo_model']} tempo model; {m['first_beats']} in the first 8 beats, "
                f"{m['after_rest']} after a rest > 1 s"
            )
    for name, acc in results["followers"].items():
        lines.append(
            f"follower {name}: {acc['within_50_ms']:.0%} of solo onsets reported within 50 ms, "
            f"{acc['within_100_ms']:.0%} within 100 ms, {acc['missed']:.1%} missed; "
            f"onsets dated within 50 ms: {acc['dated']['within_50_ms']:.0%}"
        )
    return "\n".join(lines)
