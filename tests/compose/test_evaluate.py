"""Judging written pieces: scores match the env's, broken rules are found and counted."""

import json

import numpy as np
import pytest

from musicgym.compose.evaluate import counterpoint_actions, evaluate_folder, evaluate_piece
from musicgym.compose.outputs import write_piece
from musicgym.compose.piece import piece_from_counterpoint, piece_from_json
from musicgym.compose.search import random_search
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import ScoreFileError
from musicgym.music.intervals import is_consonant


def _piece(env, seed):
    reward, actions = random_search(env, seed=seed)
    env.reset()
    for action in actions:
        env.step(action)
    return reward, actions, piece_from_counterpoint(env.state, actions=actions)


def test_strict_pieces_have_no_violations_and_the_envs_score():
    env = CounterpointEnv(cantus_firmus="fux_aeolian", species=3)
    reward, actions, piece = _piece(env, seed=2)
    assert counterpoint_actions(piece) == actions
    result = evaluate_piece(piece)
    assert result["scores"]["total"] == pytest.approx(reward)
    assert result["hard_violations"] == 0 and result["parallel_perfects"] == 0


def test_rl_musician_rules_alone_let_parallel_perfects_through():
    # RL-Musician's 15 rules do not forbid parallel fifths/octaves; the judge counts them
    env = CounterpointEnv(rules="rl_musician")
    found = []
    for seed in range(60):
        reward, actions, piece = _piece(env, seed)
        if not env.state.finished:
            continue
        result = evaluate_piece(piece)
        assert result["rl_musician_violations"] == 0
        assert result["scores"]["total"] == pytest.approx(reward)
        found.append(result["parallel_perfects"])
        if result["parallel_perfects"]:
            break
    assert found and max(found) > 0


def test_an_edited_note_is_judged_as_written(tmp_path):
    env = CounterpointEnv()
    _, _, piece = _piece(env, seed=0)
    paths = write_piece(tmp_path / "pieces" / "p1", piece, wav=False)
    data = json.loads(paths["json"].read_text())
    scale, cantus = env.setup.scale, env.setup.cantus_midi
    # move one downbeat note of the counterpoint a step, onto a dissonance with the cantus
    for note in data["notes"][4:-4]:
        if note["voice"] != 1 or note["onset_beat"] % 4:
            continue
        position = scale.position_of(note["name"])
        below = int(cantus[int(note["onset_beat"] // 4)])
        dissonant = [p for p in (position - 1, position + 1)
                     if not is_consonant(int(scale.midi(p)) - below)]
        if dissonant:
            note["name"] = scale.name(dissonant[0])
            note["step"] = int(scale.midi(dissonant[0]))
            break
    paths["json"].write_text(json.dumps(data))
    result = evaluate_piece(piece_from_json(paths["json"]))
    assert result["rule_violations"]["consonance_on_strong_beat"] >= 1
    assert result["hard_violations"] >= result["rl_musician_violations"] >= 1


def test_folder_report_and_bad_input(tmp_path):
    env = CounterpointEnv(cantus_firmus="fux_dorian", species=1)
    for i in range(2):
        _, _, piece = _piece(env, seed=i)
        write_piece(tmp_path / f"p{i}", piece, wav=False)
    report = evaluate_folder(tmp_path)
    assert [p["piece"] for p in report["pieces"]] == ["p0", "p1"]
    totals = [p["scores"]["total"] for p in report["pieces"]]
    assert report["mean"]["total"] == pytest.approx(np.mean(totals))
    (tmp_path / "p1" / "piece.json").write_text("{not json")
    with pytest.raises(ScoreFileError, match="p1/piece.json.*not JSON"):
        evaluate_folder(tmp_path)
    with pytest.raises(ScoreFileError, match="not a folder of pieces"):
        evaluate_folder(tmp_path / "missing")
