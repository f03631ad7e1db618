"""Cantus firmi: Fux's six, a seeded generator of new ones, and exercises from notes alone.

A cantus firmus is a short line of whole notes that the counterpoint is written against. This
module

* gives Fux's six cantus firmi (:func:`fux_cantus_firmi`),
* generates new, valid ones in any mode from a seed (:func:`generate_cantus`), following the
  rules Fux (*Gradus ad Parnassum*, 1725) and Jeppesen (*Counterpoint*, 1931) give for the
  cantus itself: 8 to 14 notes, starting and ending on the final, mostly steps, leaps no larger
  than a fifth (an ascending minor sixth or an octave rarely), each leap larger than a third
  turned back by a step, no melodic tritone or augmented interval, no repeated note, one
  climax, a range of at most a tenth, and the final approached by step,
* infers a cantus's tonic and mode from its notes (:func:`infer_mode`), and
* builds a whole counterpoint exercise from the notes alone (:func:`counterpoint_exercise`):
  the counterpoint's first and last notes and its range follow from the species' rules, so a
  user need not give RL-Musician's ``counterpoint_specifications``.

Pitches are MIDI key numbers, or note names where a function says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from musicgym.errors import CantusFirmusError, PitchError, ScaleError
from musicgym.music.pitch import parse_pitch
from musicgym.music.scales import Scale

# the church modes a cantus firmus may be in (Glarean's six authentic ones; locrian has no
# perfect fifth above its final, so no counterpoint can open or close on it)
CANTUS_MODES = ("dorian", "phrygian", "lydian", "mixolydian", "aeolian", "ionian")
# each mode's final on the white keys
WHITE_FINALS = {"ionian": "C", "dorian": "D", "phrygian": "E", "lydian": "F",
                "mixolydian": "G", "aeolian": "A", "locrian": "B"}
# the mode of each degree of a major scale (degree 0 = the major tonic)
_MODE_OF_DEGREE = ("ionian", "dorian", "phrygian", "lydian", "mixolydian", "aeolian", "locrian")
# major keys by number of sharps (negative: flats), for spelling and mode inference
_MAJOR_BY_FIFTHS = {-7: "Cb", -6: "Gb", -5: "Db", -4: "Ab", -3: "Eb", -2: "Bb", -1: "F",
                    0: "C", 1: "G", 2: "D", 3: "A", 4: "E", 5: "B", 6: "F#", 7: "C#"}
MIN_LENGTH, MAX_LENGTH = 4, 24
DEFAULT_LENGTHS = (8, 14)  # inclusive range of generated lengths when none is given
MAX_RANGE_STEPS = 9  # a tenth
MAX_BELOW_FINAL_STEPS = 3  # a cantus may dip at most a fourth below its final
# melodic moves in scale steps a cantus may make, with the generator's weights (steps first)
_MOVE_WEIGHTS = {1: 8.0, -1: 8.0, 2: 2.5, -2: 2.5, 3: 1.0, -3: 1.0, 4: 0.7, -4: 0.7,
                 5: 0.25, 7: 0.15, -7: 0.1}


def fux_cantus_firmi() -> dict[str, list[int]]:
    """Fux's cantus firmi, one per mode (six: dorian to ionian), as MIDI key numbers.

    Where the notes come from: the cantus firmi Fux sets in *Gradus ad Parnassum* (1725),
    Book II, first species, as printed in Alfred Mann's translation *The Study of
    Counterpoint* (1943/1965): D dorian ``D F E D G F A G F E D``, E phrygian
    ``E C D C A A G E F E``, F lydian ``F G A F D E F C A F G F``, G mixolydian
    ``G C B G C E D G E C D B A G``, A aeolian ``A C B D C E F E D C B A`` and C ionian
    ``C E F G E A G E F E D C``; they are the ``fux_*`` built-ins of
    :mod:`musicgym.music.rules.species`. How sure: the dorian one is the best-known cantus in
    the literature and certain; the other six were transcribed from memory of Mann's
    edition and agree with the copies widely reproduced in teaching material, but were not
    checked against a scan of the 1725 print (the octave of each, chosen for a tenor-like
    register, is ours). Fux gives six, not seven: one per authentic mode, none in locrian
    (whose final has no perfect fifth above it).
    """
    from musicgym.music.rules.species import CANTUS_FIRMI

    return {name: [parse_pitch(n).midi for n in spec["notes"]]
            for name, spec in CANTUS_FIRMI.items() if name.startswith("fux_")}


def _as_midi(cantus: Sequence[int | str]) -> list[int]:
    out = []
    for i, note in enumerate(cantus):
        if isinstance(note, str):
            try:
                out.append(parse_pitch(note).midi)
            except PitchError as exc:
                raise CantusFirmusError(f"cantus_firmus[{i}]: {exc}") from None
        elif isinstance(note, (int, np.integer)) and not isinstance(note, bool):
            if not 0 <= int(note) <= 127:
                raise CantusFirmusError(
                    f"cantus_firmus[{i}] is {note}, not a MIDI key number 0..127")
            out.append(int(note))
        else:
            raise CantusFirmusError(
                f"cantus_firmus[{i}] is {note!r}: give note names ('D4') or MIDI key numbers")
    if len(out) < 3:
        raise CantusFirmusError(f"a cantus firmus needs at least 3 notes, got {len(out)}")
    return out


def _major_scale_pcs(fifths: int) -> set[int]:
    tonic = parse_pitch(_MAJOR_BY_FIFTHS[fifths], default_octave=4).midi % 12
    return {(tonic + s) % 12 for s in (0, 2, 4, 5, 7, 9, 11)}


def infer_mode(cantus: Sequence[int | str]) -> tuple[str, str]:
    """The tonic (spelled, without octave) and church mode of a cantus firmus.

    The final (last note) is the tonic, as in every mode; the mode is the one whose scale on
    that final holds all the cantus's notes with the fewest sharps or flats in its signature
    (D F E D G F A G F E D: D dorian; with a B-flat: D aeolian).

    Parameters
    ----------
    cantus : sequence of int or str
        MIDI key numbers or note names.

    Returns
    -------
    (str, str)
        Tonic such as ``"D"`` or ``"Bb"``, and mode such as ``"dorian"``.

    Raises
    ------
    CantusFirmusError
        If no diatonic mode holds all the notes, or the only one is locrian (give the
        tonic and mode, or change the notes).
    """
    midis = _as_midi(cantus)
    pcs = {m % 12 for m in midis}
    final_pc = midis[-1] % 12
    for fifths in sorted(_MAJOR_BY_FIFTHS, key=lambda f: (abs(f), f)):
        if abs(fifths) == 7 or not pcs <= _major_scale_pcs(fifths):
            continue
        major = Scale(_MAJOR_BY_FIFTHS[fifths], "ionian")
        for degree in range(7):
            if int(major.midi(degree)) % 12 == final_pc:
                mode = _MODE_OF_DEGREE[degree]
                if mode == "locrian":
                    raise CantusFirmusError(
                        "this cantus firmus is locrian (its final has no perfect fifth above "
                        "it in its scale), and no counterpoint can open and close on it; "
                        "end it on another note or give tonic and mode")
                pitch = major.pitch(degree)
                tonic = pitch.letter + ("#" * pitch.alter if pitch.alter > 0
                                        else "b" * -pitch.alter)
                return tonic, mode
    raise CantusFirmusError(
        "the notes of this cantus firmus belong to no diatonic mode (it has chromatic notes); "
        "give tonic and mode, or keep to seven notes of one scale")


def _positions(scale: Scale, midis: list[int]) -> list[int]:
    out = []
    base = int(scale.midi(0))
    for i, midi in enumerate(midis):
        guess = int(round((midi - base) * 7 / 12))
        for cand in (guess, guess - 1, guess + 1, guess - 2, guess + 2):
            if int(scale.midi(cand)) == midi:
                out.append(cand)
                break
        else:
            raise CantusFirmusError(
                f"cantus_firmus[{i}] ({midi}) is not in {scale.tonic} {scale.mode} (its notes "
                f"are {', '.join(scale.pitch_class_names)}); give another mode or tonic")
    return out


def counterpoint_exercise(cantus: Sequence[int | str], *, species: int,
                          voice: str = "above", mode: str | None = None,
                          tonic: str | None = None) -> dict:
    """A counterpoint exercise on a cantus firmus given by its notes alone.

    The counterpoint's first note, last note and range follow from the species' rules (Fux,
    Book II): the first note is a perfect consonance with the cantus's first note (a fifth or
    an octave above; an octave below: a fifth below would put the piece in another mode), the
    last an octave from the final, and the range 13 scale steps (two octaves less a step) on
    the counterpoint's side of the cantus, reaching at least a fifth past the cantus's
    extreme note.

    Parameters
    ----------
    cantus : sequence of int or str
        MIDI key numbers or note names (``"D4"``), one per bar.
    species : int
        1 to 5.
    voice : {"above", "below"}
        Which side of the cantus the counterpoint lies on.
    mode, tonic : str or None
        The mode and tonic; inferred by :func:`infer_mode` when ``None``.

    Returns
    -------
    dict
        Keyword arguments of ``musicgym/Counterpoint-v0`` (and of
        :func:`~musicgym.music.rules.species.make_setup`): ``cantus_firmus`` (note names),
        ``tonic``, ``mode``, ``species``, ``start_note``, ``end_note``, ``lowest_note``,
        ``highest_note``.

    Raises
    ------
    CantusFirmusError
        If the notes are not of the mode, the voice or species is unknown, or the cantus's
        first or last note admits no perfect consonance in the tonic triad (no counterpoint
        can open or close on it).
    """
    if voice not in ("above", "below"):
        raise CantusFirmusError(f"voice must be 'above' or 'below', got {voice!r}")
    if species not in (1, 2, 3, 4, 5):
        raise CantusFirmusError(f"species must be 1, 2, 3, 4 or 5, got {species!r}")
    midis = _as_midi(cantus)
    if (mode is None) != (tonic is None):
        inferred_tonic, inferred_mode = infer_mode(midis)
        tonic = tonic or inferred_tonic
        mode = mode or inferred_mode
    elif mode is None:
        tonic, mode = infer_mode(midis)
    try:
        scale = Scale(tonic, mode)
    except ScaleError as exc:
        raise CantusFirmusError(str(exc)) from None
    pos = _positions(scale, midis)
    first, final = pos[0], pos[-1]

    def in_triad(p: int) -> bool:
        return p % 7 in (0, 2, 4)

    if not in_triad(final):
        raise CantusFirmusError(
            f"the cantus's last note {scale.name(final)} is not in the tonic triad of {tonic} "
            f"{mode}: no counterpoint can close on it; end the cantus on the final "
            f"{scale.name(final - final % 7)[:-1]} or give another tonic")
    sign = 1 if voice == "above" else -1
    # perfect consonances the opening may take, in order of preference
    openings = (4, 7) if voice == "above" else (7,)
    start = next((first + sign * k for k in openings if in_triad(first + sign * k)
                  and _perfect(scale, first, first + sign * k)), None)
    if start is None:
        raise CantusFirmusError(
            f"the cantus's first note {scale.name(first)} allows no perfect consonance in the "
            f"tonic triad of {tonic} {mode} {voice} it, so no counterpoint can open on it; "
            "start the cantus on the final (or its fifth)")
    end = final + sign * 7
    if voice == "above":
        low = min(min(pos), final)
        high = max(final + 13, max(pos) + 4, start, end)
    else:
        high = max(max(pos), final)
        low = min(final - 13, min(pos) - 4, start, end)
    return {"cantus_firmus": [scale.name(p) for p in pos], "tonic": tonic, "mode": mode,
            "species": int(species), "start_note": scale.name(start),
            "end_note": scale.name(end), "lowest_note": scale.name(low),
            "highest_note": scale.name(high)}


def _perfect(scale: Scale, a: int, b: int) -> bool:
    return abs(int(scale.midi(b)) - int(scale.midi(a))) % 12 in (0, 7)


def _default_octave_midi(scale: Scale) -> int:
    """The final's position: octave 4 for C..F, octave 3 for G..B (a tenor's register, as
    Fux's cantus firmi)."""
    base = int(scale.midi(0))  # tonic in octave -1
    while base < 55:
        base += 12
    return base


