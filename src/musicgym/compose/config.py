"""The ``musicgym compose`` configuration: read (YAML or JSON), checked field by field.

The layout is RL-Musician's (``piece``, ``environment``, ``agent``), so its
``configs/default_config.yml`` runs unchanged; its fields keep their meaning (``scale_type`` is
the mode, ``measure_in_seconds`` sets the tempo, ``rendering_params.dir`` the output folder).
musicgym adds a few: ``piece.mode``, ``piece.species``, ``piece.tuning``, ``piece.bpm``,
``environment.lookahead``, ``agent.method`` (``guided``, the default: a beam search guided by
an estimate of RL-Musician's score; ``beam``: RL-Musician's own Monte Carlo beam search;
``random``; ``ppo``; ``policy``: the learned composing policy of
:mod:`musicgym.compose.policy`, ``agent.policy`` ``builtin`` or a trained file, and
``agent.policy_beam``, ``agent.policy_value``: a learned value, ``builtin`` or a trained
file, for the decoder of :mod:`musicgym.compose.value`, ``agent.policy_search``: the width of
the policy-guided search run beside it, 0 for none), ``agent.guided_width``,
``agent.noise``, ``agent.n_trials``,
``agent.ppo_timesteps``, ``agent.seed`` and ``agent.n_pieces``. Fields of RL-Musician that
mean nothing here (its ``sinethesizer`` synth settings, ``paralleling_params``) are accepted
and ignored. Any other field is an error that names it and the fields allowed there.

``task: melody`` (top level, or ``musicgym compose --task melody``) composes a free melody on
``musicgym/Melody-v0`` instead: ``piece.tonic``, ``piece.mode``, ``piece.bpm``,
``piece.tuning`` and ``piece.rendering_params`` keep their meaning, ``piece.melody`` holds the
env's settings (``lowest_note``, ``n_pitches``, ``n_steps``, ``steps_per_bar``, ``masks``,
``weights``, ``rule_params``) and ``rendering_params.midi.melody_instrument`` its General MIDI
program; the counterpoint-only fields are refused by name. ``agent.method: policy`` there is
the melody policy of :mod:`musicgym.compose.melody_policy` (``agent.policy``: ``builtin`` or
a trained file; ``agent.temperature``: 0, the default, plays its likeliest action).

This module reads settings; :mod:`musicgym.cli.compose` runs them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicgym.errors import ConfigError
from musicgym.safeio import load_mapping

ANY = object()  # a value accepted as it is (checked later by the code that uses it)
IGNORED = object()  # an RL-Musician field with no meaning in musicgym

SCHEMA: dict[str, Any] = {
    "task": str,
    "piece": {
        "tonic": str, "scale_type": str, "mode": str, "species": int,
        "cantus_firmus": (str, list), "voice": str, "bpm": (int, float),
        "tuning": {"kind": str, "a4_hz": (int, float), "divisions": int, "path": str,
                   "root_midi": int, "root_hz": (int, float)},
        "counterpoint_specifications": {
            "start_note": str, "end_note": str, "lowest_note": str, "highest_note": str,
            "start_pause_in_eighths": int, "max_skip_in_degrees": int},
        "rules": {"names": list, "params": dict, "penalties": dict},
        "melody": {"lowest_note": str, "n_pitches": int, "n_steps": int, "steps_per_bar": int,
                   "masks": list, "weights": dict, "rule_params": dict},
        "rendering_params": {
            "dir": str, "measure_in_seconds": (int, float),
            "midi": {"cantus_firmus_instrument": int, "counterpoint_instrument": int,
                     "melody_instrument": int, "velocity": int},
            "sinethesizer": IGNORED, "lilypond": IGNORED},
    },
    "environment": {"scoring_coefs": dict, "scoring_fn_params": dict,
                    "reward_for_dead_end": (int, float), "lookahead": bool},
    "agent": {"method": str, "seed": int, "n_pieces": int, "beam_width": int,
              "n_records_to_keep": int, "n_trials": int, "n_trials_estimation_depth": int,
              "n_trials_estimation_width": int, "n_trials_factor": (int, float),
              "ppo_timesteps": int, "temperature": (int, float), "guided_width": int,
              "noise": (int, float), "diversity": (int, float), "objective": str,
              "paralleling_params": IGNORED,
              "policy": str, "policy_beam": int, "policy_value": str,
              "policy_search": int},
}
METHODS = ("guided", "beam", "random", "ppo", "policy")
# agent fields that belong to one search method only
BEAM_FIELDS = ("n_records_to_keep", "n_trials", "n_trials_estimation_depth",
               "n_trials_estimation_width", "n_trials_factor")
GUIDED_FIELDS = ("guided_width", "noise", "diversity", "objective")
OBJECTIVES = ("rlm", "fux")  # the guided search's objectives (compose.search.OBJECTIVES)
TASKS = ("counterpoint", "melody")
# fields that mean something for one task only (refused, by name, for the other)
COUNTERPOINT_ONLY = ("piece.species", "piece.cantus_firmus", "piece.voice",
                     "piece.counterpoint_specifications", "piece.rules",
                     "piece.rendering_params.midi.cantus_firmus_instrument",
                     "piece.rendering_params.midi.counterpoint_instrument", "environment",
                     "agent.n_records_to_keep", "agent.n_trials",
                     "agent.n_trials_estimation_depth", "agent.n_trials_estimation_width",
                     "agent.n_trials_factor", "agent.guided_width", "agent.noise",
                     "agent.diversity", "agent.objective")
MELODY_ONLY = ("piece.melody", "piece.rendering_params.midi.melody_instrument",
               "agent.temperature")
MELODY_PROGRAM = 73  # General MIDI flute
MELODY_VELOCITY = 90


@dataclass
class ComposeConfig:
    """Settings of one ``musicgym compose`` run, with RL-Musician's defaults.

    ``env_kwargs`` are the keyword arguments of ``musicgym/Counterpoint-v0`` (``task``
    ``"counterpoint"``) or ``musicgym/Melody-v0`` (``"melody"``); ``tuning`` those of
    :func:`~musicgym.music.tunings.make_tuning`; ``agent`` the search or training budget.
    """

    task: str = "counterpoint"
    env_kwargs: dict[str, Any] = field(default_factory=lambda: {"cantus_firmus": "rl_musician"})
    tuning: dict[str, Any] = field(default_factory=lambda: {"kind": "12tet"})
    bpm: float = 120.0
    method: str | None = None  # None: chosen by validate() (see default_method)
    method_is_default: bool = False
    n_pieces: int = 1
    seed: int = 0
    outdir: str = "outputs"
    agent: dict[str, Any] = field(default_factory=dict)
    programs: tuple[int, int] = (19, 40)
    velocities: tuple[int, int] = (80, 96)
    ignored: list[str] = field(default_factory=list)
    source: str = "<defaults>"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (``.yml``/``.yaml``) or JSON file into a dict.

    Raises
    ------
    ConfigError
        If the file is missing, does not parse (line given), is not a mapping, or is too big,
        too deep or not UTF-8 (read by :func:`musicgym.safeio.load_mapping`).
    """
    return load_mapping(Path(path))


