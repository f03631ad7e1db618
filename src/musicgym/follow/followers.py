"""Score followers: where in the score is the soloist now?

Every follower turns what the soloist plays (a performed note array, as heard: wrong and extra
notes included) into a stream of *reports*, :meth:`Follower.follow`: "at time t the soloist has
reached score onset b, which it played at time o", each score onset reported at most once, in
score order (ACCompanion's onset tracker). A report comes some time after the onset it names
(the follower needs to hear a little of the note first); its onset time ``o`` is the
follower's estimate of when the note began: for OLTW, the latest attack of a key the
reference plays at that score onset (the attack it heard last when none matches). The
accompanist acts on these reports. Four followers are here:

- :class:`OracleFollower`: every onset, at the time it was played (an upper bound);
- :class:`NoisyOracleFollower`: the same, late, jittered, and with reports lost;
- :class:`OLTWFollower`: on-line time warping of the soloist's MIDI against a reference
  performance, the Arzt variant ACCompanion uses (window around the current position, a
  normalised path cost, forward-only moves of at most ``step`` frames per input frame), with
  recovery when the soloist goes quiet;
- :class:`HMMFollower`: a note-level hidden Markov model over the reference's onsets (keys
  and inter-onset intervals), reporting at the attack itself.

The two frame-by-frame followers (OLTW, HMM) are also :class:`OnlineFollower` s: the live
accompanist feeds them one input frame at a time. :data:`FOLLOWERS` is the registry: every
follower by name, made by :func:`make_follower`; the env's argument check, the evaluation, the
live command's choices and the docs read it (adding a follower is adding it there).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numba
import numpy as np

from musicgym.errors import AccompanyConfigError

N_KEYS = 128


def _time_map(performed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct score onsets of the score-matched notes and their mean performed time."""
    from musicgym.follow.duets import onsets

    beat, sec = onsets(performed)
    if len(beat) < 2:
        raise AccompanyConfigError(
            "a follower needs a performance with at least two score-matched onsets"
        )
    # keep the map monotone: drop onsets played before an earlier score onset
    keep = sec >= np.maximum.accumulate(sec)
    return beat[keep], sec[keep]


@runtime_checkable
class OnlineFollower(Protocol):
    """A follower fed one input frame at a time, as live (OLTW, HMM).

    Attributes
    ----------
    name : str
    frame_s : float
        Length of the frames it takes (seconds).
    reported_onset_s : float
        After a report: when the follower reckons the reported onset was played (seconds
        from its first frame).
    """

    name: str
    frame_s: float
    reported_onset_s: float

    def reset(self) -> None:
        """Start again before the first frame."""

    def report(self, frame: np.ndarray) -> float | None:
        """Hear one frame (:func:`piano_roll`'s features, shape (128,)); return the score onset
        (beats) the soloist has just reached, or None."""


class Follower:
    """Interface: ``follow(performed) -> (report_sec, report_beat, onset_sec)``."""

    name = "follower"

    def follow(self, performed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Follow a whole performance as it would be heard live.

        Parameters
        ----------
        performed : numpy.ndarray
            The soloist's performed notes (``onset_sec``, ``duration_sec``, ``pitch``; the
            ``onset_beat`` of the matched notes is used only by the oracles).

        Returns
        -------
        report_sec, report_beat : numpy.ndarray, shape (r,)
            When each report was made and the score onset (beats) it names; both increase.
        onset_sec : numpy.ndarray, shape (r,)
            When the follower reckons each reported onset was played (<= ``report_sec``).
        """
        raise NotImplementedError

    def track(self, performed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`follow` without the onset estimates: ``(report_sec, report_beat)``."""
        report_sec, report_beat, _ = self.follow(performed)
        return report_sec, report_beat


