"""Inverse improvisers: the shipped built-ins load and play without SB3, their files say how
they were made, a small training run round-trips through its files, and bad files are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicgym.envs.improvise_agents import InverseAgent, builtin_names
from musicgym.envs.improvise_data import analyze_synth
from musicgym.envs.improvise_play import HoldStill, Improviser, make_core
from musicgym.envs.synths import make_synth
from musicgym.errors import ImproviseConfigError

SHIPPED = ("sine", "fm", "granular")


def test_the_three_rl_impro_synths_are_shipped_small_with_their_commands():
    names = builtin_names()
    assert set(SHIPPED) <= set(names)
    total = 0
    for name in names:
        agent = InverseAgent.load(f"builtin:{name}")
        # builtin:SYNTH is the lp agent, builtin:SYNTH-SET another feature set's
        synth, _, feature_set = name.partition("-")
        assert agent.synth == synth and agent.meta["feature_set"] == (feature_set or "lp")
        command = agent.meta["command"]
        if command.startswith("musicgym train examples/"):   # the runner's algo: inverse
            _check_example(command.split()[2], agent)
        else:
            assert command.startswith(f"musicgym train-improviser {synth} ")
        assert "seed" in agent.meta and agent.meta["heldout"]["agent"]["rmse"] > 0
        total += sum(p.stat().st_size for p in _files(name))
    assert total < 3_000_000


def _check_example(path, agent):
    """The example config a built-in's command names trains that agent: its synth, feature
    set, seed and recipe (checked without training: what the runner resolves it to)."""
    from pathlib import Path

    from musicgym.train.config import TrainConfig
    from musicgym.train.inverse import resolve_inverse

    root = Path(__file__).resolve().parents[2]
    config, _ = resolve_inverse(TrainConfig.load(root / path))
    opts = config.algo_kwargs
    assert config.algo == "inverse" and config.seed == agent.meta["seed"]
    assert (opts["synth"], opts["features"]) == (agent.synth, agent.meta["feature_set"])
    for key in ("hidden", "distil_steps", "refine_steps", "anchor", "search"):
        assert opts[key] == agent.meta[key], key
    assert opts["subdiv"] in (None, agent.meta["subdiv"])
    for key, off in (("search_grid", False), ("stay_margin", 0.0),
                     ("search_from_current", False)):
        assert opts[key] == agent.meta.get(key, off), key


def _files(name):
    from musicgym.envs.improvise_agents import _builtin_dir

    return [_builtin_dir() / f"{name}.npz", _builtin_dir() / f"{name}.json"]


@pytest.mark.parametrize("name", SHIPPED)
def test_builtin_plays_its_own_synth_back(name):
    """Targets made by the synth itself at random states: the agent's one jump sounds closer to
    them than holding still at the middle of every parameter (by 18-40 % for the lps agents:
    they were trained on the corpus's frames, not on the synth's own)."""
    agent = InverseAgent.load(f"builtin:{name}")
    synth = make_synth(name)
    u = np.random.default_rng(1).uniform(0.1, 0.9, (24, synth.n_params))
    target = analyze_synth(synth, u, features=agent.features)
    answer = agent(target)
    assert answer.shape == u.shape and ((answer >= 0) & (answer <= 1)).all()
    heard = analyze_synth(synth, answer, features=agent.features)
    held = analyze_synth(synth, np.full_like(u, 0.5), features=agent.features)

    def rmse(x):
        return np.sqrt(np.mean(((x - target) / agent.std) ** 2))

    assert rmse(heard) < 0.85 * rmse(held)


def test_builtin_drives_an_improviser_frame_by_frame():
    agent = InverseAgent.load("builtin:fm")
    core = make_core({**agent.env_kwargs, "mode": "lookup", "subdiv": 5})
    player = Improviser(core, agent.controller(core))
    hold = Improviser(core, HoldStill())
    synth = make_synth("fm")
    targets = analyze_synth(synth, np.random.default_rng(2).random((10, 3)),
                            features=core.features)
    err, err_hold = [], []
    for t in targets:
        player.decide(t)
        hold.decide(t)
        err.append(np.abs(core.normalise(player.agent_raw) - core.normalise(t)).mean())
        err_hold.append(np.abs(core.normalise(hold.agent_raw) - core.normalise(t)).mean())
    assert np.mean(err) < 0.6 * np.mean(err_hold)
    other = make_core({**agent.env_kwargs, "synth": "sine", "mode": "lookup", "subdiv": 3})
    with pytest.raises(ImproviseConfigError, match="the agent plays 'fm'"):
        agent.controller(other)


def test_train_save_load_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from musicgym.train.improvise_agents import train_inverse

    t = np.arange(44100) / 44100
    corpus = {"a": 0.3 * np.sin(2 * np.pi * 330 * t), "b": 0.1 * np.sin(2 * np.pi * 550 * t)}
    agent = train_inverse("sine", "lp", corpus, subdiv=5, distil_steps=60, refine_steps=60,
                          batch_size=64)
    assert agent.meta["train_tracks"] == ["a"]      # 'b' is the held-out one (name order)
    path = agent.save(tmp_path / "sine-lp")
    again = InverseAgent.load(path)
    x = np.random.default_rng(0).normal(size=(5, 3)) * agent.std + agent.mean
    np.testing.assert_allclose(again(x), agent(x), rtol=1e-6)
    assert json.loads(path.with_suffix(".json").read_text())["feature_set"] == "lp"


def test_search_agent_round_trips_and_never_sounds_further_than_its_net(tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from dataclasses import replace

    from musicgym.train.improvise_agents import train_inverse

    t = np.arange(44100) / 44100
    corpus = {"a": 0.3 * np.sin(2 * np.pi * 330 * t), "b": 0.1 * np.sin(2 * np.pi * 550 * t)}
    agent = train_inverse("sine", "lp", corpus, subdiv=9, distil_steps=40, refine_steps=0,
                          batch_size=64, search=True)
    assert agent.table.shape == (81, len(agent.features)) and agent.meta["search"]
    again = InverseAgent.load(agent.save(tmp_path / "sine-lp-search"))
    np.testing.assert_array_equal(again.table, agent.table)
    # targets the synth's own table makes: the search only ever moves closer to them
    z = agent.table[np.random.default_rng(0).choice(81, 12)].astype(np.float64)
    raw = z * agent.std + agent.mean
    net = replace(agent, table=None)
    u_net, u = net(raw), agent(raw)
    np.testing.assert_allclose(again(raw), u)

    def err(v):
        return ((agent._interpolate(v) - z) ** 2).sum(axis=1)

    assert (err(u) <= err(u_net) + 1e-12).all() and err(u).mean() < err(u_net).mean()


def test_bad_agents_are_refused(tmp_path):
    with pytest.raises(ImproviseConfigError, match="no built-in improviser 'theremin'"):
        InverseAgent.load("builtin:theremin")
    with pytest.raises(ImproviseConfigError, match="no improviser at"):
        InverseAgent.load(tmp_path / "missing.npz")
    (tmp_path / "x.npz").write_bytes(b"not numpy")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ImproviseConfigError, match="is not an improviser's file"):
        InverseAgent.load(tmp_path / "x.npz")


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_follows_the_held_out_tracks(name):
    """Each shipped agent (every feature set) plays the held-out tracks of the built-in corpus
    (held-out chorales on held-out instruments, and held-out one-shots) frame by frame and
    ends nearer them than holding still at its random start (hearing a 9-point table)."""
    from musicgym.audio.soundfont import soundfont_available
    from musicgym.envs.improvise_core import BUILTIN_CORPUS
    from musicgym.train.evaluate_improvise import evaluate_improvisers

    if not soundfont_available():
        pytest.skip("the built-in corpus is rendered with FluidSynth and a GM SoundFont")
    agent = InverseAgent.load(f"builtin:{name}")
    kwargs = {**agent.env_kwargs, "corpus": BUILTIN_CORPUS, "mode": "lookup", "subdiv": 9}
    report = evaluate_improvisers(kwargs, model=agent, methods=["agent", "hold"], subdiv=9)
    rmse = {m: r["rmse"] for m, r in report["methods"].items()}
    assert len(report["tracks"]) >= 4 and np.isfinite(rmse["agent"])
    assert rmse["agent"] < 0.9 * rmse["hold"]


def _small_search_agent(**kwargs):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from musicgym.train.improvise_agents import train_inverse

    t = np.arange(44100) / 44100
    corpus = {"a": 0.3 * np.sin(2 * np.pi * 330 * t), "b": 0.1 * np.sin(2 * np.pi * 550 * t)}
    return train_inverse("sine", "lps", corpus, subdiv=9, distil_steps=40, refine_steps=0,
                         batch_size=64, **kwargs)


def test_grid_search_answers_grid_points_that_sound_as_its_table_says(tmp_path):
    """The grid search reads only rows the synth was analysed at, so what its answer sounds
    like is what it read; it never ends further from the target than the net's grid point."""
    from dataclasses import replace

    agent = _small_search_agent(search_grid=True)
    assert agent.meta["search"] and agent.meta["search_grid"]
    again = InverseAgent.load(agent.save(tmp_path / "sine-lps-grid"))
    assert again.meta["search_grid"]
    synth = make_synth("sine")
    rng = np.random.default_rng(0)
    raw = analyze_synth(synth, rng.uniform(0.05, 0.95, (16, 2)), features=agent.features)
    u = again(raw)
    k = agent.meta["subdiv"]
    np.testing.assert_allclose(u * (k - 1), np.rint(u * (k - 1)), atol=1e-9)  # grid points
    heard = (analyze_synth(synth, u, features=agent.features) - agent.mean) / agent.std
    np.testing.assert_allclose(heard, agent._heard(u, grid=True), atol=1e-3)
    z = (raw - agent.mean) / agent.std
    u_net = np.rint(replace(agent, table=None)(raw) * (k - 1)) / (k - 1)

    def err(v):
        return ((agent._heard(v, grid=True) - z) ** 2).sum(axis=1)

    assert (err(u) <= err(u_net) + 1e-9).all()


