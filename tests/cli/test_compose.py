"""`musicgym compose` and `musicgym evaluate-compose`, run as subprocesses on small budgets."""

import json
import re
import subprocess
import sys

import mido
import pytest

# RL-Musician 0.4.6's default config (configs/default_config.yml), field for field
RL_MUSICIAN_DEFAULT = """
piece:
  tonic: C
  scale_type: major
  cantus_firmus: [C4, D4, E4, C4, A3, B3, C4, G4, E4, C4, D4, C4]
  counterpoint_specifications:
    start_note: G4
    end_note: C5
    lowest_note: C4
    highest_note: B5
    start_pause_in_eighths: 4
    max_skip_in_degrees: 7
  rules:
    names: [rhythmic_pattern_validity, rearticulation_stability, absence_of_stalled_pitches,
            absence_of_long_motion, absence_of_skip_series, turn_after_skip, VI_VII_resolution,
            step_motion_to_end, consonance_on_strong_beat, step_motion_to_dissonance,
            step_motion_from_dissonance, resolution_of_suspended_dissonance,
            absence_of_large_intervals, absence_of_lines_crossing,
            absence_of_overlapping_motion]
    params:
      absence_of_stalled_pitches: {max_n_repetitions: 2}
      absence_of_long_motion: {max_distance_in_semitones: 9}
      absence_of_skip_series: {max_n_skips: 2}
      turn_after_skip: {min_n_scale_degrees: 3}
      step_motion_to_end: {prohibit_rearticulation: true}
      absence_of_large_intervals: {max_n_semitones: 16}
      absence_of_lines_crossing: {prohibit_unisons: true}
  rendering_params:
    dir: outputs
    measure_in_seconds: 1.0
    midi: {cantus_firmus_instrument: 0, counterpoint_instrument: 0, velocity: 100}
    sinethesizer: {cantus_firmus_instrument: brass, counterpoint_instrument: bowed_string,
                   velocity: 0.8}
environment:
  scoring_coefs: {looped_fragments: 1, entropy: 1, narrow_ranges: 1, climax_explicity: 1,
                  number_of_skips: 1}
  scoring_fn_params:
    looped_fragments: {min_size: 4}
    narrow_ranges: {min_size: 9, penalties: {2: 1, 3: 0.5}}
    climax_explicity: {shortage_penalty: 0.3, duplication_penalty: 0.5}
  reward_for_dead_end: -3
agent:
  beam_width: 5
  n_records_to_keep: 10
  n_trials_estimation_depth: 3
  n_trials_estimation_width: 10
  n_trials_factor: 3
  paralleling_params: {n_processes: null}
"""


def musicgym(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "musicgym", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_random_pieces_in_19_edo_are_written_and_judged(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"piece": {"cantus_firmus": "fux_dorian", "species": 2,
                                            "tuning": {"kind": "edo", "divisions": 19},
                                            "bpm": 90}}))
    out = tmp_path / "out"
    run = musicgym("compose", "-c", config, "--method", "random", "--pieces", 2, "--seed", 4,
                   "-o", out, "--evaluate")
    assert run.returncode == 0, run.stderr
    assert "wrote 2 piece(s)" in run.stdout and "19-EDO" in run.stdout
    assert "mean of 2" in run.stdout and "rules broken: none" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [p["piece"] for p in summary["pieces"]] == ["piece_001", "piece_002"]
    assert_portable_names(out)
    for name in ("piece.mid", "notes.tsv", "piece.musicxml", "piece.ly", "piece.wav",
                 "piano_roll.png", "piece.json"):
        assert (out / "piece_001" / name).is_file()
    midi = mido.MidiFile(out / "piece_001" / "piece.mid")
    tempo = next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(90)
    assert any(m.type == "pitchwheel" for m in mido.merge_tracks(midi.tracks))
    # the same seed gives the same pieces
    again = musicgym("compose", "-c", config, "--method", "random", "--pieces", 2, "--seed", 4,
                     "-o", tmp_path / "again", "--no-wav")
    assert again.returncode == 0, again.stderr
    first = json.loads((out / "piece_002" / "piece.json").read_text())["notes"]
    second = json.loads((tmp_path / "again" / "piece_002" / "piece.json").read_text())["notes"]
    assert first == second

    report_path = tmp_path / "report.json"
    judged = musicgym("evaluate-compose", out, "--json", report_path)
    assert judged.returncode == 0, judged.stderr
    report = json.loads(report_path.read_text())
    assert len(report["pieces"]) == 2 and report["mean"]["hard_violations"] == 0
    returns = [p["return"] for p in summary["pieces"]]
    assert [p["scores"]["total"] for p in report["pieces"]] == pytest.approx(returns)


