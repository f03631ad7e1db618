"""Species counterpoint against a cantus firmus: the set-up, the piece in progress, candidates.

Time is counted in eighth notes, 8 to a bar, one cantus firmus note per bar. The counterpoint's
first note is given (it sounds from ``start_pause_eighths`` to the end of bar 1), its last note
is given (it fills the last bar), and everything between is written one note at a time: a note
is a move of -7..+7 scale steps from the previous note and a duration of 1, 2, 4 or 8 eighths.
That is RL-Musician's action set, encoded the same way: ``action = duration_index * 15 +
move + 7``.

:class:`CounterpointState` keeps the few running facts the rules need (position in the bar, the
durations already in this bar, past moves, where the current melodic direction began, whether
the last note was consonant), so checking all 60 candidates costs a few vector operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from musicgym.errors import CantusFirmusError, ScaleError
from musicgym.music.intervals import CONSONANT_CLASSES
from musicgym.music.scales import Scale

EIGHTHS_PER_BAR = 8
DURATIONS_EIGHTHS = (1, 2, 4, 8)
MAX_MOVE = 7
N_MOVES = 2 * MAX_MOVE + 1
N_ACTIONS = N_MOVES * len(DURATIONS_EIGHTHS)
ACTION_MOVES = np.tile(np.arange(-MAX_MOVE, MAX_MOVE + 1), len(DURATIONS_EIGHTHS))
ACTION_DURATIONS = np.repeat(np.asarray(DURATIONS_EIGHTHS), N_MOVES)

# bar rhythms of each species, in eighths; an 8 after a half bar is tied over the barline and
# its second half opens the next bar. Nothing may be tied into the last bar.
SPECIES_RHYTHMS: dict[int, tuple[tuple[int, ...], ...]] = {
    1: ((8,),),
    2: ((4, 4),),
    3: ((2, 2, 2, 2),),
    4: ((4, 8), (4, 4)),  # a fourth-species line may break the syncopation when it must
    5: ((4, 4), (4, 2, 2), (4, 2, 1, 1), (2, 2, 2, 2), (2, 2, 2, 1, 1), (2, 1, 1, 2, 2),
        (4, 8), (2, 2, 8), (2, 1, 1, 8)),
}
SPECIES_START_PAUSE = {1: 0, 2: 4, 3: 4, 4: 4, 5: 4}

# RL-Musician's default piece (configs/default_config.yml)
RL_MUSICIAN_CANTUS = ("C4", "D4", "E4", "C4", "A3", "B3", "C4", "G4", "E4", "C4", "D4", "C4")

# Built-in cantus firmi: RL-Musician's default and Fux's (Gradus ad Parnassum, 1725), one per
# mode, each with a counterpoint range above it.
CANTUS_FIRMI: dict[str, dict] = {
    "rl_musician": {"notes": RL_MUSICIAN_CANTUS, "tonic": "C", "mode": "major",
                    "start_note": "G4", "end_note": "C5", "lowest_note": "C4",
                    "highest_note": "B5"},
    "fux_dorian": {"notes": ("D4", "F4", "E4", "D4", "G4", "F4", "A4", "G4", "F4", "E4", "D4"),
                   "tonic": "D", "mode": "dorian"},
    "fux_phrygian": {"notes": ("E4", "C4", "D4", "C4", "A3", "A4", "G4", "E4", "F4", "E4"),
                     "tonic": "E", "mode": "phrygian"},
    "fux_lydian": {"notes": ("F4", "G4", "A4", "F4", "D4", "E4", "F4", "C5", "A4", "F4", "G4",
                             "F4"), "tonic": "F", "mode": "lydian"},
    "fux_mixolydian": {"notes": ("G3", "C4", "B3", "G3", "C4", "E4", "D4", "G4", "E4", "C4",
                                 "D4", "B3", "A3", "G3"), "tonic": "G", "mode": "mixolydian"},
    "fux_aeolian": {"notes": ("A3", "C4", "B3", "D4", "C4", "E4", "F4", "E4", "D4", "C4", "B3",
                              "A3"), "tonic": "A", "mode": "aeolian"},
    "fux_ionian": {"notes": ("C4", "E4", "F4", "G4", "E4", "A4", "G4", "E4", "F4", "E4", "D4",
                             "C4"), "tonic": "C", "mode": "ionian"},
}


def builtin_cantus(name: str) -> dict:
    """Keyword arguments of :func:`make_setup` for a built-in cantus firmus.

    Fux's cantus firmi get a counterpoint above them: it starts a fifth above the first note,
    ends an octave above the last, and moves within the thirteen scale steps from the final.

    Raises
    ------
    CantusFirmusError
        If there is no built-in cantus of that name.
    """
    if name not in CANTUS_FIRMI:
        raise CantusFirmusError(
            f"unknown built-in cantus firmus {name!r}; choose one of {', '.join(CANTUS_FIRMI)} "
            "or give the notes as a list"
        )
    spec = dict(CANTUS_FIRMI[name])
    scale = Scale(spec["tonic"], spec["mode"])
    first, final = (scale.position_of(spec["notes"][i]) for i in (0, -1))
    defaults = {"start_note": scale.name(first + 4), "end_note": scale.name(final + 7),
                "lowest_note": scale.name(final), "highest_note": scale.name(final + 13)}
    spec["cantus_firmus"] = spec.pop("notes")
    return {**defaults, **spec}


def encode_action(move: int, duration_eighths: int) -> int:
    """Action number of a (move in scale steps, duration in eighths) pair."""
    return DURATIONS_EIGHTHS.index(duration_eighths) * N_MOVES + move + MAX_MOVE


def decode_action(action: int) -> tuple[int, int]:
    """(move in scale steps, duration in eighths) of an action number."""
    return int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action])


@dataclass(frozen=True)
class CounterpointSetup:
    """Everything fixed about one counterpoint exercise (build it with :func:`make_setup`)."""

    scale: Scale
    cantus_positions: np.ndarray
    cantus_midi: np.ndarray
    species: int
    start_position: int
    end_position: int
    lowest_position: int
    highest_position: int
    start_pause_eighths: int
    max_skip_degrees: int
    counterpoint_above: bool
    position_midi: np.ndarray

    @cached_property
    def n_bars(self) -> int:
        return len(self.cantus_positions)

    @cached_property
    def total_eighths(self) -> int:
        return self.n_bars * EIGHTHS_PER_BAR

    @cached_property
    def final_bar_eighth(self) -> int:
        """Eighth at which the last bar (the given end note) starts."""
        return self.total_eighths - EIGHTHS_PER_BAR

    def name(self, position: int) -> str:
        return self.scale.name(position)

    @cached_property
    def midi_lists(self) -> tuple[list[int], list[int]]:
        """``position_midi`` and ``cantus_midi`` as Python lists (fast scalar look-ups)."""
        return self.position_midi.tolist(), self.cantus_midi.tolist()


def _position(scale: Scale, note: str, field_name: str) -> int:
    try:
        try:
            return _position_of(scale, note)
        except TypeError:  # an unhashable note: parse it afresh
            return scale.position_of(note)
    except (ScaleError, ValueError) as exc:
        raise CantusFirmusError(f"{field_name}: {exc}") from None


@lru_cache(maxsize=4096)
def _position_of(scale: Scale, note: str) -> int:
    """``scale.position_of(note)``, remembered: exercises on generated cantus firmi reuse a
    few dozen notes, and parsing them is most of an exercise's set-up."""
    return scale.position_of(note)


