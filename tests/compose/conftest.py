"""Shared by the composition tests."""

import pytest

from musicgym.compose.evaluate import evaluate_piece
from musicgym.compose.piece import piece_from_counterpoint


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


def _judge(env, actions):
    """Play ``actions`` from a reset to the end of the piece and evaluate the piece."""
    env.reset()
    for action in actions:
        env.step(action)
    assert env.state.finished
    return evaluate_piece(piece_from_counterpoint(env.state, actions=actions))


@pytest.fixture
def judge():
    """:func:`_judge`: a learned composer's actions played back and evaluated."""
    return _judge