@lru_cache(maxsize=8192)
def _midi_of(scale: Scale, position: int) -> int:
    """``int(scale.midi(position))``, remembered: the search asks for the same few keys
    hundreds of thousands of times, and NumPy on one number costs microseconds."""
    return int(scale.midi(position))


def _allowed(scale: Scale, seq: list[int], move: int, n: int, low_bound: int) -> bool:
    """Whether the next note ``seq[-1] + move`` keeps the line a valid cantus (local rules)."""
    prev = seq[-1]
    nxt = prev + move
    i = len(seq)  # index of the new note
    semis = _midi_of(scale, nxt) - _midi_of(scale, prev)
    if abs(semis) in (6, 10, 11) or abs(semis) > 12:
        return False  # tritone, sevenths
    if abs(move) == 5 and semis != 8:
        return False  # the only sixth is the ascending minor sixth
    if abs(move) == 7 and abs(semis) != 12:
        return False
    if nxt < low_bound:
        return False
    lo, hi = min(min(seq), nxt), max(max(seq), nxt)
    if hi - lo > MAX_RANGE_STEPS:
        return False
    moves = [b - a for a, b in zip(seq, seq[1:], strict=False)]
    if moves:
        last = moves[-1]
        if abs(last) >= 3 and not (abs(move) == 1 and move * last < 0):
            return False  # a leap larger than a third is turned back by a step
        if abs(last) >= 2 and abs(move) >= 2 and move * last > 0:
            return False  # no two leaps in one direction
        if len(moves) >= 2 and abs(last) >= 2 and abs(moves[-2]) >= 2 and abs(move) >= 2:
            return False  # at most two leaps in a row
        run = 1
        for m in reversed(moves):
            if m * move > 0:
                run += 1
            else:
                break
        if run > 5:
            return False  # at most five moves one way
    if len(seq) >= 3 and nxt == seq[-2] and seq[-1] == seq[-3]:
        return False  # no a-b-a-b oscillation
    if seq.count(nxt) >= 3:
        return False  # no note more than three times
    remaining = n - 1 - i  # moves after this note
    # the final (position 0) must stay reachable: the last move is a step
    if remaining == 0:
        return nxt == 0
    if remaining == 1:
        return nxt in (1, -1)
    return abs(nxt) <= 4 * remaining


