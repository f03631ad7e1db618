"""Counterpoint rules: RL-Musician's 15 (with its default parameters) and the ones it misses.

Each rule is ``rule(state, cand, **params)`` returning, for every candidate next note of
``cand`` (:class:`~musicgym.music.rules.species.Candidates`), whether it is allowed: a bool
array of shape (60,), or a plain ``True`` when every candidate is. ``state`` is the
:class:`~musicgym.music.rules.species.CounterpointState` before the note.

RL-Musician's rules (``source="rl-musician"``) follow its 0.4.6 semantics: scale-step moves,
consonance as P1/P8, m3, M3, P5, m6, M6. The others (``source="musicgym"``) are the
textbook prohibitions RL-Musician lacks: parallel and hidden fifths and octaves, the melodic
tritone, augmented and diminished melodic intervals, leaps of a major sixth or more, the cadence.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from musicgym.music.intervals import is_augmented, is_consonant, is_diminished, is_perfect
from musicgym.music.rules.registry import register_rule
from musicgym.music.rules.species import (
    EIGHTHS_PER_BAR,
    SPECIES_RHYTHMS,
    Candidates,
    CounterpointState,
)

_RLM = {"task": "counterpoint", "source": "rl-musician"}
_OURS = {"task": "counterpoint", "source": "musicgym"}
# ``static=True`` rules read only the exercise, the time and the last note: their verdicts are
# cached by (last note, time) and shared by every state that reaches it. ``key=f`` rules read
# only ``f(state)`` besides: their verdicts are cached by (last note, time, f(state)), or by
# f(state) alone for ``key_only=True`` rules, which read neither the last note nor the time.
# The keys cover the look-backs the caches accept (lookahead._LOOKBACK_PARAMS: 2 moves).
# Static rules are branch-free: lookahead.StaticTable runs them on a batch of (last note,
# time) rows at once.


def _zero_moves(state: CounterpointState) -> tuple[bool, ...]:
    return tuple([m == 0 for m in state.moves[-2:]])


def _step_moves(state: CounterpointState) -> tuple[bool, ...]:
    return tuple([-1 <= m <= 1 for m in state.moves[-2:]])


def _bar_ago(state: CounterpointState) -> int:
    """The counterpoint key sounding a bar before the next note, when it starts a bar."""
    time = state.time
    if time % EIGHTHS_PER_BAR or time >= state.setup.total_eighths:
        return -2
    return int(state.midi_at_eighth[time - EIGHTHS_PER_BAR])


@lru_cache(maxsize=64)
def _prefix_table(patterns: tuple[tuple[int, ...], ...]) -> frozenset[tuple[int, ...]]:
    return frozenset(p[:k] for p in patterns for k in range(1, len(p) + 1))


# rhythm


@register_rule("rhythmic_pattern_validity", **_RLM, key=lambda state: state.bar_durations,
               key_only=True)
def rhythmic_pattern_validity(state: CounterpointState, cand: Candidates,
                              patterns: tuple | None = None) -> np.ndarray:
    """The bar must divide into one of the species' patterns (RL-Musician's 9 for species 5)."""
    if patterns is None:
        patterns = SPECIES_RHYTHMS[state.setup.species]
    return _rhythm_ok(tuple(tuple(p) for p in patterns), state.bar_durations, len(cand.move))


@lru_cache(maxsize=4096)
def _rhythm_ok(patterns: tuple[tuple[int, ...], ...], bar_durations: tuple[int, ...],
               n: int) -> np.ndarray:
    prefixes = _prefix_table(patterns)
    ok = np.array([(*bar_durations, d) in prefixes for d in (1, 2, 4, 8)])
    out = np.repeat(ok, n // 4)
    out.flags.writeable = False  # shared between calls
    return out


# voice leading


@register_rule("rearticulation_stability", **_RLM, static=True)
def rearticulation_stability(state: CounterpointState, cand: Candidates) -> np.ndarray:
    """Only degrees 1, 3 and 5 may be repeated."""
    degree = state.setup.scale.degree(state.positions[-1])
    return (degree == 1) | (degree == 3) | (degree == 5) | (cand.move != 0)


@register_rule("absence_of_stalled_pitches", **_RLM, key=lambda state: _zero_moves(state),
               key_only=True, max_n_repetitions=2)
def absence_of_stalled_pitches(state: CounterpointState, cand: Candidates,
                               max_n_repetitions: int = 2) -> np.ndarray | bool:
    """No pitch sounds more than ``max_n_repetitions`` times in a row."""
    recent = state.moves[len(state.moves) - (max_n_repetitions - 1):]
    if len(state.moves) < max_n_repetitions - 1 or any(m != 0 for m in recent):
        return True
    return cand.move != 0


@register_rule("absence_of_long_motion", **_RLM,
               key=lambda state: (state.positions[-1], state.motion_start_midi), key_only=True,
               max_distance_in_semitones=9)
def absence_of_long_motion(state: CounterpointState, cand: Candidates,
                           max_distance_in_semitones: int = 9) -> np.ndarray:
    """At most ``max_distance_in_semitones`` from where the current direction began."""
    return np.abs(cand.midi - state.motion_start_midi) <= max_distance_in_semitones


@register_rule("absence_of_skip_series", **_RLM, key=lambda state: _step_moves(state),
               key_only=True, max_n_skips=2)
def absence_of_skip_series(state: CounterpointState, cand: Candidates,
                           max_n_skips: int = 2) -> np.ndarray | bool:
    """At most ``max_n_skips`` skips (moves of more than one scale step) in a row."""
    if max_n_skips <= 0:
        return np.abs(cand.move) <= 1
    recent = state.moves[-max_n_skips:]
    if len(state.moves) < max_n_skips or any(abs(m) <= 1 for m in recent):
        return True
    return np.abs(cand.move) <= 1


@register_rule("turn_after_skip", **_RLM, key=lambda state: tuple(state.moves[-1:]),
               key_only=True, min_n_scale_degrees=3)
def turn_after_skip(state: CounterpointState, cand: Candidates,
                    min_n_scale_degrees: int = 3) -> np.ndarray | bool:
    """After a skip of ``min_n_scale_degrees`` or more, a step in the opposite direction."""
    if not state.moves or abs(state.moves[-1]) < min_n_scale_degrees:
        return True
    return cand.move == -np.sign(state.moves[-1])


@register_rule("VI_VII_resolution", **_RLM, key=lambda state: tuple(state.positions[-2:]),
               key_only=True)
def vi_vii_resolution(state: CounterpointState, cand: Candidates) -> np.ndarray | bool:
    """6 -> 7 must go on to 1, and 7 -> 6 must go on to 5."""
    if len(state.positions) < 2:
        return True
    degrees = state.setup.scale.degree(state.positions[-2:])
    if degrees[0] == 7 and degrees[1] == 6:
        return cand.move == -1
    if degrees[0] == 6 and degrees[1] == 7:
        return cand.move == 1
    return True


@register_rule("step_motion_to_end", **_RLM, static=True, prohibit_rearticulation=True)
def step_motion_to_end(state: CounterpointState, cand: Candidates,
                       prohibit_rearticulation: bool = True) -> np.ndarray:
    """The end note must stay reachable by steps (one step per quarter left, plus one), and
    the note before it may not repeat it."""
    to_end = np.abs(cand.position - state.setup.end_position)
    quarters_left = np.ceil((state.setup.final_bar_eighth - cand.end) / 2)
    ok = to_end <= quarters_left + 1
    if prohibit_rearticulation:
        ok &= ~((quarters_left == 0) & (to_end == 0))
    return ok


# harmony against the cantus firmus


@register_rule("consonance_on_strong_beat", **_RLM, static=True)
def consonance_on_strong_beat(state: CounterpointState, cand: Candidates) -> np.ndarray:
    """A note starting on beat 1 or 3 is consonant with the cantus."""
    return (cand.start % 4 != 0) | is_consonant(cand.midi - cand.cf_start_midi)


@register_rule("step_motion_to_dissonance", **_RLM, static=True)
def step_motion_to_dissonance(state: CounterpointState, cand: Candidates) -> np.ndarray:
    """A dissonance is approached by step."""
    return is_consonant(cand.midi - cand.cf_start_midi) | (np.abs(cand.move) == 1)


@register_rule("step_motion_from_dissonance", **_RLM, key=lambda state: state.last_consonant,
               key_only=True)
def step_motion_from_dissonance(state: CounterpointState, cand: Candidates) -> np.ndarray | bool:
    """A dissonance is left by step."""
    if state.last_consonant:
        return True
    return np.abs(cand.move) == 1


@register_rule("resolution_of_suspended_dissonance", **_RLM,
               key=lambda state: (state.durations[-1] == EIGHTHS_PER_BAR
                                  and not state.last_consonant))
def resolution_of_suspended_dissonance(state: CounterpointState,
                                       cand: Candidates) -> np.ndarray | bool:
    """A dissonant tied note resolves down by step to a consonance."""
    if state.durations[-1] != EIGHTHS_PER_BAR or state.last_consonant:
        return True
    return (cand.move == -1) & is_consonant(cand.midi - cand.cf_end_midi)


@register_rule("absence_of_large_intervals", **_RLM, static=True, max_n_semitones=16)
def absence_of_large_intervals(state: CounterpointState, cand: Candidates,
                               max_n_semitones: int = 16) -> np.ndarray:
    """At most ``max_n_semitones`` (a major tenth) between the voices."""
    return ((np.abs(cand.midi - cand.cf_start_midi) <= max_n_semitones)
            & (np.abs(cand.midi - cand.cf_end_midi) <= max_n_semitones))


@register_rule("absence_of_lines_crossing", **_RLM, static=True, prohibit_unisons=True)
def absence_of_lines_crossing(state: CounterpointState, cand: Candidates,
                              prohibit_unisons: bool = True) -> np.ndarray:
    """The voices never cross (nor meet in unison, by default)."""
    sign = 1 if state.setup.counterpoint_above else -1
    lowest_gap = np.minimum(sign * (cand.midi - cand.cf_start_midi),
                            sign * (cand.midi - cand.cf_end_midi))
    return lowest_gap > 0 if prohibit_unisons else lowest_gap >= 0


@register_rule("absence_of_overlapping_motion", **_RLM, static=True)
def absence_of_overlapping_motion(state: CounterpointState, cand: Candidates) -> np.ndarray:
    """The counterpoint stays on its side of the cantus note that sounded with the last note."""
    sign = 1 if state.setup.counterpoint_above else -1
    previous_cf = state.setup.cantus_midi[(cand.start - 1) // EIGHTHS_PER_BAR]
    return sign * (cand.midi - previous_cf) > 0


# what RL-Musician misses


def _final_step(state: CounterpointState, cand: Candidates) -> tuple[np.ndarray, int, int, int]:
    """Which candidates end where the end note starts, and the end note's and the last two
    cantus notes' MIDI keys."""
    setup = state.setup
    return (cand.end == setup.final_bar_eighth, int(setup.position_midi[setup.end_position]),
            int(setup.cantus_midi[-2]), int(setup.cantus_midi[-1]))


