"""A stress test for score followers: many pieces, many ways to play them.

:func:`stress_cases` builds simulated performances (:mod:`musicgym.follow.simulate`) of
:data:`STRESS_PIECES`, excerpts of music21's corpus (Bach, Mozart, Haydn, Beethoven, Corelli,
Schumann, Joplin, C. P. E. Bach: fast runs, repeated notes, dotted rhythms, long notes), each
played in the ways of :data:`VARIANTS`: at the reference's tempo, at half and at double it,
with deep rubato, sloppily (many wrong, missing and extra notes), with long unwritten rests
(a player stopping and going on), with trills (fast unmatched notes around written ones), and
with the tempo drifting from far slower to far faster than the reference. Every follower
follows against the piece's solo part played metronomically at :data:`REFERENCE_BEAT_S` (as
``musicgym live accompany`` does without a ``--reference``).

:func:`tracking_errors` measures how far a follower's reports are from the soloist;
:func:`lost` says whether it lost the soloist (an error over :data:`LOST_S`). :func:`run_stress`
runs followers over the cases and :func:`format_stress` prints the table. For OLTW,
:func:`failure_causes` names what was going on where the follower was lost.
"""

from __future__ import annotations

import functools
import time
import zlib
from dataclasses import dataclass, replace

import numpy as np

from musicgym.errors import AccompanyConfigError
from musicgym.follow.corpus import Piece, plain_rendition
from musicgym.follow.duets import onsets
from musicgym.follow.followers import make_follower
from musicgym.follow.simulate import Expression, simulate_performance
from musicgym.music.notes import NOTE_DTYPE
from musicgym.music.score import MatchedPerformance

STRESS_PIECES = (
    "bach/bwv1.6",
    "mozart/k155/movement1",
    "mozart/k80/movement1",
    "haydn/opus74no1/movement3",
    "haydn/opus1no1/movement1",
    "beethoven/opus18no1/movement1",
    "beethoven/opus59no2/movement3",
    "corelli/opus3no1/1grave",
    "schumann_robert/opus41no1/movement2",
    "joplin/maple_leaf_rag",
    "cpebach",
)
"""music21 corpus works whose first part is the soloist (the others accompany)."""

VARIANTS = ("plain", "half", "double", "rubato", "sloppy", "rests", "trills", "drift")
"""Ways each piece is played (see :func:`simulate_variant`)."""

REFERENCE_BEAT_S = 0.5  # the reference plays a quarter note at 120 bpm
EXCERPT_BEATS = 96.0  # the first 96 beats of each piece: enough of it, and quick to run
LOST_S = 1.0


@dataclass(frozen=True)
class StressCase:
    """One simulated performance of a piece, with the reference it is followed against."""

    piece: str
    variant: str
    performance: MatchedPerformance
    reference: np.ndarray


@functools.lru_cache(maxsize=32)
def stress_piece(name: str, excerpt_beats: float = EXCERPT_BEATS) -> Piece:
    """The first ``excerpt_beats`` of a corpus work as a duet: its first part (voice 0) solo."""
    from music21 import corpus

    from musicgym.music.score import read_music21

    notes = read_music21(corpus.parse(name))
    notes = notes[notes["onset_beat"] < excerpt_beats]
    solo, accompaniment = notes[notes["voice"] == 0], notes[notes["voice"] > 0]
    if len(np.unique(solo["onset_beat"])) < 8:
        raise AccompanyConfigError(f"{name!r}: its first part has too few notes to follow")
    return Piece(name=name, solo=solo, accompaniment=accompaniment,
                 beat_period_s=REFERENCE_BEAT_S)


def simulate_variant(piece: Piece, variant: str, seed: int) -> MatchedPerformance:
    """One performance of ``piece`` played the ``variant`` way.

    ``plain``: the default player (:class:`Expression`) at the reference's tempo; ``half`` /
    ``double``: at half / double it; ``rubato``: deep phrase arches and drift; ``sloppy``:
    15 % of notes left out, 5 % wrong, 5 % extra; ``rests``: three stops of 2-4 s where the
    score has none; ``trills``: one written note in ten trilled (unmatched notes a tone above,
    every 60 ms, over its length); ``drift``: the tempo gliding from 0.6 to 1.7 times the
    reference's over the excerpt.
    """
    if variant not in VARIANTS:
        raise AccompanyConfigError(f"unknown stress variant {variant!r}; choose one of {VARIANTS}")
    rng = np.random.default_rng(seed)
    base = Expression(beat_period_s=piece.beat_period_s)
    expression = {
        "half": replace(base, beat_period_s=2.0 * piece.beat_period_s),
        "double": replace(base, beat_period_s=0.5 * piece.beat_period_s),
        "rubato": replace(base, arch_depth=0.35, phrase_rit_depth=0.4, drift_sd=0.15),
        "sloppy": replace(base, p_missing=0.15, p_wrong=0.05, p_extra=0.05),
    }.get(variant, base)
    take = simulate_performance(piece.solo, seed=seed, expression=expression)
    if variant == "rests":
        return _with_rests(take, rng)
    if variant == "trills":
        return _with_trills(take, rng)
    if variant == "drift":
        return _with_drift(take)
    return take


