"""musicgym: Gymnasium environments in which RL agents do real musical work.

The package is layered (nothing imports upward):

* ``musicgym.synth``: the Glicol-compatible engine (parser, templates, NumPy and reference
  backends);
* ``musicgym.audio``: audio files, descriptors, distances;
* ``musicgym.music``: pitches, scales, tunings, note arrays, MIDI;
* ``musicgym.follow``: score following and tempo models;
* ``musicgym.envs``: the Gymnasium environments.
"""

__version__ = "0.1.0"

from musicgym import envs as _envs  # noqa: E402,F401  (registers the musicgym/ env ids)


def make_synth_match(code, target, total_step=1, step_len=None, action_space=(), **kwargs):
    """RaveForce's ``make``: a ``musicgym/SynthMatch-v0`` env (see ``envs.synth_match``)."""
    from musicgym.envs.synth_match import make_synth_match as _make

    return _make(code, target, total_step, step_len, action_space, **kwargs)