@lru_cache(maxsize=256)
def _position_midis(scale: Scale) -> np.ndarray:
    """MIDI keys of scale positions 0..76 (read only: shared by the exercises in ``scale``)."""
    midis = scale.midi(np.arange(0, 7 * 11))
    midis.flags.writeable = False
    return midis


def make_setup(
    cantus_firmus: tuple[str, ...] | list[str] = RL_MUSICIAN_CANTUS,
    *,
    tonic: str = "C",
    mode: str = "major",
    species: int = 5,
    start_note: str = "G4",
    end_note: str = "C5",
    lowest_note: str = "C4",
    highest_note: str = "B5",
    start_pause_eighths: int | None = None,
    max_skip_degrees: int = 7,
) -> CounterpointSetup:
    """Check and build a counterpoint exercise (defaults: RL-Musician's default piece).

    Raises
    ------
    CantusFirmusError
        If a note is outside the scale, the cantus or the boundary notes do not belong to the
        tonic triad where they must, the range is empty or does not hold the start and end
        notes, or the species, rest or skip size is out of range. The message names the field.
    """
    scale = Scale(tonic, mode)
    if species not in SPECIES_RHYTHMS:
        raise CantusFirmusError(f"species must be 1, 2, 3, 4 or 5, got {species!r}")
    if len(cantus_firmus) < 3:
        raise CantusFirmusError(
            f"cantus_firmus needs at least 3 notes (one per bar), got {len(cantus_firmus)}"
        )
    cantus = np.array([_position(scale, n, f"cantus_firmus[{i}]")
                       for i, n in enumerate(cantus_firmus)])
    points = {name: _position(scale, note, name) for name, note in (
        ("start_note", start_note), ("end_note", end_note),
        ("lowest_note", lowest_note), ("highest_note", highest_note))}
    for field_name, position in (("cantus_firmus[0]", cantus[0]), ("cantus_firmus[-1]", cantus[-1]),
                                 ("start_note", points["start_note"]),
                                 ("end_note", points["end_note"])):
        if scale.degree(position) not in (1, 3, 5):
            raise CantusFirmusError(
                f"{field_name} is {scale.name(int(position))}, which is not in the tonic triad of "
                f"{tonic} {mode}; a line must start and end on degree 1, 3 or 5"
            )
    low, high = points["lowest_note"], points["highest_note"]
    if low >= high:
        raise CantusFirmusError(
            f"lowest_note {lowest_note} must be below highest_note {highest_note}")
    for name in ("start_note", "end_note"):
        if not low <= points[name] <= high:
            raise CantusFirmusError(
                f"{name} must lie between lowest_note {lowest_note} and "
                f"highest_note {highest_note}")
    pause = SPECIES_START_PAUSE[species] if start_pause_eighths is None else start_pause_eighths
    if pause not in (0, 2, 4):
        raise CantusFirmusError(f"start_pause_eighths must be 0, 2 or 4, got {pause!r}")
    if not 1 <= max_skip_degrees <= MAX_MOVE:
        raise CantusFirmusError(f"max_skip_degrees must be 1..{MAX_MOVE}, got {max_skip_degrees}")
    position_midi = _position_midis(scale)
    return CounterpointSetup(
        scale=scale, cantus_positions=cantus, cantus_midi=position_midi[cantus],
        species=species, start_position=points["start_note"], end_position=points["end_note"],
        lowest_position=low, highest_position=high, start_pause_eighths=pause,
        max_skip_degrees=max_skip_degrees,
        counterpoint_above=bool(position_midi[points["start_note"]] > position_midi[cantus[0]]),
        position_midi=position_midi,
    )


