"""The accompaniment report: every accompanist on the held-out Brahms takes, beside the human.

:func:`evaluate_accompanists` plays each held-out take with each follower (the oracle and the
MIDI OLTW) and each accompanist (every tempo model with re-synchronisation, the Kalman model
without it, the Kalman model bent by the earlier takes' tempo curves, the earlier takes'
timing scaled to the soloist's present speed (:class:`~musicgym.follow.tempo.RehearsedTiming`),
and a trained agent where a run folder is given), and pools the figures of
:mod:`musicgym.follow.evaluate`: the share of shared onsets within 50/100/250 ms of the soloist,
mean and median |asynchrony|, tempo jitter; the human secondo of the same takes is the ceiling.
:func:`format_table` prints it. ``musicgym evaluate-accompany`` and ``benchmarks/accompany.py``
call these; the training issue's ``musicgym evaluate RUN_DIR`` can call them too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musicgym.errors import AccompanyConfigError
from musicgym.follow.accompanist import RESYNC_S, make_episode
from musicgym.follow.corpus import TEST_TAKES, brahms_takes, reference_take
from musicgym.follow.duets import tempo_curve
from musicgym.follow.evaluate import (
    evaluate_tempo_model,
    human_metrics,
    pool_runs,
    run_tempo_model,
)
from musicgym.follow.followers import (
    OLTWFollower,
    OracleFollower,
    follower_accuracy,
    follower_errors_ms,
)
from musicgym.follow.tempo import (
    TEMPO_MODELS,
    RehearsedTempo,
    RehearsedTiming,
    make_tempo_model,
)

FOLLOWERS = ("oracle", "oltw")


def evaluate_accompanists(
    run_dir: str | Path | None = None,
    *,
    takes: tuple[int, ...] = TEST_TAKES,
    followers: tuple[str, ...] = FOLLOWERS,
    duets_dir: str | Path | None = None,
) -> dict:
    """Evaluate every accompanist on held-out takes.

    Parameters
    ----------
    run_dir : str, pathlib.Path or None
        A trained agent's run folder (:func:`musicgym.follow.train.train`); None: tempo
        models and the human only.
    takes : tuple of int, keyword-only
        Takes to play (default: the test takes 6 and 7; only test takes are allowed).
    followers : tuple of str, keyword-only
        ``"oracle"`` and/or ``"oltw"``.
    duets_dir : str, pathlib.Path or None, keyword-only
        Folder of the real duets (default: ``$MUSICGYM_DUETS_DIR`` or ``../shared/data/duets``).

    Returns
    -------
    dict
        ``rows`` (follower, accompanist, resync_s and the figures), ``followers`` (each
        follower's accuracy), ``takes``.
    """
    unknown = sorted(set(followers) - set(FOLLOWERS))
    if unknown or not followers:
        raise AccompanyConfigError(f"followers must be among {FOLLOWERS}, got {followers!r}")
    if not takes or set(takes) - set(TEST_TAKES):
        raise AccompanyConfigError(
            f"evaluate on held-out takes only: choose among {TEST_TAKES}, got {takes!r}"
        )
    all_takes = brahms_takes(Path(duets_dir) if duets_dir else None)
    held_out = [t for t in all_takes if t.take in takes]
    agent = _load(run_dir) if run_dir is not None else None
    results: dict = {"takes": list(takes), "rows": [], "followers": {}}
    for name in followers:
        episodes, errors = [], []
        for t in held_out:
            follower = (OracleFollower() if name == "oracle"
                        else OLTWFollower(reference_take(all_takes, t.take).solo.performed))
            episodes.append(make_episode(t.solo, t.accompaniment.score, follower=follower,
                                         accompaniment=t.accompaniment, piece=t.piece,
                                         take=t.take))
            errors.append(follower_errors_ms(episodes[-1].report_sec, episodes[-1].report_beat,
                                             t.solo.performed))
        results["followers"][name] = follower_accuracy(np.concatenate(errors))
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
        if agent is not None:
            from musicgym.follow.train import agent_runs

            model, config = agent
            row = pool_runs(agent_runs(model, config, takes, follower=name))
            label = "agent" + (f" (on {config.residual_on})" if config.residual_on else "")
            rows.append({"follower": name, "accompanist": label,
                         "resync_s": config.env_kwargs.get("resync_s", RESYNC_S), **row})
    human = [human_metrics(make_episode(t.solo, t.accompaniment.score,
                                        accompaniment=t.accompaniment)) for t in held_out]
    pooled = {k: float(np.mean([h[k] for h in human])) for k in human[0]}
    results["rows"].append({"follower": "-", "accompanist": "human secondo", "resync_s": None,
                            **pooled})
    return results


def _earlier(all_takes, episode) -> list[tuple[np.ndarray, np.ndarray]]:
    """The soloist's tempo curves in the takes before ``episode``'s (rehearsals, not it)."""
    return [tempo_curve(t.solo.score) for t in all_takes if t.take < episode.take]


def _load(run_dir: str | Path):
    from musicgym.follow.train import load_agent

    return load_agent(run_dir)


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
    for name, acc in results["followers"].items():
        lines.append(
            f"follower {name}: {acc['within_50_ms']:.0%} of solo onsets reported within 50 ms, "
            f"{acc['within_100_ms']:.0%} within 100 ms, {acc['missed']:.1%} missed"
        )
    return "\n".join(lines)
