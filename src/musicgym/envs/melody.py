"""``musicgym/Melody-v0``: write a short free melody under RL Tuner's music-theory rewards.

Below the env, what ``musicgym compose --task melody`` uses to compose one and write it to
files: :func:`random_melody` and :func:`beam_melody` (seeded), :func:`piece_from_melody`
(an episode as a :class:`~musicgym.compose.piece.Piece`, notes spelled in the key) and
:func:`evaluate_melody` (judge a written melody again from its notes).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from musicgym.errors import InvalidActionError, RenderModeError, ScoreFileError
from musicgym.music.pitch import spell
from musicgym.music.rules import RuleSet, rule_reward
from musicgym.music.rules.melody import HOLD, REST, RL_TUNER_RULES, MelodyState
from musicgym.music.scales import Scale

if TYPE_CHECKING:
    from musicgym.compose.piece import Piece
    from musicgym.music.tunings import Tuning

# one step of the melody env is an eighth note
BEATS_PER_STEP = 0.5


class MelodyEnv(gym.Env):
    """
    ## Description

    A monophonic melody of ``n_steps`` eighth notes (4 bars by default) in a key or mode. At
    each step the agent holds the previous note, rests, or plays one of ``n_pitches`` keys.
    Every step is rewarded by RL Tuner's nine music-theory rules (Jaques et al. 2017), without
    its pretrained note model: a quick task with a dense reward. Any rule can instead be a hard
    mask (``masks=["rl_tuner_key"]`` keeps the melody in the key).

    ## Action Space

    ``Discrete(2 + n_pitches)``.

    | Num          | Action                                  | Min | Max          |
    |--------------|-----------------------------------------|-----|--------------|
    | 0            | hold the previous note                  | 0   | 0            |
    | 1            | rest                                    | 1   | 1            |
    | 2 + k        | play MIDI key ``lowest_midi + k``       | 2   | 1 + n_pitches |

    ## Observation Space

    ``Box(0, 1, (n_steps * (2 + n_pitches) + n_steps,), float32)``.

    With ``E = n_steps * (2 + n_pitches)``:

    | Index               | Observation                    | Min | Max |
    |---------------------|--------------------------------|-----|-----|
    | [0, E)              | one-hot event of each step     | 0   | 1   |
    | [E, E + n_steps)    | one-hot current step           | 0   | 1   |

    ## Rewards

    ``r_t = sum_k w_k * R_k(a_t)`` over the rules in ``weights`` (default: all nine, weight 1).
    Per step: key -1; tonic +3; repeating -100; autocorrelation -3 * |r| per lag 1..3 (at most
    -9); motif +3 (+0.3 per extra note); repeated motif +4 (+1 per extra note); intervals
    -5..+1.5; leap resolution +5 or -5; last step +3 each for a unique highest and lowest
    note. So ``r_t`` lies in about [-120, +25]. ``info["rule_rewards"]`` sums each rule.
    An invalid action (masked) under ``invalid_action="penalize"`` gets -1 and changes nothing.

    ## Starting State

    An empty melody.

    ## Episode End

    * terminated: ``n_steps`` events written.
    * truncated: never (``max_steps`` = 4 * ``n_steps`` only against endless invalid actions).

    ## Arguments

    ```python
    import gymnasium as gym
    import musicgym
    env = gym.make("musicgym/Melody-v0", tonic="D", mode="dorian", masks=["rl_tuner_key"])
    ```

    ``tonic`` ("C"), ``mode`` ("major"), ``lowest_midi`` (48, C3), ``n_pitches`` (36),
    ``n_steps`` (32), ``steps_per_bar`` (8), ``weights`` ({rule: weight}), ``masks`` (rules
    used as hard masks instead), ``rule_params``, ``invalid_action`` ("penalize" or "raise"),
    ``render_mode`` (None or "ansi"; any other raises ``RenderModeError``).

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        *,
        tonic: str = "C",
        mode: str = "major",
        lowest_midi: int = 48,
        n_pitches: int = 36,
        n_steps: int = 32,
        steps_per_bar: int = 8,
        weights: Mapping[str, float] | None = None,
        masks: Iterable[str] = (),
        rule_params: Mapping[str, dict] | None = None,
        invalid_action: str = "penalize",
        render_mode: str | None = None,
    ) -> None:
        self.scale = Scale(tonic, mode)
        masks = list(masks)
        # the arguments that rebuild this env (kept in a written piece, to judge it again)
        self.settings = {"tonic": tonic, "mode": mode, "lowest_midi": lowest_midi,
                         "n_pitches": n_pitches, "n_steps": n_steps,
                         "steps_per_bar": steps_per_bar,
                         "weights": None if weights is None else dict(weights),
                         "masks": list(masks),
                         "rule_params": None if rule_params is None else dict(rule_params)}
        weights = dict(weights) if weights is not None else dict.fromkeys(RL_TUNER_RULES, 1.0)
        weights = {k: v for k, v in weights.items() if k not in masks}
        self.ruleset = RuleSet("melody", masks=masks, penalties=weights, params=rule_params)
        if invalid_action not in ("raise", "penalize"):
            raise InvalidActionError(
                f"invalid_action must be 'raise' or 'penalize', got {invalid_action!r}")
        self.invalid_action = invalid_action
        self._state_args = {"lowest_midi": lowest_midi, "n_pitches": n_pitches,
                            "n_steps": n_steps, "steps_per_bar": steps_per_bar}
        self.n_steps = n_steps
        self.n_actions = 2 + n_pitches
        self.action_space = spaces.Discrete(self.n_actions)
        size = n_steps * self.n_actions + n_steps
        self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise RenderModeError(f"Melody-v0 renders only as text: render_mode must be None "
                                  f"or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.state = MelodyState(self.scale, **self._state_args)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = MelodyState(self.scale, **self._state_args)
        self._history = np.zeros((self.n_steps, self.n_actions), dtype=np.float32)
        self._totals = dict.fromkeys(self.ruleset.names, 0.0)
        self._steps = 0
        self._judge()
        return self._get_obs(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise InvalidActionError(
                f"action {action!r} is not in Discrete({self.n_actions}); give an int "
                f"0..{self.n_actions - 1}")
        action = int(action)
        self._steps += 1
        if not self._mask[action]:
            if self.invalid_action == "raise":
                broken = [n for n in self.ruleset.mask_rules
                          if rule_reward(self._outputs[n], action) < 0]
                raise InvalidActionError(
                    f"action {action} is not allowed at step {self.state.step}: it breaks "
                    f"{', '.join(broken)} (see info['action_mask'])")
            info = self._info()
            info["invalid_action"] = True
            return self._get_obs(), -1.0, False, self._steps >= 4 * self.n_steps, info
        reward = float(self._reward[action])
        for name in self.ruleset.penalty_rules:
            self._totals[name] += rule_reward(self._outputs[name], action)
        self._history[self.state.step, action] = 1.0
        self.state.add(action)
        terminated = self.state.step >= self.n_steps
        if not terminated:
            self._judge()
        return self._get_obs(), reward, terminated, False, self._info()

    def action_masks(self) -> np.ndarray:
        """Allowed actions as a bool array (sb3-contrib's MaskablePPO API)."""
        return self._mask.copy()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        names = {-2: "-", -1: "r"}
        return " ".join(names.get(e, str(e)) for e in self.state.events)

    def judge(self, state: MelodyState) -> tuple[np.ndarray, np.ndarray, dict]:
        """(allowed actions, reward of each action, raw rule outputs) in ``state``, as
        ``step`` judges them."""
        base = np.ones(self.n_actions, dtype=bool)
        if not state.events:
            base[0] = False  # nothing to hold yet
        return self.ruleset.check(state, state.action_events, base)

    def _judge(self) -> None:
        self._mask, self._reward, self._outputs = self.judge(self.state)

    def _get_obs(self) -> np.ndarray:
        position = np.zeros(self.n_steps, dtype=np.float32)
        position[min(self.state.step, self.n_steps - 1)] = 1.0
        return np.concatenate([self._history.ravel(), position])

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self._mask.astype(np.int8), "rule_rewards": dict(self._totals),
                "step": self.state.step}


# ---- composing melodies to files -------------------------------------------------------


def random_melody(env: gym.Env, *, seed: int = 0) -> tuple[float, list[int]]:
    """One melody of uniformly random allowed actions: (return, actions)."""
    env = env.unwrapped
    rng = np.random.default_rng(seed)
    state = MelodyState(env.scale, **env._state_args)
    total, actions = 0.0, []
    while state.step < env.n_steps:
        mask, reward, _ = env.judge(state)
        allowed = np.flatnonzero(mask)
        action = int(allowed[rng.integers(len(allowed))])
        total += float(reward[action])
        actions.append(action)
        state.add(action)
    return total, actions


def beam_melody(env: gym.Env, *, seed: int = 0, beam_width: int = 16,
                temperature: float = 2.0) -> tuple[float, list[int]]:
    """Seeded stochastic beam search on the env's own step rewards: (return, actions) of the
    best melody kept at the end.

    At each step every allowed action of every kept melody is scored by its return so far
    (one rule check per kept melody gives the reward of all actions) plus seeded Gumbel
    noise of scale ``temperature``, and the ``beam_width`` best continue. The noise makes
    seeds give different melodies (``temperature=0``: plain beam search, ties broken by the
    seed); the return reported is the true one, and replaying the actions in the env gives it.

    Raises
    ------
    ValueError
        If ``beam_width`` is below 1 or ``temperature`` is negative.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be 0 or more, got {temperature}")
    env = env.unwrapped
    rng = np.random.default_rng(seed)
    beam: list[tuple[float, list[int], MelodyState]] = [
        (0.0, [], MelodyState(env.scale, **env._state_args))]
    for _ in range(env.n_steps):
        totals, owners, actions = [], [], []
        for index, (total, _, state) in enumerate(beam):
            mask, reward, _ = env.judge(state)
            allowed = np.flatnonzero(mask)
            totals.append(total + reward[allowed])
            owners.append(np.full(len(allowed), index))
            actions.append(allowed)
        totals, owners, actions = map(np.concatenate, (totals, owners, actions))
        noisy = totals + temperature * rng.gumbel(size=len(totals))
        order = np.lexsort((rng.random(len(totals)), -noisy))[:beam_width]
        next_beam = []
        for k in order:
            _, prefix, state = beam[owners[k]]
            child = copy.copy(state)
            child.events = list(state.events)
            child.add(int(actions[k]))
            next_beam.append((float(totals[k]), prefix + [int(actions[k])], child))
        beam = next_beam
    total, actions, _ = max(beam, key=lambda entry: entry[0])
    return total, actions


def spell_key(scale: Scale, midi: int) -> str:
    """Spelled name of a MIDI key in ``scale``: its scale spelling if it belongs to the
    scale, else a neighbouring degree raised or lowered by a semitone, whichever needs the
    smaller accidental (on a tie: flats in keys with flats, else sharps).

    Examples
    --------
    >>> spell_key(Scale("F", "major"), 70), spell_key(Scale("F", "major"), 66)
    ('Bb4', 'Gb4')
    """
    midi = int(midi)
    base = 7 * ((midi - int(scale.midi(0))) // 12)
    neighbours = []
    for position in range(base - 2, base + 10):
        pitch = scale.pitch(position)
        if pitch.midi == midi:
            return pitch.name
        alter = pitch.alter + midi - pitch.midi
        if abs(midi - pitch.midi) == 1 and abs(alter) <= 2:
            neighbours.append(spell(pitch.diatonic_index, midi))
    flat_key = any("b" in name for name in scale.pitch_class_names)
    return min(neighbours, key=lambda p: (abs(p.alter), (p.alter > 0) == flat_key)).name


def melody_notes(events: list[int]) -> list[tuple[int, int, int]]:
    """(start step, length in steps, MIDI key) of each note of an event list: a key starts a
    note, ``HOLD`` lengthens it, ``REST`` (or a hold after a rest) is silence."""
    notes: list[list[int]] = []
    sounding = False
    for step, event in enumerate(events):
        if event >= 0:
            notes.append([step, 1, int(event)])
            sounding = True
        elif event == HOLD and sounding:
            notes[-1][1] += 1
        else:
            sounding = False
    return [tuple(n) for n in notes]


def time_signature_of(steps_per_bar: int) -> tuple[int, int]:
    """The metre of a bar of ``steps_per_bar`` eighth notes: 8 -> 4/4, 6 -> 3/4, 7 -> 7/8."""
    return (steps_per_bar // 2, 4) if steps_per_bar % 2 == 0 else (steps_per_bar, 8)


def piece_from_melody(env: gym.Env, actions: list[int], *, tuning: Tuning | None = None,
                      bpm: float = 120.0, velocity: int = 90) -> Piece:
    """The melody that ``actions`` write in ``env`` as a one-voice :class:`Piece`.

    Notes are spelled in the env's key (:func:`spell_key`); ``pitch`` is the tuning's step of
    that spelling (the MIDI key in 12-note tunings). ``piece.exercise`` holds
    ``{"task": "melody", "env": the env's settings, "actions": actions}``.

    Parameters
    ----------
    env : MelodyEnv or a wrapper of one
    actions : list of int
        A whole episode's actions (``n_steps`` of them).
    tuning : Tuning or None, keyword-only
        Default: 12-TET at A4 = 440 Hz.
    bpm : float, keyword-only
        Quarter notes per minute; a step is an eighth note.
    velocity : int, keyword-only
        MIDI velocity of every note.

    Raises
    ------
    ScoreFileError
        If the actions are not a whole episode or write no note at all.
    """
    from musicgym.compose.piece import Piece
    from musicgym.music.notes import make_notes
    from musicgym.music.pitch import parse_pitch
    from musicgym.music.tunings import equal_temperament

    env = env.unwrapped
    if len(actions) != env.n_steps:
        raise ScoreFileError(f"a melody needs {env.n_steps} actions (one per step), got "
                             f"{len(actions)}")
    state = MelodyState(env.scale, **env._state_args)
    for action in actions:
        state.add(int(action))
    rows = melody_notes(state.events)
    if not rows:
        raise ScoreFileError("the melody has no note (only rests): nothing to write")
    tuning = tuning or equal_temperament()
    names = [spell_key(env.scale, key) for _, _, key in rows]
    steps = [tuning.step(parse_pitch(name)) for name in names]
    notes = make_notes([r[0] * BEATS_PER_STEP for r in rows],
                       [r[1] * BEATS_PER_STEP for r in rows], steps, velocity=velocity,
                       voice=0, bpm=bpm)
    order = {f"n{i}": name for i, name in enumerate(names)}  # make_notes may reorder
    names = [order[i] for i in notes["id"]]
    return Piece(notes=notes, names=names,
                 frequencies_hz=np.asarray(tuning.frequency_hz(notes["pitch"]), dtype=float),
                 tuning=tuning, bpm=float(bpm),
                 time_signature=time_signature_of(env._state_args["steps_per_bar"]),
                 tonic=env.scale.tonic, mode=env.scale.mode, voice_names=("melody",),
                 exercise={"task": "melody", "env": dict(env.settings),
                           "actions": [int(a) for a in actions]})


def melody_actions(piece: Piece, env: gym.Env) -> list[int]:
    """The env actions that write a one-voice piece's notes, read from the notes themselves.

    Raises
    ------
    ScoreFileError
        If a note is off the eighth-note grid, outside the env's keys, overlaps the next one,
        or the melody is longer than the env's ``n_steps``.
    """
    from musicgym.music.pitch import parse_pitch

    env = env.unwrapped
    low = env._state_args["lowest_midi"]
    events = [REST] * env.n_steps
    for note, name in zip(piece.notes, piece.names, strict=True):
        start = note["onset_beat"] / BEATS_PER_STEP
        length = note["duration_beat"] / BEATS_PER_STEP
        key = parse_pitch(name).midi
        if start != round(start) or length != round(length) or length < 1:
            raise ScoreFileError(f"note {name} at beat {note['onset_beat']:g} is not on the "
                                 "melody's eighth-note grid")
        start, length = int(round(start)), int(round(length))
        if start + length > env.n_steps:
            raise ScoreFileError(f"note {name} ends after the melody's {env.n_steps} steps")
        if not 0 <= key - low < env.n_actions - 2:
            raise ScoreFileError(f"note {name} lies outside the melody's keys "
                                 f"{low}..{low + env.n_actions - 3}")
        if any(e != REST for e in events[start:start + length]):
            raise ScoreFileError(f"note {name} at beat {note['onset_beat']:g} overlaps "
                                 "another note; a melody has one voice")
        events[start:start + length] = [key] + [HOLD] * (length - 1)
    return [0 if e == HOLD else 1 if e == REST else 2 + e - low for e in events]


def evaluate_melody(piece: Piece) -> dict[str, Any]:
    """Judge a written melody from its notes: RL Tuner's nine rules, weight 1 each.

    Returns
    -------
    dict
        ``total`` (the return under all nine rules, no masks), ``rule_rewards`` (per rule),
        ``out_of_key`` (notes outside the key) and ``mask_violations`` (actions that the
        piece's own hard masks forbid).

    Raises
    ------
    ScoreFileError
        If the piece is not a melody written by ``musicgym compose`` or its notes do not fit
        the melody env.
    """
    settings = dict(piece.exercise.get("env", {}))
    if piece.exercise.get("task") != "melody" or not settings:
        raise ScoreFileError("the piece is not a melody (piece.json has no exercise with "
                             "task 'melody'); write it with `musicgym compose --task melody`")
    masks = settings.pop("masks", [])
    settings.pop("weights", None)
    judge = MelodyEnv(**settings)
    actions = melody_actions(piece, judge)
    judge.reset()
    total, info = 0.0, {}
    for action in actions:
        _, reward, _, _, info = judge.step(action)
        total += reward
    own = MelodyEnv(**settings, masks=masks)
    state = MelodyState(own.scale, **own._state_args)
    violations = 0
    for action in actions:
        violations += not own.judge(state)[0][action]
        state.add(action)
    keys = state.action_events[[a for a in actions if a >= 2]]
    return {"total": float(total),
            "rule_rewards": {k: float(v) for k, v in info["rule_rewards"].items()},
            "out_of_key": int(np.count_nonzero(~judge.scale.contains_midi(keys))),
            "mask_violations": violations}
