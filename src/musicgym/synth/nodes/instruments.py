"""Compound instruments: bd, sn, hh (drums) and sawsynth, squsynth, trisynth (pitched voices).

Faithful to glicol@0.4.0 (reference/glicol-spec.md §7). Each is a small fixed graph of ordinary
nodes driven by the trigger input x (a seq or imp output) and always timed at 44.1 kHz, whatever
the engine's rate. Their envperc envelopes start at position 0, so every instrument sounds once at
creation even without a trigger. Both channels carry the same signal. A chain input drives
them; at the start of a chain they are silent.

* bd D: sin at 60 + 50·env(0.01, 0.1) Hz, times env(0.003, D)
* sn D: (sin at 60 + 55·env(0.001, 0.1) Hz + 0.3·noise(42)) times env(0.001, D)
* hh D: noise(42) through the engine's (buggy) hpf 15000 Hz, q 1, times env(0.003, D)
* sawsynth / squsynth / trisynth A D: oscillator at 261.63·x Hz (a 0 input keeps the last
  non-zero frequency, so it starts at 0 Hz) times env(A, D): x = 1 is middle C, and a higher
  note (seq 72 gives x = 2) is also louder.
"""

from __future__ import annotations

import numpy as np

from musicgym.synth.nodes.base import F32, Node, column, dual, mono
from musicgym.synth.nodes.envelopes import envperc_kernel, seconds_to_samples
from musicgym.synth.nodes.filters import biquad_kernel
from musicgym.synth.nodes.sources import SAW, SIN, SQU, TRI, _noise, _osc_input_fast

COMPOUND_SR = 44100  # the instruments' inner graphs never learn the engine's rate
_NOISE_SEED = 42


class _Envelope:
    """An envperc of the inner graph (lengths at 44.1 kHz), with its state for every row."""

    def __init__(self, batch: int, attack_s, decay_s) -> None:
        self.attack = seconds_to_samples(column(attack_s, batch), COMPOUND_SR)
        self.decay = seconds_to_samples(column(decay_s, batch), COMPOUND_SR)
        self.pos = np.zeros(batch, dtype=np.int64)
        self.scale = np.ones(batch, dtype=F32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], 1, x.shape[1]), dtype=F32)  # the kernel's (B, C, n)
        envperc_kernel(x, self.attack, self.decay, self.pos, self.scale, out)
        return out[:, 0, :]


class _Oscillator:
    """An oscillator of the inner graph whose frequency is a signal (B, n) in Hz."""

    def __init__(self, batch: int, kind: int) -> None:
        self.kind = kind
        self.phase = np.zeros(batch, dtype=F32)
        self.last = np.zeros(batch, dtype=F32)

    def __call__(self, freq: np.ndarray) -> np.ndarray:
        out = np.empty_like(freq)
        _osc_input_fast(self.kind, np.ascontiguousarray(freq), F32(COMPOUND_SR),
                        self.kind != SIN, self.phase, self.last, out)
        return out


def _noise_row(start: int, n: int) -> np.ndarray:
    """The inner noise(42) over samples ``start .. start + n``, shape (1, n) (same for all rows)."""
    out = np.empty((1, n), dtype=F32)
    _noise(np.full(1, _NOISE_SEED, dtype=np.int64), start, out)
    return out


class _Compound(Node):
    channels = 2

    def process(self, inputs, start, n):
        if not self.has_main:
            return self.zeros(n)
        x = np.ascontiguousarray(mono(inputs[0]))
        y = self.voice(x, start)
        return dual(y[:, None, :])

    def voice(self, x: np.ndarray, start: int) -> np.ndarray:
        """The instrument's signal (B, n) for trigger x (B, n) (override)."""
        raise NotImplementedError


class _Drum(_Compound):
    """A sine drum: sin at ``base + depth·env(pitch_attack, 0.1)`` Hz times env(attack, D)."""

    amp_attack_s = 0.003
    pitch_attack_s = 0.01
    depth_hz = 50.0
    state_attrs = ("env_amp.pos", "env_amp.scale", "env_pitch.pos", "env_pitch.scale",
                   "sin.phase", "sin.last")

    def setup(self) -> None:
        B = self.ctx.batch
        self.env_amp = _Envelope(B, self.amp_attack_s, self.args[0])
        self.env_pitch = _Envelope(B, self.pitch_attack_s, 0.1)
        self.sin = _Oscillator(B, SIN)

    def tone(self, x: np.ndarray) -> np.ndarray:
        freq = self.env_pitch(x) * F32(self.depth_hz) + F32(60.0)
        return self.sin(freq)


class Bd(_Drum):
    """bd DECAY_S: kick drum, a sine swept down from 110 to 60 Hz."""

    name = "bd"

    def voice(self, x, start):
        return self.tone(x) * self.env_amp(x)


class Sn(_Drum):
    """sn DECAY_S: snare drum, a sine swept down from 115 to 60 Hz plus noise."""

    name = "sn"
    amp_attack_s = 0.001
    pitch_attack_s = 0.001
    depth_hz = 55.0

    def voice(self, x, start):
        noise = _noise_row(start, x.shape[1]) * F32(0.3)
        return (self.tone(x) + noise) * self.env_amp(x)


class Hh(_Compound):
    """hh DECAY_S: hi-hat, noise through the engine's 15 kHz hpf (which passes lows too)."""

    name = "hh"

    # the hi-hat filters the noise every row shares: its filter state has one row
    state_attrs = ("env_amp.pos", "env_amp.scale", "filter_state")

    def setup(self) -> None:
        self.env_amp = _Envelope(self.ctx.batch, 0.003, self.args[0])
        self.filter_state = np.zeros((1, 4), dtype=F32)

    def voice(self, x, start):
        n = x.shape[1]
        hiss = np.empty((1, n), dtype=F32)
        biquad_kernel(_noise_row(start, n), np.full((1, n), F32(15000.0)),
                      np.ones(1, dtype=F32), F32(COMPOUND_SR), True, not self.ctx.compat,
                      self.filter_state, hiss)
        return hiss * self.env_amp(x)


class _Synth(_Compound):
    kind = SAW

    state_attrs = ("env_amp.pos", "env_amp.scale", "osc.phase", "osc.last")

    def setup(self) -> None:
        B = self.ctx.batch
        self.env_amp = _Envelope(B, self.args[0], self.args[1])
        self.osc = _Oscillator(B, self.kind)

    def voice(self, x, start):
        return self.osc(x * F32(261.63)) * self.env_amp(x)


class SawSynth(_Synth):
    """sawsynth ATTACK_S DECAY_S: sawtooth at 261.63·x Hz (x = 1 is middle C), enveloped."""

    name = "sawsynth"
    kind = SAW


class SquSynth(_Synth):
    """squsynth ATTACK_S DECAY_S: square wave at 261.63·x Hz (x = 1 is middle C), enveloped."""

    name = "squsynth"
    kind = SQU


class TriSynth(_Synth):
    """trisynth ATTACK_S DECAY_S: triangle wave at 261.63·x Hz (x = 1 is middle C), enveloped."""

    name = "trisynth"
    kind = TRI
