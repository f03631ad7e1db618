"""Input from someone else (issue 12): no code runs from data, small input does bounded work,
and every bad input gives one of musicgym's own errors.

Each test is one reproducer of the review: the attack string, the bomb or the odd file, sent
through the public function a user's command calls.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from musicgym.datapath import data_subdir
from musicgym.errors import (
    ActionSpaceError,
    ArgumentError,
    AudioFileError,
    ConfigError,
    ImproviseConfigError,
    MusicgymError,
    RenderLimitError,
    ScoreFileError,
    TuningError,
)

ATTACK = ("(lambda: [c for c in ().__class__.__base__.__subclasses__() if "
          "c.__name__=='catch_warnings'][0]()._module.__builtins__['__import__']('os')"
          ".system('touch PWNED'))() or 0.5")
MATCH = sorted(data_subdir("duets").rglob("*.match"))


# -- 1. no code from data -------------------------------------------------------------------
def test_the_rel_expression_attack_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    from musicgym.envs.spaces import ParameterMap

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ActionSpaceError, match="only x, numbers"):
        ParameterMap([("lin", 0.0, 1.0), ("rel", 0, ATTACK)])
    assert not (tmp_path / "PWNED").exists()


def test_the_attack_in_a_yaml_config_runs_nothing(tmp_path, monkeypatch):
    from musicgym.envs.presets import KICK_CODE, kick_target
    from musicgym.envs.synth_match import SynthMatchEnv
    from musicgym.safeio import load_mapping

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(f"action_space:\n  - [exp, 0.0005, 0.05]\n  - [rel, 0, \"{ATTACK}\"]\n"
                      f"  - [exp, 30.0, 300.0]\n")
    spec = load_mapping(config)["action_space"]
    with pytest.raises(ActionSpaceError):
        SynthMatchEnv(KICK_CODE, kick_target(), 1, 0.1, spec)
    assert not (tmp_path / "PWNED").exists()


def test_musicgym_train_with_the_attack_config_refuses_it_in_one_line(tmp_path):
    config = tmp_path / "attack.yaml"
    config.write_text("env_id: musicgym/Kick-v0\nalgo: ppo\nsteps: 64\nn_envs: 1\n"
                      "env_kwargs:\n  action_space:\n    - [exp, 0.0005, 0.05]\n"
                      f"    - [rel, 0, \"{ATTACK}\"]\n    - [exp, 30.0, 300.0]\n")
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "musicgym", "train", "--config", str(config),
                           "--runs", str(tmp_path / "runs")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "only x, numbers" in done.stderr
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("text", ["x.__class__", "[x][0]", "x if x else 1", "f'{x}'",
                                  "getattr(x, 'real')", "(lambda: 1)()", "x and 1", "x < 1"])
def test_expressions_admit_only_arithmetic(text):
    from musicgym.envs.spaces import ParameterMap

    with pytest.raises(ActionSpaceError, match="only x"):
        ParameterMap([("lin", 0.0, 1.0), ("rel", 0, text)])


def test_expressions_are_evaluated_on_arrays():
    from musicgym.envs.spaces import ParameterMap

    pmap = ParameterMap([("lin", 0.0, 1.0), ("rel", 0, "max(0.5 - x, 0.1) + sqrt(x) * pi")])
    params = pmap.params(np.array([[-1.0], [1.0]]), batch=2)
    np.testing.assert_allclose(params[:, 1], [0.5, 0.1 + np.pi])


def test_a_rel_of_x_over_0_is_an_action_space_error():
    from musicgym.envs.spaces import ParameterMap

    with pytest.raises(ActionSpaceError, match="x/0"):
        ParameterMap([("lin", 0.0, 1.0), ("rel", 0, "x/0")])
    # defined somewhere, undefined at the values the agent reaches: refused at that step
    pmap = ParameterMap([("lin", -1.0, 0.0), ("rel", 0, "log(x)")])
    with pytest.raises(ActionSpaceError, match="no finite value"):
        pmap.params(np.array([[0.5]]))


# -- 2. bounded work for small input ---------------------------------------------------------
def _laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "env_kwargs:\n  " + "\n  ".join(lines) + "\n"


def test_a_billion_laughs_config_is_refused_at_once(tmp_path):
    from musicgym.safeio import load_mapping

    path = tmp_path / "bomb.yaml"
    path.write_text(_laughs())
    assert path.stat().st_size < 600
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases are expanded"):
        load_mapping(path)
    assert time.perf_counter() - start < 20.0  # the hang it replaces ran for hours


def test_musicgym_train_refuses_a_billion_laughs_config_without_a_run_folder(tmp_path):
    # the hang was in `musicgym train --config` (TrainConfig.to_dict on the expanded lists)
    path = tmp_path / "bomb.yaml"
    path.write_text("env_id: musicgym/Kick-v0\n" + _laughs())
    done = subprocess.run([sys.executable, "-m", "musicgym", "train", "--config", str(path),
                           "--runs", str(tmp_path / "runs"), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "aliases are expanded" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_config_with_a_few_aliases_still_loads():
    from musicgym.safeio import load_mapping

    data = load_mapping("base: &b {lr: 0.001}\nrun: {<<: *b, seed: 1}\n")
    assert data["run"] == {"lr": 0.001, "seed": 1}


@pytest.mark.parametrize("text,name", [("a: " + "[" * 5000 + "]" * 5000, "c.yaml"),
                                       ('{"a": ' + "[" * 100000 + "]" * 100000 + "}", "c.json"),
                                       ("a: &a [*a]", "c.yaml")])
def test_deep_or_recursive_configs_are_config_errors(text, name):
    from musicgym.safeio import load_mapping

    with pytest.raises(ConfigError, match="deeper than|recursive"):
        load_mapping(text, source=name)


def test_non_utf8_and_oversized_configs_name_the_file(tmp_path):
    from musicgym.compose.config import read_config_file
    from musicgym.envs.improvise_core import settings_to_kwargs
    from musicgym.safeio import load_mapping

    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("piece: {title: caf\u00e9}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text \(byte 18 is 0xe9"):
        read_config_file(bad)
    settings = tmp_path / "environment_settings.json"
    settings.write_bytes(b'{"instrument_name": "\xff"}')
    with pytest.raises(ImproviseConfigError, match="not UTF-8"):
        settings_to_kwargs(settings)
    with pytest.raises(ConfigError, match="over the limit of 10 bytes"):
        load_mapping(b"a: 12345678901", max_bytes=10)


def _match_with(tmp_path: Path, old: str, new: str) -> Path:
    lines = MATCH[0].read_text().splitlines()[:60]
    i = next(k for k, line in enumerate(lines) if line.startswith("snote(") and old in line)
    lines[i] = lines[i].replace(old, new, 1)
    path = tmp_path / "take.match"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.skipif(not MATCH, reason="the duets data (shared/data/duets) is not here")
@pytest.mark.parametrize("old,new,field", [(",1/16,", ",2147483648,", "duration"),
                                           (",4,", ",2147483648,", "octave"),
                                           (",1/16,", ",1/999999937,", "denominator")])
def test_a_match_file_with_huge_values_is_refused_before_partitura(tmp_path, old, new, field):
    from musicgym.music.score import read_match

    path = _match_with(tmp_path, old, new)
    start = time.perf_counter()
    with pytest.raises(ScoreFileError, match=f"take.match', line \\d+: .*{field}"):
        read_match(path)
    assert time.perf_counter() - start < 20.0  # the hang it replaces ran for hours


def test_a_wav_at_1_hz_is_refused_before_resampling(tmp_path):
    import soundfile as sf

    from musicgym.audio.io import read_audio

    path = tmp_path / "slow.wav"
    sf.write(path, np.zeros(50_000, dtype=np.float32), 1, subtype="PCM_32")
    assert path.stat().st_size < 250_000
    start = time.perf_counter()
    with pytest.raises(AudioFileError, match="2205000000 samples"):
        read_audio(path, sr=44100)
    with pytest.raises(AudioFileError, match="over the limit of 2 s"):
        read_audio(path, max_seconds=2)
    assert time.perf_counter() - start < 10.0  # resampling would take minutes


@pytest.mark.parametrize("code,node", [("o: saw 110.0 >> delayn 1000000000", "delayn"),
                                       ("o: saw 110.0 >> delayms 100000000000.0", "delayms")])
def test_delay_lines_count_in_the_render_guard(code, node):
    from musicgym.synth.patch import Patch

    with pytest.raises(RenderLimitError, match=f"'{node}' at line 1, column 17"):
        Patch(code).render(seconds=0.01)


def test_the_render_guard_counts_every_node_of_the_batch(monkeypatch):
    from musicgym.synth.patch import Patch

    chain = "o: saw {f} >> " + " >> ".join(["lpf 1000.0 1.0", "mul 0.9"] * 10)
    patch = Patch(chain, max_bytes=300 * 2**20)
    # the output alone is 39 MiB; 21 nodes of 10^5 rows x 256 samples are 4 GiB
    with pytest.raises(RenderLimitError, match="over max_bytes=300 MiB"):
        patch.render(np.full((100_000, 1), 110.0), n_samples=64)
    monkeypatch.setenv("MUSICGYM_MAX_RENDER_BYTES", str(2**40))
    assert Patch(chain).max_bytes == 2**40


# -- 4. only our own errors ----------------------------------------------------------------
def test_a_circled_digit_in_a_seq_is_a_glicol_error():
    from musicgym.synth.parse import parse

    with pytest.raises(ArgumentError, match="found '①'"):
        parse("o: seq ①")


@pytest.mark.parametrize("node", ["lpf", "rhpf", "hpf"])
def test_a_filter_with_q_0_outputs_nan_as_the_engine_does(node, glicol):
    from musicgym.synth.patch import Patch

    code = f"o: saw 110.0 >> {node} 1000.0 0.0"
    ours = Patch(code).render(seconds=0.01)
    engine = Patch(code, backend="glicol").render(seconds=0.01)
    assert np.isnan(ours).all() and np.isnan(engine).all()


def test_a_scala_ratio_of_400_digits_is_a_tuning_error(tmp_path):
    from musicgym.music.tunings import read_scl

    path = tmp_path / "huge.scl"
    path.write_text("huge\n1\n" + "9" * 400 + "/1\n")
    with pytest.raises(TuningError, match=r"huge.scl, line 3: 9{20}\.\.\. \(402 characters\)"):
        read_scl(path)


def _midi_bytes(division: int, fmt: int) -> bytes:
    track = b"\x00\x90\x3c\x40\x83\x60\x80\x3c\x00\x00\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, fmt, 1, division)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


@pytest.mark.parametrize("division,fmt,match", [(0, 1, "division of 0"),
                                                (480, 2, "format 2")])
def test_midi_with_division_0_or_format_2_is_a_score_file_error(tmp_path, division, fmt, match):
    from musicgym.live.accompany import read_performance
    from musicgym.music.score import read_score

    path = tmp_path / "odd.mid"
    path.write_bytes(_midi_bytes(division, fmt))
    with pytest.raises(ScoreFileError, match=match):
        read_score(path)
    with pytest.raises(ScoreFileError, match=match):
        read_performance(path)


def test_musicxml_numbers_out_of_range_are_score_file_errors(tmp_path):
    from musicgym.music.score import read_score

    path = tmp_path / "odd.musicxml"
    path.write_text(
        '<?xml version="1.0"?><score-partwise version="3.1"><part-list><score-part id="P1">'
        "<part-name>A</part-name></score-part></part-list><part id=\"P1\"><measure number=\"1\">"
        "<attributes><divisions>1</divisions><time><beats>0</beats><beat-type>4</beat-type>"
        "</time></attributes><note><pitch><step>C</step><octave>2147483648</octave></pitch>"
        "<duration>1</duration></note></measure></part></score-partwise>")
    with pytest.raises(ScoreFileError, match="line 1: <beats> '0' is outside 1..1000"):
        read_score(path)


def test_every_reproducer_gives_one_line(tmp_path):
    from musicgym.safeio import load_mapping

    with pytest.raises(MusicgymError) as info:
        load_mapping("a: \x00")
    assert "\n" not in str(info.value)


def test_json_settings_keep_their_error_type(tmp_path):
    from musicgym.envs.improvise_core import settings_to_kwargs

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"a": [[[[1]]]]}) + "x")
    with pytest.raises(ImproviseConfigError, match="s.json, line 1: not valid JSON"):
        settings_to_kwargs(path)
    with pytest.raises(ImproviseConfigError, match="cannot read the config file"):
        settings_to_kwargs(tmp_path / "missing.json")


def test_writers_create_a_missing_output_folder_or_say_why(tmp_path):
    from musicgym.audio.io import write_wav
    from musicgym.music.midi import write_midi
    from musicgym.music.notation import write_lilypond
    from musicgym.music.notes import make_notes

    notes = make_notes([0.0, 1.0], [1.0, 1.0], [60, 64])
    missing = tmp_path / "not" / "yet"
    assert write_wav(missing / "a.wav", np.zeros(100, np.float32), 8000).is_file()
    assert write_midi(missing / "a.mid", notes).is_file()
    assert write_lilypond(missing / "a.ly", notes, ["C4", "E4"]).is_file()
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(MusicgymError, match="file/a.mid"):
        write_midi(blocked / "a.mid", notes)
