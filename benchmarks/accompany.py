"""Accompaniment benchmark on the real Brahms duet takes (held-out takes 6 and 7).

For each follower (oracle; MIDI OLTW and MIDI HMM against training take 1) and each tempo
model: the share of shared onsets within 50/100/250 ms of the soloist, mean and median
|asynchrony|, and tempo jitter, beside the human secondo of the same takes
(:func:`musicgym.follow.report.evaluate_accompanists`). Every accompanist re-synchronises
(jumps to the soloist when more than ``RESYNC_S`` apart); the Kalman model is also run
without it. With ``--train`` a RecurrentPPO agent is trained first through the one runner
(``musicgym.train.runner.train`` with ``src/musicgym/train/defaults/accompany.yaml``, a few
minutes on 2 cores; ``--steps`` overrides its budget) and gets its rows; ``--run RUN_DIR``
evaluates an agent trained before (any ``musicgym train musicgym/Accompany-v0`` run). Then
where the misses of kalman+timing come from, follower accuracy, and the time per OLTW and HMM
update (one frame in, a report out if any, dated; median of 5 runs over 2,000 frames), and
the stress test (:mod:`musicgym.follow.stress`: how often each follower loses the soloist on
88 simulated performances of 11 corpus pieces).
Prints a table and writes benchmarks/results/accompany.json.
Run: ``.venv/bin/python benchmarks/accompany.py --train``. ``--audio`` runs only the audio
rows (issue 15: each online follower from MIDI and from the take rendered to audio).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import yaml

from musicgym.follow.corpus import brahms_takes
from musicgym.follow.followers import HMMFollower, OLTWFollower, piano_roll
from musicgym.follow.report import evaluate_accompanists, format_table

RESULTS = Path(__file__).parent / "results"
RUNS = Path(__file__).parents[1] / "runs" / "accompany"  # runs/ is not versioned
DEFAULTS = Path(__file__).parents[1] / "src" / "musicgym" / "train" / "defaults" / "accompany.yaml"


def train_config(steps: int | None = None):
    """The runner's TrainConfig for the accompanist, from the family's defaults file."""
    from musicgym.train.config import TrainConfig

    defaults = yaml.safe_load(DEFAULTS.read_text())
    algo = defaults["algo"]
    return TrainConfig(env_id=defaults["env_ids"][0], algo=algo,
                       steps=steps or defaults["steps"], n_envs=defaults["n_envs"],
                       env_kwargs=defaults["env_kwargs"],
                       algo_kwargs=defaults["algo_kwargs"][algo])


def update_time_ms(takes, follower_class=OLTWFollower) -> float:
    follower = follower_class(takes[0].solo.performed)
    roll = piano_roll(takes[6].solo.performed, follower.frame_s)[:2000]
    follower.report(roll[0])  # numba compile
    runs = []
    for _ in range(5):
        follower.reset()
        start = time.perf_counter()
        for frame in roll:
            follower.report(frame)  # the whole per-frame work: warping, reporting, dating
        runs.append((time.perf_counter() - start) / len(roll) * 1000.0)
    return float(np.median(runs))


def audio_benchmark(takes, sr: int = 22050, numbers: tuple[int, ...] | None = None) -> dict:
    """Issue 15's audio rows: each online follower (+ the kalman tempo model) on the held-out
    takes from MIDI and from the take rendered through the SoundFont (piano, with a seeded
    room: reverb and pink noise at 30 dB SNR), and the front end's time per 10 ms hop.
    ``numbers``: other takes instead (training takes 2-5, to choose settings on)."""
    from musicgym.follow.accompanist import make_episode
    from musicgym.follow.audio_input import AudioFrames, follow_audio, render_take
    from musicgym.follow.corpus import TEST_TAKES, reference_take
    from musicgym.follow.evaluate import evaluate_tempo_model
    from musicgym.follow.followers import follower_accuracy, follower_errors_ms
    from musicgym.follow.tempo import make_tempo_model

    class _Recording:  # a follower whose follow() hears the rendered audio, not the MIDI
        def __init__(self, follower, audio):
            self.follower, self.audio, self.name = follower, audio, follower.name

        def follow(self, performed):
            return follow_audio(self.follower, self.audio, sr)

    held_out = [t for t in takes if t.take in (numbers or TEST_TAKES)]
    audio = {t.take: render_take(t.solo.performed, sr=sr, seed=t.take) for t in held_out}
    rows = []
    for cls in (HMMFollower, OLTWFollower):
        for source in ("midi", "audio"):
            episodes, errors = [], []
            for t in held_out:
                reference = reference_take(takes, t.take).solo
                # the HMM reads the solo score's keys too, as evaluate-accompany runs it
                follower = (cls(reference.performed, score=reference.score)
                            if cls is HMMFollower else cls(reference.performed))
                if source == "audio":
                    follower = _Recording(follower, audio[t.take])
                ep = make_episode(t.solo, t.accompaniment.score, follower=follower,
                                  accompaniment=t.accompaniment, piece=t.piece, take=t.take)
                episodes.append(ep)
                errors.append(follower_errors_ms(ep.report_sec, ep.report_beat,
                                                 t.solo.performed))
            row = evaluate_tempo_model(episodes, lambda: make_tempo_model("kalman"))
            rows.append({"follower": cls.name, "input": source, "accompanist": "kalman",
                         **row, "follower_accuracy": follower_accuracy(np.concatenate(errors))})
    frames = AudioFrames(sr)
    x = audio[held_out[0].take]
    runs = []
    for _ in range(3):
        frames.reset()
        for i in range(0, x.size, 512):
            frames.push(x[i : i + 512])
        runs.append(frames.frontend_seconds / (x.size / frames.frontend.hop) * 1000.0)
    return {"rows": rows, "frontend_ms_per_hop": float(np.median(runs)), "sr": sr}


def format_audio(audio: dict) -> str:
    lines = ["follower input  within50 within100 within250 median_ms | follower<=50ms",
             *(f"{r['follower']:8s} {r['input']:5s}  {r['within_50_ms']:8.3f} "
               f"{r['within_100_ms']:9.3f} {r['within_250_ms']:9.3f} "
               f"{r['median_abs_ms']:9.1f} | {r['follower_accuracy']['within_50_ms']:.3f}"
               for r in audio["rows"]),
             f"audio front end: {audio['frontend_ms_per_hop']:.3f} ms per 10 ms hop"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train an agent first")
    parser.add_argument("--run", help="evaluate this trained agent's run folder")
    parser.add_argument("--steps", type=int, help="--train: env steps (default: the defaults')")
    parser.add_argument("--audio", action="store_true",
                        help="only the audio rows (MIDI vs rendered audio per follower, front "
                             "end time); writes benchmarks/results/accompany_audio.json")
    parser.add_argument("--takes", type=int, nargs="+",
                        help="--audio: these takes instead of 6 and 7 (e.g. 2 3 4 5)")
    args = parser.parse_args()
    if args.audio:
        audio = audio_benchmark(brahms_takes(), numbers=tuple(args.takes or ()))
        audio["machine"] = platform.platform()
        print(format_audio(audio))
        out = RESULTS / ("accompany_audio_takes.json" if args.takes else "accompany_audio.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(audio, indent=2))
        print(f"wrote {out}")
        return
    run_dir = args.run
    train_seconds = None
    if args.train:
        from musicgym.train.runner import train

        start = time.perf_counter()
        run_dir = train(train_config(args.steps), runs_root=RUNS, progress=True)
        train_seconds = time.perf_counter() - start
    policy = env_kwargs = None
    if run_dir is not None:
        from musicgym.train.evaluate import load_run

        config, policy = load_run(run_dir)
        env_kwargs = config.env_kwargs
    results = evaluate_accompanists(policy, env_kwargs=env_kwargs)
    results["run"] = None if run_dir is None else str(run_dir)
    results["train_seconds"] = train_seconds
    takes = brahms_takes()
    results["oltw_update_ms"] = update_time_ms(takes)
    results["hmm_update_ms"] = update_time_ms(takes, HMMFollower)
    from musicgym.follow.stress import format_stress, run_stress

    results["stress"] = run_stress(("hmm", "oltw"))  # 11 corpus pieces x 8 ways = 88 takes
    results["machine"] = platform.platform()
    print(format_table(results))
    if train_seconds is not None:
        print(f"agent trained in {train_seconds:.0f} s ({run_dir})")
    print(f"OLTW update (report + dating): {results['oltw_update_ms']:.3f} ms per 20 ms frame; "
          f"HMM: {results['hmm_update_ms']:.3f} ms")
    print(format_stress(results["stress"]))
    out = RESULTS / "accompany.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