def test_rl_musician_default_config_runs_and_its_fields_mean_the_same(tmp_path):
    config = tmp_path / "default_config.yml"
    config.write_text(RL_MUSICIAN_DEFAULT)
    run = musicgym("compose", "-c", config, "--n-trials", 2, "--beam-width", 1, "--no-wav",
                   cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "piece.rendering_params.sinethesizer is RL-Musician's and is ignored" in run.stdout
    # rendering_params.dir is the output folder; measure_in_seconds 1.0 is 240 quarters/min
    midi = mido.MidiFile(tmp_path / "outputs" / "piece_001" / "piece.mid")
    tempo = next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(240)
    programs = {m.program for m in mido.merge_tracks(midi.tracks) if m.type == "program_change"}
    velocities = {m.velocity for m in mido.merge_tracks(midi.tracks) if m.type == "note_on"}
    assert programs == {0} and velocities == {100}


@pytest.mark.parametrize("text, message", [
    ("piece:\n  counterpoint_specifications:\n    start_nte: G4\n",
     "unknown field 'piece.counterpoint_specifications.start_nte' (did you mean 'start_note'?)"),
    ("agent:\n  beam_width: five\n", "field 'agent.beam_width' must be int, got 'five'"),
    ("agent:\n  method: dqn\n", "method must be one of guided, beam, random, ppo"),
    ("agent:\n  method: guided\n  n_trials: 3\n",
     "agent.n_trials is a setting of method beam, but the method is guided"),
    ("agent:\n  noise: -0.5\n", "agent.noise must be 0 or more, got -0.5"),
    ("task: melody\nagent:\n  method: guided\n", "method guided is for task counterpoint"),
    ("piece: [1, 2\n", "line 2: not valid YAML (expected ',' or ']'"),
])
def test_bad_config_is_one_line_naming_the_field(tmp_path, text, message):
    config = tmp_path / "bad.yml"
    config.write_text(text)
    run = musicgym("compose", "-c", config, "-o", tmp_path / "o")
    assert run.returncode == 1
    assert run.stderr.startswith("musicgym compose: error:") and message in run.stderr
    assert str(config) in run.stderr and "Traceback" not in run.stderr


def test_bad_tuning_file_names_the_file_and_line(tmp_path):
    scl = tmp_path / "bad.scl"
    scl.write_text("! bad\nmy scale\n2\n100.0\nhalf\n")
    config = tmp_path / "c.yml"
    config.write_text(f"piece:\n  tuning: {{kind: scala, path: '{scl}'}}\n")
    run = musicgym("compose", "-c", config, "--method", "random", "-o", tmp_path / "o")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"{scl}, line 5" in run.stderr and "'half'" in run.stderr


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = musicgym("compose", "--method", "random", "-o", blocker / "out")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "cannot write to the output folder" in run.stderr and str(blocker) in run.stderr


def test_evaluate_compose_on_a_folder_without_pieces(tmp_path):
    run = musicgym("evaluate-compose", tmp_path)
    assert run.returncode == 1 and "no piece.json under" in run.stderr


@pytest.mark.slow
def test_masked_ppo_composes_valid_pieces(tmp_path):
    run = musicgym("compose", "--method", "ppo", "--ppo-timesteps", 128, "--pieces", 2,
                   "--no-wav", "-o", tmp_path / "ppo", "--evaluate")
    assert run.returncode == 0, run.stderr
    assert "trained in" in run.stdout and "wrote 2 piece(s)" in run.stdout
    judged = musicgym("evaluate-compose", tmp_path / "ppo", "--json", tmp_path / "r.json")
    assert judged.returncode == 0, judged.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["pieces"]) == 2
    assert all(p["hard_violations"] == 0 for p in report["pieces"])


PORTABLE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                   *(f"LPT{i}" for i in range(1, 10))}


def assert_portable_names(folder):
    for path in folder.rglob("*"):
        name = path.name
        assert PORTABLE.match(name), name
        assert not name.endswith((".", " ")) and len(name) <= 100, name
        assert name.split(".")[0].upper() not in WINDOWS_DEVICES, name