def _check(data: dict[str, Any], schema: dict[str, Any], where: str, source: str,
           ignored: list[str]) -> None:
    for key, value in data.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown field {name!r}{hint}; fields allowed "
                              f"{'in ' + repr(where) if where else 'at the top'}: "
                              f"{', '.join(schema)}")
        kind = schema[key]
        if kind is IGNORED:
            ignored.append(name)
        elif isinstance(kind, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: field {name!r} must be a mapping with fields "
                                  f"{', '.join(kind)}, got {value!r}")
            _check(value, kind, name, source, ignored)
        elif kind is not ANY and (not isinstance(value, kind) or isinstance(value, bool)
                                  and kind is not bool):
            wanted = (" or ".join(k.__name__ for k in kind) if isinstance(kind, tuple)
                      else kind.__name__)
            raise ConfigError(f"{source}: field {name!r} must be {wanted}, got {value!r}")


def _present(data: dict[str, Any], dotted: str) -> bool:
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def parse_config(data: dict[str, Any], *, source: str = "<config>",
                 task: str | None = None) -> ComposeConfig:
    """Check a config mapping and turn it into :class:`ComposeConfig`.

    ``task`` (from ``--task``) overrides the config's ``task`` field when that is absent.

    Raises
    ------
    ConfigError
        For an unknown field (named, with the allowed ones and the closest match), a value of
        the wrong type, a field of the other task, or an unknown method or task.
    """
    ignored: list[str] = []
    _check(data, SCHEMA, "", source, ignored)
    if task is not None and "task" in data and data["task"] != task:
        raise ConfigError(f"{source}: the config's task is {data['task']!r} but --task says "
                          f"{task!r}; give one")
    task = task or data.get("task", "counterpoint")
    if task not in TASKS:
        raise ConfigError(f"{source}: task must be one of {', '.join(TASKS)}, got {task!r}")
    other = COUNTERPOINT_ONLY if task == "melody" else MELODY_ONLY
    for dotted in other:
        if _present(data, dotted):
            raise ConfigError(f"{source}: field {dotted!r} is for task "
                              f"{'counterpoint' if task == 'melody' else 'melody'}, not "
                              f"{task!r}; remove it (or set task: "
                              f"{'counterpoint' if task == 'melody' else 'melody'})")
    if task == "melody":
        return _parse_melody(data, source, ignored)
    piece = data.get("piece", {})
    specs = piece.get("counterpoint_specifications", {})
    rendering = piece.get("rendering_params", {})
    env_section = data.get("environment", {})
    agent = dict(data.get("agent", {}))
    if "scale_type" in piece and "mode" in piece:
        raise ConfigError(f"{source}: give piece.mode or piece.scale_type (RL-Musician's name "
                          "for it), not both")
    env_kwargs: dict[str, Any] = {"cantus_firmus": piece.get("cantus_firmus", "rl_musician")}
    for ours, value in (("tonic", piece.get("tonic")),
                        ("mode", piece.get("mode", piece.get("scale_type"))),
                        ("species", piece.get("species")),
                        ("voice", piece.get("voice")),
                        ("start_note", specs.get("start_note")),
                        ("end_note", specs.get("end_note")),
                        ("lowest_note", specs.get("lowest_note")),
                        ("highest_note", specs.get("highest_note")),
                        ("start_pause_eighths", specs.get("start_pause_in_eighths")),
                        ("max_skip_degrees", specs.get("max_skip_in_degrees"))):
        if value is not None:
            env_kwargs[ours] = value
    rules = piece.get("rules", {})
    if "names" in rules:
        env_kwargs["rules"] = list(rules["names"])
    for ours, key in (("rule_params", "params"), ("penalties", "penalties")):
        if key in rules:
            env_kwargs[ours] = dict(rules[key])
    for ours in ("scoring_coefs", "scoring_fn_params", "reward_for_dead_end", "lookahead"):
        if ours in env_section:
            env_kwargs[ours] = env_section[ours]
    config = ComposeConfig(env_kwargs=env_kwargs, ignored=ignored, source=source)
    midi = rendering.get("midi", {})
    config.programs = (midi.get("cantus_firmus_instrument", config.programs[0]),
                       midi.get("counterpoint_instrument", config.programs[1]))
    if "velocity" in midi:
        config.velocities = (midi["velocity"], midi["velocity"])
    agent.pop("paralleling_params", None)
    # a 4/4 bar of measure_in_seconds: 4 quarters per bar
    return _common(config, piece, agent, quarters_per_bar=4.0)


