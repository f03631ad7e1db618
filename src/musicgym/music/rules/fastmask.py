"""The strict counterpoint rules and the dead-end search as compiled code, for fresh exercises.

:class:`~musicgym.music.rules.lookahead.CounterpointOracle` judges rules in Python with NumPy,
which pays off only once its caches are warm: on an exercise it has never seen (every episode,
when training across generated exercises) most of its time goes to building the exercise's
static verdict table and to judging each new state of the dead-end search (tens of
microseconds each). This module does the same work in numba: each built-in counterpoint rule
written out for one candidate at a time (the same arithmetic as the NumPy rules in
:mod:`musicgym.music.rules.counterpoint`), a state's rule mask as a 60-bit integer, and the
depth-first search with its memo keyed by the state's future key packed into one integer
(:meth:`~musicgym.music.rules.species.CounterpointState.future_key`, field by field), visiting
states in the same order, counting the same nodes against the same budget. Its masks are the
Python oracle's, bit for bit (``tests/music/test_fastmask.py`` checks it on generated
exercises of every species against the Python path, which stays the reference and the path
for user rules, changed parameters and soft penalties).

It is not a general rule engine: only :data:`FAST_RULES` with their default parameters.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from musicgym.music.intervals import CONSONANT_CLASSES, PERFECT_CLASSES
from musicgym.music.rules.counterpoint import STRICT_RULES
from musicgym.music.rules.registry import RULES
from musicgym.music.rules.species import (
    ACTION_DURATIONS,
    ACTION_MOVES,
    EIGHTHS_PER_BAR,
    SPECIES_RHYTHMS,
    CounterpointSetup,
)

FAST_RULES = STRICT_RULES
"""The rules the compiled path knows (bit ``i`` of its rule flags is ``FAST_RULES[i]``)."""
_BIT = {name: i for i, name in enumerate(FAST_RULES)}
(_RHYTHM, _REARTICULATION, _STALLED, _LONG_MOTION, _SKIP_SERIES, _TURN, _VI_VII, _TO_END,
 _CONSONANT_STRONG, _TO_DISSONANCE, _FROM_DISSONANCE, _SUSPENSION, _LARGE_INTERVALS,
 _CROSSING, _OVERLAP, _PARALLEL, _HIDDEN, _TRITONE, _AUG_DIM, _LEAPS, _CADENCE) = range(21)
MAX_EIGHTHS = 256  # the packed key holds the time in 8 bits
MAX_MIDI = 127  # and each MIDI key of the counterpoint in 7 (a higher range: Python path)

_CONSONANT = np.isin(np.arange(12), CONSONANT_CLASSES)
_PERFECT = np.isin(np.arange(12), PERFECT_CLASSES)
_MIN_SEMITONES = np.array([0, 1, 3, 5, 7, 8, 10], dtype=np.int64)
_MAX_SEMITONES = np.array([0, 2, 4, 5, 7, 9, 11], dtype=np.int64)
_MOVES = ACTION_MOVES.astype(np.int64)
_DURATIONS = ACTION_DURATIONS.astype(np.int64)
# the dead-end search's order of actions (lookahead._SEARCH_ORDER)
_ORDER = np.lexsort((np.abs(ACTION_MOVES), -ACTION_DURATIONS)).astype(np.int64)
_N = len(_MOVES)

# setup vector fields
(_LOW, _HIGH, _MAX_SKIP, _FINAL, _TOTAL, _NBARS, _END_POS, _ABOVE, _END_MIDI, _CF_PENULT,
 _CF_FINAL, _CF_POS_LAST_MOVE, _FLAGS, _NSETUP) = range(14)
# scalar state fields: time, bar code, where the motion began (MIDI), whether the last note
# was consonant, how many notes the note arrays hold, the last note's duration
_TIME, _CODE, _MOTION, _CONS, _NPOS, _DURATION_LAST, _NSCALARS = range(7)
# where exercise_array keeps the number of states in state_mask's memo of masks (it falls
# back to 0 when the memo is emptied)
SAFE_MEMO_SIZE = _NSETUP + 1


def supports(ruleset) -> bool:
    """Whether the compiled path gives ``ruleset``'s masks: built-in rules of
    :data:`FAST_RULES` only, all masks (no soft penalties), at their default parameters."""
    if ruleset.penalty_rules:
        return False
    for name, (rule, params) in ruleset.rules.items():
        if name not in _BIT or RULES.get(name) is not rule or params != rule.defaults:
            return False
    return True


@lru_cache(maxsize=64)
def _rhythm_table(patterns: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Whether a note of each duration (1, 2, 4, 8) may follow each bar so far, by the bar's
    code (:func:`bar_code`): the rhythm rule for every bar it can meet."""
    prefixes = {p[:k] for p in patterns for k in range(1, len(p) + 1)}
    table = np.zeros((256, 4), dtype=np.bool_)
    for code in range(256):
        bounds = [0, *[b for b in range(1, 8) if code >> b & 1]]
        durations = tuple(b - a for a, b in zip(bounds, bounds[1:], strict=False))
        for i, d in enumerate((1, 2, 4, 8)):
            table[code, i] = (*durations, d) in prefixes
    table.flags.writeable = False
    return table


