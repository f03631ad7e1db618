"""The granular synth held still: what the stream plays against the lookup table's window.

For a 6^3 grid of settings, the lookup table's window (rendered from silence: 1024 samples of
pre-roll, then the 1024 the descriptors read) against 43 consecutive 1024-sample frames of a
stream held at that setting after 1 s, per grain density: the mean absolute difference in
loudness-amp and pitch confidence, how much a held setting's frames vary around their own mean,
the mean levels, and the share of silent frames (docs/improvise.md, the granular note). The
last column is the table the synth now has (``analyze_held``: the mean over 0.5 s held): how far
the stream's mean loudness-amp per setting is from it.

    python benchmarks/granular_stream.py
"""

from __future__ import annotations

import numpy as np

from musicgym.envs.improvise_data import analyze_held, analyze_window, grid_points
from musicgym.envs.synths import make_synth

SR, FRAME = 44100, 1024
FEATURES = ["loudness", "pitch"]   # columns: dBFS, true peak, amp, pitch, confidence
AMP, CONF = 2, 4


def main() -> None:
    synth = make_synth("granular")
    u = grid_points(6, 3)
    table = analyze_window(synth.render(u, n_samples=FRAME, sr=SR, preroll=FRAME),
                           features=FEATURES, sr=SR, frame_length=FRAME)
    held = analyze_held(synth, u, features=FEATURES, sr=SR, frame_length=FRAME)
    stream = synth.patch(SR).stream(synth.hole_matrix(u, SR))
    stream.render(43 * FRAME)
    prev, frames = stream.render(FRAME).mean(axis=1), []
    for _ in range(43):
        cur = stream.render(FRAME).mean(axis=1)
        frames.append(analyze_window(np.concatenate([prev, cur], axis=1), features=FEATURES,
                                     sr=SR, frame_length=FRAME))
        prev = cur
    frames = np.array(frames)   # (frames, settings, columns)
    density = synth.hole_matrix(u, SR)[:, 0].round(2)
    print("density Hz | amp |frame-table| | conf |frame-table| | amp |frame-own mean| | "
          "table amp | stream amp | silent frames | |stream mean-held table| amp")
    for d in np.unique(density):
        m = density == d
        f, t = frames[:, m], table[m]
        print(f"{d:10.1f} | {np.abs(f[..., AMP] - t[:, AMP]).mean():.3f} | "
              f"{np.abs(f[..., CONF] - t[:, CONF]).mean():.3f} | "
              f"{np.abs(f[..., AMP] - f[..., AMP].mean(0)).mean():.3f} | "
              f"{t[:, AMP].mean():.3f} | {f[..., AMP].mean():.3f} | "
              f"{(f[..., AMP] < 1e-4).mean():.2f} | "
              f"{np.abs(f[..., AMP].mean(0) - held[m, AMP]).mean():.4f}")


if __name__ == "__main__":
    main()
