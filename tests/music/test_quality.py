"""The species-aware Fux quality: each criterion on hand-made lines, and its range."""

import numpy as np
import pytest

from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.music.rules.quality import QUALITY_NAMES, fux_quality, fux_quality_of_notes
from musicgym.music.rules.species import CounterpointState, make_setup

FUX_DORIAN = ("D4", "F4", "E4", "D4", "G4", "F4", "A4", "G4", "F4", "E4", "D4")


def _first_species(notes):
    """A first-species line above Fux's dorian cantus, by note names (first and last given)."""
    setup = make_setup(FUX_DORIAN, tonic="D", mode="dorian", species=1, start_note=notes[0],
                       end_note=notes[-1], lowest_note="D4", highest_note="C6")
    state = CounterpointState(setup)
    for name in notes[1:-1]:
        state.add(setup.scale.position_of(name) - state.positions[-1], 8)
    assert state.finished
    return state


def test_a_good_first_species_line_scores_near_the_top():
    # contrary motion, thirds and sixths, one climax (D5... C6 once), steps, a true cadence
    good = _first_species(["A4", "A4", "C5", "B4", "B4", "D5", "C5", "E5", "D5", "C5", "D5"])
    q = fux_quality(good)
    assert set(QUALITY_NAMES) <= set(q)
    assert q["cadence"] == 1.0  # C5 -> D5 up while the cantus goes E4 -> D4 down
    assert 0.0 <= q["total"] <= 3.0


def test_each_criterion_reacts():
    parallel = _first_species(["A4", "A4", "G4", "F4", "B4", "A4", "C5", "B4", "A4", "E5",
                               "D5"])
    q = fux_quality(parallel)
    # the line moves with the cantus, in parallel sixths/thirds, and repeats A4
    assert q["contrary"] < 0.5
    assert q["variety"] <= 0.75
    assert q["cadence"] == 0.5  # E5 -> D5 by step, but down with the cantus (E4 -> D4)
    # a leap to the end note: no cadence by step
    leap = _first_species(["A4", "B4", "C5", "B4", "D5", "A4", "C5", "E5", "D5", "A4", "D5"])
    assert fux_quality(leap)["cadence"] == 0.0
    # a doubled climax costs half the criterion
    two_peaks = _first_species(["A4", "B4", "C5", "F5", "E5", "F5", "C5", "B4", "D5", "C5",
                                "D5"])
    assert fux_quality(two_peaks)["climax"] == 0.5


def test_species_four_reads_the_half_bar_and_plain_arrays_agree():
    env = CounterpointEnv("fux_dorian", species=4)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        _, _, done, truncated, _ = env.step(action)
        assert not truncated
    state = env.unwrapped.state
    q = fux_quality(state)
    setup = state.setup
    again = fux_quality_of_notes(setup.cantus_midi, state.midi_at_eighth, state.positions,
                                 setup.cantus_positions, species=4, above=True)
    assert q == again
    assert 0.0 <= q["total"] <= 3.0


@pytest.mark.parametrize("species", [1, 2, 3, 4, 5])
def test_guided_search_with_the_fux_objective_beats_random_pieces(species):
    from musicgym.compose.ppo import replay
    from musicgym.compose.search import guided_beam_search, random_search

    env = CounterpointEnv("fux_dorian", species=species)
    stats = {}
    _, actions = guided_beam_search(env, seed=0, beam_width=60, objective="fux", stats=stats)
    best = fux_quality(replay(env, actions))["total"]
    assert stats["objective"] == pytest.approx(best, abs=0.02)
    randoms = [fux_quality(replay(env, random_search(env, seed=s)[1]))["total"]
               for s in range(8)]
    assert best > np.mean(randoms)