@lru_cache(maxsize=512)
def bar_code(bar_durations: tuple[int, ...]) -> int:
    """The durations written in the current bar as one integer: bit ``k`` is set where a note
    ends ``k`` eighths into the bar (the durations follow from the ends, and back)."""
    code, total = 0, 0
    for d in bar_durations:
        total += d
        code |= 1 << total
    return code


def setup_vector(setup: CounterpointSetup, ruleset) -> tuple[np.ndarray, ...]:
    """The exercise and rule flags as the arrays the compiled functions read."""
    flags = 0
    for name in ruleset.mask_rules:
        flags |= 1 << _BIT[name]
    cantus_midi = setup.cantus_midi.astype(np.int64)
    cantus_positions = setup.cantus_positions.astype(np.int64)
    vector = np.zeros(_NSETUP, dtype=np.int64)
    vector[[_LOW, _HIGH, _MAX_SKIP, _FINAL, _TOTAL, _NBARS, _END_POS, _ABOVE]] = (
        setup.lowest_position, setup.highest_position, setup.max_skip_degrees,
        setup.final_bar_eighth, setup.total_eighths, setup.n_bars, setup.end_position,
        int(setup.counterpoint_above))
    vector[_END_MIDI] = setup.position_midi[setup.end_position]
    vector[_CF_PENULT], vector[_CF_FINAL] = cantus_midi[-2], cantus_midi[-1]
    vector[_CF_POS_LAST_MOVE] = cantus_positions[-1] - cantus_positions[-2]
    vector[_FLAGS] = flags
    rhythm = _rhythm_table(tuple(tuple(p) for p in SPECIES_RHYTHMS[setup.species]))
    return (vector, setup.position_midi.astype(np.int64), cantus_midi, cantus_positions,
            rhythm)


_N_POSITION_MIDI = 77  # scale positions 0..76 (species.make_setup)


def exercise_array(setup: CounterpointSetup, ruleset) -> np.ndarray:
    """Everything :func:`state_mask` reads of the exercise and the rules, as one int64
    array (one argument: numba spends about half a microsecond on each argument of a call):
    the setup fields, two memo counters, then the MIDI key of each scale position, the
    cantus' keys and positions, and the rhythm table (256 x 4)."""
    vector, pm, cm, cp, rhythm = setup_vector(setup, ruleset)
    assert len(pm) == _N_POSITION_MIDI
    return np.concatenate([vector, np.zeros(2, dtype=np.int64), pm, cm, cp,
                           rhythm.astype(np.int64).ravel()])