def _parallel(before: np.ndarray | int, after: np.ndarray | int, cp_move: np.ndarray | int,
              cf_move: int) -> np.ndarray:
    """Same perfect interval before and after, both voices moving the same way."""
    return (is_perfect(after) & (np.abs(before) % 12 == np.abs(after) % 12)
            & (np.sign(cp_move) == np.sign(cf_move)) & (cf_move != 0))


@register_rule("absence_of_parallel_perfects", **_OURS, key=lambda state: _bar_ago(state),
               across_downbeats=True)
def absence_of_parallel_perfects(state: CounterpointState, cand: Candidates,
                                 across_downbeats: bool = True) -> np.ndarray:
    """No consecutive fifths, octaves or unisons in parallel motion: from note to note, from
    downbeat to downbeat (``across_downbeats``), and into the end note."""
    setup = state.setup
    time = cand.start
    bad = np.zeros(len(cand.move), dtype=bool)
    if time % EIGHTHS_PER_BAR == 0:
        bar = time // EIGHTHS_PER_BAR
        cf_before, cf_now = int(setup.cantus_midi[bar - 1]), cand.cf_start_midi
        bad |= _parallel(state.midis[-1] - cf_before, cand.midi - cf_now,
                         cand.midi - state.midis[-1], cf_now - cf_before)
        cp_before = int(state.midi_at_eighth[time - EIGHTHS_PER_BAR])
        if across_downbeats and cp_before >= 0:
            bad |= _parallel(cp_before - cf_before, cand.midi - cf_now,
                             cand.midi - cp_before, cf_now - cf_before)
    last, end_midi, cf_penult, cf_final = _final_step(state, cand)
    if last.any():
        bad |= last & _parallel(cand.midi - cf_penult, end_midi - cf_final,
                                end_midi - cand.midi, cf_final - cf_penult)
    return ~bad


