"""The learned composing policy: features, the shipped weights, one-pass composition, the
policy as the guided search's prior, training on a tiny set, and bad input."""

import json
import time

import numpy as np
import pytest

from musicgym.compose.policy import (
    BUILTIN_COUNTERPOINT,
    ComposerPolicy,
    compose_policy,
    features,
    features_batch,
    n_features,
    policy_guided_search,
)
from musicgym.compose.search import guided_beam_search
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import ConfigError
from musicgym.music.rules.species import N_ACTIONS, CounterpointState


def test_features_hold_the_mask_and_the_species():
    env = CounterpointEnv("fux_dorian", species=3)
    state = CounterpointState(env.setup)
    mask = env.oracle.mask(state)
    x = features(state, mask)
    assert x.shape == (n_features(),) and x.dtype == np.float32
    assert np.array_equal(x[-2 - N_ACTIONS:-2], mask.astype(np.float32))
    assert x[2] == 1.0 and x[:5].sum() == 1.0  # species 3, one-hot


def test_batched_features_equal_one_state_at_a_time_to_the_bit():
    # the shipped weights read these values: the batch must not change one bit of them
    policy = ComposerPolicy.load("builtin")
    seen = []
    for name, species in (("fux_phrygian", 5), ("fux_aeolian", 2), ("rl_musician", 4)):
        env = CounterpointEnv(name, species=species)

        def prior(states, masks):
            batch = features_batch(states, masks)
            one = np.stack([features(s, m) for s, m in zip(states, masks, strict=True)])
            assert np.array_equal(batch.view(np.uint32), one.view(np.uint32))
            seen.append(len(states))
            return policy.log_probs_batch(states, masks)

        guided_beam_search(env, beam_width=20, prior=prior, prior_top_k=3)
    assert sum(seen) > 500 and max(seen) == 20
    other = CounterpointEnv("fux_dorian", species=3)  # states of two exercises in one batch
    states = [CounterpointState(env.setup), CounterpointState(other.setup)]
    masks = [env.oracle.mask(states[0]), other.oracle.mask(states[1])]
    assert np.array_equal(features_batch(states, masks),
                          np.stack([features(s, m) for s, m in zip(states, masks, strict=True)]))
    assert features_batch([], []).shape == (0, n_features())


# (cantus, species, width, logp weight) -> (return, sha256 of the actions' repr, states
# expanded) with the builtin policy: the same pieces, the same work. First recorded before the
# search was made faster; recorded again when the builtin policy was retrained (7 December,
# the stronger expert), after the previous policy was checked to give the old figures still
RECORDED_POLICY_SEARCH = {
    ("rl_musician", 5, 40, 0.0): (2.4629754988159354, "d6bc7ec730d65f0b", 2148),
    ("fux_dorian", 5, 40, 0.1): (2.881408308319335, "cb2507629d6a4209", 1912),
    ("fux_lydian", 3, 40, 0.1): (2.5833657467842364, "b4792818be2596c3", 1406),
    ("fux_mixolydian", 4, 40, 0.0): (2.727974103324789, "39926e5dc7496df8", 736),
}


@pytest.mark.parametrize("case", sorted(RECORDED_POLICY_SEARCH))
def test_policy_guided_search_writes_the_recorded_pieces(case):
    import hashlib

    name, species, width, logp_weight = case
    stats = {}
    ret, actions = policy_guided_search(
        CounterpointEnv(name, species=species), ComposerPolicy.load("builtin"),
        beam_width=width, logp_weight=logp_weight, stats=stats)
    digest = hashlib.sha256(repr(actions).encode()).hexdigest()[:16]
    assert (ret, digest, stats["expanded"]) == RECORDED_POLICY_SEARCH[case]


