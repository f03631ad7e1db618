"""Duet takes (a soloist and an accompanist on one clock) and their shared score onsets.

A *duet* here is one take of a piece in which two players each have a match file, both on the
same performance clock: the Brahms four-hand takes in ``shared/data/duets`` are the real ones.
This module loads them and reduces notes to *onsets*: one row per distinct score position, with
the time at which it was played (the mean over the chord's notes). It does not follow or play.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgym.datapath import data_subdir
from musicgym.errors import ScoreFileError
from musicgym.music.score import MatchedPerformance, read_match

# file names such as Brahms_Hungarian-Dance-5_Primo_2021-08-10_3.match
_TAKE_NAME = re.compile(
    r"^(?P<piece>.+?)_(?P<part>[A-Za-z]+)_(?P<date>[\d-]+)_(?P<take>\d+)\.match$"
)


BRAHMS = "brahms_hungarian_dance_5"


def default_duets_dir() -> Path:
    """Where the real duets are looked for: ``$MUSICGYM_DUETS_DIR``, else
    ``$MUSICGYM_DATA_DIR/duets``, else ``shared/data/duets`` beside a source checkout (see
    :mod:`musicgym.datapath`; the folder is read in place, never copied).

    Raises
    ------
    DataNotFoundError
        Neither variable is set and musicgym is not imported from a source checkout.
    """
    return data_subdir("duets")


@dataclass(frozen=True)
class DuetTake:
    """One take of a duet: the soloist's and the accompanist's aligned performances."""

    piece: str
    take: int
    solo: MatchedPerformance
    accompaniment: MatchedPerformance


def onsets(notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct score onsets of a note array and the mean performed time of each.

    Parameters
    ----------
    notes : numpy.ndarray, shape (n,)
        A note array with ``onset_beat`` and ``onset_sec``; notes whose ``onset_sec`` is NaN
        (not played) are ignored.

    Returns
    -------
    onset_beat : numpy.ndarray, shape (m,)
        Sorted distinct score onsets (beats) of which at least one note was played.
    onset_sec : numpy.ndarray, shape (m,)
        Mean performed onset (seconds) of the notes at each score onset.
    """
    played = notes[np.isfinite(notes["onset_sec"]) & np.isfinite(notes["onset_beat"])]
    onset_beat, inverse = np.unique(played["onset_beat"], return_inverse=True)
    total = np.bincount(inverse, weights=played["onset_sec"], minlength=len(onset_beat))
    count = np.bincount(inverse, minlength=len(onset_beat))
    return onset_beat, total / np.maximum(count, 1)