def _parse_melody(data: dict[str, Any], source: str, ignored: list[str]) -> ComposeConfig:
    """The ``task: melody`` part of :func:`parse_config` (fields already checked)."""
    from musicgym.errors import PitchError
    from musicgym.music.pitch import parse_pitch

    piece = data.get("piece", {})
    melody = dict(piece.get("melody", {}))
    rendering = piece.get("rendering_params", {})
    agent = dict(data.get("agent", {}))
    if "scale_type" in piece and "mode" in piece:
        raise ConfigError(f"{source}: give piece.mode or piece.scale_type, not both")
    env_kwargs: dict[str, Any] = {}
    for ours, value in (("tonic", piece.get("tonic")),
                        ("mode", piece.get("mode", piece.get("scale_type")))):
        if value is not None:
            env_kwargs[ours] = value
    if "lowest_note" in melody:
        try:
            env_kwargs["lowest_midi"] = parse_pitch(melody.pop("lowest_note")).midi
        except PitchError as exc:
            raise ConfigError(f"{source}: field 'piece.melody.lowest_note': {exc}") from None
    for name in ("n_pitches", "n_steps", "steps_per_bar"):
        if name in melody:
            if melody[name] < 1:
                raise ConfigError(f"{source}: field 'piece.melody.{name}' must be at least 1, "
                                  f"got {melody[name]}")
            env_kwargs[name] = melody.pop(name)
    if env_kwargs.get("lowest_midi", 48) + env_kwargs.get("n_pitches", 36) > 128:
        raise ConfigError(f"{source}: piece.melody.lowest_note + n_pitches goes above the "
                          "highest MIDI key (127); lower one of them")
    env_kwargs.update(melody)  # masks, weights, rule_params: checked by the env
    config = ComposeConfig(task="melody", env_kwargs=env_kwargs, ignored=ignored,
                           source=source, programs=(MELODY_PROGRAM,),
                           velocities=(MELODY_VELOCITY,))
    midi = rendering.get("midi", {})
    config.programs = (midi.get("melody_instrument", MELODY_PROGRAM),)
    config.velocities = (midi.get("velocity", MELODY_VELOCITY),)
    # a bar of steps_per_bar eighth notes lasts measure_in_seconds
    return _common(config, piece, agent,
                   quarters_per_bar=env_kwargs.get("steps_per_bar", 8) / 2.0)