def state_array(state, budget: int, lookahead: bool, max_cache_size: int) -> np.ndarray:
    """What :func:`state_mask` reads of a
    :class:`~musicgym.music.rules.species.CounterpointState` besides ``midi_at_eighth``: the
    time, :func:`bar_code`, the motion's start, the last note's consonance, how many of the
    last three notes exist, the last duration and MIDI key, the last three scale positions
    (the rules and the future key look back no further); then the search's node budget,
    whether to look ahead, and the memo size at which to empty the memos."""
    positions = state.positions
    n_tail = min(len(positions), 3)
    return np.array([state.time, bar_code(state.bar_durations), state.motion_start_midi,
                     int(state.last_consonant), n_tail, state.durations[-1], state.midis[-1],
                     positions[-3] if n_tail >= 3 else 0, positions[-2] if n_tail >= 2 else 0,
                     positions[-1], budget, int(lookahead), max_cache_size], dtype=np.int64)


def new_memo(capacity: int = 1024) -> np.ndarray:
    """An empty memo for :func:`state_mask`: a hash table of packed future keys (row 0; 0 is
    a free slot, and no key is 0: the time is at least 8) and answers (row 1), open
    addressing, ``capacity`` a power of two. NumPy arrays rather than numba's typed dicts,
    which cost microseconds to pass into every call."""
    return np.zeros((2, capacity), dtype=np.int64)


@njit(cache=True)
def _slot(table, key):
    """Where ``key`` is in ``table``, or the free slot where it would go."""
    mask = table.shape[1] - 1
    h = key * -7046029254386353131  # Fibonacci hashing (the constant is 2**64 / phi)
    i = (h ^ (h >> 29)) & mask
    while table[0, i] != 0 and table[0, i] != key:
        i = (i + 1) & mask
    return i


@njit(cache=True)
def _get(table, key):
    """The answer stored for ``key``, or -1."""
    i = _slot(table, key)
    return table[1, i] if table[0, i] == key else -1


@njit(cache=True)
def _put(table, counts, which, key, value):
    """Store ``value`` for ``key`` (``counts[which]`` counts the table's keys); returns the
    table, a new one twice as large once it is half full."""
    i = _slot(table, key)
    if table[0, i] != key:
        table[0, i] = key
        counts[which] += 1
    table[1, i] = value
    if 2 * counts[which] > table.shape[1]:
        larger = np.zeros((2, 2 * table.shape[1]), dtype=np.int64)
        for j in range(table.shape[1]):
            if table[0, j] != 0:
                k = _slot(larger, table[0, j])
                larger[0, k], larger[1, k] = table[0, j], table[1, j]
        return larger
    return table


@njit(cache=True)
def _sign(x):
    return (x > 0) - (x < 0)


