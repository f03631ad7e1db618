"""Counterpoint-v0 gives, on fresh exercises, what it gave before the compiled rules and
dead-end search (musicgym.music.rules.fastmask) and the faster scores were added: digests of
every mask, action, reward, end flag and score of random masked episodes, and the guided
search's pieces, recorded with the Python-only code (commit 715a684) on exercises that
``generate_exercises(10, seed=77, voices=("above", "below"))`` gave then (written out here, so
that a change to the generator does not move them)."""

import hashlib

import numpy as np
import pytest

from musicgym.compose.search import guided_beam_search
from musicgym.envs.counterpoint import CounterpointEnv

EXERCISES = [
    {
        "cantus_firmus": ["D4", "C4", "A3", "B3", "G4", "F4", "C4", "D4"],
        "tonic": "D",
        "mode": "dorian",
        "species": 1,
        "start_note": "A4",
        "end_note": "D5",
        "lowest_note": "A3",
        "highest_note": "C6",
    },
    {
        "cantus_firmus": [
            "E4",
            "F4",
            "E4",
            "C4",
            "D4",
            "C4",
            "B3",
            "C4",
            "D4",
            "B3",
            "G4",
            "F4",
            "E4",
        ],
        "tonic": "E",
        "mode": "phrygian",
        "species": 2,
        "start_note": "E3",
        "end_note": "E3",
        "lowest_note": "F2",
        "highest_note": "G4",
    },
    {
        "cantus_firmus": ["F4", "E4", "D4", "F4", "C4", "D4", "E4", "B4", "A4", "E4", "F4"],
        "tonic": "F",
        "mode": "lydian",
        "species": 3,
        "start_note": "C5",
        "end_note": "F5",
        "lowest_note": "C4",
        "highest_note": "E6",
    },
    {
        "cantus_firmus": ["G3", "A3", "G3", "F3", "E3", "B3", "A3", "G3"],
        "tonic": "G",
        "mode": "mixolydian",
        "species": 4,
        "start_note": "G2",
        "end_note": "G2",
        "lowest_note": "A1",
        "highest_note": "B3",
    },
    {
        "cantus_firmus": ["A3", "G3", "A3", "B3", "G3", "C4", "B3", "A3"],
        "tonic": "A",
        "mode": "aeolian",
        "species": 5,
        "start_note": "E4",
        "end_note": "A4",
        "lowest_note": "G3",
        "highest_note": "G5",
    },
    {
        "cantus_firmus": [
            "C4",
            "B3",
            "C4",
            "E4",
            "A3",
            "B3",
            "A3",
            "G3",
            "A3",
            "B3",
            "G4",
            "F4",
            "D4",
            "C4",
        ],
        "tonic": "C",
        "mode": "ionian",
        "species": 1,
        "start_note": "C3",
        "end_note": "C3",
        "lowest_note": "D2",
        "highest_note": "G4",
    },
    {
        "cantus_firmus": ["D4", "B3", "C4", "D4", "E4", "F4", "E4", "D4"],
        "tonic": "D",
        "mode": "dorian",
        "species": 2,
        "start_note": "A4",
        "end_note": "D5",
        "lowest_note": "B3",
        "highest_note": "C6",
    },
    {
        "cantus_firmus": [
            "E4",
            "D4",
            "B3",
            "D4",
            "E4",
            "C5",
            "B4",
            "C5",
            "D5",
            "C5",
            "B4",
            "A4",
            "F4",
            "E4",
        ],
        "tonic": "E",
        "mode": "phrygian",
        "species": 3,
        "start_note": "E3",
        "end_note": "E3",
        "lowest_note": "F2",
        "highest_note": "D5",
    },
    {
        "cantus_firmus": ["F4", "G4", "B4", "A4", "F4", "G4", "A4", "G4", "F4"],
        "tonic": "F",
        "mode": "lydian",
        "species": 4,
        "start_note": "C5",
        "end_note": "F5",
        "lowest_note": "F4",
        "highest_note": "E6",
    },
    {
        "cantus_firmus": [
            "G3",
            "D3",
            "E3",
            "F3",
            "G3",
            "F3",
            "A3",
            "B3",
            "E4",
            "D4",
            "E4",
            "F4",
            "F3",
            "G3",
        ],
        "tonic": "G",
        "mode": "mixolydian",
        "species": 5,
        "start_note": "G2",
        "end_note": "G2",
        "lowest_note": "A1",
        "highest_note": "F4",
    },
]
RECORDED_EPISODES = [
    "cde0d1a64da4320e",
    "24dd7f6f6606642f",
    "14556592e02d5ec3",
    "401553e5b8140517",
    "276bd736bcad6cf3",
    "a05e007bb0bc0b50",
    "de2cf261a837ce4f",
    "1fa44a82f5d64685",
    "98445500df4d75fc",
    "0317648b9729f94c",
]
RECORDED_GUIDED = [
    [52, 54, 53, 52, 54, 51],
    [36, 41, 36, 35, 38, 39, 38, 35, 35, 38, 35, 35, 36, 39, 36, 39, 38, 36, 38, 39, 38, 33],
    [
        22,
        21,
        23,
        26,
        21,
        21,
        23,
        22,
        24,
        21,
        21,
        20,
        21,
        23,
        21,
        21,
        21,
        21,
        21,
        22,
        23,
        23,
        23,
        23,
        26,
        21,
        23,
        26,
        21,
        21,
        23,
        20,
        21,
        21,
        21,
        24,
    ],
    [36, 41, 36, 55, 36, 36, 50, 36, 38, 35],
    [22, 23, 23, 8, 8, 23, 21, 51, 21, 11, 6, 36, 20, 23, 21, 6, 6, 22, 29, 21, 21, 21, 6, 6],
]


def _digest(exercise, seed, episodes=3):
    env = CounterpointEnv(**exercise)
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    for _ in range(episodes):
        _, info = env.reset()
        digest.update(info["action_mask"].tobytes())
        done = False
        while not done:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            _, reward, terminated, truncated, info = env.step(action)
            digest.update(info["action_mask"].tobytes())
            digest.update(
                repr(
                    (
                        action,
                        reward,
                        terminated,
                        truncated,
                        info.get("dead_end"),
                        info.get("scores"),
                    )
                ).encode()
            )
            done = terminated or truncated
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("index", range(len(EXERCISES)))
def test_episodes_as_recorded(index):
    assert _digest(EXERCISES[index], index) == RECORDED_EPISODES[index]


@pytest.mark.parametrize("index", range(len(RECORDED_GUIDED)))
def test_guided_pieces_as_recorded(index):
    env = CounterpointEnv(**EXERCISES[index])
    assert guided_beam_search(env, seed=0, beam_width=20)[1] == RECORDED_GUIDED[index]