def _retime(take: MatchedPerformance, new_time) -> MatchedPerformance:
    score, performed = take.score.copy(), take.performed.copy()
    for notes in (score, performed):
        start, end = notes["onset_sec"], notes["onset_sec"] + notes["duration_sec"]
        notes["onset_sec"] = new_time(start)
        notes["duration_sec"] = np.maximum(new_time(end) - notes["onset_sec"], 0.02)
    return MatchedPerformance(score=score, performed=performed, path=None)


def _with_rests(take: MatchedPerformance, rng: np.random.Generator) -> MatchedPerformance:
    beat, sec = onsets(take.score)
    chosen = np.sort(rng.choice(beat[2:-2], size=min(3, len(beat) - 4), replace=False))
    # the stop comes before the first note the soloist plays of the chosen onset (a chord
    # spread or a melody lead plays some notes before the onset's mean time): a stop at the
    # mean time would split the chord across it
    score, performed = take.score, take.performed
    at = np.array([min(score["onset_sec"][score["onset_beat"] == b].min(),
                       np.nanmin(performed["onset_sec"][performed["onset_beat"] == b],
                                 initial=np.inf)) for b in chosen.tolist()])
    pause = rng.uniform(2.0, 4.0, at.size)

    def new_time(t):
        return t + np.sum(np.where(t[..., None] >= at - 1e-9, pause, 0.0), axis=-1)

    return _retime(take, new_time)


def _with_drift(take: MatchedPerformance) -> MatchedPerformance:
    _, sec = onsets(take.score)
    t0, t1 = float(np.nanmin(sec)), float(np.nanmax(sec))
    # local speed s(t) from 0.6 to 1.7 times the played one: time is stretched by 1/s
    grid = np.linspace(t0, t1, 512)
    speed = 0.6 + 1.1 * (grid - t0) / max(t1 - t0, 1e-9)
    warped = t0 + np.concatenate([[0.0], np.cumsum(np.diff(grid) / speed[:-1])])

    def new_time(t):
        t = np.asarray(t, dtype=float)
        inside = np.interp(t, grid, warped)
        return np.where(t > t1, warped[-1] + (t - t1) / speed[-1], inside)

    return _retime(take, new_time)


def _with_trills(take: MatchedPerformance, rng: np.random.Generator) -> MatchedPerformance:
    performed = take.performed
    written = np.flatnonzero(np.isfinite(performed["onset_beat"])
                             & (performed["duration_sec"] > 0.25))
    chosen = written[rng.random(written.size) < 0.1]
    extra = []
    for i in chosen.tolist():
        note = performed[i]
        times = note["onset_sec"] + np.arange(0.06, note["duration_sec"] - 0.03, 0.06)
        trill = np.zeros(times.size, dtype=NOTE_DTYPE)
        trill["onset_sec"], trill["duration_sec"] = times, 0.05
        trill["pitch"] = np.where(np.arange(times.size) % 2 == 0, note["pitch"] + 2,
                                  note["pitch"])
        trill["velocity"], trill["onset_beat"], trill["duration_beat"] = 50, np.nan, np.nan
        trill["id"] = [f"t{i}_{k}" for k in range(times.size)]
        extra.append(trill)
    if not extra:
        return take
    notes = np.concatenate([performed, *extra])
    notes = notes[np.argsort(notes["onset_sec"], kind="stable")]
    return MatchedPerformance(score=take.score, performed=notes, path=None)


def stress_cases(pieces: tuple[str, ...] = STRESS_PIECES,
                 variants: tuple[str, ...] = VARIANTS, *, seed: int = 0) -> list[StressCase]:
    """Every piece played every way (seeded: the same cases each time)."""
    cases = []
    for name in pieces:
        piece = stress_piece(name)
        reference = plain_rendition(piece)
        for variant in variants:
            # seeded by name: a case is the same whichever others are built with it
            case_seed = seed + zlib.crc32(f"{name}:{variant}".encode())
            take = simulate_variant(piece, variant, seed=case_seed)
            cases.append(StressCase(name, variant, take, reference))
    return cases


