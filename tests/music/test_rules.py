import numpy as np
import pytest

from musicgym.errors import CantusFirmusError, RuleError
from musicgym.music.rules import (
    RL_MUSICIAN_RULES,
    RULES,
    SCORES,
    STRICT_RULES,
    RuleSet,
    get_rule,
    rule_reward,
    score_piece,
)
from musicgym.music.rules.species import (
    EIGHTHS_PER_BAR,
    CounterpointState,
    builtin_cantus,
    encode_action,
    make_setup,
)


def _state(moves_durations, **setup_kwargs):
    state = CounterpointState(make_setup(**setup_kwargs))
    for move, duration in moves_durations:
        state.add(move, duration)
    return state


def _allowed(rule_name, state, move, duration, **params):
    out = get_rule(rule_name, task="counterpoint").bind(params)(state, state.candidates())
    return rule_reward(out, encode_action(move, duration)) == 0.0


def test_rl_musician_rules_and_defaults_are_registered():
    assert len(RL_MUSICIAN_RULES) == 15
    assert all(RULES[name].source == "rl-musician" for name in RL_MUSICIAN_RULES)
    defaults = {name: RULES[name].defaults for name in RL_MUSICIAN_RULES if RULES[name].defaults}
    assert defaults == {
        "absence_of_stalled_pitches": {"max_n_repetitions": 2},
        "absence_of_long_motion": {"max_distance_in_semitones": 9},
        "absence_of_skip_series": {"max_n_skips": 2},
        "turn_after_skip": {"min_n_scale_degrees": 3},
        "step_motion_to_end": {"prohibit_rearticulation": True},
        "absence_of_large_intervals": {"max_n_semitones": 16},
        "absence_of_lines_crossing": {"prohibit_unisons": True},
    }
    assert {"looped_fragments", "entropy", "narrow_ranges", "climax_explicity",
            "number_of_skips"} <= set(SCORES)
    assert len(STRICT_RULES) == 21


def test_rhythm_patterns_of_species_five():
    state = _state([], species=5)
    assert _allowed("rhythmic_pattern_validity", state, 0, 4)
    assert _allowed("rhythmic_pattern_validity", state, 0, 2)
    assert not _allowed("rhythmic_pattern_validity", state, 0, 1)  # no pattern starts with 1
    state.add(1, 2)
    assert _allowed("rhythmic_pattern_validity", state, 1, 1)  # [2, 1, 1, ...]
    assert not _allowed("rhythmic_pattern_validity", state, 1, 4)  # [2, 4] is no pattern


def test_parallel_fifths_are_masked_and_rl_musician_rules_miss_them():
    # species 1 on RL-Musician's cantus: G4 over C4 is a fifth; A4 over D4 would be another
    state = _state([], species=1)
    assert not _allowed("absence_of_parallel_perfects", state, +1, 8)
    assert _allowed("absence_of_parallel_perfects", state, +2, 8)  # B4 over D4, a sixth
    rl_musician = RuleSet("counterpoint", masks=RL_MUSICIAN_RULES)
    mask = rl_musician.check(state, state.candidates(), state.frame_mask())[0]
    assert mask[encode_action(+1, 8)]


def test_parallel_octaves_into_the_final_are_masked():
    # RL-Musician's output had D5/D4 -> C5/C4 into the final bar
    state = _state([(0, 8)] * 9, species=1, start_note="C5", end_note="C5")
    state.positions[-1] = state.setup.scale.position_of("E5")
    state.midis[-1] = 76
    assert state.time == 80
    assert not _allowed("absence_of_parallel_perfects", state, -1, 8)  # D5 over D4 -> C5/C4
    assert _allowed("cadence", state, -3, 8)  # B4 over D4 (M6) -> C5 over C4
    assert not _allowed("cadence", state, -1, 8)


def test_hidden_octave_with_upper_leap_is_masked():
    state = _state([], species=1)  # G4 over C4, cantus rises to D4
    assert not _allowed("absence_of_hidden_perfects", state, +4, 8)  # leap up to D5 = octave
    assert _allowed("absence_of_hidden_perfects", state, +3, 8)  # C5 over D4 is no perfect


def test_melodic_tritone_augmented_second_and_large_leaps():
    state = _state([(-1, 4)], species=5)  # G4 -> F4
    assert not _allowed("absence_of_melodic_tritone", state, +3, 4)  # F4 -> B4
    assert _allowed("absence_of_melodic_tritone", state, +2, 4)
    f_state = _state([], species=5, tonic="A", mode="harmonic_minor", cantus_firmus=(
        "A3", "B3", "C4", "A3", "E4", "D4", "C4", "B3", "A3"), start_note="E4", end_note="A4",
        lowest_note="A3", highest_note="A5")
    f_state.add(+1, 4)  # E4 -> F4
    assert f_state.setup.name(f_state.positions[-1]) == "F4"
    assert not _allowed("absence_of_augmented_diminished_intervals", f_state, +1, 4)  # F -> G#
    assert _allowed("absence_of_augmented_diminished_intervals", f_state, +2, 4)  # F -> A
    state = _state([], species=5)
    assert not _allowed("absence_of_large_leaps", state, +5, 4)  # G4 -> E5, major sixth
    assert _allowed("absence_of_large_leaps", state, +7, 4)  # the octave is allowed
    assert _allowed("absence_of_large_leaps", state, +4, 4)


