"""Cantus firmi: the generator follows its rules, exercises come from the notes alone."""

import numpy as np
import pytest

from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import CantusFirmusError
from musicgym.music.cantus import (
    CANTUS_MODES,
    admits_counterpoint,
    counterpoint_exercise,
    fux_cantus_firmi,
    generate_cantus,
    generate_exercises,
    infer_mode,
)
from musicgym.music.rules.species import make_setup
from musicgym.music.scales import Scale


@pytest.mark.parametrize("mode", CANTUS_MODES)
def test_generated_cantus_follows_fux_rules(mode):
    for seed in range(15):
        cantus = generate_cantus(seed=seed, mode=mode)
        assert 8 <= len(cantus) <= 14
        assert cantus[0] == cantus[-1] and 55 <= cantus[0] <= 66
        # every note in the mode, the mode recovered from the notes
        scale = Scale({"dorian": "D", "phrygian": "E", "lydian": "F", "mixolydian": "G",
                       "aeolian": "A", "ionian": "C"}[mode], mode)
        assert scale.contains_midi(np.array(cantus)).all()
        assert infer_mode(cantus)[1] == mode
        semis = np.diff(cantus)
        assert (semis != 0).all()  # no repeated note
        assert not np.isin(np.abs(semis), [6, 9, 10, 11]).any()  # no tritone, no 7th
        assert abs(semis[-1]) <= 2  # final approached by step
        steps = np.abs(semis) <= 2
        assert steps.mean() >= 0.5 and not steps.all()  # mostly steps, some leap
        assert cantus.count(max(cantus)) == 1  # one climax
        assert max(cantus) - min(cantus) <= 17  # at most a tenth
        # a leap larger than a third turns back by step
        for a, b in zip(semis, semis[1:], strict=False):
            if abs(a) > 4:
                assert abs(b) <= 2 and a * b < 0


def test_generator_is_seeded_varied_and_checks_input():
    assert generate_cantus(seed=3, mode="aeolian") == generate_cantus(seed=3, mode="aeolian")
    lines = {tuple(generate_cantus(seed=s, length=11)) for s in range(20)}
    assert len(lines) >= 18
    assert len(generate_cantus(seed=0, length=16)) == 16
    bb = generate_cantus(seed=0, mode="dorian", tonic="G")
    assert infer_mode(bb) == ("G", "dorian")
    with pytest.raises(CantusFirmusError, match="mode must be one of"):
        generate_cantus(seed=0, mode="locrian")
    with pytest.raises(CantusFirmusError, match="length"):
        generate_cantus(seed=0, length=2)


def test_fux_cantus_firmi_and_mode_inference():
    fux = fux_cantus_firmi()
    assert len(fux) == 6
    assert fux["fux_dorian"] == [62, 65, 64, 62, 67, 65, 69, 67, 65, 64, 62]
    for name, notes in fux.items():
        assert infer_mode(notes)[1] == name.removeprefix("fux_")
    assert infer_mode(["D4", "F4", "E4", "Bb4", "A4", "D4"]) == ("D", "aeolian")
    assert infer_mode(["F4", "G4", "A4", "Bb4", "A4", "G4", "F4"]) == ("F", "ionian")
    with pytest.raises(CantusFirmusError, match="locrian"):
        infer_mode(["B3", "C4", "D4", "C4", "B3"])
    with pytest.raises(CantusFirmusError, match="no diatonic mode"):
        infer_mode(["C4", "C#4", "D4", "Eb4", "C4"])
    with pytest.raises(CantusFirmusError, match="note name"):
        infer_mode(["C4", "H4", "C4"])


def test_exercise_from_notes_alone_matches_fux_builtin():
    # the case: Fux's dorian cantus given as notes only
    notes = "D4 F4 E4 D4 G4 F4 A4 G4 F4 E4 D4".split()
    ex = counterpoint_exercise(notes, species=1)
    assert ex["tonic"] == "D" and ex["mode"] == "dorian"
    assert (ex["start_note"], ex["end_note"]) == ("A4", "D5")
    assert (ex["lowest_note"], ex["highest_note"]) == ("D4", "C6")
    below = counterpoint_exercise(notes, species=3, voice="below")
    assert below["start_note"] == below["end_note"] == "D3"
    assert make_setup(**below).counterpoint_above is False
    with pytest.raises(CantusFirmusError, match="voice"):
        counterpoint_exercise(notes, species=1, voice="middle")
    with pytest.raises(CantusFirmusError, match="species"):
        counterpoint_exercise(notes, species=6)
    with pytest.raises(CantusFirmusError, match="not in D dorian"):
        counterpoint_exercise(["D4", "F#4", "D4"], species=1, tonic="D", mode="dorian")
    with pytest.raises(CantusFirmusError, match="tonic triad"):
        counterpoint_exercise(["D4", "F4", "E4"], species=1, tonic="D", mode="dorian")


@pytest.mark.parametrize("voice", ["above", "below"])
def test_fux_cantus_firmi_compose_in_the_env_for_every_species(voice):
    failures = []
    for name, notes in fux_cantus_firmi().items():
        for species in range(1, 6):
            ex = counterpoint_exercise(notes, species=species, voice=voice)
            if not admits_counterpoint(ex):
                failures.append((name, species))
                with pytest.raises(CantusFirmusError, match="no counterpoint can be written"):
                    CounterpointEnv(**ex).reset()
                continue
            env = CounterpointEnv(**ex)
            _, info = env.reset(seed=0)
            assert info["action_mask"].any()
    # the strict rules admit no second-species line on Fux's phrygian cantus (the only one)
    assert failures == [("fux_phrygian", 2)]


def test_generated_exercises_all_admit_a_counterpoint():
    exercises = generate_exercises(12, seed=5, voices=("above", "below"))
    assert [e["species"] for e in exercises[:6]] == [1, 2, 3, 4, 5, 1]
    assert {e["mode"] for e in exercises} == set(CANTUS_MODES)
    for ex in exercises:
        env = CounterpointEnv(**ex)
        env.reset(seed=0)
        assert env.action_masks().any()
    assert generate_exercises(3, seed=5) == generate_exercises(3, seed=5)
