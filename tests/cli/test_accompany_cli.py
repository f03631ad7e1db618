"""``musicgym live accompany`` (file-driven, on a real take) and ``musicgym evaluate-accompany``."""

from __future__ import annotations

import argparse
import json

import mido
import pytest

from musicgym.cli import build_parser, main
from musicgym.cli.live import live_modes
from musicgym.follow.duets import BRAHMS, default_duets_dir

BRAHMS_DIR = default_duets_dir() / BRAHMS
needs_duets = pytest.mark.skipif(
    not BRAHMS_DIR.is_dir(),
    reason=f"real duets not found under {default_duets_dir()}: set MUSICGYM_DUETS_DIR",
)
SCORE = BRAHMS_DIR / "musicxml" / "Brahms_Hungarian-Dance-5_Full.musicxml"
PRIMO = str(BRAHMS_DIR / "match" / "Brahms_Hungarian-Dance-5_Primo_2021-08-10_{}.match")
PARTS = ["--part", "solo=Piano 1", "--part", "accompaniment=Piano 2"]


@needs_duets
def test_file_mode_accompanies_a_real_take(tmp_path, capsys):
    out = tmp_path / "take6" / "duet.mid"
    code = main(["live", "accompany", "--score", str(SCORE), *PARTS, "--tempo-model", "kalman",
                 "--reference", PRIMO.format(1), "--replay", PRIMO.format(6),
                 "--speed", "0", "--bpm", "140", "-o", str(out.parent)])
    assert code == 0
    assert "re-synchronisations" in capsys.readouterr().out
    tracks = mido.MidiFile(out).tracks
    counts = [sum(m.type == "note_on" for m in track) for track in tracks]
    assert counts[0] == 966  # every note of the primo's take 6
    assert 800 < counts[1] < 1200  # the secondo part from the solo's first onset on


@needs_duets
def test_file_mode_plays_to_the_rehearsed_timing(tmp_path, capsys):
    out = tmp_path / "take6" / "duet.mid"
    code = main(["live", "accompany", "--score", str(SCORE), *PARTS, "--tempo-model", "kalman",
                 "--rehearsal", PRIMO.format(4), "--rehearsal", PRIMO.format(5),
                 "--reference", PRIMO.format(1), "--replay", PRIMO.format(6),
                 "--speed", "0", "--bpm", "140", "-o", str(out.parent)])
    assert code == 0 and "re-synchronisations" in capsys.readouterr().out
    assert sum(m.type == "note_on" for m in mido.MidiFile(out).tracks[1]) > 800
    base = ["live", "accompany", "--score", str(SCORE), *PARTS, "--replay", PRIMO.format(6)]
    assert main([*base, "--tempo-model", "kalman", "--rehearsal", str(out)]) == 1
    assert "a rehearsal must be a .match file" in capsys.readouterr().err
    assert main([*base, "--model", str(tmp_path), "--rehearsal", PRIMO.format(5)]) == 1
    assert "not a trained accompanist run" in capsys.readouterr().err


def test_live_errors_are_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "musicgym-no-such-server")
    base = ["live", "accompany", "--score", str(SCORE), "--tempo-model", "kalman"]
    assert main([*base, "--part", "melody=1", "--replay", "x.match"]) == 1
    assert "--part expects solo=PART or accompaniment=PART" in capsys.readouterr().err
    assert main(base) == 1  # no --replay: MIDI ports, which this machine may lack
    err = capsys.readouterr().err
    assert "no MIDI input port" in err or "--replay PERFORMANCE" in err or "MIDI" in err
    assert main([*base, "--midi-api", "jack", "--virtual"]) == 1  # no JACK server of that name
    err = capsys.readouterr().err
    assert "no JACK server running: start one with `jackd -d dummy" in err or "jack MIDI API" in err
    assert len(err.strip().splitlines()) == 1  # libjack's own lines silenced
    assert main(["live", "accompany", "--score", str(SCORE), "--model", str(tmp_path),
                 "--replay", "x.match"]) == 1
    assert "not a trained accompanist run" in capsys.readouterr().err


def test_another_module_can_add_a_live_mode():
    parser = argparse.ArgumentParser(prog="musicgym")
    subparsers = parser.add_subparsers(dest="command")
    from musicgym.cli import accompany

    accompany.add_parser(subparsers)
    live_modes(subparsers).add_parser("improvise").set_defaults(func=lambda args: 7)
    args = parser.parse_args(["live", "improvise"])
    assert args.func(args) == 7
    assert "accompany" in live_modes(subparsers).choices
    assert "live" in build_parser()._subparsers._group_actions[0].choices