def test_stay_margin_keeps_a_setting_unless_the_answer_is_clearly_closer():
    agent = _small_search_agent(search_grid=True, stay_margin=0.5)
    assert agent.meta["stay_margin"] == 0.5
    k = agent.meta["subdiv"]
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, k)] * 2, indexing="ij"), -1).reshape(-1, 2)
    rows = np.array([30, 50, 70])
    raw = agent.table[rows].astype(np.float64) * agent.std + agent.mean
    # playing the very row asked for (error 0): nothing sounds closer, it stays
    np.testing.assert_array_equal(agent(raw, current=grid[rows]), grid[rows])
    # without a current setting, or with one far off, it answers as the search does
    free = agent(raw)
    far = np.where(grid[rows] < 0.5, 1.0, 0.0)
    z = agent.table[rows]
    moved = agent(raw, current=far)
    closer = ((agent._heard(free, True) - z) ** 2).sum(1) < \
        0.5 * ((agent._heard(far, True) - z) ** 2).sum(1)
    np.testing.assert_array_equal(moved, np.where(closer[:, None], free, far))
    assert closer.any()
    with pytest.raises(ImproviseConfigError, match="stay_margin"):
        _small_search_agent(stay_margin=1.5)


def test_search_from_current_finds_the_row_it_plays():
    """Started from the setting playing now as well as from the net's answer, the agent
    answers the closer end: playing the very row asked for, it finds that row."""
    agent = _small_search_agent(search_grid=True, search_from_current=True)
    assert agent.meta["search_from_current"]
    k = agent.meta["subdiv"]
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, k)] * 2, indexing="ij"), -1).reshape(-1, 2)
    rows = np.arange(0, k * k, 7)
    raw = agent.table[rows].astype(np.float64) * agent.std + agent.mean
    u = agent(raw, current=grid[rows])
    np.testing.assert_allclose(agent._heard(u, True), agent.table[rows], atol=1e-6)


def test_search_weights_make_the_search_follow_the_weighted_descriptors():
    """``meta["search_weights"]`` weighs each descriptor in the search: weighing loudness
    alone, the answers match the targets' loudness more closely than with equal weights (a
    local search: on average, not row by row)."""
    agent = _small_search_agent(search_grid=True)
    synth = make_synth("sine")
    raw = analyze_synth(synth, np.random.default_rng(3).uniform(0.1, 0.9, (12, 2)),
                        features=agent.features)
    z = (raw - agent.mean) / agent.std
    j = agent.features.index("loudness-amp")
    equal = np.abs(agent._heard(agent(raw), True) - z)[:, j]
    agent.meta["search_weights"] = [float(i == j) for i in range(len(agent.features))]
    alone = np.abs(agent._heard(agent(raw), True) - z)[:, j]
    assert alone.mean() < 0.6 * equal.mean()