def _hidden(after_interval: np.ndarray, cp_move: np.ndarray, cf_move: int,
            upper_step: np.ndarray) -> np.ndarray:
    return (is_perfect(after_interval) & (np.sign(cp_move) == np.sign(cf_move)) & (cf_move != 0)
            & ~upper_step)


@register_rule("absence_of_hidden_perfects", **_OURS, static=True, allow_upper_voice_step=True)
def absence_of_hidden_perfects(state: CounterpointState, cand: Candidates,
                               allow_upper_voice_step: bool = True) -> np.ndarray:
    """No perfect interval reached by similar motion (direct fifths and octaves), unless the
    upper voice moves by step (``allow_upper_voice_step``)."""
    setup = state.setup
    above = setup.counterpoint_above
    # branch-free, so that it also judges a batch of (last note, time) rows at once
    # (``start`` of shape (n, 1)); a note starts at eighth 8 or later, so ``bar - 1 >= 0``
    bar = cand.start // EIGHTHS_PER_BAR
    cf_move = setup.cantus_positions[bar] - setup.cantus_positions[bar - 1]
    upper_step = (np.abs(cand.move) == 1) if above else (np.abs(cf_move) == 1)
    bad = (cand.start % EIGHTHS_PER_BAR == 0) & _hidden(
        cand.midi - cand.cf_start_midi, cand.move, cf_move, upper_step & allow_upper_voice_step)
    last, end_midi, _, cf_final = _final_step(state, cand)
    end_move = setup.end_position - cand.position
    cf_move = int(setup.cantus_positions[-1] - setup.cantus_positions[-2])
    upper_step = (np.abs(end_move) == 1) if above else np.bool_(abs(cf_move) == 1)
    bad = bad | (last & _hidden(end_midi - cf_final, end_move, cf_move,
                                upper_step & allow_upper_voice_step))
    return ~bad