@pytest.mark.parametrize("case", [("fux_dorian", 5, 40, 0.1), ("fux_lydian", 3, 40, 0.1)])
def test_policy_guided_search_hands_back_its_best_distinct_pieces(case, replay):
    import hashlib

    name, species, width, logp_weight = case
    env = CounterpointEnv(name, species=species)
    stats = {}
    ret, actions = policy_guided_search(env, ComposerPolicy.load("builtin"), beam_width=width,
                                        logp_weight=logp_weight, stats=stats, n_pieces=5)
    # the search and its piece are the recorded ones: keeping the runners-up changes nothing
    digest = hashlib.sha256(repr(actions).encode()).hexdigest()[:16]
    assert (ret, digest, stats["expanded"]) == RECORDED_POLICY_SEARCH[case]
    pieces = stats["pieces"]
    assert len(pieces) == 5 and pieces[0] == (ret, actions)
    assert len({tuple(a) for _, a in pieces}) == 5  # distinct
    returns = [r for r, _ in pieces]
    assert returns == sorted(returns, reverse=True)
    for r, a in pieces:  # each a whole piece, with the return the real env gives it
        total, terminated, _ = replay(env, a)
        assert terminated and total == pytest.approx(r, abs=1e-9)
    one = {}
    policy_guided_search(env, ComposerPolicy.load("builtin"), beam_width=width,
                         logp_weight=logp_weight, stats=one)
    assert one["pieces"] == [(ret, actions)]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="n_pieces"):
            policy_guided_search(env, ComposerPolicy.load("builtin"), beam_width=2,
                                 stats={}, n_pieces=bad)


def test_builtin_policy_is_shipped_with_its_command():
    meta = json.loads(BUILTIN_COUNTERPOINT.with_suffix(".json").read_text())
    assert "policy_train" in meta["command"] and "seed" in meta
    assert BUILTIN_COUNTERPOINT.stat().st_size < 2_000_000


@pytest.mark.parametrize("species", [1, 2, 3, 4, 5])
def test_builtin_policy_composes_fux_in_one_pass_without_hard_violations(species, judge):
    # Fux's cantus firmi are held out from training
    policy = ComposerPolicy.load("builtin")
    env = CounterpointEnv("fux_lydian", species=species)
    t0 = time.perf_counter()
    # in species 1 the score is RL-Musician's eighth-note-roll penalties on whole notes, about
    # -9.5 for every method (random included) and noisy from piece to piece: judge the
    # policy's beam of 8 there, its greedy pass elsewhere
    ret, actions = compose_policy(env, policy, beam=8 if species == 1 else 1)
    assert time.perf_counter() - t0 < 2.0  # < 1 s a piece on an idle core; slack for CI
    result = judge(env, actions)
    assert result["hard_violations"] == 0 and result["parallel_perfects"] == 0
    assert result["scores"]["total"] == pytest.approx(ret)
    # the policy does better than a random allowed piece, on the mean over Fux's cantus firmi
    # and RL-Musician's (one greedy pass is noisy exercise by exercise: the previous builtin
    # lost to random on fux_mixolydian in species 5, the current one on fux_lydian). In species
    # 1 RL-Musician's looped_fragments penalty, on an eighth-note roll of whole notes,
    # dominates every piece's score, so random and searched pieces all score about -8 there
    from musicgym.compose.search import random_search

    names = ["fux_lydian", "fux_dorian", "fux_aeolian", "fux_ionian", "fux_mixolydian",
             "rl_musician"]
    envs = [CounterpointEnv(name, species=species) for name in names]
    beam = 8 if species == 1 else 1
    policy_mean = np.mean([compose_policy(e, policy, beam=beam)[0] for e in envs])
    random_mean = np.mean([random_search(e, seed=s)[0] for e in envs for s in range(5)])
    assert policy_mean > (random_mean if species > 1 else random_mean - 1.0)


def test_policy_prior_cuts_the_states_the_search_judges(judge):
    policy = ComposerPolicy.load("builtin")
    env = CounterpointEnv("fux_dorian", species=5)
    plain, guided = {}, {}
    ret_plain, _ = guided_beam_search(env, beam_width=100, stats=plain)
    ret, actions = policy_guided_search(env, policy, beam_width=100, top_k=2, stats=guided)
    assert guided["children"] < plain["children"] / 2
    result = judge(env, actions)
    assert result["hard_violations"] == 0
    assert result["scores"]["total"] == pytest.approx(ret)


def test_policy_log_probs_batch_matches_one_state_at_a_time():
    policy = ComposerPolicy.load("builtin")
    env = CounterpointEnv("fux_mixolydian", species=4)
    _, actions = compose_policy(env, policy)
    states, masks, state = [], [], CounterpointState(env.setup)
    from musicgym.music.rules.species import ACTION_DURATIONS, ACTION_MOVES

    for action in actions[:-1]:
        state.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
        states.append(state.copy())
        masks.append(env.oracle.mask(state))
    batch = policy.log_probs_batch(states, masks)
    assert batch.shape == (len(states), N_ACTIONS)
    for row, st, m in zip(batch, states, masks, strict=True):
        one = policy.log_probs(st, m)
        assert np.array_equal(np.isfinite(row), m) and np.array_equal(np.isfinite(one), m)
        assert np.allclose(row[m], one[m], atol=1e-5)
    assert policy.log_probs_batch([], []).shape == (0, N_ACTIONS)