def _common(config: ComposeConfig, piece: dict[str, Any], agent: dict[str, Any], *,
            quarters_per_bar: float) -> ComposeConfig:
    """The fields both tasks read alike: tuning, tempo, output folder, method, seed, count."""
    source = config.source
    rendering = piece.get("rendering_params", {})
    if "tuning" in piece:
        config.tuning = dict(piece["tuning"])
    if "bpm" in piece and "measure_in_seconds" in rendering:
        raise ConfigError(f"{source}: give piece.bpm or rendering_params.measure_in_seconds, "
                          "not both")
    if "measure_in_seconds" in rendering:
        config.bpm = 60.0 * quarters_per_bar / _positive(
            rendering["measure_in_seconds"], "piece.rendering_params.measure_in_seconds", source)
    elif "bpm" in piece:
        config.bpm = _positive(piece["bpm"], "piece.bpm", source)
    config.outdir = rendering.get("dir", config.outdir)
    config.method = agent.pop("method", None)
    config.seed = agent.pop("seed", config.seed)
    config.n_pieces = agent.pop("n_pieces", config.n_pieces)
    config.agent = agent
    return validate(config)


def default_method(config: ComposeConfig) -> str:
    """The method when none is named: ``beam`` for a melody; for a counterpoint ``guided``,
    or ``beam`` when the config sets RL-Musician's beam-search fields (its own config then runs
    its own search)."""
    if config.task == "melody":
        return "beam"
    return "beam" if any(name in config.agent for name in BEAM_FIELDS) else "guided"


def _positive(value: float, name: str, source: str) -> float:
    if not value > 0:
        raise ConfigError(f"{source}: field {name!r} must be positive, got {value!r}")
    return float(value)


