"""``algo: inverse``: the inverse improviser trains through ``musicgym train`` into a normal run
folder (config, model, held-out learning curve), which ``musicgym evaluate`` and ``musicgym
live improvise --model RUN`` accept; the same seed gives the same agent; bad configs are refused
before anything is written."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")

from musicgym.audio.io import write_wav  # noqa: E402
from musicgym.cli import main  # noqa: E402
from musicgym.errors import ConfigError, UsageError  # noqa: E402
from musicgym.train.config import TrainConfig, resolve  # noqa: E402
from musicgym.train.inverse import resolve_inverse  # noqa: E402
from musicgym.train.runner import train  # noqa: E402

SR = 44100
# a tiny recipe: a 5-point table, 40 + 40 Adam steps, one hidden layer of 16
TINY = {"synth": "sine", "features": "lp", "subdiv": 5, "distil_steps": 40,
        "refine_steps": 40, "batch_size": 64, "hidden": [16], "max_frames": 2000}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Four sung-like tones (a vibrato on a pitch, a swell): three train, 'd' is held out
    (the corpus's last fifth by name)."""
    folder = tmp_path_factory.mktemp("corpus")
    t = np.arange(int(0.6 * SR)) / SR
    for name, hz, level in (("a", 220.0, 0.3), ("b", 330.0, 0.15), ("c", 440.0, 0.4),
                            ("d", 294.0, 0.25)):
        phase = 2 * np.pi * np.cumsum(hz * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / SR
        write_wav(folder / f"{name}.wav", level * np.minimum(1.0, 4 * t) * np.sin(phase), SR)
    return folder


def _config(corpus: Path, **fields) -> dict:
    return {"env_id": "musicgym/Improvise-v0", "algo": "inverse", "seed": 1,
            "env_kwargs": {"corpus": str(corpus), "mode": "lookup"},
            "algo_kwargs": dict(TINY), **fields}


def _arrays(run: Path) -> dict:
    with np.load(run / "model.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory) -> Path:
    """One run through the command line, as a user starts it: musicgym train CONFIG.yaml."""
    root = tmp_path_factory.mktemp("runs")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(_config(corpus, eval_every=40)))
    assert main(["train", str(path), "--runs", str(root / "runs"), "--no-progress"]) == 0
    (folder,) = (root / "runs").iterdir()
    return folder


def test_the_run_folder_holds_config_model_and_a_held_out_learning_curve(run):
    assert run.name.endswith("-INVERSE")
    config = TrainConfig.load(run / "config.yaml")
    assert config.algo == "inverse" and config.steps == 80 and config.seed == 1
    assert config.env_kwargs["synth"] == "sine"
    assert config.env_kwargs["features_reward"] == ["loudness-dB", "pitch"]
    assert config.algo_kwargs["anchor"] == 0.1   # the recipe's defaults are recorded too
    evaluations = json.loads((run / "evaluations.json").read_text())
    assert [e["steps"] for e in evaluations] == [40, 80]
    for e in evaluations:
        for key in ("rmse", "oracle_rmse", "hold_rmse", "random_rmse"):
            assert np.isfinite(e[key]) and e[key] > 0
        assert e["agent_over_oracle"] == pytest.approx(e["rmse"] / e["oracle_rmse"])
    # the baselines do not learn: one measurement, the same at every point
    assert evaluations[0]["hold_rmse"] == evaluations[1]["hold_rmse"]
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = (run / "progress.csv").read_text().splitlines()
    assert rows[0] == "steps,stage,loss" and rows[-1].startswith("80,refine,")
    meta = json.loads((run / "model.json").read_text())
    assert meta["seed"] == 1 and meta["run"] == run.name
    assert meta["heldout"]["agent"]["rmse"] == round(evaluations[-1]["rmse"], 4)


def test_evaluate_and_live_accept_the_run(run, capsys):
    assert main(["evaluate", str(run)]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    last = json.loads((run / "evaluations.json").read_text())[-1]
    # the same held-out tracks, keywords and seed as the run's last evaluation
    assert metrics["algo"] == "inverse" and metrics["rmse"] == last["rmse"]
    assert metrics["oracle_rmse"] == last["oracle_rmse"]
    assert metrics["heldout_tracks"] == 1 and metrics["take_track"] == "d"
    for name in ("agent.wav", "target.wav", "descriptors.png", "curve.png", "heldout.json",
                 "report.html"):
        assert (run / "eval" / name).is_file(), name

    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tone = (0.3 * np.sin(2 * np.pi * 330.0 * np.arange(1024) / SR)).astype(np.float32)
    builder = OscMessageBuilder(address="/musicgym/audio")
    builder.add_arg(tone.tobytes())
    result: dict = {}
    server = threading.Thread(target=lambda: result.update(rc=main(
        ["live", "improvise", "--model", str(run), "--port", str(port), "--reply-port", "0",
         "--max-packets", "1", "--listen", "lookup", "--subdiv", "3"])))
    server.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        replies, deadline = {}, time.monotonic() + 30
        while "/musicgym/controls" not in replies and time.monotonic() < deadline:
            sock.sendto(builder.build().dgram, ("127.0.0.1", port))
            try:
                for _ in range(2):
                    msg = OscMessage(sock.recvfrom(65536)[0])
                    replies[msg.address] = list(msg.params)
            except TimeoutError:
                continue
    server.join(timeout=20)
    assert result.get("rc") == 0
    controls = replies["/musicgym/controls"]
    assert controls[0] == "sine" and len(controls) == 3 and np.all(np.isfinite(controls[1:]))
    assert f"the policy of {run}" in capsys.readouterr().out


def test_the_same_seed_gives_the_same_agent_with_or_without_evaluations(run, corpus,
                                                                        tmp_path):
    """A second run (no evaluations on the way) and train-improviser's function, called with
    the same options, give the run's agent bit for bit."""
    from musicgym.train.improvise_agents import train_inverse

    again = train(resolve(_config(corpus)), runs_root=tmp_path, progress=False)
    first, second = _arrays(run), _arrays(again)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    opts = {k: v for k, v in TINY.items() if k not in ("synth", "features")}
    direct = train_inverse("sine", "lp", str(corpus), seed=1,
                           **{**opts, "hidden": tuple(opts["hidden"])})
    for i, (w, b) in enumerate(direct.layers):
        np.testing.assert_array_equal(first[f"w{i}"], w)
        np.testing.assert_array_equal(first[f"b{i}"], b)
    other = train(resolve(_config(corpus, seed=2)), runs_root=tmp_path, progress=False)
    assert not np.array_equal(_arrays(other)["w0"], first["w0"])


@pytest.mark.parametrize(("fields", "error", "match"), [
    ({"algo_kwargs": {**TINY, "epochs": 3}}, UsageError, "unknown option 'epochs'"),
    ({"algo_kwargs": {**TINY, "seed": 3}}, UsageError, "the seed is the config's own field"),
    ({"algo_kwargs": {**TINY, "features": "lpx"}}, UsageError, "features: 'lpx' is not one"),
    ({"algo_kwargs": {**TINY, "synth": "theremin"}}, UsageError, "'theremin' is not one of"),
    ({"algo_kwargs": {**TINY, "distil_steps": -1}}, UsageError, "distil_steps: must be"),
    ({"env_id": "musicgym/Kick-v0"}, UsageError, "algo inverse trains an improvisation env"),
    ({"env_kwargs": {"synth": "fm"}}, UsageError, "differ: give the synth once"),
    ({"env_kwargs": {"reward_type": "cubic"}}, UsageError, "do not apply to algo inverse"),
])
def test_bad_configs_are_refused_before_anything_is_written(corpus, tmp_path, fields, error,
                                                             match):
    with pytest.raises(error, match=match):
        train(resolve(_config(corpus, **fields)), runs_root=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_an_inverse_run_does_not_resume_and_rllib_does_not_train_it(run, corpus, tmp_path,
                                                                   capsys):
    with pytest.raises(ConfigError, match="does not resume"):
        train(None, resume=run)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_config(corpus)))
    assert main(["train", "--config", str(path), "--backend", "rllib"]) == 2
    assert "trains with the default backend" in capsys.readouterr().err
    # nothing but the env and the algo: the env's default synth (fm), the recipe's defaults
    config, note = resolve_inverse(resolve({"env_id": "musicgym/Improvise-v0",
                                            "algo": "inverse"}))
    assert (config.algo_kwargs["synth"], config.algo_kwargs["features"]) == ("fm", "lps")
    assert config.steps == 6000 and note.startswith("steps 200000 -> 6000")
    assert config.env_kwargs["corpus"] == "builtin:default"
    with pytest.raises(UsageError, match="did you mean 'inverse'"):
        TrainConfig(env_id="musicgym/Improvise-v0", algo="invers")


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob(
    "improvise_inverse_*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_resolves_to_its_shipped_agent_recipe(path):
    """examples/improvise_inverse_NAME.yaml trains builtin:NAME's recipe (synth, feature set,
    search, seed and the stages' options), as the runner resolves it (nothing trained here)."""
    from musicgym.envs.improvise_agents import InverseAgent

    assert len(EXAMPLES) >= 8
    config, note = resolve_inverse(TrainConfig.load(path))
    assert note is None and config.eval_every > 0
    agent = InverseAgent.load("builtin:" + path.stem.removeprefix("improvise_inverse_")
                              .replace("_", "-"))
    opts = config.algo_kwargs
    assert (opts["synth"], opts["features"]) == (agent.synth, agent.meta["feature_set"])
    assert opts["search"] == (agent.table is not None) and config.seed == agent.meta["seed"]
    for key in ("hidden", "distil_steps", "refine_steps"):
        assert opts[key] == agent.meta[key], key
    assert opts["anchor"] == agent.meta.get("anchor", 0.1)   # older files: the fixed 0.1
    for key, off in (("search_grid", False), ("stay_margin", 0.0),
                     ("search_from_current", False)):   # how it plays: stored where set
        assert opts[key] == agent.meta.get(key, off), key
