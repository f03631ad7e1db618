"""Small settings for every registered env, so episodes end within a few steps: the tests that
walk every id (vector contract, render modes) share them."""

from __future__ import annotations

from musicgym.envs.presets import KICK_CODE, kick_target

SMALL_KWARGS = {
    "musicgym/Accompany-v0": {"sources": ("simulated",), "episode_reports": 4},
    "musicgym/Counterpoint-v0": {"species": 1, "max_steps": 6},
    "musicgym/Melody-v0": {"n_steps": 4},
    "musicgym/Improvise-v0": {"synth": "sine", "mode": "lookup", "subdiv": 3,
                              "max_episode_steps": 3},
    "musicgym/SynthMatch-v0": {"code": KICK_CODE, "target": kick_target(0.2), "total_step": 2,
                               "step_len": 0.1,
                               "action_space": [("exp", 0.0005, 0.05), ("exp", 0.05, 0.5),
                                                ("exp", 30.0, 300.0)]},
    "musicgym/Kick-v0": {},
    "musicgym/BassLine-v0": {"total_step": 2},
    "musicgym/FMTone-v0": {"step_len": 0.2},
    "musicgym/Snare-v0": {"step_len": 0.2},
}
