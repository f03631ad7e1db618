"""Registered sound-matching presets and the default targets musicgym makes itself.

Each default target is synthesised in NumPy by a different model than the preset's Glicol patch
(exponential envelopes and pitch sweeps, additive saws, phase modulation), so no parameter
setting matches it exactly: the agent has to find the closest sound, as with a recording.

* ``musicgym/Kick-v0``: RaveForce's sine kick; the agent sets attack, decay and frequency;
  default target a swept-sine kick, 0.5 s.
* ``musicgym/BassLine-v0``: seq -> sawsynth -> lpf; 16 steps of 1/8 bar, each a note and a
  cutoff; default target an additive-saw bass line, 4 s.
* ``musicgym/FMTone-v0``: ``sin`` of carrier + index·fm·sin(fm); carrier, ratio, index,
  envelope; default target a phase-modulated tone, 1 s.
* ``musicgym/Snare-v0`` (the drum-kit preset): a sine body plus filtered noise; tone, noise,
  levels, envelope; default target a sine + noise snare, 0.5 s.

Any target may replace the default: ``gym.make("musicgym/Kick-v0", target="my_kick.wav")``.
"""

from __future__ import annotations

import numpy as np

SR = 44100

KICK_CODE = "~env: imp 0.1 >> envperc {} {}\nkick_drum: sin {} >> mul ~env"
BASS_CODE = "o: seq {note} >> sawsynth 0.005 0.2 >> lpf {cutoff_hz} 2.0 >> mul 0.4"
FM_CODE = ("~modf: sig {carrier_hz} >> mul {ratio}\n"
           "~dev: sin ~modf >> mul {index} >> mul ~modf\n"
           "~freq: get ~dev >> add {carrier_hz}\n"
           "~env: imp 0.5 >> envperc {attack_s} {decay_s}\n"
           "o: sin ~freq >> mul ~env >> mul 0.5")
SNARE_CODE = ("~env: imp 0.5 >> envperc {attack_s} {decay_s}\n"
              "~tone: sin {tone_hz} >> mul {tone_gain}\n"
              "~hiss: noise 7 >> lpf {noise_hz} 1.0 >> mul {noise_gain}\n"
              "o: mix ~tone ~hiss >> mul ~env")
BASS_NOTES = (36, 36, 48, 36, 39, 39, 43, 36, 36, 48, 36, 41, 43, 41, 39, 36)
BASS_CUTOFFS = (500, 700, 1200, 600, 900, 1500, 2400, 800, 500, 900, 700, 1100, 1800, 2600,
                3000, 900)


def _time(seconds: float) -> np.ndarray:
    return np.arange(int(round(seconds * SR))) / SR


def kick_target(seconds: float = 0.5) -> np.ndarray:
    """A kick: a sine swept exponentially from 170 to 50 Hz, exponential attack and decay."""
    t = _time(seconds)
    freq = 50.0 + 120.0 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(freq) / SR
    amp = (1.0 - np.exp(-t / 0.002)) * np.exp(-t / 0.15)
    return (0.9 * amp * np.sin(phase)).astype(np.float32)


def bassline_target(step_s: float = 0.25) -> np.ndarray:
    """16 notes of an additive saw (20 partials) with exponential decay; brightness per step."""
    out = []
    t = _time(step_s)
    for note, cutoff in zip(BASS_NOTES, BASS_CUTOFFS, strict=True):
        f0 = 440.0 * 2 ** ((note - 69) / 12)
        partials = np.arange(1, 21)
        weights = (1.0 / partials) / np.sqrt(1.0 + (partials * f0 / cutoff) ** 4)
        tone = (weights[:, None] * np.sin(2 * np.pi * f0 * partials[:, None] * t)).sum(0)
        out.append(0.35 * tone * np.exp(-t / 0.12) * (1.0 - np.exp(-t / 0.003)))
    return np.concatenate(out).astype(np.float32)


