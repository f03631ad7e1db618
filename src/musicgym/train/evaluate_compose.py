"""``musicgym evaluate`` for a composition run: the piece the agent writes, to read and hear.

Writes ``piece/`` into the evaluation folder (MIDI, MusicXML, LilyPond, WAV, piano-roll PNG,
notes TSV and JSON, through :func:`musicgym.compose.outputs.write_piece`) for the first episode
seed, and returns the metrics of every episode: the piece's return and whether it finished.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from musicgym.compose.outputs import write_piece
from musicgym.compose.piece import piece_from_counterpoint
from musicgym.compose.ppo import compose_with_policy, replay
from musicgym.train.config import TrainConfig


def evaluate_composition(model, config: TrainConfig, episodes: int, out_dir: Path,
                         seed: int = 20_000) -> dict:
    """Compose ``episodes`` pieces (deterministic policy, seeds ``seed + i``), write the first.

    Returns
    -------
    dict
        ``mean_return``, ``std_return``, ``finished`` (share of pieces that reached the end),
        for counterpoints ``mean_fux_quality`` (:mod:`musicgym.music.rules.quality`, 0-3) and
        ``variety`` (mean pairwise share of differing notes), and ``piece`` (the folder
        written, or None if the first piece is unfinished).
    """
    import musicgym  # noqa: F401  (registers the env ids)

    env = gym.make(config.env_id, **config.eval_kwargs)
    try:
        pieces = [compose_with_policy(model, env, seed=seed + i, deterministic=True)
                  for i in range(episodes)]
        returns = np.array([r for r, _ in pieces])
        metrics = {"mean_return": float(returns.mean()), "std_return": float(returns.std()),
                   "min_return": float(returns.min()), "max_return": float(returns.max())}
        _, actions = pieces[0]
        title = f"{config.algo} on {config.env_id}, seed {seed}"
        if config.env_id == "musicgym/Melody-v0":
            from musicgym.compose.melody import piece_from_melody

            env.reset(seed=seed)
            piece, finished = piece_from_melody(env, actions), [True] * episodes
        else:
            from musicgym.compose.evaluate import mean_pairwise_difference
            from musicgym.music.rules.quality import fux_quality

            states = [replay(env, a) for _, a in pieces]
            finished = [bool(s.finished) for s in states]
            done = [s for s in states if s.finished]
            # the species-aware Fux quality (0-3) and the pieces' variety (issue 14)
            metrics["mean_fux_quality"] = (float(np.mean([fux_quality(s)["total"]
                                                          for s in done])) if done else None)
            metrics["variety"] = mean_pairwise_difference([s.midi_at_eighth for s in done])
            state = replay(env, actions)
            piece = piece_from_counterpoint(state, actions=actions) if state.finished else None
        metrics["finished"] = float(np.mean(finished))
        metrics["piece"] = None
        if piece is not None:
            paths = write_piece(out_dir / "piece", piece, title=title)
            metrics["piece"] = str(paths["midi"].parent)
        return metrics
    finally:
        env.close()
