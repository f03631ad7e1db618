"""A learned composing policy for ``musicgym/Melody-v0``: per-action features, NumPy inference
and a one-pass decoder.

The policy scores each candidate action with one small MLP shared by all actions (features of
the action in its state -> 2 x 128 ReLU -> 1 logit); a softmax over the env's allowed actions
gives the policy. Because the scorer sees each action through relative features (interval to
the last note, degree above the tonic, place against the melody's range so far, whether it
echoes the note a bar or two before, the nine rule rewards the env gives it now, the place in
the bar and the steps left), one policy serves any tonic, mode, range, length and metre the env
offers, masks included.

It is trained by :mod:`musicgym.compose.melody_policy_train`: imitation of a wide beam search's
melodies on many random settings (expert iteration, round 0), then REINFORCE on the env's own
return. Inference needs NumPy only: the weights ship as ``.npz`` with a ``.json`` beside them
(the command and seed that made them). Decoding applies the env's mask, so a piece never
breaks a hard rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np

from musicgym.compose import mlp
from musicgym.errors import ConfigError
from musicgym.music.rules.melody import RL_TUNER_RULES, MelodyState

FEATURE_VERSION = 1
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "data" / "composers"
BUILTIN_MELODY = BUILTIN_DIR / "melody.npz"
_INTERVALS = 25  # one-hot interval to the last note, -12..+12 semitones (clipped)


def n_features() -> int:
    """Length of the per-action feature rows :func:`action_features` returns."""
    return (3 + _INTERVALS + 1 + 12 + 1 + 2 + 6 + 4 + 8 + 1 + 8 + 1 + 9 + 1 + 3 + 1
            + len(RL_TUNER_RULES) + 1)


def _squash(x: np.ndarray) -> np.ndarray:
    """Signed log scale for rule rewards, which span about -100..+25 (keeps -100 large
    without swamping the rest)."""
    return np.sign(x) * np.log1p(np.abs(x))


def action_features(state: MelodyState, outputs: dict, reward: np.ndarray) -> np.ndarray:
    """Features of every action in ``state`` (float32, shape ``(n_actions, n_features())``).

    Per action, in order: hold / rest / note (one-hot 3); the interval to the last note
    (one-hot -12..+12, clipped) and whether there is no last note; the degree above the tonic
    in semitones (one-hot 12) and whether it is in the key; the place in the env's range and
    against middle C (/12); against the highest and lowest note so far (/12, clipped to +-2,
    above / below flags, equal flags); whether it repeats the event one and two bars before and
    whether its interval repeats the interval one and two bars before; the step in the bar
    (one-hot 8); 6-step bars; the steps left (one-hot 0..7) and the share done; the last three
    events' kinds (one-hot 3 each); holds in a row (/4); the leap tracker (direction one-hot 3,
    steps since the leap /4); each rule's reward for the action (signed log) and their sum.
    """
    cand = state.action_events
    n = len(cand)
    events = state.events
    t = len(events)
    spb = state.steps_per_bar
    out = np.zeros((n, n_features()), dtype=np.float32)
    is_note = cand >= 0
    i = 0
    out[0, 0] = out[1, 1] = 1.0
    out[2:, 2] = 1.0
    i += 3
    last = state.last_note()
    if last is None:
        out[:, i + _INTERVALS] = 1.0
    else:
        interval = np.clip(cand[2:] - last, -12, 12)
        out[np.arange(2, n), i + 12 + interval] = 1.0
    i += _INTERVALS + 1
    degree = (cand[2:] - state.tonic_pc) % 12
    out[np.arange(2, n), i + degree] = 1.0
    i += 12
    out[:, i] = state.in_key
    i += 1
    keys = cand[2:].astype(np.float32)
    out[2:, i] = (keys - state.lowest_midi) / max(1, n - 3)
    out[2:, i + 1] = (keys - 60.0) / 12.0
    i += 2
    notes = [e for e in events if e >= 0]
    if notes:
        high, low = max(notes), min(notes)
        out[2:, i] = np.clip((keys - high) / 12.0, -2, 2)
        out[2:, i + 1] = np.clip((keys - low) / 12.0, -2, 2)
        out[2:, i + 2] = keys > high
        out[2:, i + 3] = keys < low
        out[2:, i + 4] = keys == high
        out[2:, i + 5] = keys == low
    i += 6
    for k, lag in enumerate((spb, 2 * spb)):
        if t >= lag:
            out[:, i + k] = cand == events[t - lag]
            if t - lag >= 1 and last is not None and events[t - lag] >= 0 \
                    and events[t - lag - 1] >= 0:
                then = events[t - lag] - events[t - lag - 1]
                out[2:, i + 2 + k] = (keys - last) == then
    i += 4
    out[:, i + min(t % spb, 7)] = 1.0
    i += 8
    out[:, i] = spb == 6
    i += 1
    left = state.n_steps - t - 1
    out[:, i + min(left, 7)] = 1.0
    i += 8
    out[:, i] = t / state.n_steps
    i += 1
    for k, event in enumerate(events[-3:][::-1]):
        out[:, i + 3 * k + (0 if event == -2 else 1 if event == -1 else 2)] = 1.0
    i += 9
    holds = 0
    for event in reversed(events):
        if event != -2:
            break
        holds += 1
    out[:, i] = holds / 4.0
    i += 1
    out[:, i + state.leap_direction + 1] = 1.0
    i += 3
    out[:, i] = min(state.steps_since_leap, 8) / 4.0 if state.leap_direction else 0.0
    i += 1
    for k, name in enumerate(RL_TUNER_RULES):
        value = outputs.get(name)
        if value is not None:
            value = np.asarray(value)
            if value.dtype == bool:
                value = np.where(value, 0.0, -1.0)
            out[:, i + k] = _squash(np.broadcast_to(value, (n,)))
    i += len(RL_TUNER_RULES)
    out[:, i] = _squash(np.asarray(reward, dtype=np.float64))
    i += 1
    assert i == n_features()
    del is_note
    return out


class MelodyPolicy:
    """The melody policy's weights and NumPy forward pass.

    Parameters
    ----------
    layers : list of (ndarray, ndarray)
        ``(weight (in, out), bias (out,))`` per layer, ReLU between layers; the last layer
        gives one logit per action.
    info : dict
        What made it (the JSON beside a shipped file).
    """

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], info: dict | None = None):
        if layers[0][0].shape[0] != n_features() or layers[-1][0].shape[1] != 1:
            raise ConfigError(f"melody policy layers take {layers[0][0].shape[0]} features and "
                              f"give {layers[-1][0].shape[1]} outputs; this version needs "
                              f"{n_features()} and 1 (retrain it with python -m "
                              "musicgym.compose.melody_policy_train)")
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]
        self.info = dict(info or {})

    @classmethod
    def load(cls, path: str | Path = "builtin") -> MelodyPolicy:
        """The shipped policy (``"builtin"``) or a ``.npz`` (or the folder holding
        ``melody.npz``) written by :mod:`musicgym.compose.melody_policy_train`.

        Raises
        ------
        ConfigError
            If the file is missing or is not a melody policy of this feature version.
        """
        path = BUILTIN_MELODY if str(path) == "builtin" else Path(path)
        if path.is_dir():
            path = path / "melody.npz"
        if not path.is_file():
            raise ConfigError(f"melody policy file {str(path)!r} not found; give 'builtin' or "
                              "a .npz from python -m musicgym.compose.melody_policy_train")
        try:
            data = np.load(path)
            version = int(data["feature_version"])
            n_layers = int(data["n_layers"])
            layers = [(data[f"w{k}"], data[f"b{k}"]) for k in range(n_layers)]
        except (KeyError, ValueError, OSError) as exc:
            raise ConfigError(f"{str(path)!r} is not a melody policy file ({exc}); make one "
                              "with python -m musicgym.compose.melody_policy_train") from None
        if version != FEATURE_VERSION:
            raise ConfigError(f"{str(path)!r} has feature version {version}, this musicgym "
                              f"needs {FEATURE_VERSION}; retrain it")
        info_path = path.with_suffix(".json")
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
        return cls(layers, info)

    def save(self, path: str | Path) -> None:
        """Write the weights as ``.npz`` (and :attr:`info` as the ``.json`` beside it)."""
        path = Path(path)
        arrays = {"feature_version": np.array(FEATURE_VERSION),
                  "n_layers": np.array(len(self.layers))}
        for k, (w, b) in enumerate(self.layers):
            arrays[f"w{k}"], arrays[f"b{k}"] = w.astype(np.float16), b.astype(np.float32)
        np.savez_compressed(path, **arrays)
        path.with_suffix(".json").write_text(json.dumps(self.info, indent=1), encoding="utf-8")

    def logits(self, feats: np.ndarray) -> np.ndarray:
        """One logit per row of ``feats``."""
        return mlp.forward(feats, self.layers)[:, 0]


def compose_melody_policy(env: gym.Env, policy: MelodyPolicy, *, seed: int = 0,
                          temperature: float = 0.0) -> tuple[float, list[int]]:
    """One melody in one pass of the policy: (return, actions).

    At each step the env judges the state once (mask, reward and rule outputs of every action),
    the policy scores every allowed action, and the best one (``temperature=0``) or one sampled
    at ``temperature`` (seeded) is played. The return is the env's own (replaying the actions in
    the env gives it).
    """
    env = env.unwrapped
    rng = np.random.default_rng(seed)
    state = env.empty_state()
    total, actions = 0.0, []
    while state.step < env.n_steps:
        mask, reward, outputs = env.judge(state)
        logits = policy.logits(action_features(state, outputs, reward))
        logits = np.where(mask, logits, -np.inf)
        if temperature > 0:
            z = logits / temperature
            p = np.exp(z - z.max())
            action = int(rng.choice(len(p), p=p / p.sum()))
        else:
            action = int(np.argmax(logits))
        total += float(reward[action])
        actions.append(action)
        state.add(action)
    return total, actions


def best_of_melody_policy(env: gym.Env, policy: MelodyPolicy, *, samples: int = 4,
                          temperature: float = 0.5, seed: int = 0) -> tuple[float, list[int]]:
    """The best of ``samples`` policy melodies by the env's return: (return, actions).

    The first is the greedy one (:func:`compose_melody_policy` at temperature 0), the others
    are sampled at ``temperature`` with seeds drawn from ``seed``; time grows linearly with
    ``samples``.

    Raises
    ------
    ValueError
        If ``samples`` is below 1 or ``temperature`` is not positive.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    best = compose_melody_policy(env, policy)
    for k in range(1, samples):
        result = compose_melody_policy(env, policy, seed=seed * 1000 + k,
                                       temperature=temperature)
        if result[0] > best[0]:
            best = result
    return best