@register_rule("absence_of_melodic_tritone", **_OURS, static=True)
def absence_of_melodic_tritone(state: CounterpointState, cand: Candidates) -> np.ndarray:
    """No melodic augmented fourth or diminished fifth (6 semitones), into the end note too."""
    last, end_midi, _, _ = _final_step(state, cand)
    into_end = last & (np.abs(end_midi - cand.midi) == 6)
    return (np.abs(cand.midi - state.midis[-1]) != 6) & ~into_end


@register_rule("absence_of_augmented_diminished_intervals", **_OURS, static=True)
def absence_of_augmented_diminished_intervals(state: CounterpointState,
                                              cand: Candidates) -> np.ndarray:
    """No melodic augmented or diminished interval (such as G# -> F in harmonic minor)."""
    semitones = cand.midi - state.midis[-1]
    bad = is_augmented(cand.move, semitones) | is_diminished(cand.move, semitones)
    last, end_midi, _, _ = _final_step(state, cand)
    if last.any():  # into the end note: judged only where a candidate reaches it
        end_move = np.broadcast_to(state.setup.end_position - cand.position, last.shape)[last]
        to_end = end_midi - np.broadcast_to(cand.midi, last.shape)[last]
        bad = np.array(np.broadcast_to(bad, last.shape))
        bad[last] |= is_augmented(end_move, to_end) | is_diminished(end_move, to_end)
    return ~bad


@register_rule("absence_of_large_leaps", **_OURS, static=True, max_semitones=8, allow_octave=True)
def absence_of_large_leaps(state: CounterpointState, cand: Candidates, max_semitones: int = 8,
                           allow_octave: bool = True) -> np.ndarray:
    """No melodic leap of a major sixth or more (``max_semitones`` = 8), except the octave."""
    leap = np.abs(cand.midi - state.midis[-1])
    return (leap <= max_semitones) | (allow_octave & (leap == 12))


@register_rule("cadence", **_OURS, static=True)
def cadence(state: CounterpointState, cand: Candidates) -> np.ndarray:
    """The note before the end is an imperfect consonance (third or sixth) with the cantus
    that moves by step, in contrary motion when the cantus moves, to the final perfect
    consonance (the clausula vera: e.g. B4/D4 -> C5/C4)."""
    last, end_midi, cf_penult, cf_final = _final_step(state, cand)
    interval = cand.midi - cf_penult
    imperfect = is_consonant(interval) & ~is_perfect(interval)
    step = np.abs(state.setup.end_position - cand.position) == 1
    cf_move = cf_final - cf_penult
    contrary = (np.sign(end_midi - cand.midi) != np.sign(cf_move)) | (cf_move == 0)
    return ~last | (imperfect & step & contrary)


RL_MUSICIAN_RULES = (
    "rhythmic_pattern_validity", "rearticulation_stability", "absence_of_stalled_pitches",
    "absence_of_long_motion", "absence_of_skip_series", "turn_after_skip", "VI_VII_resolution",
    "step_motion_to_end", "consonance_on_strong_beat", "step_motion_to_dissonance",
    "step_motion_from_dissonance", "resolution_of_suspended_dissonance",
    "absence_of_large_intervals", "absence_of_lines_crossing", "absence_of_overlapping_motion",
)
TEXTBOOK_RULES = (
    "absence_of_parallel_perfects", "absence_of_hidden_perfects", "absence_of_melodic_tritone",
    "absence_of_augmented_diminished_intervals", "absence_of_large_leaps", "cadence",
)
STRICT_RULES = RL_MUSICIAN_RULES + TEXTBOOK_RULES
