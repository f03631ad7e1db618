"""Compose with a policy trained on ``musicgym/Counterpoint-v0`` or ``musicgym/Melody-v0``.

The policy is sb3-contrib's ``MaskablePPO``, trained by musicgym's runner (``musicgym train
musicgym/Counterpoint-v0``, or ``musicgym compose --method ppo``, which trains through it with
the composition defaults of ``musicgym/train/defaults/compose.yaml``). The env's
``action_masks()`` hides every note the hard rules forbid (and, with lookahead, every note that
leads to a dead end), so the policy only ever samples valid notes and every piece it writes has
zero hard-rule violations; what it learns is which valid notes score well.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def replay(env: gym.Env, actions: list[int]):
    """The env's state after ``actions`` from a reset: the composed piece as the env itself
    writes it (its notes, verdicts and whether it finished)."""
    env.reset()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    return env.unwrapped.state


def compose_with_policy(model, env: gym.Env, *, seed: int = 0,
                        deterministic: bool = False) -> tuple[float, list[int]]:
    """Write one piece with a trained policy: (return, actions).

    ``deterministic=False`` samples from the policy (seeded), so pieces differ from seed to
    seed; ``True`` takes the most likely allowed note every time.
    """
    import torch

    torch.manual_seed(seed)
    obs, info = env.reset(seed=seed)
    total, actions = 0.0, []
    while True:
        mask = np.asarray(info["action_mask"], dtype=bool)
        action, _ = model.predict(obs, action_masks=mask, deterministic=deterministic)
        action = int(action)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            return total, actions
