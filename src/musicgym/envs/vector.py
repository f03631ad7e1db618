"""What musicgym's native vector envs share: reading the autoreset mode and a reset mask.

Gymnasium's vector contract (``metadata["autoreset_mode"]``, ``reset(options={"reset_mask":
mask})``) checked in one place for ``SynthMatchVectorEnv`` and ``ImproviseVectorEnv``; each
env passes its own error class so the message names the family's error, as its other
arguments do.
"""

from __future__ import annotations

import numpy as np
from gymnasium.vector import AutoresetMode

from musicgym.envs.options import reset_options
from musicgym.errors import MusicgymError


def autoreset_mode_of(value: AutoresetMode | str, allowed: tuple[AutoresetMode, ...],
                      error: type[MusicgymError]) -> AutoresetMode:
    """``value`` as an :class:`~gymnasium.vector.AutoresetMode`.

    Parameters
    ----------
    value : AutoresetMode or str
        The mode, its value (``"SameStep"``) or its name in any case (``"same_step"``).
    allowed : tuple of AutoresetMode
        The modes the env implements.
    error : type
        The exception raised for anything else.
    """
    modes = {m.value.lower(): m for m in AutoresetMode} | \
        {m.name.lower(): m for m in AutoresetMode}
    mode = value if isinstance(value, AutoresetMode) else modes.get(str(value).lower())
    if mode not in allowed:
        names = ", ".join(f"AutoresetMode.{m.name}" for m in allowed)
        raise error(f"autoreset_mode must be one of {names}, got {value!r}")
    return mode


def reset_mask_of(options: dict | None, num_envs: int,
                  error: type[MusicgymError]) -> np.ndarray:
    """The rows a ``reset`` restarts: ``options["reset_mask"]`` (checked as Gymnasium checks
    it: a bool array of shape (num_envs,) with at least one True), else every row. The
    options are not modified (a wrapper above may read them after this env)."""
    mask = reset_options(options, error).get("reset_mask")
    if mask is None:
        return np.ones(num_envs, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != (num_envs,) or mask.dtype != np.bool_ or not mask.any():
        raise error(f"options['reset_mask'] must be a bool array of shape ({num_envs},) with "
                    f"at least one True, got {mask!r}")
    return mask.copy()


def check_batch(actions, num_envs: int, error: type[MusicgymError]) -> None:
    """Raise ``error`` unless ``actions`` (an array, or a dict of arrays) has one row per env."""
    parts = actions.values() if isinstance(actions, dict) else [actions]
    for part in parts:
        shape = np.shape(part)
        if not shape or shape[0] != num_envs:
            raise error(f"a vector env of {num_envs} envs takes one action per env (a batch "
                        f"of {num_envs} rows), got an action batch of shape {shape}")