def tracking_errors(report_sec: np.ndarray, report_beat: np.ndarray,
                    performed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How late and how early a follower was, per played solo onset (seconds).

    ``late[k]``: time from onset ``k`` being played to the first report naming it or a later
    onset (infinite when none comes). ``early[k]``: for a report naming onset ``k``, how long
    before onset ``k`` was played it was made (0 when not early or not reported).
    """
    beat, sec = onsets(performed)
    report_sec, report_beat = np.asarray(report_sec), np.asarray(report_beat)
    late = np.full(len(beat), np.inf)
    early = np.zeros(len(beat))
    if report_sec.size:
        # reports are in score order: the first reaching beat b is found by a search
        reach = np.maximum.accumulate(report_beat)
        first = np.searchsorted(reach, beat - 1e-9)
        ok = first < report_sec.size
        late[ok] = report_sec[first[ok]] - sec[ok]
        index = np.searchsorted(beat, report_beat)
        named = (index < len(beat)) & (beat[np.minimum(index, len(beat) - 1)] == report_beat)
        early[index[named]] = np.maximum(sec[index[named]] - report_sec[named], 0.0)
    return late, early


def lost(report_sec, report_beat, performed: np.ndarray, *, lost_s: float = LOST_S) -> bool:
    """Whether a follower lost the soloist: an onset not reached within ``lost_s`` of being
    played (the last second of the take excepted), or one reported ``lost_s`` early."""
    late, early = tracking_errors(report_sec, report_beat, performed)
    _, sec = onsets(performed)
    counted = sec < sec.max() - lost_s
    return bool(np.any(late[counted] > lost_s) or np.any(early > lost_s))


def failure_causes(case: StressCase, report_sec, report_beat) -> list[str]:
    """What the soloist was doing where a follower first fell more than :data:`LOST_S` behind
    or ahead: ``tempo`` (the local tempo beyond 1.5 times or below 2/3 of the reference's),
    ``silence`` (a gap over 1 s in the soloist's playing just before), ``repeated notes`` (a
    key repeated among the last 4 onsets), ``fast run`` (onsets under 120 ms apart)."""
    performed = case.performance.performed
    late, early = tracking_errors(report_sec, report_beat, performed)
    beat, sec = onsets(performed)
    bad = np.flatnonzero((late > LOST_S) | (early > LOST_S))
    if bad.size == 0:
        return []
    k = int(bad[0])
    lo = max(k - 4, 0)
    ref_beat, ref_sec = onsets(case.reference)
    causes = []
    span_beat, span_sec = beat[k] - beat[lo], sec[k] - sec[lo]
    ref_span = np.interp(beat[k], ref_beat, ref_sec) - np.interp(beat[lo], ref_beat, ref_sec)
    if span_sec > 0 and ref_span > 0 and span_beat > 0:
        ratio = ref_span / span_sec
        if ratio > 1.5 or ratio < 2.0 / 3.0:
            causes.append("tempo")
    if np.any(np.diff(sec[lo:k + 1]) > 1.0):
        causes.append("silence")
    played = performed[np.isfinite(performed["onset_beat"])]
    recent = played[(played["onset_beat"] >= beat[lo]) & (played["onset_beat"] <= beat[k])]
    top = [int(recent["pitch"][recent["onset_beat"] == b].max())
           for b in np.unique(recent["onset_beat"])]
    if len(top) != len(set(top)):
        causes.append("repeated notes")
    if np.any(np.diff(sec[lo:k + 1]) < 0.12):
        causes.append("fast run")
    return causes or ["other"]


def run_stress(followers: tuple[str, ...], cases: list[StressCase] | None = None) -> dict:
    """Follow every case with every follower.

    Returns
    -------
    dict
        ``{follower: {"lost": n, "cases": n, "lost_cases": [...], "within_100_ms": share of
        onsets reported within 100 ms, "off_by_1s": share of onsets reached more than 1 s late
        or reported more than 1 s early, "causes": {cause: n}, "seconds": run time}}``.
    """
    from musicgym.follow.followers import follower_errors_ms

    cases = stress_cases() if cases is None else cases
    out = {}
    for name in followers:
        start = time.perf_counter()
        lost_cases, causes, errors, off = [], {}, [], []
        for case in cases:
            follower = make_follower(name, reference=case.reference, seed=0)
            report_sec, report_beat, _ = follower.follow(case.performance.performed)
            errors.append(follower_errors_ms(report_sec, report_beat, case.performance.performed))
            late, early = tracking_errors(report_sec, report_beat, case.performance.performed)
            off.append((late > LOST_S) | (early > LOST_S))
            if lost(report_sec, report_beat, case.performance.performed):
                lost_cases.append(f"{case.piece}:{case.variant}")
                for cause in failure_causes(case, report_sec, report_beat):
                    causes[cause] = causes.get(cause, 0) + 1
        every = np.abs(np.concatenate(errors))
        out[name] = {"lost": len(lost_cases), "cases": len(cases), "lost_cases": lost_cases,
                     "within_100_ms": float(np.mean(np.isfinite(every) & (every <= 100))),
                     "off_by_1s": float(np.mean(np.concatenate(off))),
                     "causes": causes, "seconds": time.perf_counter() - start}
    return out


def format_stress(results: dict) -> str:
    """:func:`run_stress`'s results as a Markdown table."""
    lines = ["| follower | lost the soloist | solo onsets reported within 100 ms | "
             "solo onsets off by over 1 s | where it was lost |", "|---|---|---|---|---|"]
    for name, r in results.items():
        causes = ", ".join(f"{c} {n}" for c, n in sorted(r["causes"].items(),
                                                          key=lambda item: -item[1])) or "-"
        lines.append(f"| {name} | {r['lost']} / {r['cases']} | {r['within_100_ms']:.1%} | "
                     f"{r['off_by_1s']:.1%} | {causes} |")
    return "\n".join(lines)