def fm_target(seconds: float = 1.0) -> np.ndarray:
    """Phase modulation: carrier 220 Hz, ratio 2, index decaying from 4; exponential envelope."""
    t = _time(seconds)
    index = 4.0 * np.exp(-t / 0.3)
    tone = np.sin(2 * np.pi * 220.0 * t + index * np.sin(2 * np.pi * 440.0 * t))
    return (0.5 * tone * (1.0 - np.exp(-t / 0.005)) * np.exp(-t / 0.4)).astype(np.float32)


def snare_target(seconds: float = 0.5) -> np.ndarray:
    """A 190 Hz sine body plus seeded white noise smoothed by a 3-tap filter, decaying."""
    t = _time(seconds)
    noise = np.random.default_rng(0).standard_normal(t.size)
    noise = np.convolve(noise, [0.25, 0.5, 0.25], mode="same")
    body = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.06)
    return (0.5 * (0.8 * body + 0.6 * noise * np.exp(-t / 0.1))).astype(np.float32)


PRESETS: dict[str, dict] = {
    "Kick-v0": dict(code=KICK_CODE, target=kick_target, total_step=1, step_len=0.5,
                    action_space=[("exp", 0.0005, 0.05), ("exp", 0.05, 0.5),
                                  ("exp", 30.0, 300.0)]),
    "BassLine-v0": dict(code=BASS_CODE, target=bassline_target, total_step=16, step_len=0.25,
                        action_space=[("choose", list(range(33, 52))),
                                      ("exp", 100.0, 5000.0)],
                        flat_actions=True),
    "FMTone-v0": dict(code=FM_CODE, target=fm_target, total_step=1, step_len=1.0,
                      action_space=[("exp", 100.0, 1000.0), ("lin", 0.5, 4.0), ("lin", 0.0, 8.0),
                                    ("exp", 0.001, 0.1), ("exp", 0.05, 1.0)]),
    "Snare-v0": dict(code=SNARE_CODE, target=snare_target, total_step=1, step_len=0.5,
                     action_space=[("exp", 0.0005, 0.02), ("exp", 0.03, 0.5),
                                   ("exp", 80.0, 400.0), ("lin", 0.0, 1.0),
                                   ("exp", 500.0, 15000.0), ("lin", 0.0, 1.0)]),
}


def preset_kwargs(name: str, **overrides) -> dict:
    """The keyword arguments of preset ``name`` (default target rendered), with overrides."""
    kwargs = dict(PRESETS[name])
    if "target" not in overrides:
        kwargs["target"] = kwargs["target"]()
    kwargs.update(overrides)
    return kwargs


def _maker(name: str):
    def make(**overrides):
        from musicgym.envs.synth_match import SynthMatchEnv

        return SynthMatchEnv(**preset_kwargs(name, **overrides))

    def make_vec(num_envs: int = 1, **overrides):
        from musicgym.envs.synth_match_vector import SynthMatchVectorEnv

        overrides.pop("vectorization_mode", None)
        overrides.pop("vector_kwargs", None)
        return SynthMatchVectorEnv(num_envs=num_envs, **preset_kwargs(name, **overrides))

    make.__doc__ = f"``musicgym/{name}`` (see this module's table)."
    # SynthMatchEnv's render modes, read by gymnasium.make before it builds the env
    make.metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}
    make_vec.__doc__ = f"Native vector ``musicgym/{name}``."
    return make, make_vec


make_kick, make_kick_vec = _maker("Kick-v0")
make_bassline, make_bassline_vec = _maker("BassLine-v0")
make_fm_tone, make_fm_tone_vec = _maker("FMTone-v0")
make_snare, make_snare_vec = _maker("Snare-v0")


def make_synth_match_vec(num_envs: int = 1, **kwargs):
    """Native vector ``musicgym/SynthMatch-v0`` (the generic env: give code, target...)."""
    from musicgym.envs.synth_match_vector import SynthMatchVectorEnv

    kwargs.pop("vectorization_mode", None)
    kwargs.pop("vector_kwargs", None)
    return SynthMatchVectorEnv(num_envs=num_envs, **kwargs)