def _complete(scale: Scale, seq: list[int]) -> bool:
    """The whole-line rules: one climax, mostly steps, at least one leap, some range."""
    top = max(seq)
    if seq.count(top) != 1 or top < 2:
        return False
    moves = np.diff(seq)
    steps = int(np.sum(np.abs(moves) == 1))
    leaps = len(moves) - steps
    return steps >= 0.5 * len(moves) and leaps >= 1


def _extend(scale: Scale, seq: list[int], n: int, penultimate: int,
            rng: np.random.Generator, moves: np.ndarray, p: np.ndarray, budget: list[int]) -> bool:
    """Depth-first, in random order, complete ``seq`` to ``n`` valid positions (in place)."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if len(seq) == n:
        return _complete(scale, seq)
    for k in rng.choice(len(moves), size=len(moves), replace=False, p=p):
        move = int(moves[k])
        if not _allowed(scale, seq, move, n, -MAX_BELOW_FINAL_STEPS):
            continue
        if len(seq) == n - 2 and seq[-1] + move != penultimate:
            continue
        seq.append(seq[-1] + move)
        if _extend(scale, seq, n, penultimate, rng, moves, p, budget):
            return True
        seq.pop()
    return False


def generate_cantus(*, seed: int, mode: str = "dorian", tonic: str | None = None,
                    length: int | None = None) -> list[int]:
    """A new, valid cantus firmus in a mode, as MIDI key numbers (the same seed, the same one).

    The rules (Fux, Book I; Jeppesen, *Counterpoint*, ch. on the cantus): it starts and ends
    on the final; its penultimate note is a step above the final (or, a quarter of the time,
    a step below); moves are mostly steps (at least half), with at least one leap; leaps are
    thirds, fourths, fifths, an ascending minor sixth or an octave, never a tritone or a
    seventh; a leap larger than a third is turned back by a step; no two leaps go one way,
    and no more than two follow each other; no note repeats at once, none sounds more than
    three times, no two-note oscillation; at most five moves go one way; the range is at most
    a tenth and dips at most a fourth below the final; the highest note (the climax) occurs
    once, at least a third above the final.

    Parameters
    ----------
    seed : int
        Random seed.
    mode : str
        One of :data:`CANTUS_MODES` (``"dorian"`` default; ``"major"``/``"minor"`` aliases).
    tonic : str or None
        The final's pitch class (``"D"``, ``"Bb"``); ``None``: the mode's white-key final.
    length : int or None
        Number of notes, 4..24; ``None``: drawn from 8..14.

    Returns
    -------
    list of int
        MIDI key numbers; the final lies between G3 and F#4.

    Raises
    ------
    CantusFirmusError
        For an unknown or locrian mode, a bad tonic or a length out of range.
    """
    from musicgym.music.scales import MODE_ALIASES

    mode = MODE_ALIASES.get(mode, mode)
    if mode not in CANTUS_MODES:
        raise CantusFirmusError(f"mode must be one of {', '.join(CANTUS_MODES)} "
                                f"(or major/minor), got {mode!r}")
    try:
        scale = Scale(tonic if tonic is not None else WHITE_FINALS[mode], mode)
    except ScaleError as exc:
        raise CantusFirmusError(str(exc)) from None
    # the mode in the seed, so that one seed gives unrelated lines in different modes
    rng = np.random.default_rng([int(seed), CANTUS_MODES.index(mode)])
    if length is None:
        length = int(rng.integers(DEFAULT_LENGTHS[0], DEFAULT_LENGTHS[1] + 1))
    if not isinstance(length, (int, np.integer)) or not MIN_LENGTH <= length <= MAX_LENGTH:
        raise CantusFirmusError(f"length must be {MIN_LENGTH}..{MAX_LENGTH}, got {length!r}")
    n = int(length)
    moves = np.array(list(_MOVE_WEIGHTS))
    weights = np.array(list(_MOVE_WEIGHTS.values()))
    for _attempt in range(10_000):
        penultimate = -1 if rng.random() < 0.25 else 1
        seq = [0]
        if _extend(scale, seq, n, penultimate, rng, moves, weights / weights.sum(), [2_000]):
            offset = _default_octave_midi(scale) - int(scale.midi(0))
            return [int(scale.midi(p)) + offset for p in seq]
    raise CantusFirmusError(  # pragma: no cover - the rules always admit a line of 4+ notes
        f"could not generate a cantus of {n} notes in {scale.tonic} {mode}")


def admits_counterpoint(exercise: dict) -> bool:
    """Whether a counterpoint can be written on an exercise under the strict rules (the
    Counterpoint env's default): the dead-end lookahead finds a first note after which the
    piece can be finished. Costs about as much as the env's first ``reset`` (tens of ms)."""
    from musicgym.music.rules import STRICT_RULES, RuleSet
    from musicgym.music.rules.lookahead import CounterpointOracle
    from musicgym.music.rules.species import CounterpointState, make_setup

    setup = make_setup(**exercise)
    oracle = CounterpointOracle(RuleSet("counterpoint", masks=STRICT_RULES), lookahead=True)
    return bool(oracle.mask(CounterpointState(setup)).any())


def generate_exercises(n: int, *, seed: int, species: Iterable[int] = (1, 2, 3, 4, 5),
                       modes: Iterable[str] = CANTUS_MODES,
                       voices: Iterable[str] = ("above",),
                       tonics: Iterable[str | None] = (None,)) -> list[dict]:
    """``n`` counterpoint exercises on newly generated cantus firmi (for training and testing).

    Exercise ``i`` takes species, mode, voice and tonic cycling through the given ones, and a
    cantus from :func:`generate_cantus` with seed ``seed * 100_003 + i`` (then ``+ 7919``,
    ``+ 2 * 7919``, ... while the strict rules admit no counterpoint on it: about one
    exercise in ten, mostly second species, see :func:`admits_counterpoint`); each is a dict
    of :func:`counterpoint_exercise`, ready for ``musicgym/Counterpoint-v0``.
    """
    from musicgym.music.scales import MODE_ALIASES

    species, modes = list(species), list(modes)
    voices, tonics = list(voices), list(tonics)
    if n < 0 or not species or not modes or not voices or not tonics:
        raise CantusFirmusError("n must be 0 or more, and species, modes, voices and tonics "
                                "non-empty")
    out = []
    for i in range(n):
        mode = MODE_ALIASES.get(modes[i % len(modes)], modes[i % len(modes)])
        tonic = tonics[(i // len(modes)) % len(tonics)]
        scale_tonic = tonic if tonic is not None else WHITE_FINALS[mode]
        for retry in range(100):
            cantus = generate_cantus(seed=seed * 100_003 + i + 7919 * retry, mode=mode,
                                     tonic=tonic)
            exercise = counterpoint_exercise(
                cantus, species=species[i % len(species)], voice=voices[i % len(voices)],
                mode=MODE_ALIASES.get(mode, mode), tonic=scale_tonic)
            if admits_counterpoint(exercise):
                break
        else:  # pragma: no cover - never seen: most cantus firmi admit a counterpoint
            raise CantusFirmusError(f"no cantus in {mode} admitted a counterpoint in 100 draws")
        out.append(exercise)
    return out
