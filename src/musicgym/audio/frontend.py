"""A streaming audio front end for score following: onsets and the keys that sound in them.

Audio comes in blocks of any length; every ``hop_s`` (10 ms) the front end takes the last
``window_s`` of signal (a Hann window, rounded up to a power of two: 2048 samples at 22.05 kHz),
pools its power spectrum into one band per piano key (a triangle a semitone either side of the
key's fundamental, at least 1.5 FFT bins wide), log-compresses the 88 key energies over a floor
that follows the loudness, and computes each key's positive change over ``lag`` hops (spectral
flux, pooled by key). The summed flux (keys from E2 up), *whitened* (divided by its recent
peak, which decays with a ``memory_s`` time constant), crosses ``threshold`` in a hop loud
enough above the noise floor: an onset. Its keys are picked ``key_delay`` hops later (the
window then holds more of the note) from the change in magnitude: those with at least
``key_share`` of the strongest key's, once the partials of lower keys are taken out (an
accepted key's 2nd to 6th harmonics, and the keys beside them, lose ``harmonic_share`` of its
change); for the piano (``instrument="piano"``) up to ``max_keys`` of them, for a monophonic
instrument (``"mono"``) the one with the largest harmonic sum. A key *sounds* from its attack
until its energy falls ``release_db`` below its attack level.

Nothing here knows the score: the followers (``musicgym.follow.audio_input``) read the hops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicgym.errors import ParameterError

LOWEST_KEY, HIGHEST_KEY = 21, 108  # A0 .. C8
INSTRUMENTS = ("piano", "mono")
GATE_FROM_KEY = 40
HARMONICS_SEMITONES = (12, 19, 24, 28, 31)  # 2nd..6th partials, rounded to keys


@dataclass(frozen=True)
class Hop:
    """What the front end heard in one hop.

    Attributes
    ----------
    end_s : float
        Time of the hop's last sample (seconds from the first sample fed).
    onset : bool
        An onset was detected in this hop.
    keys : numpy.ndarray of int
        MIDI keys attacked at the onset (empty when ``onset`` is False).
    sounding : numpy.ndarray of int
        MIDI keys sounding (attacked and not yet released), attacked ones included.
    strength : float
        The whitened onset strength (flux over its recent peak).
    """

    end_s: float
    onset: bool
    keys: np.ndarray
    sounding: np.ndarray
    strength: float


def key_filterbank(sr: int, n_fft: int) -> np.ndarray:
    """Triangular bands, one per piano key, over the rfft bins: shape (88, n_fft // 2 + 1)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    bin_hz = sr / n_fft
    keys = np.arange(LOWEST_KEY, HIGHEST_KEY + 1)
    f0 = 440.0 * 2.0 ** ((keys - 69) / 12.0)
    half = np.maximum(f0 * (2 ** (1 / 12) - 1), 1.5 * bin_hz)
    bank = np.maximum(0.0, 1.0 - np.abs(freqs[None, :] - f0[:, None]) / half[:, None])
    bank[f0 >= sr / 2] = 0.0
    return bank.astype(np.float32)


class FrontEnd:
    """Streaming onset and key detector (see the module notes).

    Parameters
    ----------
    sr : int
        Sample rate of the audio fed (8-192 kHz).
    hop_s, window_s : float
        Hop and analysis window (seconds); the window is rounded up to a power of two samples.
    instrument : {"piano", "mono"}
        Several keys per onset, or one.
    threshold : float
        Whitened flux an onset must reach (0..1). 0.14 was chosen on the Brahms training takes
        2-5 rendered with the room (``benchmarks/accompany.py --audio --takes 2 3 4 5``): at
        0.22 the front end heard 84 % of the onsets and the HMM, missing runs of them, fell
        behind (kalman within 50 ms 62.6 %); at 0.14 91 % (66.3 %), with no more attacks
        away from a played onset.
    min_gap_s : float
        Shortest time between two onsets.
    lag : int
        Hops over which a key's log energy change is taken (the window smears an attack).
    key_share, harmonic_share : float
        See the module notes.
    max_keys : int
        Most keys an onset names (piano).
    release_db : float
        Drop below its attack level after which a key no longer sounds.
    memory_s : float
        Time constant of the whitening peak (the gate's and the whitening floor's: ten times
        longer).
    gate_db : float
        No onset in a hop quieter than this below the recent loudest (room noise in a rest).
    floor_db : float
        No onset in a hop less than this above the noise floor (the quietest hop lately).
    key_delay : int
        Hops after an onset at which its keys are picked (and the onset reported): the window
        then holds more of the new notes than of their attack's noise.
    """

    def __init__(self, sr: int, *, hop_s: float = 0.01, window_s: float = 0.07,
                 instrument: str = "piano", threshold: float = 0.14, min_gap_s: float = 0.035,
                 lag: int = 2, key_share: float = 0.35, harmonic_share: float = 0.8,
                 max_keys: int = 5, release_db: float = 20.0, memory_s: float = 1.5,
                 gate_db: float = 35.0, floor_db: float = 12.0,
                 key_delay: int = 1) -> None:
        if not (isinstance(sr, (int, np.integer)) and 8000 <= sr <= 192000):
            raise ParameterError(f"sr={sr!r}: the front end needs an integer sample rate "
                                 "from 8000 to 192000 Hz")
        if instrument not in INSTRUMENTS:
            raise ParameterError(f"instrument {instrument!r}: choose one of {INSTRUMENTS}")
        if not (0.001 <= hop_s <= 0.1 and hop_s <= window_s <= 0.5 and 0 < threshold < 1
                and min_gap_s >= 0 and lag >= 1 and 0 < key_share <= 1
                and 0 <= harmonic_share <= 1 and max_keys >= 1 and release_db > 0
                and memory_s > 0):
            raise ParameterError(
                "FrontEnd needs 1 ms <= hop_s <= 100 ms, hop_s <= window_s <= 0.5 s, "
                "0 < threshold < 1, min_gap_s >= 0, lag >= 1, 0 < key_share <= 1, "
                "0 <= harmonic_share <= 1, max_keys >= 1, release_db > 0 and memory_s > 0")
        self.sr, self.instrument = int(sr), instrument
        self.hop = int(round(hop_s * sr))
        self.hop_s = self.hop / self.sr
        self.n_fft = 1 << int(np.ceil(np.log2(window_s * sr)))
        self.window = np.hanning(self.n_fft).astype(np.float32)
        self.bank = key_filterbank(self.sr, self.n_fft)
        self.threshold, self.lag, self.key_share = threshold, lag, key_share
        self.harmonic_share, self.max_keys = harmonic_share, max_keys
        self.key_delay = int(key_delay)
        self.min_gap_hops = int(round(min_gap_s / self.hop_s))
        self.release = release_db / 10.0 * np.log(10.0)  # in natural-log energy units
        self.decay = float(np.exp(-self.hop_s / memory_s))
        self.slow_decay = float(np.exp(-self.hop_s / (10.0 * memory_s)))
        self.gate = 10.0 ** (-gate_db / 10.0)
        self.above_floor = 10.0 ** (floor_db / 10.0)
        self.reset()

    @property
    def latency_s(self) -> float:
        """How long after an attack its onset is reported, by construction: the flux lag and
        the key delay (the window's smearing comes on top, about half the rise time)."""
        return (self.lag + self.key_delay) * self.hop_s

    def reset(self) -> None:
        """Start again: silence before the next sample."""
        self._buffer = np.zeros(self.n_fft, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._history = np.zeros((self.lag, HIGHEST_KEY - LOWEST_KEY + 1))
        self._magnitudes = np.zeros((self.lag, HIGHEST_KEY - LOWEST_KEY + 1))
        self._level = 1e-9  # loudness the log floor follows
        self._peak = 1e-9  # whitening peak
        self._flux_peak = 1e-9  # and its slow version
        self._loudest = 1e-3  # slow peak of the energy, for the gate (a quiet start's noise
        # must not pass it)
        self._since_onset = 10**9
        self._attack_level = np.full(HIGHEST_KEY - LOWEST_KEY + 1, -np.inf)
        self._floor = np.inf
        self._n = 0
        self._countdown = -1  # hops until an onset's keys are picked (-1: none pending)
        self._baseline = np.zeros(HIGHEST_KEY - LOWEST_KEY + 1)

    def process(self, block: np.ndarray) -> list[Hop]:
        """Feed a block of mono audio (any length); return the hops it completed."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        data = np.concatenate([self._pending, block]) if self._pending.size else block
        hops, start = [], 0
        while data.size - start >= self.hop:
            hops.append(self._hop(data[start : start + self.hop]))
            start += self.hop
        self._pending = data[start:].copy()
        return hops

    def _hop(self, samples: np.ndarray) -> Hop:
        buf = self._buffer
        buf[: -self.hop] = buf[self.hop :]
        buf[-self.hop :] = samples
        self._n += 1
        power = np.abs(np.fft.rfft(buf * self.window)) ** 2
        energy = self.bank @ power.astype(np.float32)
        total = float(energy.sum())
        # the gates and the onset strength read the keys from E2 up: the lowest keys' bands
        # hold a bin or two, whose noise power swings by more than the gates' margins
        gated = float(energy[GATE_FROM_KEY - LOWEST_KEY :].sum())
        # the floor follows the loudness (fast up, slow down) so flux is relative, not absolute
        self._level = max(total, self._level * self.decay, 1e-9)
        self._loudest = max(gated, self._loudest * self.slow_decay, 1e-9)
        # the noise floor: drops at once, rises slowly (a rest's room noise, or the hum)
        if self._n * self.hop >= self.n_fft:  # not while the window still holds the zeros
            self._floor = min(gated, self._floor / self.slow_decay)
        log_energy = np.log(energy + 1e-4 * self._level / energy.size + 1e-12)
        flux = np.maximum(log_energy - self._history[0], 0.0)
        self._history[:-1] = self._history[1:]
        self._history[-1] = log_energy
        # the keys are picked from the change in magnitude, not in log energy: a log flux
        # makes the quiet neighbours a window's main lobe leaks into look as new as the key
        magnitude = np.sqrt(energy)
        before = self._magnitudes[0].copy()
        self._magnitudes[:-1] = self._magnitudes[1:]
        self._magnitudes[-1] = magnitude
        # weigh by how loud the key is against the frame: noise in quiet keys is not an onset
        weight = energy / (energy.max() + 1e-12)
        flux = flux * np.sqrt(weight)
        strength_raw = float(flux[GATE_FROM_KEY - LOWEST_KEY :].sum())
        self._flux_peak = max(strength_raw, self._flux_peak * self.slow_decay, 1e-6)
        # whiten by the recent peak, but never below a tenth of the piece's: in a rest the
        # noise's flux must not become an onset
        self._peak = max(strength_raw, self._peak * self.decay, 0.1 * self._flux_peak)
        strength = strength_raw / self._peak
        self._since_onset += 1
        detected = strength >= self.threshold and self._since_onset >= self.min_gap_hops \
            and self._n * self.hop >= self.n_fft + self.lag * self.hop \
            and gated >= self.gate * self._loudest \
            and gated >= self.above_floor * self._floor and gated > 1e-3
        if detected:
            self._since_onset = 0
            self._baseline, self._countdown = before, self.key_delay
        onset, keys = False, np.zeros(0, dtype=int)
        if self._countdown == 0:
            # the keys a little after the onset: the window holds more of the new note
            onset, keys = True, self._keys(np.maximum(magnitude - self._baseline, 0.0))
            self._attack_level[keys - LOWEST_KEY] = log_energy[keys - LOWEST_KEY]
        self._countdown -= 1
        released = log_energy < self._attack_level - self.release
        self._attack_level[released] = -np.inf
        sounding = np.flatnonzero(np.isfinite(self._attack_level)) + LOWEST_KEY
        return Hop(self._n * self.hop_s, onset, keys, sounding, strength)

    def _keys(self, flux: np.ndarray) -> np.ndarray:
        score = flux.copy()
        n = score.size
        if self.instrument == "mono":
            harmonic_sum = score.copy()
            for h in HARMONICS_SEMITONES:
                harmonic_sum[:-h] += score[h:]
            return np.array([int(np.argmax(harmonic_sum)) + LOWEST_KEY])
        top = score.max()
        if top <= 0:
            return np.zeros(0, dtype=int)
        chosen = []
        # lowest first: a low key's partials explain the flux above it, not the other way
        for k in range(n):
            if score[k] >= self.key_share * top and (k == 0 or score[k] >= score[k - 1]) \
                    and (k == n - 1 or score[k] >= score[k + 1]):
                chosen.append(k)
                for h in HARMONICS_SEMITONES:  # a partial leaks into the keys beside it
                    for j in range(k + h - 1, min(k + h + 2, n)):
                        score[j] = max(score[j] - self.harmonic_share * score[k], 0.0)
        chosen = sorted(chosen, key=lambda k: -flux[k])[: self.max_keys]
        return np.sort(np.asarray(chosen, dtype=int)) + LOWEST_KEY
