"""Composing melodies on Melody-v0 (``musicgym compose --task melody``): spelling, searches,
pieces and judging a written melody again."""

import pytest

from musicgym.compose.melody import (
    beam_melody,
    evaluate_melody,
    melody_actions,
    melody_notes,
    piece_from_melody,
    random_melody,
    spell_key,
    time_signature_of,
)
from musicgym.envs.melody import MelodyEnv
from musicgym.errors import ScoreFileError
from musicgym.music.rules.melody import HOLD, REST
from musicgym.music.scales import Scale


@pytest.mark.parametrize("tonic, mode, keys, names", [
    ("C", "major", [60, 61, 70, 71], ["C4", "C#4", "A#4", "B4"]),
    ("F", "major", [70, 66, 61], ["Bb4", "Gb4", "Db4"]),
    ("F#", "major", [65, 67, 62], ["E#4", "G4", "D4"]),
    ("D", "dorian", [71, 72, 66], ["B4", "C5", "F#4"]),
])
def test_keys_are_spelled_in_the_key(tonic, mode, keys, names):
    assert [spell_key(Scale(tonic, mode), k) for k in keys] == names


def test_events_become_notes_and_metres():
    assert melody_notes([HOLD, 60, HOLD, REST, HOLD, 62, 64, HOLD]) == [
        (1, 2, 60), (5, 1, 62), (6, 2, 64)]
    assert [time_signature_of(n) for n in (8, 6, 7, 4)] == [(4, 4), (3, 4), (7, 8), (2, 4)]


@pytest.mark.parametrize("search", [random_melody, beam_melody])
def test_searches_are_seeded_and_their_return_is_the_envs(search):
    env = MelodyEnv(tonic="G", mode="mixolydian", masks=["rl_tuner_key"])
    total, actions = search(env, seed=5)
    assert search(env, seed=5) == (total, actions)
    assert search(env, seed=6)[1] != actions
    assert len(actions) == env.n_steps
    env.reset()
    rewards = [env.step(a)[1] for a in actions]  # raises nothing: every action allowed
    assert sum(rewards) == pytest.approx(total)
    piece = piece_from_melody(env, actions)
    assert all(Scale("G", "mixolydian").contains_midi(piece.notes["pitch"]))


def test_beam_search_beats_random_melodies():
    env = MelodyEnv()
    beams = [beam_melody(env, seed=s, beam_width=8)[0] for s in range(3)]
    randoms = [random_melody(env, seed=s)[0] for s in range(20)]
    assert min(beams) > max(randoms)
    with pytest.raises(ValueError, match="beam_width"):
        beam_melody(env, beam_width=0)


def test_written_melody_is_judged_from_its_notes():
    env = MelodyEnv(masks=["rl_tuner_key"])
    _, actions = beam_melody(env, seed=1)
    piece = piece_from_melody(env, actions)
    assert melody_actions(piece, env) == actions
    before = evaluate_melody(piece)
    assert before["out_of_key"] == 0 and before["mask_violations"] == 0
    # an edited note (C# in C major) is judged as edited
    piece.names[0] = "C#" + piece.names[0][-1]
    after = evaluate_melody(piece)
    assert after["out_of_key"] == 1 and after["mask_violations"] == 1
    assert after["rule_rewards"]["rl_tuner_key"] == before["rule_rewards"]["rl_tuner_key"] - 1


def test_melody_piece_errors():
    env = MelodyEnv(n_steps=4, steps_per_bar=4)
    with pytest.raises(ScoreFileError, match="needs 4 actions"):
        piece_from_melody(env, [2, 0])
    with pytest.raises(ScoreFileError, match="no note"):
        piece_from_melody(env, [1, 1, 1, 1])
    piece = piece_from_melody(env, [2, 0, 0, 3])
    piece.exercise = {}
    with pytest.raises(ScoreFileError, match="not a melody"):
        evaluate_melody(piece)