def test_melody_task_writes_every_file_in_just_intonation(tmp_path):
    config = tmp_path / "melody.yml"
    config.write_text("task: melody\n"
                      "piece:\n  tonic: D\n  mode: dorian\n  bpm: 100\n"
                      "  tuning: {kind: just}\n"
                      "  melody: {lowest_note: C4, n_pitches: 24, masks: [rl_tuner_key]}\n"
                      "  rendering_params: {midi: {melody_instrument: 40, velocity: 70}}\n"
                      "agent: {method: beam, beam_width: 4}\n")
    out = tmp_path / "melodies"
    run = musicgym("compose", "-c", config, "--pieces", 2, "--seed", 3, "-o", out,
                   "--evaluate")
    assert run.returncode == 0, run.stderr
    assert "wrote 2 piece(s)" in run.stdout and "5-limit JI" in run.stdout
    assert "mean of 2" in run.stdout and "out of key" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "melody" and summary["method"] == "beam"
    assert_portable_names(out)
    for name in ("piece.mid", "notes.tsv", "piece.musicxml", "piece.ly", "piece.wav",
                 "piano_roll.png", "piece.json"):
        assert (out / "piece_002" / name).stat().st_size > 0
    midi = mido.MidiFile(out / "piece_001" / "piece.mid")
    assert mido.tempo2bpm(next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
                          ) == pytest.approx(100)
    messages = list(mido.merge_tracks(midi.tracks))
    assert {m.program for m in messages if m.type == "program_change"} == {40}
    keys = [m.note for m in messages if m.type == "note_on" and m.velocity]
    assert keys and min(keys) >= 60 and max(keys) < 84
    assert {m.velocity for m in messages if m.type == "note_on"} == {70}
    assert any(m.type == "pitchwheel" for m in messages)  # JI thirds are bent
    piece = json.loads((out / "piece_001" / "piece.json").read_text())
    assert piece["exercise"]["task"] == "melody" and piece["time_signature"] == [4, 4]
    assert "\\markup" in (out / "piece_001" / "piece.ly").read_text()

    report_path = tmp_path / "report.json"
    judged = musicgym("evaluate-compose", out, "--json", report_path)
    assert judged.returncode == 0, judged.stderr
    report = json.loads(report_path.read_text())
    assert [p["out_of_key"] for p in report["pieces"]] == [0, 0]
    # all nine rules at weight 1, as the env's default weights: the search's own return
    assert [p["total"] for p in report["pieces"]] == pytest.approx(
        [p["return"] for p in summary["pieces"]])


def test_melody_from_the_command_line_alone(tmp_path):
    run = musicgym("compose", "--task", "melody", "--method", "random", "--seed", 1,
                   "--no-wav", "-o", tmp_path / "m")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "m" / "piece_001" / "piece.musicxml").is_file()
    assert not (tmp_path / "m" / "piece_001" / "piece.wav").exists()
    assert "\\markup" not in (tmp_path / "m" / "piece_001" / "piece.ly").read_text()


@pytest.mark.parametrize("text, flags, message", [
    ("task: melody\npiece:\n  melody: {lowest_nte: C4}\n", [],
     "unknown field 'piece.melody.lowest_nte' (did you mean 'lowest_note'?)"),
    ("task: melody\npiece:\n  species: 2\n", [],
     "field 'piece.species' is for task counterpoint, not 'melody'"),
    ("piece:\n  melody: {n_steps: 16}\n", [],
     "field 'piece.melody' is for task melody, not 'counterpoint'"),
    ("task: melody\n", ["--task", "counterpoint"],
     "the config's task is 'melody' but --task says 'counterpoint'"),
    ("task: song\n", [], "task must be one of counterpoint, melody, got 'song'"),
    ("task: melody\n", ["--n-trials", "3"], "agent.n_trials (--n-trials) is for task "
                                            "counterpoint"),
    ("task: melody\npiece:\n  melody: {lowest_note: H4}\n", [],
     "field 'piece.melody.lowest_note'"),
    ("task: melody\npiece:\n  melody: {lowest_note: C8, n_pitches: 36}\n", [],
     "above the highest MIDI key"),
    ("task: melody\nagent: {temperature: -1}\n", [], "agent.temperature must be 0 or more"),
])
def test_bad_melody_config_is_one_line_naming_the_field(tmp_path, text, flags, message):
    config = tmp_path / "bad.yml"
    config.write_text(text)
    run = musicgym("compose", "-c", config, "-o", tmp_path / "o", *flags)
    assert run.returncode == 1, run.stdout
    assert run.stderr.startswith("musicgym compose: error:") and message in run.stderr
    assert "Traceback" not in run.stderr


