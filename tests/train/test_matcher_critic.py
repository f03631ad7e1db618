"""The matcher's critic: a learnt ranker of candidate settings (the single guess without
renders). Real matcher, real engine renders, real SoundFont."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicgym.envs.matcher_critic import (
    N_KINDS,
    Critic,
    candidate_pool,
    critic_inputs,
    read_weights,
)
from musicgym.envs.matcher_model import BUILTIN_DIR, Matcher, builtin_presets
from musicgym.errors import ConfigError
from musicgym.train.match import synthetic_targets
from musicgym.train.matcher import patch_spec
from musicgym.train.matcher_critic import main, rendered_pools, target_set, train_critic


def _square() -> np.ndarray:
    t = np.arange(22050) / 44100
    return (0.8 * np.sign(np.sin(2 * np.pi * 2000 * t))).astype(np.float32)


def test_the_pool_starts_with_the_proposal_and_the_nets_answer():
    m = Matcher.builtin("Snare-v0")
    for clip in (_square(), synthetic_targets(patch_spec("Snare-v0"), 1, seed=4)[1][0]):
        f = m.features(clip[None])
        actions, z, extra = candidate_pool(m, f, nearest=16, medians=(3, 8))
        assert actions.shape == (2 + 2 + 16, m.action_dim) and z.shape == (m.pca.shape[1],)
        np.testing.assert_allclose(actions[0], m.propose(clip[None])[0], atol=1e-6)
        np.testing.assert_allclose(actions[1], m.forward(f)[0], atol=1e-6)
        np.testing.assert_allclose(actions[4], m.nearest(f)[0][0], atol=1e-6)
        assert extra.shape == (20, N_KINDS + 3 + z.size) and np.all(extra[:, :N_KINDS].sum(1) == 1)
        x = critic_inputs(z, actions, extra)
        assert x.shape == (20, 2 * z.size + m.action_dim + N_KINDS + 3) and np.isfinite(x).all()


def test_a_critic_learns_to_rank_rendered_candidates_and_drives_propose(tmp_path):
    m = Matcher.builtin("Snare-v0")
    spec = patch_spec("Snare-v0")
    targets = target_set("syn:31:12", spec)
    pools = rendered_pools(m, spec, targets, nearest=24, log=lambda _: None)
    assert pools["costs"].shape == (12, 2 + 5 + 24) and np.isfinite(pools["costs"]).all()
    weights, report = train_critic([pools], epochs=60, hidden=(32,), seed=0,
                                   val_fraction=0.25, log=lambda _: None)
    assert report["val_targets"] == 3 and report["pool"] == 31
    meta = {"nearest": 24, "medians": [3, 5, 8, 16, 32]}
    critic = Critic(weights, meta)
    # it has learnt something on the targets it saw: its choice beats a random candidate's
    x = np.stack([critic_inputs(z, a, e) for z, a, e in
                  zip(pools["z"], pools["actions"], pools["extra"], strict=True)])
    chosen = [c[np.argmin(critic.predict(xi))] for xi, c in zip(x, pools["costs"], strict=True)]
    assert np.mean(chosen) < pools["costs"].mean()
    # through the matcher: its guesses are the proposal, then the critic's lowest predictions;
    # use_critic=False gives the old candidates; the single guess is never the critic's
    np.savez(tmp_path / "c.critic.npz", **weights)
    (tmp_path / "c.critic.json").write_text(json.dumps(meta))
    clip = targets[0][1]
    before, plain = m.propose(clip[None]), m.candidates(clip, 6)
    m.attach_critic(tmp_path / "c.critic.npz")
    guesses = m.guesses(clip, 6)
    ranked, q, _ = critic.ranked(m, m.features(clip[None]))
    assert len(ranked) == 31 and np.all(np.diff(q) >= 0)
    np.testing.assert_allclose(guesses[0], before[0])
    want = [r for r in ranked if not np.array_equal(r, before[0])][:5]
    np.testing.assert_allclose(guesses[1:], want)
    np.testing.assert_allclose(m.propose(clip[None]), before)
    assert critic.choose(m, m.features(clip[None]))[1] == 31
    m.use_critic = False
    np.testing.assert_allclose(m.guesses(clip, 6), plain)


def test_the_builtin_snare_matcher_carries_its_critic_and_it_ranks_a_real_sound():
    m = Matcher.builtin("Snare-v0")
    assert m.critic is not None and "Snare-v0.critic" not in builtin_presets()
    clip = _square()
    ranked, q, far = m.critic.ranked(m, m.features(clip[None]))
    assert far and ranked.shape == (263, m.action_dim) and np.isfinite(q).all()
    guesses = m.guesses(clip, 16)
    assert guesses.shape == (16, m.action_dim)
    assert len({g.tobytes() for g in guesses}) == 16
    np.testing.assert_allclose(guesses[0], m.propose(clip[None])[0])
    # the file is small (and was read without pickles)
    assert (BUILTIN_DIR / "Snare-v0.critic.npz").stat().st_size < 500_000
    assert Matcher.builtin("Kick-v0").critic is None
    # the single guess is the matcher's own proposal: the gated ensemble pick was withdrawn
    # after its held-out run (docs/matching.md, helper "critic2")
    assert not m.critic.single_guess and len(m.critic.members) == 1
    np.testing.assert_array_equal(m.propose(clip[None])[0],
                                  m._propose_features(m.features(clip[None]))[0])


def test_bad_critic_files_and_inputs_are_refused(tmp_path):
    good = {"in_mean": np.zeros(3, np.float32), "in_std": np.ones(3, np.float32),
            "W0": np.ones((3, 1), np.float32), "b0": np.zeros(1, np.float32)}
    assert Critic(good, {}).predict(np.ones((2, 3))).shape == (2,)
    with pytest.raises(ConfigError, match="lack"):
        Critic({"W0": good["W0"]}, {})
    with pytest.raises(ConfigError, match="inputs"):
        Critic({**good, "W0": np.ones((4, 1), np.float32)}, {})
    with pytest.raises(ConfigError, match="scaling"):
        Critic({**good, "in_std": np.zeros(3, np.float32)}, {})
    with pytest.raises(ConfigError, match="expected"):
        Critic(good, {}).predict(np.ones((2, 5)))
    with pytest.raises(ConfigError, match="no such critic"):
        Critic.load(tmp_path / "missing.critic.npz", {})
    (tmp_path / "bad.critic.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a critic"):
        Critic.load(tmp_path / "bad.critic.npz", {})
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object))
    (tmp_path / "pickled.critic.npz").write_bytes((tmp_path / "pickled.npy").read_bytes())
    with pytest.raises(ConfigError, match="not a critic"):
        Critic.load(tmp_path / "pickled.critic.npz", {})
    m = Matcher.builtin("Snare-v0")
    with pytest.raises(ConfigError, match="sidecar"):
        m.attach_critic(tmp_path / "bad.critic.npz")
    m.codebook = None
    with pytest.raises(ConfigError, match="codebook"):
        candidate_pool(m, np.zeros(512, np.float32))
    for bad in ("sf:3", "sf:x:4", "mp3:1:2", "sf:1:0"):
        with pytest.raises(ConfigError, match="target set"):
            target_set(bad, patch_spec("Snare-v0"))


def test_the_cli_renders_pools_and_trains_a_critic(tmp_path, capsys):
    assert main(["pools", "--set", "syn:32:6", "--nearest", "8", "-o",
                 str(tmp_path / "p.npz")]) == 0
    assert "best of 16" in capsys.readouterr().out
    assert main(["train", str(tmp_path / "p.npz"), "--epochs", "3", "--hidden", "8",
                 "-o", str(tmp_path / "c.critic.npz")]) == 0
    meta = json.loads((tmp_path / "c.critic.json").read_text())
    assert meta["seed"] == 0 and "matcher_critic train" in meta["command"]


def test_musicgym_match_no_critic_guesses_without_the_critic():
    import argparse

    from musicgym.cli.match import _matcher

    spec = patch_spec("Snare-v0")
    on = _matcher(argparse.Namespace(policy="builtin", no_critic=False), spec, ["policy@k"])
    off = _matcher(argparse.Namespace(policy="builtin", no_critic=True), spec, ["policy+nm"])
    clip = _square()
    assert on.use_critic and not off.use_critic
    np.testing.assert_allclose(off.guesses(clip, 16), off.candidates(clip, 16))
    assert not np.allclose(on.guesses(clip, 16), off.guesses(clip, 16))


# -- an ensemble of critics with a margin gate (helper "critic2") ------------------------------
def _shipped_weights() -> dict:
    return read_weights(BUILTIN_DIR / "Snare-v0.critic.npz")


def _write_ensemble(tmp_path, meta_extra: dict, second: dict | None = None):
    """The shipped critic as the first net and ``second`` (default: the shipped net with its
    output layer scaled by 0.5 and shifted) as the second, written as an ensemble."""
    first = _shipped_weights()
    last = max(int(k[1:]) for k in first if k.startswith("W"))
    if second is None:
        second = dict(first)
        second[f"W{last}"] = first[f"W{last}"] * 0.5
        second[f"b{last}"] = first[f"b{last}"] * 0.5 + 1.0
    np.savez(tmp_path / "e.critic.npz", **first)
    np.savez(tmp_path / "e.critic.s1.npz", **second)
    meta = json.loads((BUILTIN_DIR / "Snare-v0.critic.json").read_text())
    meta.update({"members": ["e.critic.s1.npz"], **meta_extra})
    (tmp_path / "e.critic.json").write_text(json.dumps(meta))
    return tmp_path / "e.critic.npz", meta


def test_an_ensemble_averages_its_nets_and_its_guesses_may_keep_the_first(tmp_path):
    path, meta = _write_ensemble(tmp_path, {"guess_members": 1})
    m = Matcher.builtin("Snare-v0")
    shipped = m.critic
    m.attach_critic(path)
    c = m.critic
    assert len(c.members) == 2 and c.guess_members == 1 and c.margin is None
    assert not c.single_guess
    clip = _square()
    f = m.features(clip[None])
    actions, z, extra = candidate_pool(m, f)
    x = critic_inputs(z, actions, extra)
    each = c.predict_members(x)
    assert each.shape == (2, 263)
    np.testing.assert_allclose(each[0], shipped.predict(x), rtol=1e-6)
    np.testing.assert_allclose(c.predict(x), each.mean(0), rtol=1e-6)
    np.testing.assert_allclose(c.predict(x, 1), each[0], rtol=1e-6)
    # the second net is the first's output halved and shifted: the mean is 0.75 q + 0.5
    np.testing.assert_allclose(c.predict(x), 0.75 * each[0] + 0.5, rtol=1e-5, atol=1e-5)
    # guesses from the first net alone are the shipped critic's
    np.testing.assert_array_equal(m.guesses(clip, 16), shipped.guesses(m, f, 16))
    # the proposal is unchanged without single_guess
    np.testing.assert_array_equal(m.propose(clip[None]), m._propose_features(f))


def test_the_margin_gate_keeps_the_proposal_unless_the_pick_is_clearly_better(tmp_path):
    from musicgym.envs.matcher_critic import gated_pick

    # by hand: the pick (index 2) beats the proposal by 1.0; the pool's spread is 0.6663
    q = np.array([2.0, 2.5, 1.0, 2.9, 2.6])
    assert np.isclose(q.std(), 0.6663, atol=1e-4)
    assert gated_pick(q, 0.0) == 2 and gated_pick(q, 1.49) == 2 and gated_pick(q, 1.51) == 0
    assert gated_pick(np.array([1.0, 2.0, 3.0]), 0.0) == 0  # the proposal is already best
    np.testing.assert_array_equal(gated_pick(np.stack([q, q + [9, 0, 0, 0, 0]]), 1.49),
                                  [2, 2])
    # a real sound unlike the patch's, the shipped critic in an ensemble with single_guess
    path, _ = _write_ensemble(tmp_path, {"single_guess": True, "margin": 0.0})
    m = Matcher.builtin("Snare-v0")
    m.attach_critic(path)
    clip = _square()
    f = m.features(clip[None])
    actions, z, extra = candidate_pool(m, f)
    qa = m.critic.predict(critic_inputs(z, actions, extra))
    best = int(np.argmin(qa))
    assert best != 0, "this target's pick should differ from the proposal"
    ratio = (qa[0] - qa[best]) / qa.std()  # the margin at which the gate shuts
    proposal = m._propose_features(f)[0]
    for margin, want in ((0.0, actions[best]), (0.99 * ratio, actions[best]),
                         (1.01 * ratio, proposal), (1e9, proposal)):
        m.critic.margin = margin
        np.testing.assert_array_equal(m.critic.choose(m, f)[0], want)
        # single_guess: Matcher.propose answers with the gated choice, one row per clip
        np.testing.assert_array_equal(m.propose(np.stack([clip, clip])), [want, want])
    m.use_critic = False
    np.testing.assert_array_equal(m.propose(clip[None])[0], proposal)


def test_bad_ensembles_are_refused(tmp_path):
    path, meta = _write_ensemble(tmp_path, {})
    m = Matcher.builtin("Snare-v0")
    for bad, match in (({"members": ["missing.critic.npz"]}, "no such critic file"),
                       ({"members": "e.critic.s1.npz"}, "list"),
                       ({"members": [""]}, "list"),
                       ({"margin": -1}, "margin"), ({"margin": "half"}, "margin"),
                       ({"margin": float("nan")}, "margin"),
                       ({"guess_members": 3}, "guess_members"),
                       ({"guess_members": 0}, "guess_members")):
        (tmp_path / "e.critic.json").write_text(json.dumps({**meta, **bad}))
        with pytest.raises(ConfigError, match=match):
            m.attach_critic(path)
    (tmp_path / "e.critic.json").write_text(json.dumps(meta))
    (tmp_path / "e.critic.s1.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ConfigError, match="not a critic"):
        m.attach_critic(path)
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object))
    (tmp_path / "e.critic.s1.npz").write_bytes((tmp_path / "pickled.npy").read_bytes())
    with pytest.raises(ConfigError, match="not a critic"):
        m.attach_critic(path)
    narrow = {"in_mean": np.zeros(3, np.float32), "in_std": np.ones(3, np.float32),
              "W0": np.ones((3, 1), np.float32), "b0": np.zeros(1, np.float32)}
    _write_ensemble(tmp_path, {}, second=narrow)
    with pytest.raises(ConfigError, match="different numbers of inputs"):
        m.attach_critic(path)
    with pytest.raises(ConfigError, match="lack 'b0'"):
        Critic({k: v for k, v in narrow.items() if k != "b0"}, {})
    with pytest.raises(ConfigError, match="at least one"):
        Critic([], {})
    # the matcher keeps the critic it had when a new one is refused
    assert m.critic is not None and len(m.critic.members) == 1


def test_ensemble_members_share_a_validation_split_and_the_table_measures_the_gate(tmp_path):
    from musicgym.train.matcher_critic import ensemble_table, validation_order

    m = Matcher.builtin("Snare-v0")
    spec = patch_spec("Snare-v0")
    pools = rendered_pools(m, spec, target_set("syn:31:12", spec), nearest=24,
                           log=lambda _: None)
    kw = dict(epochs=5, hidden=(16,), val_fraction=0.25, log=lambda _: None)
    w0, r0 = train_critic([pools], seed=0, **kw)
    w0b, _ = train_critic([pools], seed=0, split_seed=0, **kw)
    for k in w0:  # the split seed defaults to the seed: the same net, bit for bit
        np.testing.assert_array_equal(w0[k], w0b[k])
    w1, r1 = train_critic([pools], seed=1, split_seed=0, **kw)
    assert r0["split_seed"] == r1["split_seed"] == 0
    assert not np.array_equal(w0["W0"], w1["W0"])
    files = []
    for i, w in enumerate((w0, w1)):
        np.savez(tmp_path / f"c{i}.npz", **w)
        files.append(str(tmp_path / f"c{i}.npz"))
    rows = ensemble_table([pools], files, [None, 0.0, 1e9], validation_split=0,
                          val_fraction=0.25)
    assert [(r["members"], r["margin"]) for r in rows] == [
        (1, None), (1, 0.0), (1, 1e9), (2, None), (2, 0.0), (2, 1e9)]
    val = validation_order(12, 0)[:3]
    for r in rows:
        assert r["set"] == "validation" and r["targets"] == 3
        assert np.isclose(r["proposal"], pools["costs"][val, 0].mean())
        assert r["best"] <= r["pick"] and r["best"] <= r["at16"] <= r["proposal"] + 1e-6
    huge = [r for r in rows if r["margin"] == 1e9]  # a margin never met: the proposal
    assert all(r["changed"] == 0 and np.isclose(r["pick"], r["proposal"]) for r in huge)