class OracleFollower(Follower):
    """Every score onset the soloist played, at the (mean) time its notes were played."""

    name = "oracle"

    def follow(self, performed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        beat, sec = _time_map(performed)
        return sec, beat, sec


class NoisyOracleFollower(Follower):
    """The truth as a sloppy follower reports it: late, jittered, and sometimes not at all.
    Its onset estimates are the report times less its mean lag.

    Parameters
    ----------
    lag_s : float
        Mean delay of a report after the onset.
    jitter_s : float
        Standard deviation of the report time around that delay.
    dropout : float
        Probability that a report is lost.
    seed : int or None
        Seed of the noise.
    """

    name = "noisy_oracle"

    def __init__(
        self,
        *,
        lag_s: float = 0.03,
        jitter_s: float = 0.02,
        dropout: float = 0.1,
        seed: int | None = 0,
    ) -> None:
        if lag_s < 0 or jitter_s < 0 or not 0 <= dropout < 1:
            raise AccompanyConfigError(
                "NoisyOracleFollower needs lag_s >= 0, jitter_s >= 0 and 0 <= dropout < 1"
            )
        self.lag_s, self.jitter_s, self.dropout, self.seed = lag_s, jitter_s, dropout, seed

    def follow(self, performed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        beat, sec = _time_map(performed)
        report = sec + self.lag_s + rng.normal(0.0, self.jitter_s, sec.shape)
        report = np.maximum(report, sec)  # nobody reports an onset before it is played
        kept = rng.random(sec.shape) >= self.dropout
        kept[0] = True
        report, beat = np.maximum.accumulate(report[kept]), beat[kept]
        return report, beat, np.maximum(report - self.lag_s, 0.0)


ONSET_DECAY = (1.0, 0.5, 0.25)
SUSTAIN_WEIGHT = 0.3
ATTACK_MEMORY_S = 3.0  # how far back OLTW looks for the attack that dates a report


def piano_roll(performed: np.ndarray, frame_s: float, n_frames: int | None = None) -> np.ndarray:
    """Frames of the features OLTW compares, shape (n_frames, 128), float32.

    A sounding key weighs ``SUSTAIN_WEIGHT``; an onset adds ``ONSET_DECAY`` over its first
    frames, so that attacks, which players agree on, count more than note lengths, which they
    do not.

    Parameters
    ----------
    performed : numpy.ndarray
        Notes with ``onset_sec``, ``duration_sec``, ``pitch``.
    frame_s : float
        Frame length in seconds.
    n_frames : int or None
        Number of frames (default: up to the last note's end).
    """
    onset = performed["onset_sec"]
    end = onset + np.maximum(np.nan_to_num(performed["duration_sec"]), frame_s)
    if n_frames is None:
        n_frames = int(np.ceil(end.max() / frame_s)) + 1 if len(performed) else 1
    roll = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    first = (onset / frame_s).astype(int)
    last = np.clip((end / frame_s).astype(int), -1, n_frames - 1)
    pitch = np.clip(performed["pitch"], 0, N_KEYS - 1)
    for a, b, p in zip(first, last, pitch, strict=True):
        if a < n_frames:
            roll[a : b + 1, p] = np.maximum(roll[a : b + 1, p], SUSTAIN_WEIGHT)
    for k, weight in enumerate(ONSET_DECAY):
        at = first + k
        inside = at < n_frames
        np.add.at(roll, (at[inside], pitch[inside]), weight)
    return roll


@numba.njit(cache=True)
def _oltw_column(reference, frame, lo, hi, prev_cost, prev_lo, prev_hi, cost):
    """One column of the warping matrix over reference frames lo..hi-1 (L1 local distance).

    ``cost`` receives D[i, j] = d(i, j) + min(D[i, j-1], D[i-1, j], D[i-1, j-1]).
    """
    inf = np.inf
    for j in range(lo, hi):
        local = 0.0
        for k in range(reference.shape[1]):
            local += abs(reference[j, k] - frame[k])
        best = inf
        if j > lo:
            best = cost[j - lo - 1]
        if prev_lo <= j < prev_hi:
            best = min(best, prev_cost[j - prev_lo])
        if prev_lo <= j - 1 < prev_hi:
            best = min(best, prev_cost[j - 1 - prev_lo])
        if best == inf:
            best = 0.0 if prev_hi == 0 else inf
        cost[j - lo] = local + best


class OLTWFollower(Follower):
    """On-line time warping against a reference performance (Arzt's variant, as in ACCompanion).

    The reference is a performance aligned to the score (another take from a match file, or
    a score rendered at a tempo); it is cut into frames of ``frame_s`` seconds, as is the live
    input. For each input frame the follower computes the warping costs within ``window_s`` of
    its current reference position, normalises each path cost by its length, and moves to the
    best frame, never backwards and at most ``step`` frames at once. When the soloist has been
    silent for ``recovery_s``, the position moves on at the soloist's recent rate (as a
    musician counts rests) and the path restarts there when the soloist plays again.

    A path cost divided by a short length favours racing ahead: a few frames into a new path,
    a frame far ahead has a long path (many reference frames) whose mean cost is low even when
    its total is high. A restarted path is therefore normalised as if it had come in on the
    diagonal over ``restart_prior_s`` of matching frames, so that the follower stays put on a
    held note instead of running through the reference.

    Parameters
    ----------
    reference : numpy.ndarray
        Performed notes of the reference, with ``onset_beat`` (NaN for unmatched notes).
    frame_s : float
        Frame length (seconds).
    window_s : float
        Half width of the search window (seconds of reference).
    step : int
        Most reference frames the position may advance per input frame.
    recovery_s : float or None
        Silence after which the follower counts on by itself (None: never).
    restart_prior_s : float
        Length of matched path assumed before a (re)started path, in seconds of input.

    Reports are dated by pitch: a report of score onset ``b`` is dated at the latest attack
    heard (within ``ATTACK_MEMORY_S``, after the previous report's date) of a key that the
    reference plays at ``b``. A late report then still names the right note, where "the last
    attack heard" would be a later note's (on training takes 2-5: 93-96 % -> 97 % of onsets
    dated within 50 ms).
    """

    name = "oltw"

    def __init__(
        self,
        reference: np.ndarray,
        *,
        frame_s: float = 0.02,
        window_s: float = 1.0,
        step: int = 5,
        recovery_s: float | None = 0.5,
        restart_prior_s: float = 1.0,
    ) -> None:
        if frame_s <= 0 or window_s < frame_s or step < 1 or restart_prior_s < 0:
            raise AccompanyConfigError(
                "OLTWFollower needs frame_s > 0, window_s >= frame_s, step >= 1 and "
                "restart_prior_s >= 0"
            )
        self.frame_s, self.step, self.recovery_s = frame_s, step, recovery_s
        self.restart_prior_s = restart_prior_s
        self.window = int(round(window_s / frame_s))
        self.reference = piano_roll(reference, frame_s)
        self._ref_beat, self._ref_sec = _time_map(reference)
        matched = reference[np.isfinite(reference["onset_beat"])]
        keys: dict[float, set[int]] = {}
        for beat, pitch in zip(matched["onset_beat"].tolist(), matched["pitch"].tolist(),
                               strict=True):
            keys.setdefault(beat, set()).add(int(pitch))
        self._ref_keys = [frozenset(keys.get(b, ())) for b in self._ref_beat.tolist()]
        self.reset()

    def reset(self) -> None:
        """Start again at the beginning of the reference."""
        self.position = 0.0
        self._cost = np.zeros(0)
        self._lo = self._hi = 0
        self._i = 0
        self._path_start = (0, 0)
        self._prior = self._prior_length(0.0)
        self._quiet = 0
        self._history: list[float] = []
        self._reported = -1
        self.last_onset_s = 0.0  # middle of the last frame that held an attack
        self.reported_onset_s = 0.0  # the date of the latest report (see the class notes)
        self._attacks: deque[tuple[float, int]] = deque()  # (time, key) heard lately

    def position_beat(self) -> float:
        """The current reference position as a score position (beats)."""
        return float(np.interp(self.position * self.frame_s, self._ref_sec, self._ref_beat))

    def update(self, frame: np.ndarray) -> float:
        """Take one input frame (128 values, as :func:`piano_roll` makes); return the position
        in beats."""
        n_ref = len(self.reference)
        self._history.append(self.position)
        if frame.max(initial=0.0) >= ONSET_DECAY[0]:  # an attack: a note began in this frame
            self.last_onset_s = now = (self._i + 0.5) * self.frame_s
            for key in np.flatnonzero(frame >= ONSET_DECAY[0]).tolist():
                self._attacks.append((now, key))
            while self._attacks[0][0] < now - ATTACK_MEMORY_S:
                self._attacks.popleft()
        if not frame.any():
            self._quiet += 1
            if self.recovery_s is not None and self._quiet * self.frame_s >= self.recovery_s:
                self.position = min(self.position + self._recent_rate(), n_ref - 1.0)
                self._cost = np.zeros(0)
                self._lo = self._hi = 0
            self._i += 1
            return self.position_beat()
        if self._hi == 0:  # (re)start a path here
            self._path_start = (self._i, int(self.position))
            self._prior = self._prior_length(self._quiet * self.frame_s)
        self._quiet = 0
        center = int(self.position)
        lo, hi = max(center - self.window, 0), min(center + self.window + 1, n_ref)
        cost = np.empty(hi - lo)
        _oltw_column(self.reference, frame, lo, hi, self._cost, self._lo, self._hi, cost)
        i0, j0 = self._path_start
        length = self._prior + (self._i - i0) + (np.arange(lo, hi) - j0) + 1.0
        normalised = np.where(np.arange(lo, hi) >= j0, cost / np.maximum(length, 1.0), np.inf)
        best = lo + int(np.argmin(normalised))
        self.position = float(min(max(self.position, best), self.position + self.step))
        self._cost, self._lo, self._hi = cost, lo, hi
        self._i += 1
        return self.position_beat()

    def _prior_length(self, quiet_s: float) -> float:
        """Path steps assumed before a path (re)started after ``quiet_s`` of silence.

        A short rest leaves the counted position trustworthy; after a long one the soloist may
        be anywhere in the window, so the assumed length shrinks with the silence.
        """
        if self.recovery_s is None or quiet_s <= self.recovery_s:
            trust = 1.0
        else:
            trust = self.recovery_s / quiet_s
        return 2.0 * self.restart_prior_s * trust / self.frame_s  # diagonal: two steps a frame

    def _recent_rate(self) -> float:
        """Reference frames per input frame over the last 2 s of following (0.5..2)."""
        span = int(2.0 / self.frame_s)
        if len(self._history) <= span:
            return 1.0
        rate = (self._history[-1] - self._history[-1 - span]) / span
        return float(min(max(rate, 0.5), 2.0))

    def report(self, frame: np.ndarray) -> float | None:
        """Take one input frame; return the reference score onset (beats) the position has just
        passed, or None (the last one when several pass at once; each is reported once; none
        before the first attack, so the silence before the soloist starts names no onset).
        ``reported_onset_s`` then holds when that onset was played, by the follower's
        reckoning."""
        beat = self.update(frame)
        passed = int(np.searchsorted(self._ref_beat, beat + 1e-6, side="right")) - 1
        if passed > self._reported and self._attacks:  # nothing is reported before a note
            self.reported_onset_s = max(self._date(self._ref_keys[passed]),
                                        self.reported_onset_s)
            self._reported = passed
            return float(self._ref_beat[passed])
        return None

    def _date(self, keys: frozenset[int]) -> float:
        """The latest attack of one of ``keys`` after the previous report's date (more than
        one frame after it), else the last attack heard."""
        after = self.reported_onset_s + 1.5 * self.frame_s if self._reported >= 0 else -1.0
        for time_s, key in reversed(self._attacks):
            if time_s <= after:
                break
            if key in keys:
                return time_s
        return self.last_onset_s

    def follow(self, performed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the whole performance through :meth:`report`, frame by frame; a report is made
        when its frame is complete and dated as :meth:`report` says."""
        return _follow_frames(self, performed)


OVERDUE_Z = 3.0
"""The HMM hears a silence once the reported onset's next note is this many spreads
(``ioi_sigma``) late: by its timing model it would have come by then with 99.9 % probability."""


class HMMFollower(Follower):
    """A note-level hidden Markov follower (after ACCompanion's pitch-IOI HMM, simplified).

    The hidden state is the reference onset the soloist is at; the observations are the
    attacks, frame by frame (a frame with at least one attack is one event). At an event
    ``dt`` seconds after the previous one, the soloist either stays at its onset (a chord's
    or a broken octave's later notes, an extra note: probability ``p_stay``, fading with
    ``dt`` over ``stay_s``) or moves on by ``d`` = 1..``max_skip`` onsets (weight
    ``exp(-skip_decay (d - 1))``), the interval then compared with the reference's, scaled by
    the soloist's tempo relative to it (a log-normal of spread ``ioi_sigma``). Each attacked key
    is one the onset has with probability ``p_hit``, else ``p_miss``. The forward
    probabilities are updated at every event and the most probable onset is reported when it
    passes the last one reported, dated at that event's attack: reports come one frame after
    the attack, not when a warping path has caught up. The tempo ratio follows the reports
    (weight ``tempo_weight``). Settings chosen on training takes 2-5 against take 1 and on
    the stress set (:mod:`musicgym.follow.stress`).

    A report waits while its onset is not probable enough (``confidence``), for at most
    ``wait_s`` after the event's first attack: a chord whose notes fall in two frames is then
    told from a later onset with the first note's key (the first frame alone is ambiguous), and
    the report is dated at the first attack heard of a key the onset has. Intervals are compared
    in log space with an offset ``ioi_offset_s`` added to both: timing noise and the 20 ms frame
    grid are absolute, so a fast note 20 ms after the last is not an impossible move. An
    onset's time is its notes' mean: a chord the reference spreads (an arpeggio) is dated that
    spread (at most ``max_spread_s``) after its first attack, and its report is held until
    then (on training takes 2-5: 93 % -> 97 % of onsets dated within 50 ms). The date is the
    mean of the onset's notes: those heard by then at their attack, the others where the
    reference has them after the first (``date_heard``).
    A trill (a key alternating with its neighbour faster than ``trill_s`` where the
    reference has no such notes due) is heard as the trilled onset going on, not as new
    onsets: its notes match a written figure of the same keys further on.
    A silence is heard too: an onset the score follows at once is less likely to be the last
    one played, the longer nothing is played after it; when this makes a later onset than the
    one reported the most probable, the report is corrected (see :meth:`_silence`).

    Parameters
    ----------
    reference : numpy.ndarray
        Performed notes of the reference, with ``onset_beat`` (NaN for unmatched notes) and
        ``pitch``.
    frame_s : float
        Frame length (seconds), as :func:`piano_roll` makes the input.
    confidence : float
        Posterior probability at which the most probable onset is reported at once.
    wait_s : float
        Longest wait (after the event's first attack) before an unsure report is made.
    ioi_offset_s : float
        Seconds added to heard and expected intervals before comparing their logs.
    start_decay : float
        The first event's prior over onsets falls as ``exp(-start_decay * k)``.
    max_spread_s : float
        Longest reference spread (first note to mean) added to a report's date (0: none).
    date_heard : bool
        Date a report at the mean of its onset's reference keys: those heard since the first
        attack at their time, the others at the first attack plus their reference offset.
    score : numpy.ndarray or None
        The solo part's score notes (``onset_beat``, ``pitch``): an onset's keys are then
        those the score writes as well as those the reference played (a note the reference
        left out at an onset still counts there).
    trill_s : float
        A single key alternating with a neighbour (1-2 semitones) less than this apart, while
        the next onset is not due, is a trill's note and ignored (0: never).
    p_pause : float
        Probability that the soloist pauses where the score does not (the silence after an
        onset then says nothing about it): see :meth:`survival`. 1 turns off hearing silence.
    """

    name = "hmm"

    def __init__(
        self,
        reference: np.ndarray,
        *,
        frame_s: float = 0.02,
        max_skip: int = 4,
        p_stay: float = 0.3,
        stay_s: float = 0.15,
        skip_decay: float = 1.2,
        ioi_sigma: float = 0.25,
        p_hit: float = 0.9,
        p_miss: float = 0.03,
        tempo_weight: float = 0.3,
        ioi_floor: float = 0.05,
        p_jump: float = 0.0,
        jump_onsets: int = 32,
        tempo_range: tuple[float, float] = (0.25, 4.0),
        ignore_unmatched: bool = False,
        tempo_gate: float = 2.5,
        ioi_floor_short: float = 0.005,
        date_offset_s: float = 0.0,
        ioi_offset_s: float = 0.04,
        confidence: float = 0.8,
        wait_s: float = 0.04,
        start_decay: float = 1.0,
        max_spread_s: float = 0.2,
        trill_s: float = 0.1,
        score: np.ndarray | None = None,
        date_heard: bool = True,
        p_pause: float = 0.05,
    ) -> None:
        if not (frame_s > 0 and max_skip >= 1 and 0 <= p_stay and stay_s > 0
                and skip_decay >= 0 and ioi_sigma > 0 and 0 < p_miss < p_hit <= 1
                and 0 < tempo_weight <= 1 and 0 <= ioi_floor < 1 and 0 <= p_jump < 1
                and jump_onsets >= 1 and 0 < tempo_range[0] < 1 < tempo_range[1]
                and ioi_offset_s > 0 and 0 <= confidence <= 1 and wait_s >= 0
                and start_decay > 0 and max_spread_s >= 0 and trill_s >= 0
                and 0 < p_pause <= 1):
            raise AccompanyConfigError(
                "HMMFollower needs frame_s > 0, max_skip >= 1, p_stay >= 0, stay_s > 0, "
                "skip_decay >= 0, ioi_sigma > 0, 0 < p_miss < p_hit <= 1, "
                "0 < tempo_weight <= 1, 0 <= ioi_floor < 1, 0 <= p_jump < 1, "
                "jump_onsets >= 1, tempo_range = (low < 1, high > 1) with low > 0, "
                "ioi_offset_s > 0, 0 <= confidence <= 1, wait_s >= 0, start_decay > 0, "
                "max_spread_s >= 0, trill_s >= 0 and 0 < p_pause <= 1"
            )
        self.ioi_floor, self.p_jump, self.jump_onsets = ioi_floor, p_jump, jump_onsets
        self.tempo_range, self.ignore_unmatched = tempo_range, ignore_unmatched
        self.tempo_gate, self.ioi_floor_short = tempo_gate, ioi_floor_short
        self.date_offset_s = date_offset_s
        self.ioi_offset_s, self.confidence, self.wait_s = ioi_offset_s, confidence, wait_s
        self.start_decay, self.trill_s = start_decay, trill_s
        self.max_spread_s, self.date_heard = max_spread_s, date_heard
        self.frame_s, self.max_skip, self.p_stay, self.stay_s = frame_s, max_skip, p_stay, stay_s
        self.skip_decay, self.ioi_sigma, self.tempo_weight = skip_decay, ioi_sigma, tempo_weight
        self.p_hit, self.p_miss = p_hit, p_miss
        self.p_pause = p_pause
        self._ref_beat, self._ref_sec = _time_map(reference)
        matched = reference[np.isfinite(reference["onset_beat"])]
        index = {b: j for j, b in enumerate(self._ref_beat.tolist())}
        self._keys = np.zeros((len(self._ref_beat), N_KEYS), dtype=bool)
        parts = [matched] if score is None else [matched, score]
        written_beat = np.concatenate([notes["onset_beat"] for notes in parts])
        written_pitch = np.concatenate([notes["pitch"] for notes in parts])
        for beat, pitch in zip(written_beat.tolist(), written_pitch.tolist(), strict=True):
            if beat in index:
                self._keys[index[beat], min(max(int(pitch), 0), N_KEYS - 1)] = True
        self._ref_ioi = [self._ref_sec[d:] - self._ref_sec[:-d]
                         for d in range(1, max_skip + 1)]
        # how long after its first note the reference's onset is (its notes' mean time, the
        # onset's time): a spread chord, an arpeggio is dated that much after its first attack
        first = np.full(len(self._ref_beat), np.inf)
        played = matched[np.isfinite(matched["onset_sec"])]  # a note not played has no time
        for beat, sec in zip(played["onset_beat"].tolist(), played["onset_sec"].tolist(),
                             strict=True):
            if beat in index:
                first[index[beat]] = min(first[index[beat]], sec)
        self._spread_s = (np.clip(self._ref_sec - first, 0.0, max_spread_s)
                          if max_spread_s > 0 else np.zeros(len(self._ref_beat)))
        # each reference key's time after the onset's first note: the notes not heard yet
        # when a report goes out are expected that long after the first attack
        self._key_offsets: list[dict[int, float]] = [{} for _ in self._ref_beat]
        for beat, sec, pitch in zip(played["onset_beat"].tolist(),
                                    played["onset_sec"].tolist(), played["pitch"].tolist(),
                                    strict=True):
            if beat in index:
                j = index[beat]
                offset = min(sec - first[j], max_spread_s)
                self._key_offsets[j][int(pitch)] = min(
                    self._key_offsets[j].get(int(pitch), np.inf), offset)
        self.reset()

    def reset(self) -> None:
        """Start again before the first onset."""
        self.probability = np.zeros(len(self._ref_beat))
        self._i = 0
        self._last_event_s: float | None = None
        self.tempo_ratio = 1.0
        self._reported = -1
        self._reported_at = (0.0, 0)
        self.last_onset_s = 0.0
        self.reported_onset_s = 0.0
        self._pending_s: float | None = None  # the attack of an event not reported yet
        self._event_s = 0.0  # the first attack of the last event (a chord over frames)
        self._attacks: deque[tuple[float, int]] = deque()  # (time, key) within wait_s
        # a report held to its date: (date, beat, onset, first attack)
        self._due: tuple[float, float, int, float] | None = None
        self._singles: list[tuple[float, int]] = []  # the last single-key attacks in a row

    def report(self, frame: np.ndarray) -> float | None:
        """Take one input frame; return the reference score onset (beats) the soloist has just
        reached, or None. ``reported_onset_s`` then holds the attack that dates it."""
        now = (self._i + 0.5) * self.frame_s
        self._i += 1
        held = self._release(now)
        keys = np.flatnonzero(frame >= ONSET_DECAY[0])
        if keys.size == 0:
            if held is not None:
                return held
            decided = self._decide(now)
            return decided if decided is not None else self._silence(now)
        self.last_onset_s = now
        if self._ornament(now, keys):
            # a trill's notes say nothing new about where the soloist is, and would time the
            # next interval from the wrong attack: the trilled onset stays the last event
            return held if held is not None else self._decide(now)
        for key in keys.tolist():
            self._attacks.append((now, key))
        while self._attacks[0][0] < now - self.wait_s - self.max_spread_s - 1e-9:
            self._attacks.popleft()
        hits = self._keys[:, keys]
        if self.ignore_unmatched and self._last_event_s is not None:
            # an attack no onset near the soloist's position has (a trill's upper note, a
            # slip) says nothing about where the soloist is, and would date the next
            # interval from the wrong moment: skip it
            best = int(np.argmax(self.probability))
            if not hits[max(best - 1, 0):best + self.max_skip + 1].any():
                return held if held is not None else self._decide(now)
        emission = np.prod(np.where(hits, self.p_hit, self.p_miss), axis=1)
        if self._last_event_s is None:  # the soloist starts at the beginning
            posterior = np.exp(-self.start_decay * np.arange(len(emission))) * emission
        else:
            dt = now - self._last_event_s
            prior = self.probability * (self.p_stay * np.exp(-dt / self.stay_s))
            for d, ref_ioi in enumerate(self._ref_ioi, start=1):
                # the offset: timing noise and the frame grid are absolute (tens of ms), so
                # short intervals are compared more loosely than long ones
                ratio = self._log_ioi_ratio(dt, ref_ioi * self.tempo_ratio)
                # a floor under the timing term: an interval far from the expected one (a
                # stop, a sudden change of tempo) weakens a move, it does not forbid it
                # (a much shorter one is rather a trill's or a grace note's: a smaller floor)
                floor = np.where(ratio > 0, self.ioi_floor, self.ioi_floor_short)
                timing = np.exp(-0.5 * (ratio / self.ioi_sigma) ** 2) + floor
                prior[d:] += (self.probability[:-d] * np.exp(-self.skip_decay * (d - 1))
                              * timing)
            if self.p_jump > 0:  # a way back from anywhere in the next jump_onsets onsets
                window = np.convolve(self.probability, np.ones(self.jump_onsets))[
                    :len(self.probability)]
                prior += self.p_jump * window / self.jump_onsets
            posterior = prior * emission
        total = posterior.sum()
        if not total > 0:  # nothing explains this attack: ignore it
            return held if held is not None else self._decide(now)
        self.probability = posterior / total
        self._last_event_s = now
        if self._pending_s is None:
            self._pending_s = now
        self._event_s = self._pending_s
        return held if held is not None else self._decide(now)

    def _ornament(self, now: float, keys: np.ndarray) -> bool:
        """Whether a single-key attack goes on a trill: it alternates with the last attack's
        key (a step of 1-2 semitones), repeats the one before, all within ``trill_s`` of each
        other, while the next onset is not due for ``trill_s`` or more."""
        single = self._singles
        self._singles = (single + [(now, int(keys[0]))])[-3:] if keys.size == 1 else []
        if self.trill_s <= 0 or keys.size != 1 or len(single) < 2 or self._last_event_s is None:
            return False
        (t2, k2), (t1, k1) = single[-2:]
        key = int(keys[0])
        if not (k2 == key and 1 <= abs(k1 - key) <= 2 and now - t2 < 2 * self.trill_s):
            return False
        best = int(np.argmax(self.probability))
        if best + 1 >= len(self._ref_sec):
            return True
        due_s = (self._ref_sec[best + 1] - self._ref_sec[best]) * self.tempo_ratio
        return due_s > 2.0 * (now - t1) and due_s >= self.trill_s

    def _release(self, now: float, *, force: bool = False) -> float | None:
        """The report held to its date, once the date has come (or at once: ``force``)."""
        if self._due is None:
            return None
        date, beat, onset, attack_s = self._due
        end = now + 0.5 * self.frame_s  # the frame's end: when its report is made
        if not force and date > end + 1e-9:
            return None
        self._due = None
        if self.date_heard and self._key_offsets[onset]:
            # the onset's time is its notes' mean: those heard since the first attack at
            # their time, the others when the reference has them
            offsets = self._key_offsets[onset]
            heard: dict[int, float] = {}
            for time_s, key in self._attacks:
                if time_s >= attack_s - 1e-9 and key in offsets and key not in heard:
                    heard[key] = time_s
            date = self.date_offset_s + float(np.mean(
                [heard.get(key, attack_s + offset) for key, offset in offsets.items()]))
        self.reported_onset_s = min(date, end)
        return beat

    def _decide(self, now: float) -> float | None:
        """Report the most probable onset if it passes the last one reported, once it is
        probable enough (``confidence``) or the wait for more of the event (``wait_s`` after
        its first attack: a chord's other notes) is over."""
        if self._pending_s is None:
            return None
        best = int(np.argmax(self.probability))
        if best <= self._reported:
            self._pending_s = None
            return None
        if (self.probability[best] < self.confidence
                and now - self._pending_s < self.wait_s - 1e-9):
            return None  # not sure yet: hear the next frame first
        if self._due is not None:  # the held report goes first; this one at the next frame
            return self._release(now, force=True)
        attack_s = self._first_attack(best, self._pending_s, self._last_event_s)
        self._pending_s = None
        if self._reported >= 0:
            then, onset = self._reported_at
            ref_s = self._ref_sec[best] - self._ref_sec[onset]
            ratio = (attack_s - then) / ref_s if ref_s > 0.05 else 0.0
            low, high = self.tempo_range
            # in log space (half and double tempo weigh alike), and only from intervals
            # within a factor tempo_gate of the present estimate: a stop is not a tempo
            if (low < ratio < high
                    and abs(np.log(ratio / self.tempo_ratio)) < np.log(self.tempo_gate)):
                log_ratio = np.log(self.tempo_ratio)
                log_ratio += self.tempo_weight * (np.log(ratio) - log_ratio)
                self.tempo_ratio = float(np.exp(log_ratio))
        return self._report_onset(best, attack_s, now)

    def _report_onset(self, best: int, attack_s: float, now: float) -> float | None:
        """Report onset ``best``, dated ``attack_s``: held until its date is due."""
        self._reported, self._reported_at = best, (attack_s, best)
        self._due = (attack_s + self.date_offset_s + float(self._spread_s[best]),
                     float(self._ref_beat[best]), best, attack_s)
        return self._release(now)

    def _log_ioi_ratio(self, interval_s, expected_s):
        """log((interval + ioi_offset_s) / (expected + ioi_offset_s)): how far an interval is
        from the one expected (already scaled by the tempo), in the timing model's units."""
        return np.log((interval_s + self.ioi_offset_s) / (expected_s + self.ioi_offset_s))

    def survival(self, onsets: np.ndarray, silence_s: float) -> np.ndarray:
        """How likely the soloist, at each of ``onsets`` at the last event, has played nothing
        since for ``silence_s``: the HMM's own moves (on by ``d`` onsets, weight
        ``exp(-skip_decay (d - 1))``, each interval log-normal around the reference's scaled by
        the tempo) not come yet, or a pause (``p_pause``) the score does not write.

        Parameters
        ----------
        onsets : numpy.ndarray of int
            Reference onset indices.
        silence_s : float
            Seconds since the last event's attack with no attack.

        Returns
        -------
        numpy.ndarray
            One probability per onset in ``onsets`` (1 for the last onset: nothing is due).
        """
        from scipy.special import ndtr

        onsets = np.asarray(onsets, dtype=np.intp)
        n = len(self._ref_sec)
        weights = np.exp(-self.skip_decay * np.arange(self.max_skip))
        waiting = np.zeros(onsets.size)
        for d, ref_ioi in enumerate(self._ref_ioi, start=1):
            if n - d <= 0:  # a reference shorter than the move: nothing is due
                waiting += weights[d - 1]
                continue
            inside = onsets + d < n
            expected = ref_ioi[np.minimum(onsets, n - d - 1)] * self.tempo_ratio
            z = self._log_ioi_ratio(silence_s, expected)
            # past the end nothing is due: the move cannot have come yet
            waiting += weights[d - 1] * np.where(inside, ndtr(-z / self.ioi_sigma), 1.0)
        return self.p_pause + (1.0 - self.p_pause) * waiting / weights.sum()

    def _silence(self, now: float) -> float | None:
        """Hear a frame with no attack: the silence since the last event is evidence too.

        Where the soloist was at the last event is weighed by how likely each onset leaves
        that long a silence (:meth:`survival`): after two repeated notes and a long silence,
        the second was rather the one the score follows with a rest than the one it follows at
        once. When that makes an onset later than the one reported the most probable, it is
        reported now, dated at the last event: a correction of the last report (the event was
        that onset), not a move. The forward probabilities are not changed: the next attack's
        interval likelihood holds the silence already (it would be counted twice)."""
        if (self.p_pause >= 1.0 or self._last_event_s is None or self._reported < 0
                or self._pending_s is not None or self._due is not None):
            return None  # only once the last event is reported: this corrects that report
        likely = np.flatnonzero(self.probability > 1e-4)
        if likely.size == 0 or likely[-1] <= self._reported:
            return None  # nothing later than the report is in question
        silence_s = now - self._last_event_s
        if self._reported + 1 < len(self._ref_sec):
            # only once the reported onset's next note is overdue (by the timing model it would
            # have come by now with 99.9 % probability, OVERDUE_Z): a note a little late is not
            # a silence (without this, 20 of 45 corrections on the stress set were wrong)
            expected = (self._ref_sec[self._reported + 1] - self._ref_sec[self._reported]) * (
                self.tempo_ratio)
            z = self._log_ioi_ratio(silence_s, expected)
            if z < OVERDUE_Z * self.ioi_sigma:
                return None
        weighted = self.probability[likely] * self.survival(likely, silence_s)
        best = int(likely[int(np.argmax(weighted))])
        if best <= self._reported:
            return None
        attack_s = self._first_attack(best, self._event_s, self._last_event_s)
        return self._report_onset(best, attack_s, now)

    def _first_attack(self, onset: int, earliest_s: float, latest_s: float) -> float:
        """The first attack from ``earliest_s`` to ``latest_s`` of a key the onset has
        (``latest_s`` when none): the event's date, a chord's first note heard."""
        first = latest_s
        for time_s, key in reversed(self._attacks):
            if time_s < earliest_s - 1e-9:
                break
            if time_s <= latest_s + 1e-9 and self._keys[onset, key]:
                first = time_s
        return first

    def follow(self, performed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the whole performance through :meth:`report`, frame by frame (a report is made
        when its frame is complete)."""
        return _follow_frames(self, performed)


def _follow_frames(follower, performed: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray]:
    """A frame-by-frame follower's ``follow``: reset it, feed it the performance's
    :func:`piano_roll`, and collect each report (made when its frame is complete, dated by
    ``reported_onset_s``; the dates kept non-decreasing and no later than their reports)."""
    follower.reset()
    report_sec, report_beat, onset_sec = [], [], []
    for i, frame in enumerate(piano_roll(performed, follower.frame_s)):
        beat = follower.report(frame)
        if beat is not None:
            report_sec.append((i + 1) * follower.frame_s)
            report_beat.append(beat)
            onset_sec.append(follower.reported_onset_s)
    onset = np.minimum(np.maximum.accumulate(np.asarray(onset_sec)), report_sec)
    return np.asarray(report_sec), np.asarray(report_beat), onset


def follower_errors_ms(
    report_sec: np.ndarray, report_beat: np.ndarray, performed: np.ndarray
) -> np.ndarray:
    """Per played score onset: report time minus the time it was played, in ms (NaN: never
    reported). Positive errors are late reports.

    Parameters
    ----------
    report_sec, report_beat : numpy.ndarray, shape (r,)
        A follower's reports (:meth:`Follower.track`).
    performed : numpy.ndarray
        The soloist's performed notes, whose score-matched onsets are the truth.

    Returns
    -------
    numpy.ndarray, shape (m,)
        One error per distinct score onset the soloist played.
    """
    beat, sec = _time_map(performed)
    errors = np.full(len(beat), np.nan)
    index = np.searchsorted(beat, report_beat)
    found = (index < len(beat)) & (beat[np.minimum(index, len(beat) - 1)] == report_beat)
    errors[index[found]] = 1000.0 * (np.asarray(report_sec)[found] - sec[index[found]])
    return errors


def follower_accuracy(
    errors_ms: np.ndarray, thresholds_ms: tuple[float, ...] = (50, 100, 300, 500)
) -> dict[str, float]:
    """The standard score-following figures over the soloist's onsets.

    ``within_X_ms``: share of onsets reported within X ms of being played (early or late);
    ``missed``: share never reported; ``median_abs_ms`` over the reported ones.
    """
    errors = np.abs(np.asarray(errors_ms, dtype=float))
    reported = np.isfinite(errors)
    result = {
        f"within_{int(t)}_ms": float(np.mean(reported & (errors <= t))) for t in thresholds_ms
    }
    result["missed"] = float(np.mean(~reported))
    result["median_abs_ms"] = float(np.median(errors[reported])) if reported.any() else np.nan
    return result


@dataclass(frozen=True)
class FollowerSpec:
    """A follower in the registry.

    Attributes
    ----------
    make : callable
        ``make(reference, seed) -> Follower`` (``make(reference, seed, score=score)`` when
        ``reads_score``).
    needs_reference : bool
        Follows against a reference performance of the solo part (OLTW, HMM).
    online : bool
        An :class:`OnlineFollower` (frame by frame): usable live.
    evaluated : bool
        One of the followers the accompaniment report evaluates.
    summary : str
        One line for help texts.
    reads_score : bool
        Takes the solo part's score notes too (``score=``).
    """

    make: Callable[..., Follower]
    needs_reference: bool
    online: bool
    evaluated: bool
    summary: str
    reads_score: bool = False


FOLLOWERS: dict[str, FollowerSpec] = {
    "oracle": FollowerSpec(lambda ref, seed: OracleFollower(), False, False, True,
                           "every onset when it was played (an upper bound)"),
    "noisy_oracle": FollowerSpec(lambda ref, seed: NoisyOracleFollower(seed=seed), False, False,
                                 False, "the oracle late, jittered, with lost reports"),
    "oltw": FollowerSpec(lambda ref, seed: OLTWFollower(ref), True, True, True,
                         "on-line time warping of MIDI against a reference performance"),
    "hmm": FollowerSpec(lambda ref, seed, score=None: HMMFollower(ref, score=score), True,
                        True, True, "note-level hidden Markov model; reports at the attack",
                        reads_score=True),
}
"""Every follower by name (:func:`make_follower` makes one)."""

DEFAULT_FOLLOWER = "hmm"
"""The follower used where none is named (live accompaniment, ``evaluate-accompany --duets``):
the one that held on the stress test (:mod:`musicgym.follow.stress`: lost the soloist in 2 of
88 simulated performances, OLTW in 70) and on the real takes."""


def follower_names(*, online: bool = False, evaluated: bool = False) -> tuple[str, ...]:
    """Registered follower names: all, or the online ones, or the evaluated ones."""
    return tuple(name for name, spec in FOLLOWERS.items()
                 if (spec.online or not online) and (spec.evaluated or not evaluated))


def check_follower(name: str, *, online: bool = False) -> FollowerSpec:
    """The registry entry of ``name``, or AccompanyConfigError naming the choices."""
    choices = follower_names(online=online)
    if name not in choices:
        raise AccompanyConfigError(f"unknown follower {name!r}; choose one of {choices}")
    return FOLLOWERS[name]


def make_follower(name: str, *, reference: np.ndarray | None = None,
                  seed: int | None = 0, score: np.ndarray | None = None) -> Follower:
    """A follower by name; those that need one get a reference performance of the solo part
    (never the take they follow). ``score`` (the solo part's score notes) is used by the HMM
    (an onset's keys are those written as well as those the reference played); the others
    ignore it.

    Raises
    ------
    AccompanyConfigError
        For an unknown name, or a missing reference.
    """
    spec = check_follower(name)
    if spec.needs_reference and reference is None:
        raise AccompanyConfigError(f"the {name} follower needs a reference performance")
    if spec.reads_score and score is not None:
        return spec.make(reference, seed, score=score)
    return spec.make(reference, seed)