def test_voice_leading_rules_of_rl_musician():
    state = _state([(3, 4)], species=5)  # G4 -> C5, a skip of 3 degrees
    assert _allowed("turn_after_skip", state, -1, 4)
    assert not _allowed("turn_after_skip", state, +1, 4)
    state = _state([(1, 4), (0, 4)], species=5)  # G4 -> A4 -> A4: A is not in the tonic triad
    assert not _allowed("rearticulation_stability", state, 0, 4)
    state = _state([(0, 4)], species=5)  # G4 G4, a third G4 would stall
    assert not _allowed("absence_of_stalled_pitches", state, 0, 2)
    assert _allowed("absence_of_stalled_pitches", state, 0, 2, max_n_repetitions=3)


def test_user_rule_is_one_function_and_counts_as_penalty():
    def no_high_e(state, cand):
        return cand.midi != 76

    ruleset = RuleSet("counterpoint", masks=["cadence"], penalties={no_high_e: 2.0})
    state = _state([], species=5)
    mask, reward, outputs = ruleset.check(state, state.candidates(), state.frame_mask())
    e5 = encode_action(+5, 4)  # G4 -> E5
    assert reward[e5] == -2.0 and reward[encode_action(+4, 4)] == 0.0
    assert rule_reward(outputs["no_high_e"], e5) == -1.0


def test_rule_errors_name_the_problem():
    with pytest.raises(RuleError, match="unknown counterpoint rule 'no_such_rule'"):
        RuleSet("counterpoint", masks=["no_such_rule"])
    with pytest.raises(RuleError, match="has no parameter colour"):
        RuleSet("counterpoint", masks=["cadence"], params={"cadence": {"colour": 1}})
    with pytest.raises(RuleError, match="both a mask and a penalty"):
        RuleSet("counterpoint", masks=["cadence"], penalties={"cadence": 1.0})
    with pytest.raises(RuleError, match="not in use"):
        RuleSet("counterpoint", masks=["cadence"], params={"entropy": {}})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cantus_firmus": ("C4", "F#4", "C4")}, r"cantus_firmus\[1\]: F#4 is not in C major"),
        ({"start_note": "A4"}, "start_note is A4, which is not in the tonic triad"),
        ({"lowest_note": "C6"}, "lowest_note C6 must be below highest_note"),
        ({"species": 6}, "species must be 1"),
        ({"cantus_firmus": ("C4", "C4")}, "at least 3 notes"),
    ],
)
def test_bad_exercises_raise_cantus_firmus_error(kwargs, message):
    with pytest.raises(CantusFirmusError, match=message):
        make_setup(**kwargs)


def test_unknown_builtin_cantus():
    with pytest.raises(CantusFirmusError, match="unknown built-in cantus firmus 'bach'"):
        builtin_cantus("bach")


def _naive_looped_fragments(piece):
    # RL-Musician's definition, written out on a dense piano roll
    total = piece.setup.total_eighths
    roll = np.zeros((128, total), dtype=int)
    for bar, key in enumerate(piece.setup.cantus_midi):
        roll[key, bar * 8:(bar + 1) * 8] = 1
    for t, key in enumerate(piece.midi_at_eighth):
        if key >= 0:
            roll[key, t] = 1
    score = 0
    for size in range(4, total // 2 + 1):
        for position in range(0, min(total - 2 * size, total - 8 - 1) + 1):
            if np.array_equal(roll[:, position:position + size],
                              roll[:, position + size:position + 2 * size]):
                score -= 1
    return score


def test_scores_match_rl_musician_definitions():
    # a loopy species-3 line: G4 A4 G4 A4 ... repeated quarters
    moves = [(1, 2), (-1, 2), (1, 2), (-1, 2)] * 10
    state = _state(moves[:39] + [(0, 2)], species=3)
    assert state.finished
    scores = score_piece(state)
    assert scores["looped_fragments"] == _naive_looped_fragments(state) < 0
    positions = np.asarray(state.positions)
    counts = np.bincount(positions - state.setup.lowest_position, minlength=14)
    p = counts[counts > 0] / len(positions)
    assert scores["entropy"] == pytest.approx(-(p * np.log(p)).sum() / np.log(14))
    windows = np.lib.stride_tricks.sliding_window_view(positions, 9)
    widths = windows.max(1) - windows.min(1)
    assert scores["narrow_ranges"] == -float(np.sum(np.where(widths <= 2, 1.0, 0.0)
                                                    + np.where(widths == 3, 0.5, 0.0)))
    peak = positions.max()
    repeats = np.count_nonzero(positions[np.argmax(positions == peak) + 1:] == peak)
    assert scores["climax_explicity"] == pytest.approx(
        1 - 0.3 * (state.setup.highest_position - peak) - 0.5 * repeats)
    n_skips = sum(abs(m) > 1 for m in state.moves)
    assert scores["number_of_skips"] == {1: .8, 2: .9, 3: 1, 4: .9, 5: .5, 6: .25}.get(n_skips, 0)
    assert scores["total"] == pytest.approx(sum(v for k, v in scores.items() if k != "total"))
    assert state.time == state.setup.total_eighths == 12 * EIGHTHS_PER_BAR