def tempo_curve(notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`onsets`, keeping only onsets played after every earlier score onset, so that
    the time is an increasing function of the score position (for interpolation)."""
    beat, sec = onsets(notes)
    keep = sec >= np.maximum.accumulate(sec)
    return beat[keep], sec[keep]


def shared_onsets(solo: np.ndarray, accompaniment: np.ndarray) -> np.ndarray:
    """Score onsets (beats) that both parts have in the score, played or not.

    Parameters
    ----------
    solo, accompaniment : numpy.ndarray
        Score note arrays of the two parts (``onset_beat`` is used).

    Returns
    -------
    numpy.ndarray, shape (k,)
        Sorted onsets in beats at which both parts start a note.
    """
    return np.intersect1d(solo["onset_beat"], accompaniment["onset_beat"])


def human_asynchrony_ms(take: DuetTake) -> tuple[np.ndarray, np.ndarray]:
    """Asynchrony of the human accompanist to the soloist at the shared onsets both played.

    Returns
    -------
    onset_beat : numpy.ndarray, shape (k,)
    asynchrony_ms : numpy.ndarray, shape (k,)
        Accompanist's onset minus soloist's onset, in ms (positive: accompanist late).
    """
    solo_beat, solo_sec = onsets(take.solo.score)
    acc_beat, acc_sec = onsets(take.accompaniment.score)
    both, i_solo, i_acc = np.intersect1d(solo_beat, acc_beat, return_indices=True)
    return both, 1000.0 * (acc_sec[i_acc] - solo_sec[i_solo])


def _cache_dir() -> Path:
    return Path(os.environ.get("MUSICGYM_CACHE_DIR", Path.home() / ".cache" / "musicgym"))


@functools.lru_cache(maxsize=64)
def _read_match_cached(path: str) -> MatchedPerformance:
    """read_match, memoised in memory and on disk (keyed by path, size and mtime).

    partitura takes about a second per match file; the arrays it yields take milliseconds.
    """
    stat = Path(path).stat()
    key = hashlib.sha1(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:20]
    cached = _cache_dir() / "match" / f"{key}.npz"
    if cached.is_file():
        with np.load(cached) as data:
            return MatchedPerformance(data["score"], data["performed"], Path(path))
    performance = read_match(path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, score=performance.score, performed=performance.performed)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only home only costs speed
    return performance


def load_duet(
    folder: str | Path, *, solo_part: str = "Primo", accompaniment_part: str = "Secondo"
) -> list[DuetTake]:
    """Load every take of a duet from match files named ``<piece>_<part>_<date>_<take>.match``.

    Parameters
    ----------
    folder : str or pathlib.Path
        A folder holding the match files (for the Brahms takes,
        ``shared/data/duets/brahms_hungarian_dance_5/match``).
    solo_part, accompaniment_part : str, keyword-only
        The part names in the file names (case-insensitive).

    Returns
    -------
    list of DuetTake
        Sorted by take number. Parsed files are cached in memory and under
        ``$MUSICGYM_CACHE_DIR/match`` (default ``~/.cache/musicgym/match``).

    Raises
    ------
    ScoreFileError
        When the folder is missing, holds no take of both parts, or a take lacks one part.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ScoreFileError(
            f"duet folder {str(folder)!r} does not exist; point it at a folder of match files "
            "such as shared/data/duets/brahms_hungarian_dance_5/match"
        )
    found: dict[tuple[str, int], dict[str, Path]] = {}
    for path in sorted(folder.glob("*.match")):
        name = _TAKE_NAME.match(path.name)
        if name:
            key = (name["piece"], int(name["take"]))
            found.setdefault(key, {})[name["part"].lower()] = path
    wanted = (solo_part.lower(), accompaniment_part.lower())
    if not any(set(wanted) & set(parts) for parts in found.values()):
        raise ScoreFileError(
            f"{str(folder)!r} holds no match file of part {solo_part!r} or "
            f"{accompaniment_part!r} named <piece>_<part>_<date>_<take>.match; "
            f"parts seen: {sorted({p for parts in found.values() for p in parts})}"
        )
    takes = []
    for (piece, take), parts in sorted(found.items(), key=lambda item: item[0][1]):
        missing = [p for p in wanted if p not in parts]
        if missing:
            raise ScoreFileError(
                f"take {take} of {piece!r} in {str(folder)!r} has no {missing[0]!r} match file; "
                "every take needs both parts on one clock"
            )
        takes.append(
            DuetTake(
                piece=piece,
                take=take,
                solo=_read_match_cached(str(parts[wanted[0]])),
                accompaniment=_read_match_cached(str(parts[wanted[1]])),
            )
        )
    return takes


def align_to_score(performed: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Give an unaligned, roughly metronomic performance (a MIDI file, no match file) its
    score positions: each performed note gets the ``onset_beat`` of the nearest score note of
    its pitch, the score's clock first stretched linearly onto the performance's (first to
    last onset); notes with none within half a beat stay unmatched (NaN).

    Notes already aligned (any finite ``onset_beat``) are returned as they are.

    Raises
    ------
    ScoreFileError
        When fewer than two distinct score onsets could be matched.
    """
    if np.isfinite(performed["onset_beat"]).any():
        return performed
    out = performed.copy()
    beat = score["onset_beat"].astype(float)
    t0, t1 = float(out["onset_sec"].min()), float(out["onset_sec"].max())
    b0, b1 = float(beat.min()), float(beat.max())
    sec_per_beat = (t1 - t0) / (b1 - b0) if b1 > b0 and t1 > t0 else 0.5
    position = b0 + (out["onset_sec"] - t0) / sec_per_beat
    used = np.zeros(len(score), dtype=bool)
    for i in np.argsort(out["onset_sec"], kind="stable").tolist():
        same = np.flatnonzero((score["pitch"] == out["pitch"][i]) & ~used)
        if same.size == 0:
            continue
        j = same[np.argmin(np.abs(beat[same] - position[i]))]
        if abs(beat[j] - position[i]) <= 0.5:
            out["onset_beat"][i], used[j] = beat[j], True
    if len(np.unique(out["onset_beat"][np.isfinite(out["onset_beat"])])) < 2:
        raise ScoreFileError(
            "the reference performance does not follow the solo part: fewer than two of its "
            "notes match the score; give a .match file or a MIDI file of the solo part")
    return out


def find_duet_takes(
    folder: str | Path, *, solo_part: str = "Primo", accompaniment_part: str = "Secondo"
) -> list[DuetTake]:
    """Every duet take in a folder of match files, paired by file name.

    The convention: each file name (without ``.match``) is made of fields separated by
    ``_``, one of which is the part name; the two parts of one take have names that differ
    only in that field (``Piece_Primo_2021-08-10_3.match`` and
    ``Piece_Secondo_2021-08-10_3.match``; ``day2_take1_solo.match`` and
    ``day2_take1_piano.match`` with ``solo_part="solo", accompaniment_part="piano"``). The
    part names are matched case-insensitively. Takes are numbered 1, 2... in the order of
    their names with the part field taken out (natural order: take 10 after take 9).

    Raises
    ------
    ScoreFileError
        When the folder is missing or holds no pair of match files of the two parts.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ScoreFileError(f"duet folder {str(folder)!r} does not exist")
    solo_l, acc_l = solo_part.lower(), accompaniment_part.lower()
    files = {p.stem.lower(): p for p in sorted(folder.rglob("*.match"))}
    pairs = []
    for stem, path in files.items():
        fields = stem.split("_")
        for k, field in enumerate(fields):
            if field != solo_l:
                continue
            partner = "_".join([*fields[:k], acc_l, *fields[k + 1:]])
            if partner in files:
                key = "_".join(fields[:k] + fields[k + 1:])
                pairs.append((key, path, files[partner]))
                break
    if not pairs:
        raise ScoreFileError(
            f"{str(folder)!r} holds no pair of match files named alike but for the part "
            f"field ({solo_part!r} for the soloist, {accompaniment_part!r} for the "
            "accompanist), e.g. Piece_Primo_day_1.match and Piece_Secondo_day_1.match; "
            "name the parts with --solo-part and --accompaniment-part")

    def natural(item):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", item[0])]

    return [DuetTake(piece=folder.name, take=number,
                     solo=_read_match_cached(str(solo)),
                     accompaniment=_read_match_cached(str(acc)))
            for number, (_, solo, acc) in enumerate(sorted(pairs, key=natural), start=1)]
