"""Training configuration: every field visible, documented and validated; defaults are data.

A YAML (or JSON) file holds the same fields as :class:`TrainConfig`; unknown fields are
rejected by name, with the closest known name suggested::

    env_id: musicgym/Kick-v0
    algo: ppo
    steps: 20000
    n_envs: 16
    seed: 0
    env_kwargs: {reward: mrstft}
    algo_kwargs: {n_steps: 64, batch_size: 256, learning_rate: 0.0003}

Fields a user leaves out come from the env's family defaults, one YAML per family in
``musicgym/train/defaults/`` (:func:`family_defaults`), then from :class:`TrainConfig`'s own
defaults. :func:`resolve` merges the three and :func:`plan_budget` sizes the rollouts to the
step budget; the run's ``config.yaml`` records the result.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from musicgym.errors import ConfigError, UsageError

# learners that are not Stable-Baselines3 algorithms, each one module ("module:object", an object
# with train/load/evaluate: see musicgym.train.inverse); a new one is a module and a line here
LEARNERS = {"inverse": "musicgym.train.inverse:LEARNER"}
ALGOS = ("ppo", "a2c", "sac", "td3", "dqn", "maskable_ppo", "recurrent_ppo", *LEARNERS)
ON_POLICY = ("ppo", "a2c", "maskable_ppo", "recurrent_ppo")
OFF_POLICY = ("sac", "td3", "dqn")
DEFAULTS_DIR = Path(__file__).parent / "defaults"
# what a family's defaults file may set (the rest of TrainConfig is the user's business)
DEFAULTS_FIELDS = ("env_ids", "algo", "n_envs", "steps", "env_kwargs", "eval_env_kwargs",
                   "algo_kwargs")


@dataclass
class TrainConfig:
    """What a training run needs.

    Attributes
    ----------
    env_id : str
        A registered Gymnasium id, e.g. ``"musicgym/Kick-v0"``.
    algo : str
        One of ``ppo a2c sac td3 dqn`` (Stable-Baselines3), ``maskable_ppo recurrent_ppo``
        (sb3-contrib) or a learner of :data:`LEARNERS` (``inverse``: the improvisation envs'
        inverse improviser, :mod:`musicgym.train.inverse`).
    steps : int
        Environment steps to train for (summed over the parallel envs). :func:`plan_budget`
        sizes the rollouts so that this is the number trained.
    n_envs : int
        Parallel envs (a native vector env renders them in one engine call).
    seed : int
        Seeds the envs, the algorithm and the evaluation.
    env_kwargs : dict
        Passed to ``gymnasium.make`` / ``make_vec`` for training (e.g. ``reward``, ``target``).
    eval_env_kwargs : dict
        Merged over ``env_kwargs`` for the evaluations (e.g. ``{split: test}``).
    algo_kwargs : dict
        Passed to the algorithm's constructor (``learning_rate``, ``n_steps``...).
    policy : str
        SB3 policy name (``MlpPolicy``; ``MlpLstmPolicy`` for recurrent_ppo).
    eval_every : int
        Evaluate (and checkpoint) every this many steps (0: only at the end).
    eval_episodes : int
        Episodes per evaluation.
    checkpoint_every : int or None
        Write a checkpoint every this many steps; None (default): every tenth of the budget.
    device : str
        Torch device (``cpu``).
    """

    env_id: str = "musicgym/Kick-v0"
    algo: str = "ppo"
    steps: int = 20_000
    n_envs: int = 16
    seed: int = 0
    env_kwargs: dict = field(default_factory=dict)
    eval_env_kwargs: dict = field(default_factory=dict)
    algo_kwargs: dict = field(default_factory=dict)
    policy: str = ""
    eval_every: int = 0
    eval_episodes: int = 16
    checkpoint_every: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`UsageError` naming the first bad field and what it should be."""
        if self.algo not in ALGOS:
            close = difflib.get_close_matches(str(self.algo), ALGOS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"algo: {self.algo!r} is not one of {list(ALGOS)}{hint}")
        for name in ("steps", "n_envs", "eval_episodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{name}: must be a positive integer, got {value!r}")
        for name in ("eval_every", "checkpoint_every", "seed"):
            value = getattr(self, name)
            if name == "checkpoint_every" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UsageError(f"{name}: must be an integer >= 0, got {value!r}")
        for name in ("env_kwargs", "eval_env_kwargs", "algo_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise UsageError(f"{name}: must be a mapping, got {getattr(self, name)!r}")
        if not isinstance(self.env_id, str) or "/" not in self.env_id and "-v" not in self.env_id:
            raise UsageError(f"env_id: expected a registered id such as 'musicgym/Kick-v0', "
                             f"got {self.env_id!r}")
        if not self.policy:
            self.policy = "MlpLstmPolicy" if self.algo == "recurrent_ppo" else "MlpPolicy"

    def to_dict(self) -> dict:
        """The fields as plain JSON/YAML data (tuples become lists)."""
        try:
            return json.loads(json.dumps(dataclasses.asdict(self)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config: a value is not plain data (numbers, strings, lists, "
                              f"mappings): {exc}") from None

    @property
    def eval_kwargs(self) -> dict:
        """The evaluation env's keywords: ``env_kwargs`` with ``eval_env_kwargs`` over them."""
        return {**self.env_kwargs, **self.eval_env_kwargs}

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> TrainConfig:
        """Build from a mapping, rejecting unknown fields by name (no family defaults)."""
        _check_fields(data, source)
        try:
            return cls(**data)
        except TypeError as exc:
            raise UsageError(f"{source}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path, **overrides) -> TrainConfig:
        """Read a YAML or JSON file as is; ``overrides`` (not None) replace its fields."""
        data = read_config_file(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, source=str(path))


def _check_fields(data: Any, source: str) -> None:
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f"; known fields: {', '.join(sorted(known))}"
            raise UsageError(f"{source}: unknown field {key!r}{hint}")


def read_config_file(path: str | Path) -> dict:
    """The mapping in a YAML or JSON config file, read by :func:`musicgym.safeio.load_mapping`:
    no code runs, and its size, nesting and expanded aliases are bounded before they cost
    memory or time (a config or a run folder may come from someone else)."""
    from musicgym.safeio import load_mapping

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    return load_mapping(path)


def learner(algo: str):
    """The learner object of a non-SB3 ``algo`` (:data:`LEARNERS`): it trains, loads and
    evaluates its own runs, in the runner's folder layout."""
    import importlib

    module, name = LEARNERS[algo].split(":")
    return getattr(importlib.import_module(module), name)


@cache
def _defaults_files() -> dict[str, dict]:
    import yaml

    out = {}
    for path in sorted(DEFAULTS_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        unknown = sorted(set(data) - set(DEFAULTS_FIELDS))
        if unknown:
            raise ConfigError(f"{path}: unknown fields {unknown}; a defaults file holds "
                              f"{list(DEFAULTS_FIELDS)}")
        algo = data.get("algo", "ppo")
        if algo not in data.get("algo_kwargs", {}):
            raise ConfigError(f"{path}: algo_kwargs needs an entry for its algo {algo!r}")
        out[path.stem] = data
    return out


def family_defaults(env_id: str) -> tuple[str | None, dict]:
    """(family name, its defaults) of ``env_id``: the defaults file that lists it, else
    ``(None, {})``."""
    for family, data in _defaults_files().items():
        if env_id in data.get("env_ids", ()):
            return family, data
    return None, {}


def resolve(fields: dict, *, source: str = "command line") -> TrainConfig:
    """The full config of a run: the user's ``fields`` over the family defaults of its env.

    ``env_kwargs``, ``eval_env_kwargs`` and the algorithm's ``algo_kwargs`` are merged key by
    key (the user's win); every other field the user gives replaces the default.
    """
    _check_fields(fields, source)
    env_id = fields.get("env_id", TrainConfig.env_id)
    _, defaults = family_defaults(env_id)
    data = {k: defaults[k] for k in ("algo", "n_envs", "steps") if k in defaults}
    data.update({k: v for k, v in fields.items()
                 if k not in ("env_kwargs", "eval_env_kwargs", "algo_kwargs")})
    algo = data.get("algo", TrainConfig.algo)
    for name in ("env_kwargs", "eval_env_kwargs"):
        user = fields.get(name, {})
        data[name] = {**defaults.get(name, {}), **user} if isinstance(user, dict) else user
    user_algo = fields.get("algo_kwargs", {})
    data["algo_kwargs"] = {**defaults.get("algo_kwargs", {}).get(algo, {}), **user_algo} \
        if isinstance(user_algo, dict) else user_algo
    return TrainConfig.from_dict(data, source=source)


def _algo_default(algo: str, name: str) -> Any:
    from musicgym.train.runner import algo_class

    return inspect.signature(algo_class(algo).__init__).parameters[name].default


def plan_budget(config: TrainConfig) -> str | None:
    """Size ``config`` so that it trains ``config.steps`` env steps, in place.

    On-policy algorithms collect whole rollouts of ``n_envs x n_steps``: ``n_steps`` is
    lowered, never raised, to fit the budget with the fewest extra steps, ``batch_size`` to a
    divisor of the rollout, and ``steps`` to the whole rollouts trained. Off-policy ones step
    all envs at once: ``steps`` becomes a multiple of ``n_envs``. A ``checkpoint_every`` of
    None becomes a tenth of the budget.

    Returns
    -------
    str or None
        One line saying what will be trained when it differs from what was asked.
    """
    asked = config.steps
    if config.algo in ON_POLICY:
        kw = config.algo_kwargs
        n_steps = int(kw.get("n_steps", _algo_default(config.algo, "n_steps")))
        if n_steps < 1:
            raise UsageError(f"algo_kwargs.n_steps: must be a positive integer, got {n_steps}")
        rollouts = math.ceil(asked / (config.n_envs * n_steps))
        n_steps = math.ceil(asked / (config.n_envs * rollouts))
        if config.n_envs * n_steps < 2:  # SB3 needs two samples per rollout
            n_steps = 2
        kw["n_steps"] = n_steps
        rollout = config.n_envs * n_steps
        if config.algo != "a2c":
            batch = int(kw.get("batch_size", _algo_default(config.algo, "batch_size")))
            batch = min(max(batch, 2), rollout)
            while rollout % batch:
                batch -= 1
            kw["batch_size"] = max(batch, 2)
        config.steps = rollouts * rollout
        how = (f"{rollouts} rollout{'s' * (rollouts > 1)} of {config.n_envs} envs x "
               f"{n_steps} steps")
    else:
        config.steps = math.ceil(asked / config.n_envs) * config.n_envs
        how = f"{config.steps // config.n_envs} steps of {config.n_envs} envs"
    if config.checkpoint_every is None:
        config.checkpoint_every = max(1, config.steps // 10)
    return None if config.steps == asked else f"steps {asked} -> {config.steps}: {how}"
