"""RL-Musician's five whole-piece scores, with its default parameters (weights 1, maximum 3).

Each score is ``score(piece, **params) -> float`` on a finished
:class:`~musicgym.music.rules.species.CounterpointState`. The numbers match RL-Musician 0.4.6
(``environment/evaluation.py``); the code is vectorised so that all five take well under a
millisecond.
"""

from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np

from musicgym.music.rules.registry import get_score, register_score
from musicgym.music.rules.species import EIGHTHS_PER_BAR, CounterpointState

SCORE_NAMES = ("looped_fragments", "entropy", "narrow_ranges", "climax_explicity",
               "number_of_skips")


def _roll_columns(piece: CounterpointState) -> np.ndarray:
    """One integer per eighth for the set of sounding keys (both voices share one piano roll,
    as in RL-Musician, so a unison or the opening rest shows the cantus key alone)."""
    cf = np.repeat(piece.setup.cantus_midi, EIGHTHS_PER_BAR)
    cp = np.where(piece.midi_at_eighth < 0, cf, piece.midi_at_eighth)
    return np.minimum(cf, cp) * 256 + np.maximum(cf, cp)


@register_score("looped_fragments", source="rl-musician", min_size=4, max_size=None)
def looped_fragments(piece: CounterpointState, min_size: int = 4,
                     max_size: int | None = None) -> float:
    """Minus the number of piano-roll fragments (``min_size`` eighths or longer, starting
    before the last bar) immediately followed by an identical fragment."""
    columns = _roll_columns(piece)
    total = len(columns)
    if min_size >= 0 and "musicgym.music.rules.fastmask" not in sys.modules:
        # numba is not loaded yet in this process: loading it costs about 0.6 s of CPU (its
        # import, SciPy's, and its first call), more than the NumPy count costs on all the
        # pieces a search scores (about 20 us each), so a process that writes pieces on one
        # exercise (``musicgym compose``: the oracle's compiled path starts at a second one)
        # never loads it for this
        count = _count_loops(columns, min_size, max_size or total // 2, EIGHTHS_PER_BAR)
    else:  # compiled, once numba is loaded: a few microseconds a piece
        from musicgym.music.rules.fastmask import count_loops

        count = count_loops(columns, min_size, max_size or total // 2, EIGHTHS_PER_BAR)
    return -float(count)


def _count_loops(columns: np.ndarray, min_size: int, max_size: int, bar_eighths: int) -> int:
    """:func:`musicgym.music.rules.fastmask.count_loops` in NumPy (the same count): for every
    size and start, whether the fragment differs nowhere from the one ``size`` later."""
    total = len(columns)
    later, window_end, counted = _loop_indices(total, min_size, max_size, bar_eighths)
    differs = np.zeros((len(later), total + 1), dtype=np.int32)  # running counts, per size
    np.cumsum(columns[later] != columns, axis=1, out=differs[:, 1:])
    return int(np.count_nonzero((differs.take(window_end) == differs[:, :total]) & counted))


@lru_cache(maxsize=64)
def _loop_indices(total: int, min_size: int, max_size: int,
                  bar_eighths: int) -> tuple[np.ndarray, ...]:
    """What :func:`_count_loops` indexes by, for one piece length (a search's pieces share
    it): per size (rows) and eighth (columns), the eighth ``size`` later (the last at most),
    where the window from this eighth ends (a flat index into the running counts, a row
    longer) and whether a fragment starting here counts."""
    sizes = np.arange(min_size, max_size + 1)[:, None]
    starts = np.arange(total)[None, :]
    later = np.minimum(starts + sizes, total - 1)
    window_end = np.minimum(starts + sizes, total)
    window_end += np.arange(len(sizes))[:, None] * (total + 1)
    counted = starts <= np.minimum(total - 2 * sizes, total - bar_eighths - 1)
    for array in (later, window_end, counted):
        array.flags.writeable = False
    return later, window_end, counted


@register_score("entropy", source="rl-musician")
def entropy(piece: CounterpointState) -> float:
    """Entropy of the counterpoint's pitch histogram (per note) over its allowed range,
    divided by its maximum: 0 (one pitch) .. 1 (every pitch equally often)."""
    setup = piece.setup
    n_pitches = setup.highest_position - setup.lowest_position + 1
    counts = np.bincount(np.asarray(piece.positions) - setup.lowest_position,
                         minlength=n_pitches)
    p = counts[counts > 0] / len(piece.positions)
    return float(-(p * np.log(p)).sum() / np.log(n_pitches))


@register_score("narrow_ranges", source="rl-musician", min_size=9, penalties=None)
def narrow_ranges(piece: CounterpointState, min_size: int = 9,
                  penalties: dict[int, float] | None = None) -> float:
    """Minus a penalty for every ``min_size`` consecutive notes spanning few scale steps
    (default ``{2: 1, 3: 0.5}``: 1 for a width of 2 steps or less, 0.5 for 3)."""
    penalties = penalties or {2: 1.0, 3: 0.5}
    n = len(piece.positions)
    if n < min_size:
        return 0.0
    windows = np.asarray(piece.positions)[_window_indices(n, min_size)]
    widths = windows.max(axis=1) - windows.min(axis=1)
    total, by_width = 0.0, {}
    for width in widths.tolist():
        penalty = by_width.get(width)
        if penalty is None:
            applicable = [v for k, v in penalties.items() if k >= width]
            penalty = by_width[width] = max(applicable) if applicable else 0.0
        total -= penalty
    return total


@lru_cache(maxsize=256)
def _window_indices(n: int, size: int) -> np.ndarray:
    """Indices of every ``size`` consecutive notes of ``n`` (one window a row): the windows
    :func:`narrow_ranges` reads, by one fancy index (a search's pieces share a few lengths;
    ``sliding_window_view`` costs more than the count itself on pieces this short)."""
    indices = np.arange(n - size + 1)[:, None] + np.arange(size)
    indices.flags.writeable = False
    return indices


@register_score("climax_explicity", source="rl-musician", shortage_penalty=0.3,
                duplication_penalty=0.5)
def climax_explicity(piece: CounterpointState, shortage_penalty: float = 0.3,
                     duplication_penalty: float = 0.5) -> float:
    """1 minus ``shortage_penalty`` per scale step the peak falls short of ``highest_note``,
    minus ``duplication_penalty`` per repeat of the peak after it is first reached."""
    positions = list(piece.positions)  # short: plain Python is quicker than NumPy here
    peak = max(positions)
    repeats = positions[positions.index(peak) + 1:].count(peak)
    shortage = piece.setup.highest_position - peak
    return float(1.0 - shortage_penalty * shortage - duplication_penalty * repeats)


@register_score("number_of_skips", source="rl-musician", rewards=None)
def number_of_skips(piece: CounterpointState, rewards: dict[int, float] | None = None) -> float:
    """A reward for the number of skips (moves of 2+ scale steps, the move into the end note
    included): ``{1: .8, 2: .9, 3: 1, 4: .9, 5: .5, 6: .25}``, else 0."""
    rewards = rewards or {1: 0.8, 2: 0.9, 3: 1.0, 4: 0.9, 5: 0.5, 6: 0.25}
    n_skips = sum(1 for m in piece.moves if abs(m) > 1)
    return float(rewards.get(n_skips, 0.0))


def score_piece(
    piece: CounterpointState,
    *,
    coefs: dict[str, float] | None = None,
    params: dict[str, dict] | None = None,
) -> dict[str, float]:
    """Weighted scores of a finished piece and their sum under ``"total"``.

    Parameters
    ----------
    piece : CounterpointState
        A finished piece.
    coefs : dict or None, keyword-only
        Score name -> weight (default: RL-Musician's five, weight 1 each).
    params : dict or None, keyword-only
        Score name -> parameters overriding the defaults.

    Returns
    -------
    dict
        ``{name: weighted score, ..., "total": sum}``.
    """
    coefs = _DEFAULT_COEFS if coefs is None else coefs
    params = params or {}
    result = {}
    for name, weight in coefs.items():
        result[name] = float(weight) * _bound_score(name, params.get(name))(piece)
    result["total"] = float(sum(result.values()))
    return result


_DEFAULT_COEFS = dict.fromkeys(SCORE_NAMES, 1.0)
_BOUND: dict[tuple, object] = {}


def _bound_score(name: str, params: dict | None):
    """``get_score(name).bind(params)``, remembered for parameters that can be hashed (the
    score functions take numbers and small dicts of numbers)."""
    try:
        key = (name, repr(sorted(params.items())) if params else None)
    except TypeError:  # unorderable keys: bind afresh
        return get_score(name).bind(params)
    bound = _BOUND.get(key)
    if bound is None or get_score(name).fn is not _BOUND.get((name, "fn")):
        bound = _BOUND[key] = get_score(name).bind(params)
        _BOUND[(name, "fn")] = get_score(name).fn
    return bound
