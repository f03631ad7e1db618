"""``musicgym evaluate`` for an accompaniment run: what the agent played against the soloist.

Plays the first evaluation episode with the trained policy and writes, into the evaluation
folder, ``duet.mid`` (two tracks at 60 bpm, so a beat is a second: the soloist's onsets as
played, the accompanist's onsets as the agent placed them; pitches are markers, 72 for the
solo and 60 for the accompaniment, since the env schedules onsets, not notes) and
``duet.wav`` (the same onsets as blips, 880 Hz the soloist's, 440 Hz the accompanist's, to
hear the ensemble) and ``asynchrony.png`` (accompanist minus soloist at every shared onset,
ms). The metrics are the
episodes' returns and asynchronies (mean absolute, median absolute, 95th percentile).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from musicgym.music.midi import write_midi
from musicgym.music.notes import make_notes
from musicgym.train.config import TrainConfig


def play_episode(model, env: gym.Env, config: TrainConfig, seed: int) -> dict:
    """One deterministic episode: its return, shared onsets (beats) and asynchronies (ms)."""
    obs, _ = env.reset(seed=seed)
    state, start, done, total = None, np.ones((1,), dtype=bool), False, 0.0
    beats, asynchrony = [], []
    while not done:
        if config.algo == "recurrent_ppo":
            action, state = model.predict(obs, state=state, episode_start=start,
                                          deterministic=True)
            start = np.zeros((1,), dtype=bool)
        else:
            action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        beats.extend(np.asarray(info["shared_beat"], dtype=float).tolist())
        asynchrony.extend(np.asarray(info["asynchrony_ms"], dtype=float).tolist())
        done = terminated or truncated
    return {"return": total, "shared_beat": np.array(beats), "asynchrony_ms": np.array(asynchrony)}


def evaluate_accompaniment(model, config: TrainConfig, episodes: int, out_dir: Path,
                           seed: int = 20_000) -> dict:
    """Play ``episodes`` episodes; write the first one's duet MIDI and asynchrony plot."""
    import musicgym  # noqa: F401  (registers the env ids)

    env = gym.make(config.env_id, **config.eval_kwargs)
    try:
        records = []
        for i in range(episodes):
            records.append(play_episode(model, env, config, seed + i))
            if i == 0:
                run = env.unwrapped.run
                _write_duet(out_dir / "duet.mid", run.episode.solo_sec, run.played_sec,
                            run.episode.name)
                _duet_wav(out_dir / "duet.wav", run.episode.solo_sec, run.played_sec)
                _asynchrony_png(out_dir / "asynchrony.png", records[0], run.episode.name)
    finally:
        env.close()
    returns = np.array([r["return"] for r in records])
    every = np.abs(np.concatenate([r["asynchrony_ms"] for r in records]))
    metrics = {"mean_return": float(returns.mean()), "std_return": float(returns.std()),
               "min_return": float(returns.min()), "max_return": float(returns.max()),
               "shared_onsets": int(every.size)}
    if every.size:
        metrics.update(mean_abs_asynchrony_ms=float(every.mean()),
                       median_abs_asynchrony_ms=float(np.median(every)),
                       p95_abs_asynchrony_ms=float(np.percentile(every, 95)))
    return metrics


def _write_duet(path: Path, solo_sec, accompaniment_sec, name: str) -> None:
    solo, acc = np.asarray(solo_sec, dtype=float), np.asarray(accompaniment_sec, dtype=float)
    t0 = min(solo.min(initial=np.inf), acc.min(initial=np.inf))
    t0 = 0.0 if not np.isfinite(t0) else t0
    onsets = np.concatenate([solo, acc]) - t0
    notes = make_notes(onsets, np.full(onsets.size, 0.25),
                       np.r_[np.full(solo.size, 72), np.full(acc.size, 60)],
                       voice=np.r_[np.zeros(solo.size, int), np.ones(acc.size, int)],
                       bpm=60.0)
    write_midi(path, notes, bpm=60.0, track_names=(f"solo ({name})", "accompaniment (agent)"))


def _duet_wav(path: Path, solo_sec, accompaniment_sec, sr: int = 22050) -> None:
    """The two parts' onsets as 60 ms blips (soloist 880 Hz, accompanist 440 Hz), the clock
    starting at the first onset."""
    from musicgym.audio.io import write_wav

    solo, acc = (x[np.isfinite(x)] for x in (np.asarray(solo_sec, dtype=float),
                                             np.asarray(accompaniment_sec, dtype=float)))
    t0 = min(solo.min(initial=np.inf), acc.min(initial=np.inf))
    t0 = 0.0 if not np.isfinite(t0) else t0
    t = np.arange(int(0.06 * sr)) / sr
    blips = {880.0: solo - t0, 440.0: acc - t0}
    end = max((float(x.max()) for x in blips.values() if x.size), default=0.0)
    out = np.zeros(int((end + 0.5) * sr), dtype=np.float32)
    for freq, onsets in blips.items():
        blip = 0.4 * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.015)
        for onset in onsets:
            start = int(round(onset * sr))
            out[start:start + blip.size] += blip[:max(0, out.size - start)]
    write_wav(path, out, sr, subtype="PCM_16")


def _asynchrony_png(path: Path, record: dict, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.plot(record["shared_beat"], record["asynchrony_ms"], "o-", markersize=3)
    ax.set_xlabel("score position (beats)")
    ax.set_ylabel("accompanist - soloist (ms)")
    ax.set_title(f"asynchrony at shared onsets: {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
