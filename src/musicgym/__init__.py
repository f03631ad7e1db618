"""musicgym: Gymnasium environments in which RL agents do real musical work.

The package is layered; each layer imports only the ones below it (import-linter's contract
in ``pyproject.toml``, checked by ``tests/test_layers.py``):

* ``musicgym.cli``: the ``musicgym`` command;
* ``musicgym.train`` | ``musicgym.live``: the one training stack (SB3, RLlib), evaluation,
  baselines | live play over OSC and MIDI (neither imports the other);
* ``musicgym.compose``: composition jobs above the envs (searches, pieces, files);
* ``musicgym.envs``: the Gymnasium environments;
* ``musicgym.follow``: score following, tempo models, the accompanist core;
* ``musicgym.synth``: the Glicol-compatible engine (parser, templates, NumPy and reference
  backends);
* ``musicgym.audio`` | ``musicgym.music``: audio files, descriptors, distances | pitches,
  scales, tunings, note arrays, rules, MIDI;
* ``musicgym.errors``: every exception a user can see.
"""

__version__ = "0.1.0"

from musicgym import envs as _envs  # noqa: E402,F401  (registers the musicgym/ env ids)


def make_synth_match(code, target, total_step=1, step_len=None, action_space=(), **kwargs):
    """RaveForce's ``make``: a ``musicgym/SynthMatch-v0`` env (see ``envs.synth_match``)."""
    from musicgym.envs.synth_match import make_synth_match as _make

    return _make(code, target, total_step, step_len, action_space, **kwargs)
