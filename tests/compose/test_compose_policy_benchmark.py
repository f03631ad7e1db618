"""benchmarks/compose_policy.py --validation: the validation split that pairs trained with
different seeds share (helper "seeds", issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.scripts import load_script

from musicgym.compose import policy_train
from musicgym.compose.policy_train import held_out_cantus, training_exercises
from musicgym.compose.value_train import validation_exercises


def _harness():
    return load_script("benchmarks/compose_policy.py", "compose_policy_benchmark")


def test_validation_split_is_value_trains_and_leaves_out_every_seeds_training_cantus(
        monkeypatch):
    held = held_out_cantus()  # generated once here, not in every call below (speed only)
    monkeypatch.setattr(policy_train, "held_out_cantus", lambda: held)
    bench = _harness()
    n_train = 30  # the trainers use 400; a smaller set keeps the test fast
    # one seed: exactly value_train's split, in its order
    one = bench.validation_split(30, [1], n_train=n_train)
    assert [kw for _, kw in one] == validation_exercises(30, train_seed=1, n_train=n_train)
    assert all(name.startswith("val") for name, _ in one)
    # several seeds: none of their training cantus firmi, nor a held-out one
    several = bench.validation_split(30, [1, 2, 3], n_train=n_train)
    cantus = {tuple(kw["cantus_firmus"]) for _, kw in several}
    assert 0 < len(several) <= len(one)
    for seed in (1, 2, 3):
        train = {tuple(e["cantus_firmus"]) for e in training_exercises(n_train, seed=seed)}
        assert not cantus & train
    assert not cantus & held
    # the test set is unchanged by the refactor: Fux's and RL-Musician's cantus, then generated
    names = [name for name, _ in bench.test_exercises(10)]
    assert "fux_phrygian/s2" not in names and "fux_dorian/s5" in names
    assert sum(name.startswith("generated") for name in names) == 10


def test_random_row_averages_seeded_random_pieces_and_refuses_none():
    # --random-pieces 0 (the documented test-set command) used to add a "random" row with
    # a nan mean (a RuntimeWarning and a nan line in every species' table); main() now adds
    # no row, and random_row refuses 0 pieces instead of averaging nothing
    from musicgym.envs.counterpoint import CounterpointEnv
    from musicgym.errors import ParameterError

    bench = _harness()
    env = CounterpointEnv(cantus_firmus="fux_dorian", species=1)
    row = bench.random_row(env, "fux_dorian/s1", 2)
    assert row["method"] == "random" and row["species"] == 1 and row["finished"]
    assert np.isfinite(row["score"]) and row["score"] <= 3.0
    assert row == bench.random_row(env, "fux_dorian/s1", 2)  # seeded: the same pieces
    with pytest.raises(ParameterError):
        bench.random_row(env, "fux_dorian/s1", 0)
