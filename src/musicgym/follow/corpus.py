"""The pieces and takes accompaniment episodes are drawn from, and the train/test split.

Real: the seven Brahms duet takes (primo = soloist, secondo = accompanist); takes 1-5 train,
6-7 test. Simulated: performances made by :mod:`musicgym.follow.simulate` of the Brahms primo
(train only) and of Bach chorales from music21's corpus (soprano = soloist, the three lower
voices = accompanist), split by piece. Nothing here downloads anything.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from musicgym.errors import AccompanyConfigError, DataNotFoundError
from musicgym.follow.duets import BRAHMS, DuetTake, default_duets_dir, load_duet, tempo_curve
from musicgym.follow.simulate import Expression, simulate_performance
from musicgym.music.score import read_music21

TRAIN_TAKES = (1, 2, 3, 4, 5)
TEST_TAKES = (6, 7)
TRAIN_CHORALES = ("bach/bwv66.6", "bach/bwv269", "bach/bwv347", "bach/bwv153.1")
TEST_CHORALES = ("bach/bwv84.5", "bach/bwv26.6")
SPLITS = ("train", "test")
MAX_MEMORY_TAKES = 5  # earlier takes an episode remembers (the env's ``memory``)


@dataclass(frozen=True)
class Piece:
    """A duet score: the soloist's and the accompanist's notes, and a typical beat period."""

    name: str
    solo: np.ndarray
    accompaniment: np.ndarray
    beat_period_s: float


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise AccompanyConfigError(f"unknown split {split!r}; choose one of {SPLITS}")
    return split


def split_takes(takes: list[DuetTake], split: str) -> list[DuetTake]:
    """The real takes of a split (by take number)."""
    wanted = TRAIN_TAKES if check_split(split) == "train" else TEST_TAKES
    return [t for t in takes if t.take in wanted]


def brahms_takes(duets_dir=None) -> list[DuetTake]:
    """All seven Brahms takes, or AccompanyConfigError saying where they were looked for."""
    try:
        folder = (duets_dir or default_duets_dir()) / BRAHMS / "match"
    except DataNotFoundError as exc:
        raise AccompanyConfigError(f"{exc}, or use sources=('simulated',)") from None
    if not folder.is_dir():
        raise AccompanyConfigError(
            f"the real Brahms duets are not at {str(folder)!r}: set MUSICGYM_DATA_DIR to the "
            "folder holding duets/ (or MUSICGYM_DUETS_DIR, or pass duets_dir, to the duets "
            "folder itself), or use sources=('simulated',)"
        )
    return load_duet(folder)


@functools.lru_cache(maxsize=16)
def chorale(name: str) -> Piece:
    """A Bach chorale from music21's corpus as a duet: soprano against the lower voices."""
    from music21 import corpus

    score = corpus.parse(name)
    parts = read_music21(score)
    solo = parts[parts["voice"] == 0]
    return Piece(name=name, solo=solo, accompaniment=parts[parts["voice"] > 0], beat_period_s=0.7)


PIECE_SETS = ("chorales", "many")
"""What simulated performances an env draws: ``chorales`` (the split's Bach chorales, and on
the train split the Brahms primo) or ``many`` (those, plus on the train split the first 96
beats of the corpus works :data:`TRAIN_STRESS_PIECES`)."""
TRAIN_STRESS_PIECES = (
    "bach/bwv1.6", "mozart/k155/movement1", "mozart/k80/movement1",
    "haydn/opus74no1/movement3", "haydn/opus1no1/movement1", "beethoven/opus18no1/movement1",
    "beethoven/opus59no2/movement3", "corelli/opus3no1/1grave",
)
"""Stress-test pieces (:data:`musicgym.follow.stress.STRESS_PIECES`) an agent may train on."""
VALIDATION_STRESS_PIECES = ("schumann_robert/opus41no1/movement2", "joplin/maple_leaf_rag",
                            "cpebach")
"""The other stress-test pieces: never trained on, kept to validate an agent against its base."""


def simulated_pieces(split: str, takes: list[DuetTake] | None,
                     piece_set: str = "chorales") -> list[Piece]:
    """Pieces whose simulated performances belong to a split (``piece_set``: one of
    :data:`PIECE_SETS`)."""
    if piece_set not in PIECE_SETS:
        raise AccompanyConfigError(f"unknown pieces {piece_set!r}; choose one of {PIECE_SETS}")
    names = TRAIN_CHORALES if check_split(split) == "train" else TEST_CHORALES
    pieces = [chorale(n) for n in names]
    if piece_set == "many" and split == "train":
        from musicgym.follow.stress import stress_piece  # stress imports this module

        pieces += [stress_piece(n) for n in TRAIN_STRESS_PIECES]
    if split == "train" and takes:
        first = takes[0]
        pieces.append(
            Piece(first.piece, first.solo.score, first.accompaniment.score, beat_period_s=0.42)
        )
    return pieces


def random_expression(piece: Piece, rng: np.random.Generator) -> Expression:
    """A different player each time: tempo, rubato depth, drift and accuracy drawn at random."""
    return Expression(
        beat_period_s=piece.beat_period_s * float(np.exp(rng.uniform(-0.2, 0.2))),
        phrase_bars=int(rng.choice([2, 4, 8])),
        arch_depth=float(rng.uniform(0.0, 0.25)),
        phrase_rit_depth=float(rng.uniform(0.0, 0.35)),
        final_rit_depth=float(rng.uniform(0.1, 0.5)),
        drift_sd=float(rng.uniform(0.02, 0.1)),
        onset_jitter_ms=float(rng.uniform(5.0, 25.0)),
        p_missing=float(rng.uniform(0.0, 0.06)),
        p_wrong=float(rng.uniform(0.0, 0.02)),
        p_extra=float(rng.uniform(0.0, 0.02)),
    )


def plain_rendition(piece: Piece) -> np.ndarray:
    """The soloist's score played exactly in time at the piece's beat period (OLTW reference)."""
    flat = Expression(
        beat_period_s=piece.beat_period_s, arch_depth=0, phrase_rit_depth=0, final_rit_depth=0,
        drift_sd=0, onset_jitter_ms=0, chord_spread_ms=0, melody_lead_ms=0,
        p_missing=0, p_wrong=0, p_extra=0,
    )
    return simulate_performance(piece.solo, seed=0, expression=flat).performed


def reference_take(takes: list[DuetTake], take: int) -> DuetTake:
    """The take an OLTW follows take ``take`` against: the first training take other than it."""
    for candidate in takes:
        if candidate.take in TRAIN_TAKES and candidate.take != take:
            return candidate
    for candidate in takes:  # another duet's takes: any other one
        if candidate.take != take:
            return candidate
    raise AccompanyConfigError(f"no reference take other than take {take}")


def earlier_curves(
    takes: list[DuetTake], take: int, *, limit: int | None = MAX_MEMORY_TAKES
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The soloist's tempo curves (beats, seconds) in the takes before ``take`` (the last
    ``limit`` of them; None: all): rehearsals, never the take itself."""
    earlier = [t for t in takes if t.take < take]
    if limit is not None:
        earlier = earlier[-limit:] if limit > 0 else []
    return [tempo_curve(t.solo.score) for t in earlier]