class Candidates:
    """All 60 possible next notes, as arrays of shape (60,) indexed by action number.

    Attributes: ``move`` (scale steps), ``duration`` (eighths), ``position`` (scale position),
    ``midi``, ``end`` (eighth where each would end), ``cf_end_midi`` (cantus note sounding at
    each one's last eighth); scalars ``start`` (eighth), ``cf_start_midi`` (cantus note at
    ``start``).
    """

    __slots__ = ("move", "duration", "position", "midi", "start", "end", "cf_start_midi",
                 "cf_end_midi")

    def __init__(self, state: CounterpointState) -> None:
        setup = state.setup
        self.move = ACTION_MOVES
        self.duration = ACTION_DURATIONS
        self.position = state.positions[-1] + ACTION_MOVES
        self.midi = setup.position_midi[np.clip(self.position, 0, len(setup.position_midi) - 1)]
        self.start = state.time
        self.end = state.time + ACTION_DURATIONS
        self.cf_start_midi = int(setup.cantus_midi[state.time // EIGHTHS_PER_BAR])
        last_bar = np.minimum((self.end - 1) // EIGHTHS_PER_BAR, setup.n_bars - 1)
        self.cf_end_midi = setup.cantus_midi[last_bar]


class CounterpointState:
    """A counterpoint line in progress against the cantus firmus of ``setup``."""

    def __init__(self, setup: CounterpointSetup) -> None:
        self.setup = setup
        self.positions = [setup.start_position]
        self.midis = [int(setup.position_midi[setup.start_position])]
        self.starts = [setup.start_pause_eighths]
        self.durations = [EIGHTHS_PER_BAR - setup.start_pause_eighths]
        self.time = EIGHTHS_PER_BAR
        self.moves: list[int] = []
        self.bar_durations: tuple[int, ...] = ()
        self.motion_start_midi = self.midis[0]
        self.last_consonant = True
        self.finished = False
        self.midi_at_eighth = np.full(setup.total_eighths, -1, dtype=np.int64)
        self.midi_at_eighth[setup.start_pause_eighths:EIGHTHS_PER_BAR] = self.midis[0]
        self._candidates: Candidates | None = None
        self._signature: tuple | None = None

    def copy(self) -> CounterpointState:
        """An independent copy (the set-up is shared)."""
        new = object.__new__(CounterpointState)
        # the attributes copied as one dict, spelled out rather than looped over by name: a
        # search copies a state per node kept
        fields = self.__dict__.copy()
        fields["positions"] = self.positions[:]
        fields["midis"] = self.midis[:]
        fields["starts"] = self.starts[:]
        fields["durations"] = self.durations[:]
        fields["moves"] = self.moves[:]
        fields["midi_at_eighth"] = self.midi_at_eighth.copy()
        new.__dict__ = fields
        return new

    def signature(self) -> tuple:
        """Everything the built-in rules read from the state, as a hashable key: two states
        with equal signatures get the same verdict from every built-in rule (with parameters
        looking back at most 2 moves)."""
        if self._signature is None:
            self._signature = self._make_signature()
        return self._signature

    def _make_signature(self) -> tuple:
        time = self.time
        on_downbeat = time % EIGHTHS_PER_BAR == 0 and time < self.setup.total_eighths
        return (time, self.bar_durations, tuple(self.positions[-3:]), self.motion_start_midi,
                self.last_consonant, self.durations[-1] == EIGHTHS_PER_BAR,
                int(self.midi_at_eighth[time - EIGHTHS_PER_BAR]) if on_downbeat else -2)

    def future_key(self) -> tuple:
        """Everything the rules can read from this state and every state after it, as a
        hashable key: two states with equal keys can be finished in the same ways. It is the
        :meth:`signature` plus, between downbeats, the counterpoint key sounding at the start
        of the bar (the next downbeat's parallel-perfects rule reads it, and it can lie further
        back than the signature's last three notes)."""
        time = self.time
        into_bar = time % EIGHTHS_PER_BAR
        if into_bar:
            return (*self.signature(), int(self.midi_at_eighth[time - into_bar]))
        return self.signature()

    def push(self, move: int, duration_eighths: int) -> tuple:
        """:meth:`add` a note, returning what :meth:`pop` needs to take it back (no copy of
        the state is made: a search walks forward and back on one state)."""
        record = (self.time, self.bar_durations, self.motion_start_midi, self.last_consonant,
                  self._candidates, self._signature)
        self.add(move, duration_eighths)
        return record

    def pop(self, record: tuple) -> None:
        """Take back the note of the :meth:`push` that returned ``record`` (the last one)."""
        (time, self.bar_durations, self.motion_start_midi, self.last_consonant,
         self._candidates, self._signature) = record
        n = 2 if self.finished else 1  # a finishing note brought the end note with it
        self.finished = False
        # spelled out rather than looped over: a dead-end search pops once per state it tries
        del self.positions[-n:]
        del self.midis[-n:]
        del self.starts[-n:]
        del self.durations[-n:]
        del self.moves[-n:]
        # notes are written in time order, so everything from ``time`` on was unwritten
        self.midi_at_eighth[time:] = -1
        self.time = time

    def candidates(self) -> Candidates:
        """The candidate next notes (computed once per state)."""
        if self._candidates is None:
            self._candidates = Candidates(self)
        return self._candidates

    def frame_mask(self) -> np.ndarray:
        """Candidates allowed by the exercise itself, before any rule: inside the range, a
        move no larger than ``max_skip_degrees``, nothing held into the last bar."""
        setup, cand = self.setup, self.candidates()
        return ((cand.position >= setup.lowest_position)
                & (cand.position <= setup.highest_position)
                & (np.abs(cand.move) <= setup.max_skip_degrees)
                & (cand.end <= setup.final_bar_eighth))

    def add(self, move: int, duration_eighths: int) -> None:
        """Append a note (no rule is checked here) and, at the last bar, the end note."""
        setup = self.setup
        position_midi, cantus_midi = setup.midi_lists
        positions, midis, moves = self.positions, self.midis, self.moves
        position = positions[-1] + move
        midi = position_midi[position]
        start = self.time
        end = start + duration_eighths
        positions.append(position)
        midis.append(midi)
        self.starts.append(start)
        self.durations.append(duration_eighths)
        self.midi_at_eighth[start:end] = midi
        moves.append(move)
        bar_durations = self.bar_durations
        total = sum(bar_durations) + duration_eighths
        if total < EIGHTHS_PER_BAR:
            self.bar_durations = (*bar_durations, duration_eighths)
        elif total == EIGHTHS_PER_BAR:
            self.bar_durations = ()
        else:
            self.bar_durations = (total - EIGHTHS_PER_BAR,)
        if len(moves) >= 2 and move * moves[-2] < 0:
            self.motion_start_midi = midis[-2]
        cf_last = cantus_midi[(end - 1) // EIGHTHS_PER_BAR]
        self.last_consonant = abs(midi - cf_last) % 12 in CONSONANT_CLASSES
        self.time = end
        self._candidates = None
        self._signature = None
        if self.time >= setup.final_bar_eighth:
            self._finish()

    def _finish(self) -> None:
        setup = self.setup
        end_midi = int(setup.position_midi[setup.end_position])
        self.moves.append(setup.end_position - self.positions[-1])
        self.positions.append(setup.end_position)
        self.midis.append(end_midi)
        self.starts.append(setup.final_bar_eighth)
        self.durations.append(EIGHTHS_PER_BAR)
        self.midi_at_eighth[setup.final_bar_eighth:] = end_midi
        self.time = setup.total_eighths
        self.finished = True
