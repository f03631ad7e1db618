"""``musicgym/Counterpoint-v0``: write a counterpoint, note by note, against a cantus firmus."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from musicgym.envs.rendering import check_render_mode
from musicgym.errors import CantusFirmusError, InvalidActionError, RuleError
from musicgym.music.rules import RL_MUSICIAN_RULES, STRICT_RULES, RuleSet, rule_reward, score_piece
from musicgym.music.rules.lookahead import CounterpointOracle
from musicgym.music.rules.species import (
    ACTION_DURATIONS,
    ACTION_MOVES,
    EIGHTHS_PER_BAR,
    N_ACTIONS,
    CounterpointSetup,
    CounterpointState,
    builtin_cantus,
    make_setup,
)

RULE_PRESETS = {"strict": STRICT_RULES, "rl_musician": RL_MUSICIAN_RULES}


class CounterpointEnv(gym.Env):
    """
    ## Description

    Species counterpoint (Fux's species 1 to 5) against a cantus firmus of whole notes, in any
    key or mode. The counterpoint's first note (after an opening rest) and last note are given;
    the agent writes every note between, one per step, as a move of -7..+7 scale steps from
    the previous note and a duration of 1, 2, 4 or 8 eighths (8 after a half bar is a note tied
    over the barline). Music-theory rules decide which notes are allowed (hard masks) or cost
    reward (soft penalties): RL-Musician's 15 rules and, by default, parallel and hidden
    fifths and octaves, melodic tritones, augmented and diminished melodic intervals, leaps of a
    major sixth or more, and the cadence. The finished piece is scored by RL-Musician's five
    scores. With ``lookahead=True`` (default) the mask also removes every note after which the
    piece can no longer be finished, so a masked random policy never dead-ends.

    ## Action Space

    ``Discrete(60)``, RL-Musician's encoding: ``action = duration_index * 15 + move + 7``.

    | Num    | Action                                   | Min | Max |
    |--------|------------------------------------------|-----|-----|
    | 0-14   | move -7..+7 scale steps, 1 eighth        | 0   | 14  |
    | 15-29  | move -7..+7 scale steps, 2 eighths       | 15  | 29  |
    | 30-44  | move -7..+7 scale steps, 4 eighths       | 30  | 44  |
    | 45-59  | move -7..+7 scale steps, 8 eighths       | 45  | 59  |

    ``info["action_mask"]`` (int8, shape (60,)) and :meth:`action_masks` (bool, for
    sb3-contrib's MaskablePPO) give the allowed actions.

    ## Observation Space

    ``Box(0, 1, (4 * P * T + 9,), float32)``: a piano roll of ``P`` pitch rows (MIDI keys from
    the lowest to the highest note either voice can play) by ``T`` eighths, flattened channel
    by channel, then the position.

    | Index                  | Observation                                    | Min | Max |
    |------------------------|------------------------------------------------|-----|-----|
    | [0, P*T)               | cantus firmus sounding (row = key, column = eighth) | 0 | 1 |
    | [P*T, 2*P*T)           | counterpoint sounding                          | 0   | 1   |
    | [2*P*T, 3*P*T)         | cantus firmus note onsets                      | 0   | 1   |
    | [3*P*T, 4*P*T)         | counterpoint note onsets                       | 0   | 1   |
    | [4*P*T, 4*P*T+8)       | position in the bar, one-hot over 8 eighths    | 0   | 1   |
    | 4*P*T+8                | position in the piece (eighths written / T)    | 0   | 1   |

    ## Rewards

    ``r_t = sum_k w_k * p_k(a_t)`` for the soft-penalty rules ``k`` (``p_k`` is -1 per violation,
    weights ``penalties``), plus, on the step that finishes the piece, RL-Musician's score
    ``S = sum_j c_j * s_j`` (``scoring_coefs``, all 1 by default; ``S`` is at most 3.0, and
    unbounded below through ``looped_fragments`` and ``narrow_ranges``), or, on a dead end,
    ``reward_for_dead_end`` (-3). An invalid action under ``invalid_action="penalize"`` gets
    ``invalid_action_penalty`` (-1). With the defaults (every rule a mask) all step rewards are 0
    and the episode return is the score ``S``. ``info["rule_violations"]`` counts violations per
    rule; ``info["scores"]`` holds the final scores.

    ## Starting State

    The cantus firmus, the opening rest and the start note fill the first bar; the agent writes
    from the second bar on. Resetting is deterministic (the exercise is fixed by the arguments).

    ## Episode End

    * terminated: the line reaches the last bar; the given end note is added.
    * truncated: no allowed action remains (a dead end, rare with ``lookahead``), or
      ``max_steps`` steps have been taken (counting invalid no-op steps).

    ## Arguments

    ```python
    import gymnasium as gym
    import musicgym  # registers the ids
    env = gym.make("musicgym/Counterpoint-v0", cantus_firmus="fux_dorian", species=2)
    ```

    * ``cantus_firmus``: a built-in name (``"rl_musician"`` (default), ``"fux_dorian"``,
      ``"fux_phrygian"``, ``"fux_lydian"``, ``"fux_mixolydian"``, ``"fux_aeolian"``,
      ``"fux_ionian"``), or any cantus by its notes alone: a list of note names or MIDI key
      numbers, or a string of note names separated by spaces (``"D4 F4 E4 D4 G4 F4 A4 G4 F4
      E4 D4"``). Then ``tonic`` and ``mode``, unless given, are inferred from the notes (the
      last note is the final; the mode with the fewest accidentals holding them all), and the
      counterpoint's ``start_note``, ``end_note``, ``lowest_note`` and ``highest_note``,
      unless given, follow from the species' rules (a perfect consonance to open, the octave
      to close, 13 scale steps of range on its side; see
      :func:`musicgym.music.cantus.counterpoint_exercise`).
    * ``voice``: ``"above"`` (default) or ``"below"``: the counterpoint's side of the cantus
      (for a built-in cantus, ``"below"`` derives a range below it).
    * ``species`` (1-5, default 5), ``tonic``, ``mode``, ``start_note``, ``end_note``,
      ``lowest_note``, ``highest_note``, ``start_pause_eighths``, ``max_skip_degrees``:
      the exercise (RL-Musician's field names and defaults).
    * ``rules``: ``"strict"`` (default), ``"rl_musician"`` (its 15 rules only) or a list of
      rule names or functions, used as hard masks; ``penalties``: ``{rule: weight}`` used as
      soft penalties instead; ``rule_params``: ``{rule: {param: value}}``.
    * ``scoring_coefs``, ``scoring_fn_params``: RL-Musician's score weights and parameters.
    * ``reward_for_dead_end`` (-3.0), ``invalid_action`` (``"penalize"``: no-op and penalty,
      the default, or ``"raise"``: :class:`~musicgym.errors.InvalidActionError`),
      ``invalid_action_penalty`` (-1.0), ``lookahead`` (True), ``max_steps`` (256).
    * ``render_mode``: None (default), ``"rgb_array"`` (``render()`` returns a uint8 piano
      roll (240, 512, 3) of the piece so far: cantus blue, counterpoint orange, bar lines grey,
      a dark line at the time written to; notes that broke a soft-penalty rule have a red band
      over their span (with the default rules, all masks, nothing is ever marked)) or
      ``"ansi"`` (both voices as note names); any other raises
      :class:`~musicgym.errors.RenderModeError`. :meth:`episode_audio` renders both voices
      through musicgym's engine in 12-TET (A4 = 440 Hz) at 120 quarter notes per minute.

    ## Version History

    * v0: initial version; ``"rgb_array"`` rendering and :meth:`episode_audio` added within
      v0.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

    def __init__(
        self,
        cantus_firmus: str | Iterable[str] = "rl_musician",
        *,
        species: int = 5,
        tonic: str | None = None,
        mode: str | None = None,
        start_note: str | None = None,
        end_note: str | None = None,
        lowest_note: str | None = None,
        highest_note: str | None = None,
        start_pause_eighths: int | None = None,
        max_skip_degrees: int = 7,
        voice: str | None = None,
        rules: str | Iterable[str | Callable[..., Any]] = "strict",
        penalties: Mapping[str | Callable[..., Any], float] | None = None,
        rule_params: Mapping[str, dict] | None = None,
        scoring_coefs: Mapping[str, float] | None = None,
        scoring_fn_params: Mapping[str, dict] | None = None,
        reward_for_dead_end: float = -3.0,
        invalid_action: str = "penalize",
        invalid_action_penalty: float = -1.0,
        lookahead: bool = True,
        max_steps: int = 256,
        render_mode: str | None = None,
    ) -> None:
        self.setup = _build_setup(cantus_firmus, species=species, tonic=tonic, mode=mode,
                                  start_note=start_note, end_note=end_note,
                                  lowest_note=lowest_note, highest_note=highest_note,
                                  start_pause_eighths=start_pause_eighths,
                                  max_skip_degrees=max_skip_degrees, voice=voice)
        penalties = dict(penalties or {})
        masks = RULE_PRESETS[rules] if isinstance(rules, str) and rules in RULE_PRESETS else rules
        if isinstance(masks, str) or not isinstance(masks, Iterable):
            raise RuleError(
                f"rules must be 'strict', 'rl_musician' or a list of rules, got {rules!r}")
        masks = [r for r in masks if r not in penalties]
        self.ruleset = RuleSet("counterpoint", masks=masks, penalties=penalties,
                               params=rule_params)
        self.oracle = CounterpointOracle(self.ruleset, lookahead=lookahead)
        self.scoring_coefs = dict(scoring_coefs) if scoring_coefs is not None else None
        self.scoring_fn_params = dict(scoring_fn_params or {})
        if invalid_action not in ("raise", "penalize"):
            raise InvalidActionError(
                f"invalid_action must be 'raise' or 'penalize', got {invalid_action!r}")
        self.invalid_action = invalid_action
        self.invalid_action_penalty = float(invalid_action_penalty)
        self.reward_for_dead_end = float(reward_for_dead_end)
        self.max_steps = int(max_steps)
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"],
                                             "Counterpoint-v0")

        setup = self.setup
        cf_low, cf_high = int(setup.cantus_midi.min()), int(setup.cantus_midi.max())
        cp_low = int(setup.position_midi[setup.lowest_position])
        cp_high = int(setup.position_midi[setup.highest_position])
        self._low_key = min(cf_low, cp_low)
        self._n_keys = max(cf_high, cp_high) - self._low_key + 1
        roll_size = 4 * self._n_keys * setup.total_eighths
        self.observation_space = _observation_space(roll_size + 9)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.state = CounterpointState(setup)
        # the observation buffer: the roll (a view into it), then the position
        self._obs = np.zeros(roll_size + 9, dtype=np.float32)
        self._roll = self._obs[:roll_size].reshape(4, self._n_keys, setup.total_eighths)
        self._mask = np.zeros(N_ACTIONS, dtype=bool)

    # gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        setup = self.setup
        self.state = CounterpointState(setup)
        self._steps = 0
        self._violations = dict.fromkeys(self.ruleset.names, 0)
        self._marks: list[tuple[int, int]] = []  # (start, eighths) of notes that broke a rule
        self._roll[:] = 0.0
        rows = setup.cantus_midi - self._low_key
        for bar, row in enumerate(rows):
            self._roll[0, row, bar * EIGHTHS_PER_BAR:(bar + 1) * EIGHTHS_PER_BAR] = 1.0
            self._roll[2, row, bar * EIGHTHS_PER_BAR] = 1.0
        self._draw_note(0)
        self._mask = self.oracle.mask(self.state)
        if not self._mask.any():
            raise CantusFirmusError(
                "no counterpoint can be written on this cantus firmus under these rules "
                "(no first note is allowed); relax the rules, widen the range or change the "
                "start note"
            )
        return self._get_obs(), self._info()

    def step(self, action):
        if not (0 <= action < N_ACTIONS if type(action) is int  # fast path for plain ints
                else self.action_space.contains(action)):
            raise InvalidActionError(
                f"action {action!r} is not in Discrete({N_ACTIONS}); give an int 0..{N_ACTIONS - 1}"
            )
        action = int(action)
        self._steps += 1
        truncated = self._steps >= self.max_steps
        if not self._mask[action]:
            if self.invalid_action == "raise":
                raise InvalidActionError(self._explain(action))
            info = self._info()
            info["invalid_action"] = True
            return self._get_obs(), self.invalid_action_penalty, False, truncated, info

        reward = 0.0  # every rule a mask: nothing to judge beyond the mask
        if self.ruleset.penalty_rules:
            _, penalty, outputs = self.oracle.check(self.state)
            reward = float(penalty[action])
            for name in self.ruleset.penalty_rules:
                if rule_reward(outputs[name], action) < 0:
                    self._violations[name] += 1
                    self._marks.append((self.state.time, int(ACTION_DURATIONS[action])))
        n_before = len(self.state.positions)
        self.state.add(int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action]))
        for index in range(n_before, len(self.state.positions)):
            self._draw_note(index)

        terminated = self.state.finished
        extra: dict[str, Any] = {}
        if terminated:
            self._mask = np.zeros(N_ACTIONS, dtype=bool)
            scores = score_piece(self.state, coefs=self.scoring_coefs,
                                 params=self.scoring_fn_params)
            reward += scores["total"]
            extra["scores"] = scores
        else:
            self._mask = self.oracle.mask(self.state)
            if not self._mask.any():
                truncated = True
                reward += self.reward_for_dead_end
                extra["dead_end"] = True
        info = self._info()
        info.update(extra)
        return self._get_obs(), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Allowed actions as a bool array of shape (60,) (sb3-contrib's MaskablePPO API)."""
        return self._mask.copy()

    def render(self) -> np.ndarray | str | None:
        """The piano roll (``"rgb_array"``) or the note names (``"ansi"``) of the piece so far;
        see Arguments."""
        if self.render_mode == "rgb_array":
            from musicgym.envs.rendering import piano_roll

            setup, state = self.setup, self.state
            notes = [(0, bar * EIGHTHS_PER_BAR, EIGHTHS_PER_BAR, int(key))
                     for bar, key in enumerate(setup.cantus_midi)]
            notes += [(1, int(s), int(d), int(k))
                      for s, d, k in zip(state.starts, state.durations, state.midis, strict=True)]
            return piano_roll(notes, total=setup.total_eighths, low_key=self._low_key,
                              high_key=self._low_key + self._n_keys - 1, marks=self._marks,
                              now=state.time, bar=EIGHTHS_PER_BAR)
        if self.render_mode != "ansi":
            return None
        names = [self.setup.name(p) for p in self.state.positions]
        cantus = [self.setup.name(int(p)) for p in self.setup.cantus_positions]
        return f"counterpoint: {' '.join(names)}\ncantus:       {' '.join(cantus)}"

    def episode_audio(self, *, sr: int = 44100) -> tuple[np.ndarray, int]:
        """The piece so far through musicgym's engine (12-TET, A4 = 440 Hz, an eighth is
        0.25 s): ((2, n) float32 audio, ``sr``)."""
        from musicgym.envs.rendering import render_notes
        from musicgym.music.tunings import midi_to_hz

        setup, state, eighth = self.setup, self.state, 0.25
        notes = [(0, bar * EIGHTHS_PER_BAR * eighth, EIGHTHS_PER_BAR * eighth,
                  midi_to_hz(float(key))) for bar, key in enumerate(setup.cantus_midi)]
        notes += [(1, s * eighth, d * eighth, midi_to_hz(float(k)))
                  for s, d, k in zip(state.starts, state.durations, state.midis, strict=True)]
        return render_notes(notes, sr=sr), sr

    # helpers

    def _draw_note(self, index: int) -> None:
        state = self.state
        row = state.midis[index] - self._low_key
        start = state.starts[index]
        self._roll[1, row, start:start + state.durations[index]] = 1.0
        self._roll[3, row, start] = 1.0

    def _get_obs(self) -> np.ndarray:
        position = self._obs[-9:]
        position[:] = 0.0
        time = self.state.time
        if time < self.setup.total_eighths:
            position[time % EIGHTHS_PER_BAR] = 1.0
        position[8] = time / self.setup.total_eighths
        return self._obs.copy()

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self._mask.astype(np.int8),
                "rule_violations": dict(self._violations),
                "time_eighths": self.state.time}

    def _explain(self, action: int) -> str:
        move, duration = int(ACTION_MOVES[action]), int(ACTION_DURATIONS[action])
        what = f"action {action} (move {move:+d} scale steps, {duration} eighths)"
        frame = self.state.frame_mask()
        if not frame[action]:
            reason = ("it leaves the range, skips further than max_skip_degrees, or holds a "
                      "note into the last bar")
        else:
            outputs = self.oracle.check(self.state)[2]
            broken = [n for n in self.ruleset.mask_rules if rule_reward(outputs[n], action) < 0]
            reason = (f"it breaks {', '.join(broken)}" if broken
                      else "after it the piece cannot be finished (a dead end)")
        allowed = np.flatnonzero(self._mask)
        return (f"{what} is not allowed at eighth {self.state.time}: {reason}; allowed actions "
                f"are {allowed.tolist()} (see info['action_mask'])")