def test_policy_log_probs_in_the_search_ranking(judge):
    # logp_weight > 0 ranks partial pieces by the score estimate + the line's log-probability:
    # a different search, still only allowed notes, its return the env's
    policy = ComposerPolicy.load("builtin")
    env = CounterpointEnv("fux_dorian", species=3)
    plain, weighted = {}, {}
    ret0, actions0 = policy_guided_search(env, policy, beam_width=30, stats=plain)
    ret, actions = policy_guided_search(env, policy, beam_width=30, logp_weight=0.1,
                                        stats=weighted)
    result = judge(env, actions)
    assert result["hard_violations"] == 0 and result["parallel_perfects"] == 0
    assert result["scores"]["total"] == pytest.approx(ret)
    assert np.isfinite(ret0) and weighted["children"] > 0
    # the policy's prior without a weight is the old pruned search, exactly
    again = guided_beam_search(env, beam_width=30, prior=policy.log_probs_batch, prior_top_k=3)
    assert again == (ret0, actions0)
    with pytest.raises(ConfigError, match="prior_weight"):
        policy_guided_search(env, policy, logp_weight=-1.0)
    with pytest.raises(ConfigError, match="prior_top_k"):
        guided_beam_search(env, prior=policy.log_probs_batch, prior_top_k=0)


def test_policy_beam_is_at_least_as_good_as_greedy():
    policy = ComposerPolicy.load("builtin")
    env = CounterpointEnv("fux_aeolian", species=5)
    greedy, _ = compose_policy(env, policy)
    beam, actions = compose_policy(env, policy, beam=4)
    assert np.isfinite(beam) and len(actions) > 0
    # the greedy piece's prefix is not always kept in the beam, so compare with slack
    assert beam >= greedy - 0.5


def test_training_a_tiny_policy_and_loading_it_back(tmp_path):
    pytest.importorskip("torch")
    from musicgym.compose import policy_train

    exercises = policy_train.training_exercises(3, seed=5)
    held = policy_train.held_out_cantus()
    assert all(tuple(ex["cantus_firmus"]) not in held for ex in exercises)
    pieces = policy_train.expert_pieces(exercises, width=20, log=lambda m: None)
    x, y = policy_train.dataset(exercises, pieces)
    assert len(x) == len(y) > 10 and x.shape[1] == n_features()
    # the expert's note is always allowed by the mask in the features
    assert np.all(x[np.arange(len(y)), n_features() - 2 - N_ACTIONS + y] == 1.0)
    policy, figures = policy_train.train_policy(x, y, hidden=16, epochs=2, log=lambda m: None)
    path = policy.save(tmp_path / "counterpoint.npz")
    loaded = ComposerPolicy.load(tmp_path)
    env = CounterpointEnv(**exercises[0])
    ret, actions = compose_policy(env, loaded)
    assert np.isfinite(ret) and path.with_suffix(".json").is_file()
    assert 0.0 <= figures["val_accuracy"] <= 1.0


def test_bad_policy_input_raises(tmp_path):
    with pytest.raises(ConfigError, match="no composing policy"):
        ComposerPolicy.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, w0=np.zeros((3, 4)), b0=np.zeros(4))
    with pytest.raises(ConfigError, match="retrain"):
        ComposerPolicy.load(bad)
    env = CounterpointEnv("fux_dorian", species=1)
    policy = ComposerPolicy.load("builtin")
    with pytest.raises(ConfigError, match="beam"):
        compose_policy(env, policy, beam=0)
    with pytest.raises(ConfigError, match="top_k"):
        policy_guided_search(env, policy, top_k=0)


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "musicgym", *args], capture_output=True,
                          text=True, timeout=300)


def test_compose_cli_with_the_builtin_policy(tmp_path):
    out = tmp_path / "out"
    done = _cli("compose", "--method", "policy", "--policy", "builtin", "-o", str(out),
                "--no-wav", "--evaluate")
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "policy" and summary["pieces"][0]["finished"]
    # the time a piece takes is reported (measured in benchmarks/compose_policy.py, not here:
    # the project keeps timed assertions out of tests)
    assert summary["pieces"][0]["seconds"] > 0.0
    assert "parallel" in done.stdout.lower()