@njit(cache=True)
def _aug_or_dim(steps, semitones):
    along = -semitones if steps < 0 else semitones
    number = abs(steps) % 7
    size = along - 12 * (abs(steps) // 7)
    return size > _MAX_SEMITONES[number] or size < _MIN_SEMITONES[number]


@njit(cache=True)
def _parallel(before, after, cp_move, cf_move):
    return (_PERFECT[abs(after) % 12] and abs(before) % 12 == abs(after) % 12
            and _sign(cp_move) == _sign(cf_move) and cf_move != 0)


@njit(cache=True)
def _hidden(after, cp_move, cf_move, upper_step):
    return (_PERFECT[abs(after) % 12] and _sign(cp_move) == _sign(cf_move) and cf_move != 0
            and not upper_step)


@njit(cache=True)
def rule_mask(setup, pm, cm, cp, rhythm, st, pos, mid, dur, mae):
    """The mask of the frame and every flagged rule for the state ``st`` (scalars) with its
    notes ``pos``/``mid``/``dur`` (the first ``st[_NPOS]``) and ``mae`` (the counterpoint key
    at each eighth, -1 where none): bit ``a`` set where action ``a`` is allowed."""
    flags = setup[_FLAGS]
    low, high, final = setup[_LOW], setup[_HIGH], setup[_FINAL]
    n = st[_NPOS]
    time, code = st[_TIME], st[_CODE]
    motion_start, last_consonant = st[_MOTION], st[_CONS] != 0
    pos_last, midi_last, dur_last = pos[n - 1], mid[n - 1], dur[n - 1]
    n_moves = n - 1
    m1 = pos[n - 1] - pos[n - 2] if n_moves >= 1 else 0
    m2 = pos[n - 2] - pos[n - 3] if n_moves >= 2 else 0
    sign = 1 if setup[_ABOVE] else -1
    end_pos, end_midi = setup[_END_POS], setup[_END_MIDI]
    cf_penult, cf_final = setup[_CF_PENULT], setup[_CF_FINAL]
    bar = time // EIGHTHS_PER_BAR
    cf_start = cm[bar]
    on_downbeat = time % EIGHTHS_PER_BAR == 0
    cf_before = cm[bar - 1]
    cf_previous = cm[(time - 1) // EIGHTHS_PER_BAR]
    cf_pos_move = cp[bar] - cp[bar - 1]
    bar_ago = mae[time - EIGHTHS_PER_BAR] if on_downbeat else -1
    degree_last = pos_last % 7 + 1
    degree_prev = pos[n - 2] % 7 + 1 if n >= 2 else 0
    out = 0
    for a in range(_N):
        m, d = _MOVES[a], _DURATIONS[a]
        p = pos_last + m
        end = time + d
        if p < low or p > high or abs(m) > setup[_MAX_SKIP] or end > final:
            continue
        midi = pm[p]
        cf_end = cm[min((end - 1) // EIGHTHS_PER_BAR, setup[_NBARS] - 1)]
        last = end == final
        consonant_start = _CONSONANT[abs(midi - cf_start) % 12]
        leap = abs(midi - midi_last)
        ok = True
        if flags >> _RHYTHM & 1:
            ok = ok and rhythm[code, 0 if d == 1 else 1 if d == 2 else 2 if d == 4 else 3] != 0
        if flags >> _REARTICULATION & 1:
            ok = ok and (degree_last == 1 or degree_last == 3 or degree_last == 5 or m != 0)
        if flags >> _STALLED & 1:
            ok = ok and not (n_moves >= 1 and m1 == 0 and m == 0)
        if flags >> _LONG_MOTION & 1:
            ok = ok and abs(midi - motion_start) <= 9
        if flags >> _SKIP_SERIES & 1:
            ok = ok and not (n_moves >= 2 and abs(m1) > 1 and abs(m2) > 1 and abs(m) > 1)
        if flags >> _TURN & 1:
            ok = ok and not (n_moves >= 1 and abs(m1) >= 3 and m != -_sign(m1))
        if flags >> _VI_VII & 1 and n >= 2:
            if degree_prev == 7 and degree_last == 6:
                ok = ok and m == -1
            elif degree_prev == 6 and degree_last == 7:
                ok = ok and m == 1
        if flags >> _TO_END & 1:
            to_end = abs(p - end_pos)
            quarters_left = (final - end + 1) // 2
            ok = ok and to_end <= quarters_left + 1 and not (quarters_left == 0 and to_end == 0)
        if flags >> _CONSONANT_STRONG & 1:
            ok = ok and (time % 4 != 0 or consonant_start)
        if flags >> _TO_DISSONANCE & 1:
            ok = ok and (consonant_start or abs(m) == 1)
        if flags >> _FROM_DISSONANCE & 1:
            ok = ok and (last_consonant or abs(m) == 1)
        if flags >> _SUSPENSION & 1 and dur_last == EIGHTHS_PER_BAR and not last_consonant:
            ok = ok and m == -1 and _CONSONANT[abs(midi - cf_end) % 12]
        if flags >> _LARGE_INTERVALS & 1:
            ok = ok and abs(midi - cf_start) <= 16 and abs(midi - cf_end) <= 16
        if flags >> _CROSSING & 1:
            ok = ok and sign * (midi - cf_start) > 0 and sign * (midi - cf_end) > 0
        if flags >> _OVERLAP & 1:
            ok = ok and sign * (midi - cf_previous) > 0
        if flags >> _PARALLEL & 1:
            if on_downbeat:
                ok = ok and not _parallel(midi_last - cf_before, midi - cf_start,
                                          midi - midi_last, cf_start - cf_before)
                if bar_ago >= 0:
                    ok = ok and not _parallel(bar_ago - cf_before, midi - cf_start,
                                              midi - bar_ago, cf_start - cf_before)
            if last:
                ok = ok and not _parallel(midi - cf_penult, end_midi - cf_final,
                                          end_midi - midi, cf_final - cf_penult)
        if flags >> _HIDDEN & 1:
            if on_downbeat:
                upper = abs(m) == 1 if sign > 0 else abs(cf_pos_move) == 1
                ok = ok and not _hidden(midi - cf_start, m, cf_pos_move, upper)
            if last:
                end_move = end_pos - p
                upper = (abs(end_move) == 1 if sign > 0
                         else abs(setup[_CF_POS_LAST_MOVE]) == 1)
                ok = ok and not _hidden(end_midi - cf_final, end_move,
                                        setup[_CF_POS_LAST_MOVE], upper)
        if flags >> _TRITONE & 1:
            ok = ok and leap != 6 and not (last and abs(end_midi - midi) == 6)
        if flags >> _AUG_DIM & 1:
            ok = ok and not _aug_or_dim(m, midi - midi_last)
            if last:
                ok = ok and not _aug_or_dim(end_pos - p, end_midi - midi)
        if flags >> _LEAPS & 1:
            ok = ok and (leap <= 8 or leap == 12)
        if flags >> _CADENCE & 1 and last:
            interval = midi - cf_penult
            imperfect = _CONSONANT[abs(interval) % 12] and not _PERFECT[abs(interval) % 12]
            cf_move = cf_final - cf_penult
            contrary = _sign(end_midi - midi) != _sign(cf_move) or cf_move == 0
            ok = ok and imperfect and abs(end_pos - p) == 1 and contrary
        if ok:
            out |= np.int64(1) << a
    return out


@njit(cache=True)
def _future_key(setup, st, pos, mae):
    """:meth:`CounterpointState.future_key` packed into one integer, field by field (an
    unwritten earlier note is 127)."""
    n, time = st[_NPOS], st[_TIME]
    p1 = pos[n - 1]
    p2 = pos[n - 2] if n >= 2 else 127
    p3 = pos[n - 3] if n >= 3 else 127
    into_bar = time % EIGHTHS_PER_BAR
    bar_ago = -2
    if into_bar == 0 and time < setup[_TOTAL]:
        bar_ago = mae[time - EIGHTHS_PER_BAR]
    bar_start = mae[time - into_bar] if into_bar else -3
    tied = 1 if st[_DURATION_LAST] == EIGHTHS_PER_BAR else 0
    return (time | st[_CODE] << 8 | p1 << 16 | p2 << 23 | p3 << 30 | st[_MOTION] << 37
            | st[_CONS] << 44 | tied << 45 | (bar_ago + 2) << 46 | (bar_start + 3) << 54)


@njit(cache=True)
def _push(setup, pm, cm, st, pos, mid, dur, mae, move, duration, record):
    """CounterpointState.add on the arrays, saving what :func:`_pop` restores in
    ``record``; returns whether the piece is finished."""
    record[0], record[1], record[2], record[3], record[4] = (
        st[_TIME], st[_CODE], st[_MOTION], st[_CONS], st[_DURATION_LAST])
    n = st[_NPOS]
    position = pos[n - 1] + move
    midi = pm[position]
    start = st[_TIME]
    end = start + duration
    pos[n], mid[n], dur[n] = position, midi, duration
    mae[start:end] = midi
    n_moves = n  # after the append
    if n_moves >= 2 and move * (pos[n - 1] - pos[n - 2]) < 0:
        st[_MOTION] = mid[n - 1]
    total = start % EIGHTHS_PER_BAR + duration
    if total < EIGHTHS_PER_BAR:
        st[_CODE] = st[_CODE] | np.int64(1) << total
    elif total == EIGHTHS_PER_BAR:
        st[_CODE] = 0
    else:
        st[_CODE] = np.int64(1) << (total - EIGHTHS_PER_BAR)
    st[_CONS] = 1 if _CONSONANT[abs(midi - cm[(end - 1) // EIGHTHS_PER_BAR]) % 12] else 0
    st[_TIME] = end
    st[_DURATION_LAST] = duration
    st[_NPOS] = n + 1
    return end >= setup[_FINAL]


@njit(cache=True)
def _pop(st, mae, record):
    time = record[0]
    st[_TIME], st[_CODE], st[_MOTION], st[_CONS], st[_DURATION_LAST] = (
        time, record[1], record[2], record[3], record[4])
    st[_NPOS] -= 1
    mae[time:] = -1


@njit(cache=True)
def _can_finish(setup, pm, cm, cp, rhythm, st, pos, mid, dur, mae, feasible, counts, budget,
                records, keys, masks, cursor):
    """Whether the piece can be finished from the state (left as found), as
    ``CounterpointOracle._can_finish`` decides it, depth first in the same order with the
    same memo; -1 when more than ``budget`` new states were met (the caller keeps the note).
    Returns the answer and the memo (a new one when it grew)."""
    key = _future_key(setup, st, pos, mae)
    known = _get(feasible, key)
    if known >= 0:
        return known, feasible
    nodes = 1
    if nodes > budget:
        return -1, feasible
    depth = 0
    keys[0] = key
    masks[0] = rule_mask(setup, pm, cm, cp, rhythm, st, pos, mid, dur, mae)
    cursor[0] = 0
    while True:
        i = cursor[depth]
        mask = masks[depth]
        while i < _N and not (mask >> _ORDER[i]) & 1:
            i += 1
        if i == _N:  # no action leads to an end: this state is a dead end
            feasible = _put(feasible, counts, 0, keys[depth], 0)
            if depth == 0:
                return 0, feasible
            depth -= 1
            _pop(st, mae, records[depth])
            cursor[depth] += 1
            continue
        cursor[depth] = i
        action = _ORDER[i]
        if _push(setup, pm, cm, st, pos, mid, dur, mae, _MOVES[action], _DURATIONS[action],
                 records[depth]):
            child = 1
        else:
            key = _future_key(setup, st, pos, mae)
            child = _get(feasible, key)
            if child < 0:
                nodes += 1
                if nodes > budget:  # give up, leaving the state as found
                    for d in range(depth, -1, -1):
                        _pop(st, mae, records[d])
                    return -1, feasible
                depth += 1
                keys[depth] = key
                masks[depth] = rule_mask(setup, pm, cm, cp, rhythm, st, pos, mid, dur, mae)
                cursor[depth] = 0
                continue
        _pop(st, mae, records[depth])
        if child:
            while True:  # a way to the end: every state on the path can be finished
                feasible = _put(feasible, counts, 0, keys[depth], 1)
                if depth == 0:
                    return 1, feasible
                depth -= 1
                _pop(st, mae, records[depth])
        cursor[depth] = i + 1


@njit(cache=True)
def safe_mask(setup, pm, cm, cp, rhythm, st, pos, mid, dur, mae, feasible, safe, counts,
              budget, lookahead, max_cache_size):
    """The oracle's mask of the state (``CounterpointOracle.mask``): the rule mask and, with
    ``lookahead``, only actions after which the piece can still be finished, as a 60-bit
    integer. ``pos``/``mid``/``dur``/``mae`` have room for the search's notes and are
    changed (restored on return except past the state's notes). Returns the mask and the
    two memos (``feasible``: by state, whether it can be finished; ``safe``: by state, its
    mask), new ones where they grew or were emptied."""
    if not lookahead:
        return rule_mask(setup, pm, cm, cp, rhythm, st, pos, mid, dur, mae), feasible, safe
    key = _future_key(setup, st, pos, mae)
    known = _get(safe, key)
    if known >= 0:
        return known, feasible, safe
    rules = rule_mask(setup, pm, cm, cp, rhythm, st, pos, mid, dur, mae)
    if counts[1] > max_cache_size:
        feasible = np.zeros((2, 1024), dtype=np.int64)
        safe = np.zeros((2, 1024), dtype=np.int64)
        counts[:] = 0
    depth_max = setup[_TOTAL] + 2
    records = np.empty((depth_max, 5), dtype=np.int64)
    keys = np.empty(depth_max, dtype=np.int64)
    masks = np.empty(depth_max, dtype=np.int64)
    cursor = np.empty(depth_max, dtype=np.int64)
    record = np.empty(5, dtype=np.int64)
    out = rules
    for action in range(_N):
        if not (rules >> action) & 1:
            continue
        if _push(setup, pm, cm, st, pos, mid, dur, mae, _MOVES[action], _DURATIONS[action],
                 record):
            ok = 1
        else:
            ok, feasible = _can_finish(setup, pm, cm, cp, rhythm, st, pos, mid, dur, mae,
                                       feasible, counts, budget, records, keys, masks, cursor)
        _pop(st, mae, record)
        if ok == 0:
            out &= ~(np.int64(1) << action)
    safe = _put(safe, counts, 1, key, out)
    return out, feasible, safe


@njit(cache=True)
def state_mask(exercise, feasible, safe, scalars, midi_at_eighth):
    """:func:`safe_mask` of a state given by :func:`state_array` and its ``midi_at_eighth``
    (not changed) on the exercise of :func:`exercise_array`, as a bool array of shape (60,),
    with the memos (new ones where they grew or were emptied)."""
    setup = exercise[:_NSETUP]
    counts = exercise[_NSETUP:_NSETUP + 2]
    n_bars = setup[_NBARS]
    base = _NSETUP + 2
    pm = exercise[base:base + _N_POSITION_MIDI]
    base += _N_POSITION_MIDI
    cm = exercise[base:base + n_bars]
    cp = exercise[base + n_bars:base + 2 * n_bars]
    rhythm = exercise[base + 2 * n_bars:base + 2 * n_bars + 1024].reshape((256, 4))
    capacity = setup[_TOTAL] + 8
    st = np.empty(_NSCALARS, dtype=np.int64)
    pos = np.empty(capacity, dtype=np.int64)
    mid = np.empty(capacity, dtype=np.int64)
    dur = np.empty(capacity, dtype=np.int64)
    n_tail = scalars[4]
    st[_TIME], st[_CODE], st[_MOTION], st[_CONS], st[_NPOS], st[_DURATION_LAST] = (
        scalars[0], scalars[1], scalars[2], scalars[3], n_tail, scalars[5])
    pos[0], pos[1], pos[2] = scalars[7], scalars[8], scalars[9]
    if n_tail < 3:  # fewer than three notes: keep the last ones first
        for i in range(n_tail):
            pos[i] = pos[3 - n_tail + i]
    mid[n_tail - 1], dur[n_tail - 1] = scalars[6], scalars[5]
    bits, feasible, safe = safe_mask(setup, pm, cm, cp, rhythm, st, pos, mid, dur,
                                     midi_at_eighth.copy(), feasible, safe, counts,
                                     scalars[10], scalars[11] != 0, scalars[12])
    out = np.empty(_N, dtype=np.bool_)
    for a in range(_N):
        out[a] = (bits >> a) & 1
    return out, feasible, safe


@njit(cache=True)
def count_loops(columns, min_size, max_size, bar_eighths):
    """The count behind ``scores.looped_fragments``: fragments of ``min_size`` to
    ``max_size`` eighths of ``columns`` (one value per eighth), starting before the last bar
    and no later than ``total - 2 * size``, that an identical fragment follows at once."""
    total = len(columns)
    count = 0
    for size in range(min_size, max_size + 1):
        last_start = min(total - 2 * size, total - bar_eighths - 1)
        for start in range(0, min(last_start, total - 1) + 1):
            looped = True
            for j in range(start, min(start + size, total)):
                if columns[j] != columns[min(j + size, total - 1)]:
                    looped = False
                    break
            if looped:
                count += 1
    return count
