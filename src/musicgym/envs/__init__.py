"""The Gymnasium environments of musicgym, registered under the ``musicgym/`` namespace.

Entry points are strings, so importing this package imports no environment module until
``gymnasium.make`` asks for one.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

_ENVS = [
    # (id, entry point, vector entry point or None, kwargs)
    # one line per env; each family adds its own
    ("musicgym/Accompany-v0", "musicgym.envs.accompany:AccompanyEnv", None, {}),
    ("musicgym/Counterpoint-v0", "musicgym.envs.counterpoint:CounterpointEnv", None, {}),
    ("musicgym/Melody-v0", "musicgym.envs.melody:MelodyEnv", None, {}),
    ("musicgym/Improvise-v0", "musicgym.envs.improvise:ImproviseEnv",
     "musicgym.envs.improvise:ImproviseVectorEnv", {}),
    ("musicgym/SynthMatch-v0", "musicgym.envs.synth_match:SynthMatchEnv",
     "musicgym.envs.presets:make_synth_match_vec", {}),
    ("musicgym/Kick-v0", "musicgym.envs.presets:make_kick",
     "musicgym.envs.presets:make_kick_vec", {}),
    ("musicgym/BassLine-v0", "musicgym.envs.presets:make_bassline",
     "musicgym.envs.presets:make_bassline_vec", {}),
    ("musicgym/FMTone-v0", "musicgym.envs.presets:make_fm_tone",
     "musicgym.envs.presets:make_fm_tone_vec", {}),
    ("musicgym/Snare-v0", "musicgym.envs.presets:make_snare",
     "musicgym.envs.presets:make_snare_vec", {}),
]


def register_envs() -> None:
    """Register every musicgym env with Gymnasium (idempotent)."""
    for env_id, entry_point, vector_entry_point, kwargs in _ENVS:
        if env_id in registry:
            continue
        extra = {"vector_entry_point": vector_entry_point} if vector_entry_point else {}
        register(id=env_id, entry_point=entry_point, kwargs=kwargs, **extra)


register_envs()
