"""Audio in: the front end's hops turned into the frames the followers take.

:class:`AudioFrames` feeds audio blocks to a :class:`~musicgym.audio.frontend.FrontEnd` and, every
follower frame (``frame_s``, 20 ms: the hops that end in it, about two of 10 ms), makes the frame
:func:`~musicgym.follow.followers.piano_roll` would have made from MIDI: a sounding key weighs
``SUSTAIN_WEIGHT``, an attacked key adds ``ONSET_DECAY`` over its first frames. The followers
(OLTW, HMM) then run unchanged. :func:`follow_audio` follows a whole recording as live;
:func:`render_take` renders a take's notes through the SoundFont (a piano by default) to test
against.
"""

from __future__ import annotations

import numpy as np

from musicgym.audio.frontend import FrontEnd
from musicgym.errors import AccompanyConfigError
from musicgym.follow.followers import N_KEYS, ONSET_DECAY, SUSTAIN_WEIGHT, OnlineFollower

DEFAULT_SR = 22050


class AudioFrames:
    """Audio blocks in, follower frames out (see the module notes).

    Parameters
    ----------
    sr : int
        Sample rate of the audio.
    frame_s : float
        The follower's frame length; a whole number of the front end's hops.
    instrument : {"piano", "mono"}
        Passed to the front end.
    """

    def __init__(self, sr: int, *, frame_s: float = 0.02, instrument: str = "piano",
                 **frontend_kwargs) -> None:
        self.frontend = FrontEnd(sr, instrument=instrument, **frontend_kwargs)
        ratio = frame_s / self.frontend.hop_s
        if frame_s <= 0 or abs(ratio - round(ratio)) > 0.02 or round(ratio) < 1:
            raise AccompanyConfigError(
                f"frame_s={frame_s!r} s is not a whole number of the front end's "
                f"{self.frontend.hop_s * 1000:.2f} ms hops")
        self.hops_per_frame = int(round(ratio))
        self.frame_s = frame_s
        self.reset()

    def reset(self) -> None:
        self.frontend.reset()
        self._hops: list = []
        self._frame_end_s = self.frame_s
        self._onsets: list[tuple[int, int]] = []  # (key, frames since onset)
        self.frontend_seconds = 0.0  # time spent in the front end (for the benchmark)

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        """Feed a block of mono audio; return the follower frames it completed, in order."""
        import time

        start = time.perf_counter()
        self._hops += self.frontend.process(block)
        self.frontend_seconds += time.perf_counter() - start
        frames = []
        # a frame takes the hops that end by its end: the hop (220 samples at 22.05 kHz) is
        # not exactly 10 ms, and counting hops instead would drift off the follower's clock
        half_hop = 0.5 * self.frontend.hop_s
        while self._hops and self._hops[-1].end_s >= self._frame_end_s - half_hop:
            n = sum(h.end_s < self._frame_end_s + half_hop for h in self._hops)
            group, self._hops = self._hops[:n], self._hops[n:]
            frames.append(self._frame(group))
            self._frame_end_s += self.frame_s
        return frames

    def _frame(self, hops) -> np.ndarray:
        frame = np.zeros(N_KEYS, dtype=np.float32)
        for hop in hops:
            frame[hop.sounding] = SUSTAIN_WEIGHT
            for key in hop.keys.tolist():
                self._onsets.append((key, 0))
        kept, attacked = [], set()
        for key, age in self._onsets:
            if age == 0 and key in attacked:
                continue
            attacked.add(key) if age == 0 else None
            frame[key] += ONSET_DECAY[age]
            if age + 1 < len(ONSET_DECAY):
                kept.append((key, age + 1))
        self._onsets = kept
        return frame


class DatedFollower:
    """An online follower whose onset dates are moved back by the audio front end's latency
    (:attr:`FrontEnd.latency_s`): heard through audio, a note's attack reaches the follower
    that much after it was played. An HMM follower here does not hear silences
    (:class:`~musicgym.follow.followers.HMMFollower`'s ``p_pause`` set to 1): a silence from
    the front end may be onsets it did not hear (12 % of them on the rendered training takes),
    not the soloist stopping (hearing them cost 0.6 point within 50 ms on training takes 2-5)."""

    def __init__(self, follower: OnlineFollower, latency_s: float) -> None:
        self.follower, self.latency_s = follower, float(latency_s)
        if hasattr(follower, "p_pause"):
            follower.p_pause = 1.0
        self.name, self.frame_s = follower.name, follower.frame_s

    @property
    def reported_onset_s(self) -> float:
        return max(self.follower.reported_onset_s - self.latency_s, 0.0)

    def reset(self) -> None:
        self.follower.reset()

    def report(self, frame: np.ndarray) -> float | None:
        return self.follower.report(frame)


def audio_frames(audio: np.ndarray, sr: int, *, frame_s: float = 0.02,
                 instrument: str = "piano", block: int = 512) -> np.ndarray:
    """Every follower frame of a whole recording, fed in blocks as live: (n_frames, 128)."""
    source = AudioFrames(sr, frame_s=frame_s, instrument=instrument)
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    frames = []
    for i in range(0, x.size, block):
        frames += source.push(x[i : i + block])
    return np.asarray(frames, dtype=np.float32).reshape(-1, N_KEYS)


def follow_audio(follower: OnlineFollower, audio: np.ndarray, sr: int, *,
                 instrument: str = "piano") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frame-by-frame follower run over a recording, as ``Follower.follow`` runs over MIDI.

    Returns
    -------
    report_sec, report_beat, onset_sec : numpy.ndarray
        As :meth:`musicgym.follow.followers.Follower.follow`; the onsets dated less the
        front end's latency (:class:`DatedFollower`).
    """
    follower = DatedFollower(follower, AudioFrames(sr, frame_s=follower.frame_s,
                                                   instrument=instrument).frontend.latency_s)
    follower.reset()
    report_sec, report_beat, onset_sec = [], [], []
    for i, frame in enumerate(audio_frames(audio, sr, frame_s=follower.frame_s,
                                           instrument=instrument)):
        beat = follower.report(frame)
        if beat is not None:
            report_sec.append((i + 1) * follower.frame_s)
            report_beat.append(beat)
            onset_sec.append(follower.reported_onset_s)
    onset = np.minimum(np.maximum.accumulate(np.asarray(onset_sec, dtype=float)),
                       np.asarray(report_sec, dtype=float))
    return np.asarray(report_sec, dtype=float), np.asarray(report_beat, dtype=float), onset


def performance_notes(performed: np.ndarray) -> list[tuple[float, float, int, int]]:
    """A performance's notes as ``(onset_s, offset_s, pitch, velocity)`` for the SoundFont."""
    out = []
    for n in performed:
        onset = float(n["onset_sec"])
        if not np.isfinite(onset):
            continue
        duration = max(float(np.nan_to_num(n["duration_sec"])), 0.05)
        out.append((max(onset, 0.0), max(onset, 0.0) + duration,
                    int(np.clip(n["pitch"], 0, 127)), int(np.clip(n["velocity"] or 64, 1, 127))))
    return out


def render_take(performed: np.ndarray, *, sr: int = DEFAULT_SR, program: int | str = "piano",
                room: bool = True, seed: int = 0) -> np.ndarray:
    """A performance rendered through the SoundFont (mono, float32, (n,)), with a room
    (reverb, pink noise at 30 dB SNR) unless ``room`` is False."""
    from musicgym.audio.room import add_room
    from musicgym.audio.soundfont import Part, render_notes

    audio = render_notes(Part(performance_notes(performed), program=program), sr=sr)[0]
    return add_room(audio, sr, seed=seed) if room else audio
