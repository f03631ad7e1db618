"""RaveForce's README example, ported to musicgym: change the import, unpack five values.

RaveForce (https://github.com/chaosprint/RaveForce) defines a task in Glicol with {} holes.
The original reads a kick sample with librosa and calls ``raveforce.make``; here the target is
any audio file (default: a kick musicgym makes itself) and ``musicgym.make_synth_match`` takes
the same arguments, including ``criteria``.

    python examples/raveforce_port.py [kick.wav]
"""

from __future__ import annotations

import sys

import numpy as np

import musicgym
from musicgym.audio.io import read_audio
from musicgym.envs.presets import kick_target

if len(sys.argv) > 1:
    target = read_audio(sys.argv[1], sr=44100)[0].mean(axis=0)
else:
    target = kick_target()
dur = len(target) / 44100

env = musicgym.make_synth_match(
    """
     ~env: imp 0.1 >> envperc {} {}
    kick_drum: sin {} >> mul ~env
    """,
    total_step=1,
    step_len=dur,
    target=target,
    criteria="mse",  # RaveForce's raw MSE; try "mrstft" (the default), "logmel" or "mfcc"
    action_space=[
        ["lin", 0.0001, dur - 0.0001],
        ["rel", 0, lambda x: dur - 0.0001 - x],  # related to parameter 0
        ["exp", 10, 10000],
    ],
)

observation, info = env.reset(seed=0)
action = env.action_space.sample()
observation, reward, terminated, truncated, info = env.step(action)
print("parameters:", info["params"])
print("reward:", reward, "terminated:", terminated)  # RaveForce's episode never ended
assert terminated and np.isfinite(reward)