@needs_duets
def test_evaluate_accompany_reports_every_model_beside_the_human(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate-accompany", "--followers", "oracle", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| oracle | kalman | 0.20 s |" in table and "human secondo" in table
    rows = json.loads(out.read_text())["rows"]
    names = [r["accompanist"] for r in rows]
    assert names[:5] == ["fixed", "reactive", "moving_average", "linear_sync", "kalman"]
    human = rows[-1]
    assert human["accompanist"] == "human secondo" and human["within_50_ms"] > 0.85
    kalman = rows[4]
    # measured: 74.9 % within 50 ms, 91.8 % within 100 ms (oracle follower, re-synchronising)
    assert 0.7 < kalman["within_50_ms"] < human["within_50_ms"]
    assert main(["evaluate-accompany", "--followers", "dtw"]) == 1
    assert "followers must be among" in capsys.readouterr().err


@needs_duets
def test_file_mode_follows_with_the_hmm_follower_too(tmp_path, capsys):
    out = {}
    for follower in ("oltw", "hmm"):
        out[follower] = tmp_path / f"take6_{follower}" / "duet.mid"
        code = main(["live", "accompany", "--score", str(SCORE), *PARTS, "--tempo-model",
                     "kalman", "--follower", follower, "--reference", PRIMO.format(1),
                     "--replay", PRIMO.format(6), "--speed", "0", "--bpm", "140",
                     "-o", str(out[follower].parent)])
        assert code == 0 and "re-synchronisations" in capsys.readouterr().out
    played = {f: [m for m in mido.MidiFile(p).tracks[1] if m.type == "note_on"]
              for f, p in out.items()}
    assert 800 < len(played["hmm"]) < 1200
    # the two followers drive different timings (the accompaniment really follows the follower)
    assert [m.time for m in played["hmm"]] != [m.time for m in played["oltw"]]
    with pytest.raises(SystemExit) as exc:  # argparse's own usage error, exit status 2
        main(["live", "accompany", "--score", str(SCORE), *PARTS, "--tempo-model", "kalman",
              "--follower", "dtw", "--replay", PRIMO.format(6)])
    assert exc.value.code == 2 and "invalid choice: 'dtw'" in capsys.readouterr().err


@pytest.mark.slow  # about 25 s: a tiny training run, the oracle rows, a whole take replayed
@needs_duets
def test_a_run_of_the_runner_is_evaluated_and_plays_live(tmp_path, capsys):
    pytest.importorskip("sb3_contrib")
    from musicgym.train.config import TrainConfig
    from musicgym.train.runner import train

    config = TrainConfig(env_id="musicgym/Accompany-v0", algo="recurrent_ppo", steps=64,
                         n_envs=1, eval_episodes=1,
                         env_kwargs={"sources": ["simulated"], "episode_reports": 16,
                                     "memory": True, "residual_on": "kalman+timing",
                                     "follower": "hmm"},
                         algo_kwargs={"n_steps": 64, "batch_size": 64, "n_epochs": 1})
    run = str(train(config, runs_root=tmp_path, progress=False))
    out = tmp_path / "eval.json"
    assert main(["evaluate-accompany", "--model", run, "--followers", "oracle",
                 "--json", str(out)]) == 0
    rows = {r["accompanist"]: r for r in json.loads(out.read_text())["rows"]}
    # an agent barely trained on top of kalman+timing plays as it (SB3's small initial head)
    agent = rows["agent (on kalman+timing)"]
    assert agent["within_50_ms"] == pytest.approx(rows["kalman+timing"]["within_50_ms"],
                                                  abs=0.02)
    capsys.readouterr()
    midi = tmp_path / "take6" / "duet.mid"
    assert main(["live", "accompany", "--score", str(SCORE), *PARTS, "--model", run,
                 "--rehearsal", PRIMO.format(4), "--rehearsal", PRIMO.format(5),
                 "--reference", PRIMO.format(1), "--replay", PRIMO.format(6),
                 "--speed", "0", "--bpm", "140", "-o", str(midi.parent)]) == 0
    assert sum(m.type == "note_on" for m in mido.MidiFile(midi).tracks[1]) > 800
    ppo = TrainConfig(env_id="musicgym/Kick-v0", algo="ppo", steps=1)
    (tmp_path / "kick").mkdir()
    (tmp_path / "kick" / "config.yaml").write_text(json.dumps(ppo.to_dict()))
    (tmp_path / "kick" / "model.zip").write_bytes(b"")
    assert main(["evaluate-accompany", "--model", str(tmp_path / "kick")]) == 1
    assert "was trained on musicgym/Kick-v0, not musicgym/Accompany-v0" in capsys.readouterr().err