def test_unknown_melody_rule_is_named(tmp_path):
    config = tmp_path / "c.yml"
    config.write_text("task: melody\npiece:\n  melody: {masks: [rl_tuner_kee]}\n")
    run = musicgym("compose", "-c", config, "-o", tmp_path / "o")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "rl_tuner_kee" in run.stderr


@pytest.mark.slow
def test_masked_ppo_composes_melodies(tmp_path):
    run = musicgym("compose", "--task", "melody", "--method", "ppo", "--ppo-timesteps", 128,
                   "--pieces", 2, "--no-wav", "-o", tmp_path / "ppo")
    assert run.returncode == 0, run.stderr
    assert "trained in" in run.stdout and "wrote 2 piece(s)" in run.stdout
    assert_portable_names(tmp_path / "ppo")


def test_guided_search_is_the_counterpoint_default_and_its_pieces_break_no_hard_rule(tmp_path):
    out = tmp_path / "guided"
    run = musicgym("compose", "--guided-width", 40, "--pieces", 2, "--no-wav", "-o", out)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "guided"
    report_path = tmp_path / "report.json"
    judged = musicgym("evaluate-compose", out, "--json", report_path)
    assert judged.returncode == 0, judged.stderr
    report = json.loads(report_path.read_text())
    assert report["mean"]["hard_violations"] == 0
    # the written pieces score what the search said they would
    returns = [p["return"] for p in summary["pieces"]]
    assert [p["scores"]["total"] for p in report["pieces"]] == pytest.approx(returns)
    # a random piece from the same env scores far lower on average than the guided search
    assert min(returns) > 1.5


def test_rl_musicians_beam_fields_keep_its_beam_search_as_the_default(tmp_path):
    config = tmp_path / "c.yml"
    config.write_text("agent:\n  n_trials: 1\n  beam_width: 1\n")
    run = musicgym("compose", "-c", config, "--no-wav", "-o", tmp_path / "o")
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["method"] == "beam"


def test_own_cantus_by_its_notes_alone(tmp_path):
    # the case: D dorian given, no counterpoint_specifications (RL-Musician's start
    # note G4 used to be refused as not in the tonic triad)
    out = tmp_path / "own"
    run = musicgym("compose", "--cantus", "D4 F4 E4 D4 G4 F4 A4 G4 F4 E4 D4", "--species", 3,
                   "--voice", "below", "--guided-width", 30, "--no-wav", "-o", out)
    assert run.returncode == 0, run.stderr
    piece = json.loads((out / "piece_001" / "piece.json").read_text())
    text = json.dumps(piece)
    assert '"dorian"' in text and '"D3"' in text  # inferred mode, octave below to open
    judged = musicgym("evaluate-compose", out)
    assert judged.returncode == 0, judged.stderr
    bad = musicgym("compose", "--cantus", "D4 F4 E4 D4 G4 F4 A4 G4 F4 E4 D4", "--tonic", "D",
                   "--mode", "phrygian", "--no-wav", "-o", tmp_path / "bad")
    assert bad.returncode != 0 and "not in D phrygian" in bad.stderr
    melody = musicgym("compose", "--task", "melody", "--cantus", "C4 D4 C4", "-o",
                      tmp_path / "m")
    assert melody.returncode != 0 and "for task counterpoint" in melody.stderr


def test_fux_objective_diversity_and_the_report_of_quality_and_variety(tmp_path):
    out = tmp_path / "fux"
    run = musicgym("compose", "-c", _fux_config(tmp_path), "--objective", "fux",
                   "--diversity", 0.5, "--guided-width", 30, "--pieces", 3, "--no-wav",
                   "-o", out)
    assert run.returncode == 0, run.stderr
    report_path = tmp_path / "report.json"
    judged = musicgym("evaluate-compose", out, "--json", report_path)
    assert judged.returncode == 0, judged.stderr
    assert "fux" in judged.stdout and "% of notes differ" in judged.stdout
    report = json.loads(report_path.read_text())
    assert all(0 <= p["quality"]["total"] <= 3 for p in report["pieces"])
    assert report["variety"] >= 0.25
    bad = musicgym("compose", "--objective", "best", "-o", tmp_path / "x")
    assert bad.returncode != 0


def _fux_config(tmp_path):
    path = tmp_path / "fux.json"
    path.write_text(json.dumps({"piece": {"cantus_firmus": "fux_dorian", "species": 1}}))
    return path
