"""Synths an improvising agent plays: Glicol templates whose holes are driven by N values in [0, 1].

As in DDSP, a synth is two layers: :meth:`Synth.get_controls` maps the agent's parameters
``u`` in [0, 1] to physical controls (Hz, ratios, gains), and the Glicol patch turns the
controls into sound. Built-ins (:data:`SYNTHS`):

=============== ============================================ =====================================
name            parameters (0 -> 1)                          sound
=============== ============================================ =====================================
``sine``        freq_hz 20 -> 2520 (lin), amp 0 -> 1         RL-impro's ``sin`` synth
``fm``          carrier_hz 400 -> 800, harmonicity 0 -> 5,    RL-impro's FM3 as it was meant
                index 0 -> 5 (all lin)                        (modulator = carrier x harmonicity,
                                                              deviation = index x modulator)
``subtractive`` pitch_hz 55 -> 880 (exp), cutoff_hz           sawtooth through Glicol's lpf
                100 -> 8000 (exp), q 0.7 -> 8 (lin)
``sampler``     density_hz 2 -> 40 (exp), speed 0.25 -> 4     a sample retriggered by impulses
                (exp), cutoff_hz 200 -> 16000 (exp)           at a playback speed, through lpf
``granular``    density_hz 2 -> 40 (exp), speed 0.25 -> 4    grains of a sustained 220 Hz tone:
                (exp), grain_s 0.02 -> 0.5 (exp)              one per impulse, played at a speed
                                                              (pitch 55-880 Hz), under a
                                                              percussive envelope of grain_s
=============== ============================================ =====================================

Any patch works the same way: ``Synth.from_code("o: saw {pitch_hz} >> lpf {cutoff_hz} 1.0",
{"pitch_hz": (55, 880, "exp"), "cutoff_hz": (100, 8000, "exp")})``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from musicgym.errors import ImproviseConfigError

SCALES = ("lin", "exp")


@dataclass(frozen=True)
class Control:
    """One agent parameter: ``u`` in [0, 1] -> a physical value in [low, high]."""

    name: str
    low: float
    high: float
    scale: str = "lin"

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ImproviseConfigError(f"control {self.name!r}: scale must be one of {SCALES}, "
                                       f"got {self.scale!r}")
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.low >= self.high:
            raise ImproviseConfigError(f"control {self.name!r}: needs finite low < high, got "
                                       f"{self.low} and {self.high}")
        if self.scale == "exp" and self.low <= 0:
            raise ImproviseConfigError(f"control {self.name!r}: an 'exp' range needs low > 0, "
                                       f"got {self.low}; use 'lin' for ranges that include 0")

    def to_physical(self, u: np.ndarray) -> np.ndarray:
        if self.scale == "exp":
            return self.low * (self.high / self.low) ** u
        return self.low + (self.high - self.low) * u


def _plucked_tone(sr: int) -> tuple[np.ndarray, int]:
    """The sampler's default source: half a second of a filtered, decaying sawtooth."""
    from musicgym.synth import Patch

    code = "~env: imp 0.5 >> envperc 0.002 0.45\no: saw 220 >> lpf 2500 3 >> mul ~env"
    return Patch(code, sr=sr).render(n_samples=sr // 2)[0], sr


def _grain_source(sr: int) -> tuple[np.ndarray, int]:
    """The granular synth's source: two seconds of a sustained, filtered 220 Hz sawtooth
    (RL-impro's grain file was never published; a pitched tone makes speed a pitch control)."""
    from musicgym.synth import Patch

    return Patch("o: saw 220 >> lpf 3000 1.0 >> mul 0.5", sr=sr).render(n_samples=2 * sr)[0], sr


@dataclass
class Synth:
    """A Glicol template played through N parameters in [0, 1].

    Parameters
    ----------
    name : str
    code : str
        Glicol code whose holes ``{name}`` take the controls (or what ``holes`` derives).
    controls : tuple of Control
        One per agent parameter, in order.
    holes : callable, optional
        Physical controls (a dict name -> (B,) array) to hole values (dict hole -> (B,)); by
        default each hole takes the control of the same name.
    samples : mapping, optional
        Samples for ``sp`` nodes (name -> path or (array, sr)), or a callable ``sr -> (array,
        sr)`` that makes one.
    preroll_s : float
        Sound rendered (and analysed only to settle filters) before the window the agent hears.
    table_hold_s : float
        0 (a stationary sound): a lookup-table entry is the one window played after the
        pre-roll. Above 0 (a sound that changes while held, as grains do): the entry is the
        mean of the descriptors over the frames of this many seconds held after the pre-roll
        (:func:`~musicgym.envs.improvise_data.analyze_held`).
    """

    name: str
    code: str
    controls: tuple[Control, ...]
    holes: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    samples: Mapping | None = None
    preroll_s: float = 0.0
    table_hold_s: float = 0.0
    _patches: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_code(cls, code: str, ranges: Mapping[str, tuple], *, name: str = "custom",
                  samples: Mapping | None = None, preroll_s: float = 0.0) -> Synth:
        """A synth from any patch: ``ranges`` maps each hole to ``(low, high[, "lin"|"exp"])``."""
        controls = []
        for hole, spec in ranges.items():
            if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
                raise ImproviseConfigError(f"range of hole {hole!r} must be (low, high) or "
                                           f"(low, high, 'lin'|'exp'), got {spec!r}")
            controls.append(Control(hole, float(spec[0]), float(spec[1]),
                                    spec[2] if len(spec) == 3 else "lin"))
        synth = cls(name, code, tuple(controls), samples=samples, preroll_s=preroll_s)
        missing = sorted(set(synth.patch(44100).params) - set(ranges))
        extra = sorted(set(ranges) - set(synth.patch(44100).params))
        if missing or extra:
            raise ImproviseConfigError(f"synth {name!r}: give a range for every hole of the code "
                                       f"(missing {missing}, not in the code {extra})")
        return synth

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.controls)

    @property
    def n_params(self) -> int:
        return len(self.controls)

    def check_params(self, u) -> np.ndarray:
        """Validate parameters: (B, N) or (N,) -> (B, N) float64 in [0, 1]."""
        u = np.asarray(u, dtype=np.float64)
        if u.ndim == 1:
            u = u[None, :]
        if u.ndim != 2 or u.shape[1] != self.n_params:
            raise ImproviseConfigError(f"synth {self.name!r} takes parameters shaped (B, "
                                       f"{self.n_params}) for {self.param_names}, got "
                                       f"{np.shape(u)}")
        if not np.isfinite(u).all() or (u < 0).any() or (u > 1).any():
            raise ImproviseConfigError(f"synth {self.name!r}: parameters must be finite and in "
                                       "[0, 1]; clip them first")
        return u

    def get_controls(self, u) -> dict[str, np.ndarray]:
        """Physical controls (name -> (B,) array) for parameters ``u`` (B, N) in [0, 1]."""
        u = self.check_params(u)
        return {c.name: c.to_physical(u[:, i]) for i, c in enumerate(self.controls)}

    def patch(self, sr: int = 44100):
        """The compiled patch at rate ``sr`` (compiled once per rate)."""
        if sr not in self._patches:
            from musicgym.synth import Patch

            samples = self.samples(sr) if callable(self.samples) else self.samples
            if isinstance(samples, tuple):
                samples = {"src": samples}
            self._patches[sr] = Patch(self.code, sr=sr, samples=samples)
        return self._patches[sr]

    def hole_matrix(self, u, sr: int = 44100) -> np.ndarray:
        """The (B, P) matrix of hole values in the patch's column order."""
        controls = self.get_controls(u)
        values = self.holes(controls) if self.holes else controls
        return np.stack([np.asarray(values[p], dtype=np.float64)
                         for p in self.patch(sr).params], axis=1)

    def render(self, u, *, n_samples: int, sr: int = 44100, preroll: int | None = None
               ) -> np.ndarray:
        """Mono audio (B, preroll + n_samples) float32 of every parameter row, batched.

        ``preroll`` defaults to ``preroll_s`` in samples; the first ``preroll`` samples are the
        synth settling, the rest is what the agent is heard playing.
        """
        if preroll is None:
            preroll = int(round(self.preroll_s * sr))
        audio = self.patch(sr).render(self.hole_matrix(u, sr), n_samples=preroll + n_samples)
        return audio.mean(axis=1)


