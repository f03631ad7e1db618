"""``musicgym/Melody-v0``: write a short free melody under RL Tuner's music-theory rewards.

The env only; composing melodies with it (searches, pieces, judging a written melody) is
``musicgym.compose.melody``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from musicgym.envs.rendering import check_render_mode
from musicgym.errors import InvalidActionError
from musicgym.music.rules import RuleSet, rule_reward
from musicgym.music.rules.melody import RL_TUNER_RULES, MelodyState
from musicgym.music.scales import Scale


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
    ``render_mode``: None, ``"rgb_array"`` (``render()`` returns a uint8 piano roll (240, 512,
    3) of the melody so far, bar lines grey, a red band over each step at which a rule gave a
    negative reward, a dark line at the next step) or ``"ansi"`` (``"step k/n: "`` then the
    events, a MIDI key, ``-`` hold or ``r`` rest); any other raises ``RenderModeError``.
    :meth:`episode_audio` renders the melody through musicgym's engine (12-TET, an eighth is
    0.25 s).

    ## Version History

    * v0: initial version; ``"rgb_array"`` rendering and :meth:`episode_audio` added, and
      the ``"ansi"`` render says the step (it was ``''`` after reset), within v0.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

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
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"],
                                             "Melody-v0")
        self.state = self.empty_state()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = self.empty_state()
        self._history = np.zeros((self.n_steps, self.n_actions), dtype=np.float32)
        self._totals = dict.fromkeys(self.ruleset.names, 0.0)
        self._steps = 0
        self._marks: list[tuple[int, int]] = []  # (step, 1) of steps a rule penalised
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
        penalised = False
        for name in self.ruleset.penalty_rules:
            value = rule_reward(self._outputs[name], action)
            self._totals[name] += value
            penalised |= value < 0
        if penalised:
            self._marks.append((self.state.step, 1))
        self._history[self.state.step, action] = 1.0
        self.state.add(action)
        terminated = self.state.step >= self.n_steps
        if not terminated:
            self._judge()
        return self._get_obs(), reward, terminated, False, self._info()

    def action_masks(self) -> np.ndarray:
        """Allowed actions as a bool array (sb3-contrib's MaskablePPO API)."""
        return self._mask.copy()

    def render(self) -> np.ndarray | str | None:
        """The piano roll (``"rgb_array"``) or the events (``"ansi"``) of the melody so far;
        see Arguments."""
        if self.render_mode == "rgb_array":
            from musicgym.envs.rendering import piano_roll

            low = self._state_args["lowest_midi"]
            return piano_roll([(1, s, d, k) for s, d, k in self._notes()], total=self.n_steps,
                              low_key=low, high_key=low + self._state_args["n_pitches"] - 1,
                              marks=self._marks, now=self.state.step,
                              bar=self._state_args["steps_per_bar"])
        if self.render_mode != "ansi":
            return None
        names = {-2: "-", -1: "r"}
        events = " ".join(names.get(e, str(e)) for e in self.state.events)
        return f"step {self.state.step}/{self.n_steps}: {events}".rstrip()

    def episode_audio(self, *, sr: int = 44100) -> tuple[np.ndarray, int]:
        """The melody so far through musicgym's engine (12-TET, A4 = 440 Hz, a step is an
        eighth of 0.25 s): ((2, n) float32 audio, ``sr``)."""
        from musicgym.envs.rendering import render_notes
        from musicgym.music.tunings import midi_to_hz

        notes = [(1, s * 0.25, d * 0.25, midi_to_hz(float(k))) for s, d, k in self._notes()]
        return render_notes(notes, sr=sr), sr

    def _notes(self) -> list[tuple[int, int, int]]:
        """(start step, steps, MIDI key) of each note: a hold lengthens the note before it."""
        notes: list[list[int]] = []
        sounding = False
        for step, event in enumerate(self.state.events):
            if event >= 0:
                notes.append([step, 1, int(event)])
                sounding = True
            elif event == -2 and sounding:
                notes[-1][1] += 1
            else:
                sounding = False
        return [tuple(n) for n in notes]

    def judge(self, state: MelodyState) -> tuple[np.ndarray, np.ndarray, dict]:
        """(allowed actions, reward of each action, raw rule outputs) in ``state``, as
        ``step`` judges them."""
        base = np.ones(self.n_actions, dtype=bool)
        if not state.events:
            base[0] = False  # nothing to hold yet
        return self.ruleset.check(state, state.action_events, base)

    def empty_state(self) -> MelodyState:
        """A new empty melody in this env's key, range and metre (what ``reset`` starts from;
        searches grow copies of it and ask :meth:`judge` at each step)."""
        return MelodyState(self.scale, **self._state_args)

    def _judge(self) -> None:
        self._mask, self._reward, self._outputs = self.judge(self.state)

    def _get_obs(self) -> np.ndarray:
        position = np.zeros(self.n_steps, dtype=np.float32)
        position[min(self.state.step, self.n_steps - 1)] = 1.0
        return np.concatenate([self._history.ravel(), position])

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self._mask.astype(np.int8), "rule_rewards": dict(self._totals),
                "step": self.state.step}