def validate(config: ComposeConfig) -> ComposeConfig:
    """Check the values a command line may also set (method, counts, budgets).

    Raises
    ------
    ConfigError
        Naming the bad setting.
    """
    if config.method is None:
        config.method = default_method(config)
        config.method_is_default = True
    if config.method not in METHODS:
        raise ConfigError(f"{config.source}: method must be one of {', '.join(METHODS)}, "
                          f"got {config.method!r}")
    for key in ("policy_beam", "policy_value", "policy_search"):
        if config.task == "melody" and key in config.agent:
            raise ConfigError(f"{config.source}: agent.{key} (--{key.replace('_', '-')}) is "
                              "for task counterpoint; the melody policy writes a melody in "
                              "one pass")
    if config.method != "policy" and any(k in config.agent for k in (
            "policy", "policy_beam", "policy_value", "policy_search")):
        raise ConfigError(f"{config.source}: agent.policy, policy_beam, policy_value and "
                          f"policy_search are "
                          f"settings of method policy, but the method is {config.method}; "
                          "remove them or use method policy")
    if config.task == "melody" and config.method == "guided":
        raise ConfigError(f"{config.source}: method guided is for task counterpoint; a "
                          "melody's search is method beam (on the env's step rewards)")
    for fields, method in ((BEAM_FIELDS, "beam"), (GUIDED_FIELDS, "guided")):
        given = [name for name in fields if name in config.agent]
        if (given and config.task == "counterpoint"
                and config.method in ("beam", "guided") and config.method != method):
            raise ConfigError(f"{config.source}: agent.{given[0]} is a setting of method "
                              f"{method}, but the method is {config.method}; remove it or use "
                              f"method {method}")
    if config.n_pieces < 1:
        raise ConfigError(f"{config.source}: the number of pieces must be at least 1, "
                          f"got {config.n_pieces}")
    for name, value in config.agent.items():
        if config.task == "melody" and f"agent.{name}" in COUNTERPOINT_ONLY:
            raise ConfigError(f"{config.source}: agent.{name} (--{name.replace('_', '-')}) is "
                              "for task counterpoint; a melody's search takes beam_width, "
                              "temperature and ppo_timesteps")
        if name == "objective":
            if value not in OBJECTIVES:
                raise ConfigError(f"{config.source}: agent.objective must be one of "
                                  f"{', '.join(OBJECTIVES)}, got {value!r}")
            continue
        if name in ("policy", "policy_value"):  # 'builtin' or a path, checked when loaded
            continue
        if name == "policy_search":
            if not value >= 0:
                raise ConfigError(f"{config.source}: agent.policy_search (the policy-guided "
                                  f"search's width; 0: none) must be 0 or more, got {value!r}")
            if "policy_value" not in config.agent:
                raise ConfigError(f"{config.source}: agent.policy_search runs beside the "
                                  "learned value's beam: give agent.policy_value "
                                  "(--policy-value builtin) too")
            continue
        if name in ("temperature", "noise", "diversity"):
            if not value >= 0:
                raise ConfigError(f"{config.source}: agent.{name} must be 0 or more, "
                                  f"got {value!r}")
            continue
        if not (value > 0 if name == "n_trials_factor" else value >= 1):
            raise ConfigError(f"{config.source}: agent.{name} must be at least 1 "
                              f"(n_trials_factor: positive), got {value!r}")
    names = (("melody_instrument",) if config.task == "melody"
             else ("cantus_firmus_instrument", "counterpoint_instrument"))
    for name, program in zip(names, config.programs, strict=True):
        if not 0 <= program <= 127:
            raise ConfigError(f"{config.source}: rendering_params.midi.{name} must be a "
                              f"General MIDI program 0..127, got {program}")
    return config


def load_config(path: str | Path | None, *, task: str | None = None) -> ComposeConfig:
    """Read and check a config file; ``None`` gives the defaults (RL-Musician's piece, or
    Melody-v0's defaults for ``task="melody"``)."""
    if path is None:
        return parse_config({}, source="<defaults>", task=task)
    return parse_config(read_config_file(path), source=str(path), task=task)