@lru_cache(maxsize=64)
def _unit_box(size: int) -> spaces.Box:
    return spaces.Box(0.0, 1.0, (size,), dtype=np.float32)


def _observation_space(size: int) -> spaces.Box:
    """``Box(0, 1, (size,), float32)``, copied from one built once per size (building a Box
    checks its bounds element by element, a large part of a fresh env's set-up); the copy has
    its own bounds arrays and random generator."""
    box = copy.copy(_unit_box(size))
    for name in ("low", "high", "bounded_below", "bounded_above"):
        setattr(box, name, getattr(box, name).copy())
    return box


_DERIVED = ("start_note", "end_note", "lowest_note", "highest_note")


def _build_setup(cantus_firmus: str | Iterable[str | int], *, voice: str | None = None,
                 **kwargs: Any) -> CounterpointSetup:
    """The exercise: a built-in cantus with its range, or a cantus given by its notes, whose
    tonic and mode (unless given) are inferred and whose counterpoint start, end and range
    (unless given) follow from the species' rules (:func:`~musicgym.music.cantus.
    counterpoint_exercise`)."""
    from musicgym.music.cantus import counterpoint_exercise

    given = {k: v for k, v in kwargs.items() if v is not None}
    if isinstance(cantus_firmus, str) and not cantus_firmus.split()[1:]:
        if voice in (None, "above"):
            return make_setup(**{**builtin_cantus(cantus_firmus), **given})
        spec = builtin_cantus(cantus_firmus)  # the notes, tonic and mode of a built-in
        notes = list(spec["cantus_firmus"])
        given = {"tonic": spec["tonic"], "mode": spec["mode"], **given}
    elif isinstance(cantus_firmus, str):  # "D4 F4 E4 ...": the notes, space-separated
        notes = cantus_firmus.split()
    else:
        notes = list(cantus_firmus)
    if not notes or not all(isinstance(n, str | int | np.integer) and not isinstance(n, bool)
                            for n in notes):
        raise CantusFirmusError("cantus_firmus must be a built-in name, or the notes as a list "
                                "of note names ('D4') or MIDI key numbers, or a string of "
                                "note names separated by spaces")
    if all(k in given for k in ("tonic", "mode", *_DERIVED)) and voice is None \
            and all(isinstance(n, str) for n in notes):
        return make_setup(notes, **given)
    exercise = counterpoint_exercise(notes, species=given.get("species", 5),
                                     voice=voice or "above", mode=given.get("mode"),
                                     tonic=given.get("tonic"))
    return make_setup(**{**exercise, **given})