def _fm_holes(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    mod_hz = c["carrier_hz"] * c["harmonicity"]
    return {"carrier_hz": c["carrier_hz"], "mod_hz": mod_hz, "dev_hz": c["index"] * mod_hz}


SYNTHS: dict[str, Callable[[], Synth]] = {
    "sine": lambda: Synth("sine", "o: sin {freq_hz} >> mul {amp}",
                          (Control("freq_hz", 20.0, 2520.0), Control("amp", 0.0, 1.0))),
    "fm": lambda: Synth(
        "fm", "~mod: sin {mod_hz} >> mul {dev_hz} >> add {carrier_hz}\no: sin ~mod >> mul 0.5",
        (Control("carrier_hz", 400.0, 800.0), Control("harmonicity", 0.0, 5.0),
         Control("index", 0.0, 5.0)), holes=_fm_holes),
    "subtractive": lambda: Synth(
        "subtractive", "o: saw {pitch_hz} >> lpf {cutoff_hz} {q} >> mul 0.5",
        (Control("pitch_hz", 55.0, 880.0, "exp"), Control("cutoff_hz", 100.0, 8000.0, "exp"),
         Control("q", 0.7, 8.0))),
    "sampler": lambda: Synth(
        "sampler", "o: imp {density_hz} >> mul {speed} >> sp \\src >> lpf {cutoff_hz} 1.0",
        (Control("density_hz", 2.0, 40.0, "exp"), Control("speed", 0.25, 4.0, "exp"),
         Control("cutoff_hz", 200.0, 16000.0, "exp")), samples=_plucked_tone, preroll_s=0.25),
    # RL-impro's granular patch (density, start, duration) with speed for start: density and
    # grain length shape what is heard, grains and the silences between them
    "granular": lambda: Synth(
        "granular", "~trig: imp {density_hz}\n~env: ~trig >> envperc 0.005 {grain_s}\n"
                    "o: ~trig >> mul {speed} >> spmono \\src >> mul ~env",
        (Control("density_hz", 2.0, 40.0, "exp"), Control("speed", 0.25, 4.0, "exp"),
         Control("grain_s", 0.02, 0.5, "exp")), samples=_grain_source,
        # held, it plays grains and silences: its table is the mean over one period at 2 Hz
        table_hold_s=0.5),
}


def make_synth(synth: str | Synth, *, sample=None) -> Synth:
    """A built-in synth by name (``sample``: a file or (array, sr) for ``sampler``), a Pd
    synth from a ``.pd`` path (:class:`~musicgym.envs.pd_synth.PdSynth`), or ``synth``.

    Raises
    ------
    ImproviseConfigError
        An unknown name, or ``sample`` given for a synth without samples.
    """
    if isinstance(synth, Synth) or type(synth).__name__ == "PdSynth":
        return synth
    if str(synth).endswith(".pd"):   # bring your own Pd synth (RL-impro's synth.pd)
        from musicgym.envs.pd_synth import PdSynth

        return PdSynth(synth)
    if synth not in SYNTHS:
        raise ImproviseConfigError(f"unknown synth {synth!r}: use one of {sorted(SYNTHS)} or "
                                   "Synth.from_code(code, ranges)")
    out = SYNTHS[synth]()
    if sample is not None:
        if out.samples is None:
            raise ImproviseConfigError(f"synth {synth!r} plays no sample: sample= is only for "
                                       "'sampler'")
        from musicgym.synth.patch import load_sample

        out.samples = {"src": load_sample(sample)}
    return out
