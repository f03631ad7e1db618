"""The first piece of a fresh process (``musicgym compose`` writing one piece) is written
without loading numba, and is the piece a process with numba loaded writes: the oracle's first
exercise takes the Python path, and ``looped_fragments`` counts with NumPy until numba is
loaded (``musicgym.music.rules.scores``)."""

import json
import subprocess
import sys

from musicgym.compose.policy import ComposerPolicy
from musicgym.compose.value import ComposerValue, compose_value_and_search
from musicgym.envs.counterpoint import CounterpointEnv

_FIRST_PIECE = """
import json, sys
from musicgym.compose.policy import ComposerPolicy
from musicgym.compose.value import ComposerValue, compose_value_and_search
from musicgym.envs.counterpoint import CounterpointEnv

env = CounterpointEnv(cantus_firmus="fux_dorian", species=5)
env.reset()
ret, actions = compose_value_and_search(env, ComposerPolicy.load("builtin"),
                                        ComposerValue.load("builtin"), search_width=20)
print(json.dumps({"return": ret, "actions": actions, "compiled": env.oracle.compiled,
                  "numba": "numba" in sys.modules}))
"""


def test_a_fresh_process_writes_its_first_piece_without_numba_and_the_same_piece():
    done = subprocess.run([sys.executable, "-c", _FIRST_PIECE], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    assert fresh["compiled"] is False and fresh["numba"] is False
    # here, numba loaded: the compiled masks and the compiled count
    from musicgym.music.rules import fastmask  # noqa: F401

    env = CounterpointEnv(cantus_firmus="fux_dorian", species=5)
    env.oracle.compiled = True
    env.reset()
    ret, actions = compose_value_and_search(env, ComposerPolicy.load("builtin"),
                                            ComposerValue.load("builtin"), search_width=20)
    assert env.oracle._fast is not None  # the compiled path served this one
    assert (ret, actions) == (fresh["return"], fresh["actions"])
    assert ret > 2.5