def test_compose_cli_refuses_a_missing_policy_and_policy_for_melody(tmp_path):
    done = _cli("compose", "--method", "policy", "--policy", str(tmp_path / "nope.npz"),
                "-o", str(tmp_path / "o"), "--no-wav")
    assert done.returncode != 0 and "no composing policy" in done.stderr
    # a melody has its own policy (test_melody_policy.py), but no policy beam
    done = _cli("compose", "--task", "melody", "--method", "policy", "--policy-beam", "2",
                "-o", str(tmp_path / "m"), "--no-wav")
    assert done.returncode != 0 and "task counterpoint" in done.stderr


def test_dagger_then_an_improvement_round(tmp_path):
    # --improve-last 1: the last round rewrites the pieces with the policy-guided search and
    # keeps the DAgger samples of the rounds before it
    pytest.importorskip("torch")
    from musicgym.compose import policy_train

    assert policy_train.main(["--exercises", "3", "--seed", "5", "--width", "10", "--epochs",
                              "1", "--hidden", "8", "--rounds", "3", "--relabel", "1",
                              "--relabel-width", "5", "--improve-last", "1",
                              "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "counterpoint.json").read_text())
    rounds = meta["rounds"]
    assert "relabelled" in rounds[1] and "improved" in rounds[2]
    # the improvement round's data: the (possibly rewritten) pieces plus round 1's DAgger
    # samples, which are kept
    dagger = rounds[1]["samples"] - rounds[0]["samples"]
    assert dagger > 0 and rounds[2]["samples"] > dagger
    if rounds[2]["improved"] == 0:
        assert rounds[2]["samples"] == rounds[1]["samples"]
    assert "--improve-last 1" in meta["command"]
    ComposerPolicy.load(tmp_path)


def test_stronger_expert_rewrites_only_the_chosen_species_and_never_worse(tmp_path):
    # expert iteration with a stronger expert (--strong-rounds): the chosen species' pieces are
    # replaced only by better ones (judged by the env's return), the others are kept as they
    # are, and every replacement is a finished piece the env scores as recorded
    pytest.importorskip("torch")
    from musicgym.compose import policy_train

    exercises = policy_train.training_exercises(5, seed=5)  # species 1-5, one each
    pieces = policy_train.expert_pieces(exercises, width=5, log=lambda m: None)
    policy = ComposerPolicy.load("builtin")
    out, replaced = policy_train.stronger_pieces(exercises, pieces, policy, species=(3, 5),
                                                 width=40, log=lambda m: None)
    assert len(out) == len(pieces) and 1 <= replaced <= 2
    for old, new in zip(pieces, out, strict=True):
        species = exercises[old["index"]]["species"]
        if species not in (3, 5):
            assert new == old
            continue
        assert new["return"] >= old["return"]
        env = CounterpointEnv(**exercises[new["index"]])
        env.reset()
        total = 0.0
        for action in new["actions"]:
            _, reward, terminated, _, _ = env.step(action)
            total += reward
        assert terminated and total == pytest.approx(new["return"], abs=1e-9)
    # the whole recipe with one such round: the prior policy is kept beside the result
    assert policy_train.main(["--exercises", "5", "--seed", "5", "--width", "5", "--epochs",
                              "1", "--hidden", "8", "--strong-rounds", "1",
                              "--strong-species", "5", "--strong-width", "20",
                              "--save-final-pieces", str(tmp_path / "p.json"),
                              "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "counterpoint.json").read_text())
    assert meta["strong_rounds"][0]["round"] == 1 and meta["strong_species"] == [5]
    assert meta["base_rounds"][0]["round"] == 0
    ComposerPolicy.load(tmp_path / "strong0")
    ComposerPolicy.load(tmp_path)
    final = json.loads((tmp_path / "p.json").read_text())["pieces"]
    assert len(final) == len(exercises)
    for bad in (["--strong-rounds", "-1"], ["--strong-width", "0"], ["--strong-species", "6"]):
        with pytest.raises(SystemExit) as exit_info:
            policy_train.main(["--out", str(tmp_path / "bad"), *bad])
        assert exit_info.value.code == 2
