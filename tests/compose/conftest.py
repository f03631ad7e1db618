"""Shared by the composition tests."""

import pytest


def _replay(env, actions):
    """Play ``actions`` from a reset: (total reward, terminated, last info)."""
    env.reset()
    total = 0.0
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
    return total, terminated, info


@pytest.fixture
def replay():
    """:func:`_replay`, the function that plays a search's actions back on its env."""
    return _replay
