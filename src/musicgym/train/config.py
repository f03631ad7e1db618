"""Training configuration: every field visible, documented and validated.

A YAML (or JSON) file holds the same fields as :class:`TrainConfig`; unknown fields are
rejected by name, with the closest known name suggested::

    env_id: musicgym/Kick-v0
    algo: ppo
    steps: 20000
    n_envs: 16
    seed: 0
    env_kwargs: {reward: mrstft}
    algo_kwargs: {n_steps: 64, batch_size: 256, learning_rate: 0.0003}
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from musicgym.errors import ConfigError

ALGOS = ("ppo", "a2c", "sac", "td3", "dqn", "maskable_ppo", "recurrent_ppo")


@dataclass
class TrainConfig:
    """What a training run needs; the defaults are the ones ``musicgym train`` uses.

    Attributes
    ----------
    env_id : str
        A registered Gymnasium id, e.g. ``"musicgym/Kick-v0"``.
    algo : str
        One of ``ppo a2c sac td3 dqn`` (Stable-Baselines3) or ``maskable_ppo recurrent_ppo``
        (sb3-contrib).
    steps : int
        Environment steps to train for (summed over the parallel envs).
    n_envs : int
        Parallel envs (a native vector env renders them in one engine call).
    seed : int
        Seeds the envs, the algorithm and the evaluation.
    env_kwargs : dict
        Passed to ``gymnasium.make`` / ``make_vec`` (e.g. ``reward``, ``target``).
    algo_kwargs : dict
        Passed to the algorithm's constructor (``learning_rate``, ``n_steps``...).
    policy : str
        SB3 policy name (``MlpPolicy``; ``MlpLstmPolicy`` for recurrent_ppo).
    eval_every : int
        Evaluate every this many steps (0: only at the end).
    eval_episodes : int
        Episodes per evaluation.
    checkpoint_every : int
        Write a checkpoint every this many steps (0: only at the end).
    device : str
        Torch device (``cpu``).
    """

    env_id: str = "musicgym/Kick-v0"
    algo: str = "ppo"
    steps: int = 20_000
    n_envs: int = 16
    seed: int = 0
    env_kwargs: dict = field(default_factory=dict)
    algo_kwargs: dict = field(default_factory=dict)
    policy: str = ""
    eval_every: int = 0
    eval_episodes: int = 16
    checkpoint_every: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field and what it should be."""
        if self.algo not in ALGOS:
            close = difflib.get_close_matches(str(self.algo), ALGOS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"algo: {self.algo!r} is not one of {list(ALGOS)}{hint}")
        for name in ("steps", "n_envs", "eval_episodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
        for name in ("eval_every", "checkpoint_every", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name}: must be an integer >= 0, got {value!r}")
        for name in ("env_kwargs", "algo_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name}: must be a mapping, got {getattr(self, name)!r}")
        if not isinstance(self.env_id, str) or "/" not in self.env_id and "-v" not in self.env_id:
            raise ConfigError(f"env_id: expected a registered id such as 'musicgym/Kick-v0', "
                              f"got {self.env_id!r}")
        if not self.policy:
            self.policy = "MlpLstmPolicy" if self.algo == "recurrent_ppo" else "MlpPolicy"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> TrainConfig:
        """Build from a mapping, rejecting unknown fields by name."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else \
                    f"; known fields: {', '.join(sorted(known))}"
                raise ConfigError(f"{source}: unknown field {key!r}{hint}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path, **overrides) -> TrainConfig:
        """Read a YAML or JSON file; ``overrides`` (not None) replace its fields."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text) or {}
        except Exception as exc:  # YAML and JSON raise their own types
            raise ConfigError(f"{path}: cannot parse it: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of fields at the top level")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, source=str(path))
