"""Tempo models: hand-made accompanist policies that set the next beat period.

Each model is told, at every soloist onset, the time, the follower's estimate of the soloist's
score position, the accompanist's own score position and its current beat period, and answers
with the beat period (seconds per beat) to play at until the next onset. They are the baselines
of ``musicgym/Accompany-v0`` and share its dynamics (:mod:`musicgym.follow.accompanist`): the
accompanist's position moves continuously, so a model corrects its phase by playing faster or
slower, never by jumping.

Two parts make a model: a *tempo estimate* of the soloist (fixed, last interval, moving
average, ACCompanion's linear synchronisation update, a Kalman filter) and a *phase correction*
shared by all but the fixed model: play so as to close ``phase_gain`` of the gap in score
position by the soloist's next expected onset.
"""

from __future__ import annotations

import numpy as np

from musicgym.errors import AccompanyConfigError

MIN_BEAT_PERIOD_S = 0.1
MAX_BEAT_PERIOD_S = 3.0


def phase_corrected_beat_period(
    tempo_beat_period_s: float, gap_beats: float, horizon_beats: float, phase_gain: float
) -> float:
    """Beat period that closes ``phase_gain`` of a position gap over ``horizon_beats``.

    Parameters
    ----------
    tempo_beat_period_s : float
        The soloist's estimated beat period.
    gap_beats : float
        Soloist's position minus accompanist's (positive: the accompanist is behind).
    horizon_beats : float
        Score distance to the soloist's next expected onset.
    phase_gain : float
        Share of the gap to close by then (0: none, 1: all).

    Returns
    -------
    float
        Seconds per beat, within [MIN_BEAT_PERIOD_S, MAX_BEAT_PERIOD_S].
    """
    horizon = max(horizon_beats, 0.25)
    cover = max(horizon + phase_gain * gap_beats, 0.25 * horizon)
    beat_period = tempo_beat_period_s * horizon / cover
    return float(min(max(beat_period, MIN_BEAT_PERIOD_S), MAX_BEAT_PERIOD_S))


class TempoModel:
    """Base class: fixed tempo, no phase correction. Subclasses override :meth:`estimate`.

    Parameters
    ----------
    phase_gain : float
        Share of the position gap closed by the next solo onset (0 disables phase correction).
    """

    name = "fixed"

    def __init__(self, *, phase_gain: float = 0.0) -> None:
        if not 0.0 <= phase_gain <= 1.0:
            raise AccompanyConfigError(
                f"{type(self).__name__}: phase_gain must lie in [0, 1], got {phase_gain!r}"
            )
        self.phase_gain = phase_gain
        self.tempo_s = 0.5
        self._last: tuple[float, float] | None = None

    def reset(self, *, time_s: float, solo_beat: float, beat_period_s: float) -> None:
        """Start following at a known position and beat period (the count-in)."""
        self.tempo_s = beat_period_s
        self._last = (time_s, solo_beat)

    def update(
        self,
        *,
        time_s: float,
        solo_beat: float,
        accompanist_beat: float,
        beat_period_s: float,
        horizon_beats: float = 1.0,
        now_s: float | None = None,
    ) -> float:
        """Take one soloist onset; return the beat period to play at until the next one.

        Parameters
        ----------
        time_s : float
            When the soloist played the onset at ``solo_beat``.
        solo_beat : float
            The follower's estimate of the soloist's score position (beats).
        accompanist_beat : float
            The accompanist's own score position now (at ``now_s``).
        beat_period_s : float
            The accompanist's current beat period.
        horizon_beats : float
            Score distance from ``solo_beat`` to the soloist's next expected onset.
        now_s : float or None
            When the accompanist decides (a follower reports an onset after it is played);
            None: at ``time_s``. The soloist is taken to have played on since, at the
            estimated tempo.

        Returns
        -------
        float
            Seconds per beat.
        """
        last_time, last_beat = self._last if self._last else (time_s, solo_beat)
        d_beats, d_sec = solo_beat - last_beat, time_s - last_time
        played_since = 0.0 if now_s is None else max(now_s - time_s, 0.0) / self.tempo_s
        gap_beats = solo_beat + played_since - accompanist_beat
        asynchrony_s = gap_beats * beat_period_s
        if d_beats > 1e-6 and d_sec > 0:
            self.tempo_s = self.estimate(d_sec / d_beats, d_beats, asynchrony_s)
            self.tempo_s = min(max(self.tempo_s, MIN_BEAT_PERIOD_S), MAX_BEAT_PERIOD_S)
            self._last = (time_s, solo_beat)
        if self.phase_gain == 0.0:
            return self.tempo_s
        return phase_corrected_beat_period(
            self.tempo_s, gap_beats, horizon_beats - played_since, self.phase_gain
        )

    def estimate(self, observed_s: float, d_beats: float, asynchrony_s: float) -> float:
        """New tempo estimate from one solo interval (fixed: ignore it)."""
        return self.tempo_s


class FixedTempo(TempoModel):
    """Keep the count-in beat period; never listen (the metronome baseline)."""

    name = "fixed"


class ReactiveTempo(TempoModel):
    """Play at the beat period of the soloist's last inter-onset interval."""

    name = "reactive"

    def __init__(self, *, phase_gain: float = 0.7) -> None:
        super().__init__(phase_gain=phase_gain)

    def estimate(self, observed_s: float, d_beats: float, asynchrony_s: float) -> float:
        return observed_s


class MovingAverageTempo(TempoModel):
    """Exponential moving average of the soloist's interval beat periods (weight ``alpha``)."""

    name = "moving_average"

    def __init__(self, *, alpha: float = 0.5, phase_gain: float = 0.7) -> None:
        super().__init__(phase_gain=phase_gain)
        if not 0.0 < alpha <= 1.0:
            raise AccompanyConfigError(f"MovingAverageTempo: alpha must lie in (0, 1], got {alpha}")
        self.alpha = alpha

    def estimate(self, observed_s: float, d_beats: float, asynchrony_s: float) -> float:
        return self.alpha * observed_s + (1.0 - self.alpha) * self.tempo_s


class LinearSyncTempo(TempoModel):
    """ACCompanion's linear synchronisation model: correct the beat period by the asynchrony.

    ``tempo -= eta_tempo * asynchrony`` with asynchrony in seconds (positive when the
    accompanist is late), doubled when the accompanist is ahead; ``phase_gain`` plays the part
    of ACCompanion's ``eta_p``. Defaults are ACCompanion's (eta_t 0.3, eta_p 0.7).
    """

    name = "linear_sync"

    def __init__(self, *, eta_tempo: float = 0.3, phase_gain: float = 0.7) -> None:
        super().__init__(phase_gain=phase_gain)
        self.eta_tempo = eta_tempo

    def estimate(self, observed_s: float, d_beats: float, asynchrony_s: float) -> float:
        gain = self.eta_tempo * (2.0 if asynchrony_s < 0 else 1.0)
        return self.tempo_s - gain * asynchrony_s


class KalmanTempo(TempoModel):
    """A scalar Kalman filter on the beat period, observed through each solo interval.

    The beat period drifts as a random walk (variance ``drift_var`` per beat, relative to the
    beat period squared); an interval of ``d`` beats observes it with variance
    ``timing_var_s2 / d**2`` (a timing error of the two onsets spread over the interval).
    """

    name = "kalman"

    def __init__(
        self,
        *,
        drift_var: float = 0.01,
        timing_var_s2: float = 0.03**2,
        phase_gain: float = 0.7,
    ) -> None:
        super().__init__(phase_gain=phase_gain)
        self.drift_var = drift_var
        self.timing_var_s2 = timing_var_s2
        self.variance = 0.0

    def reset(self, *, time_s: float, solo_beat: float, beat_period_s: float) -> None:
        super().reset(time_s=time_s, solo_beat=solo_beat, beat_period_s=beat_period_s)
        self.variance = (0.1 * beat_period_s) ** 2

    def estimate(self, observed_s: float, d_beats: float, asynchrony_s: float) -> float:
        self.variance += self.drift_var * d_beats * self.tempo_s**2
        observation_var = self.timing_var_s2 / d_beats**2
        gain = self.variance / (self.variance + observation_var)
        self.variance *= 1.0 - gain
        return self.tempo_s + gain * (observed_s - self.tempo_s)


class RehearsedTempo:
    """A tempo model that remembers earlier takes: it bends its answer by the tempo curve the
    soloist played there before (ACCompanion's tempo expectations, taken from rehearsals).

    The wanted beat period of ``model`` is multiplied by the earlier takes' median beat period
    over the coming gap (from the solo onset to the next) divided by theirs over the
    ``back_beats`` before it: the model keeps the present tempo level, the takes give the
    shape of the rubato ahead. Never give it the take being played.

    Parameters
    ----------
    model : TempoModel
        The model to bend (its ``reset`` and ``update`` are called as usual).
    curves : list of (numpy.ndarray, numpy.ndarray)
        Earlier takes of the solo part: score onsets (beats, increasing) and when they were
        played (seconds).
    back_beats : float
        Span of the present tempo in the earlier takes (chosen on training takes 3-5).
    """

    def __init__(
        self, model: TempoModel, curves: list[tuple[np.ndarray, np.ndarray]], *,
        back_beats: float = 2.0,
    ) -> None:
        if not curves or back_beats <= 0:
            raise AccompanyConfigError(
                "RehearsedTempo needs at least one earlier take (curves) and back_beats > 0"
            )
        self.model, self.curves, self.back_beats = model, curves, back_beats
        self.name = f"{model.name}+rehearsal"

    def reset(self, *, time_s: float, solo_beat: float, beat_period_s: float) -> None:
        """As :meth:`TempoModel.reset`."""
        self.model.reset(time_s=time_s, solo_beat=solo_beat, beat_period_s=beat_period_s)

    def update(self, *, solo_beat: float, horizon_beats: float = 1.0, **kwargs) -> float:
        """As :meth:`TempoModel.update`, bent by the earlier takes."""
        wanted = self.model.update(solo_beat=solo_beat, horizon_beats=horizon_beats, **kwargs)
        ahead = self._period(solo_beat, solo_beat + max(horizon_beats, 1.0))
        before = self._period(solo_beat - self.back_beats, solo_beat)
        if not (np.isfinite(ahead) and np.isfinite(before) and before > 0):
            return wanted
        return float(min(max(wanted * ahead / before, MIN_BEAT_PERIOD_S), MAX_BEAT_PERIOD_S))

    def _period(self, from_beat: float, to_beat: float) -> float:
        """The takes' median beat period over [from_beat, to_beat] (NaN: none covers it)."""
        return _median_duration(self.curves, from_beat, to_beat) / (to_beat - from_beat)


class RehearsedTiming:
    """Predict when the soloist plays its next onset from the earlier takes' timing, and play
    so as to be there then (a prediction keyed by score position, as a rehearsed duo plays).

    At each report of a solo onset at ``solo_beat`` (played at ``time_s``): the earlier takes'
    median time over the last ``back_beats`` of score, against the time the soloist took now
    (from the follower's dated onsets), gives the soloist's present speed relative to them
    (smoothed with weight ``smoothing``); their median time from ``solo_beat`` to the next
    solo onset (at least ``min_horizon_beats`` ahead), scaled by it, predicts when that onset
    comes. The answer is the beat period at which the accompanist's position reaches it then;
    it waits (the longest beat period) when already there. Where the takes or the soloist's
    own past do not cover the span (the first beats), ``model`` answers, which is always
    updated. Never give it the take being played.

    Parameters
    ----------
    model : TempoModel
        The fallback (and its ``reset``/``update`` are called as usual).
    curves : list of (numpy.ndarray, numpy.ndarray)
        Earlier takes of the solo part: score onsets (beats, increasing) and their times (s).
    back_beats, min_horizon_beats, smoothing : float
        Chosen on training takes 2-5 (OLTW and oracle followers).
    """

    def __init__(
        self, model: TempoModel, curves: list[tuple[np.ndarray, np.ndarray]], *,
        back_beats: float = 8.0, min_horizon_beats: float = 0.6, smoothing: float = 0.5,
    ) -> None:
        if not curves or back_beats <= 0 or min_horizon_beats <= 0 or not 0 < smoothing <= 1:
            raise AccompanyConfigError(
                "RehearsedTiming needs at least one earlier take (curves), back_beats > 0, "
                "min_horizon_beats > 0 and 0 < smoothing <= 1"
            )
        self.model, self.curves = model, curves
        self.back_beats, self.min_horizon_beats = back_beats, min_horizon_beats
        self.smoothing = smoothing
        self.name = f"{model.name}+timing"
        self.speed: float | None = None

    def reset(self, *, time_s: float, solo_beat: float, beat_period_s: float) -> None:
        """As :meth:`TempoModel.reset`; forgets the soloist's past."""
        self.model.reset(time_s=time_s, solo_beat=solo_beat, beat_period_s=beat_period_s)
        self._beats, self._times = [solo_beat], [time_s]
        self.speed = None

    def update(
        self, *, time_s: float, solo_beat: float, accompanist_beat: float,
        beat_period_s: float, horizon_beats: float = 1.0, now_s: float | None = None,
    ) -> float:
        """As :meth:`TempoModel.update`."""
        wanted = self.model.update(
            time_s=time_s, solo_beat=solo_beat, accompanist_beat=accompanist_beat,
            beat_period_s=beat_period_s, horizon_beats=horizon_beats, now_s=now_s,
        )
        if solo_beat > self._beats[-1] and time_s >= self._times[-1]:
            self._beats.append(solo_beat)
            self._times.append(time_s)
        start = max(solo_beat - self.back_beats, self._beats[0])
        if solo_beat - start < 0.5:
            return wanted
        then = _median_duration(self.curves, start, solo_beat)
        target = solo_beat + max(horizon_beats, self.min_horizon_beats)
        ahead = _median_duration(self.curves, solo_beat, target)
        if not (np.isfinite(then) and np.isfinite(ahead) and then > 0):
            return wanted
        speed = (time_s - float(np.interp(start, self._beats, self._times))) / then
        self.speed = speed if self.speed is None else (
            self.smoothing * speed + (1.0 - self.smoothing) * self.speed
        )
        due_s = time_s + self.speed * ahead - (time_s if now_s is None else now_s)
        to_go = target - accompanist_beat
        if to_go <= 0.05 or due_s <= 0:
            return MAX_BEAT_PERIOD_S if to_go <= 0.05 else MIN_BEAT_PERIOD_S
        return float(min(max(due_s / to_go, MIN_BEAT_PERIOD_S), MAX_BEAT_PERIOD_S))


def _median_duration(
    curves: list[tuple[np.ndarray, np.ndarray]], from_beat: float, to_beat: float
) -> float:
    """Median time the takes that cover [from_beat, to_beat] took over it (NaN: none)."""
    spans = [
        float(np.interp(to_beat, beat, sec) - np.interp(from_beat, beat, sec))
        for beat, sec in curves
        if beat[0] <= from_beat and to_beat <= beat[-1]
    ]
    return float(np.median(spans)) if spans else float("nan")


TEMPO_MODELS = {
    model.name: model
    for model in (FixedTempo, ReactiveTempo, MovingAverageTempo, LinearSyncTempo, KalmanTempo)
}


def make_tempo_model(name: str, **options) -> TempoModel:
    """Build a tempo model by name (``fixed``, ``reactive``, ``moving_average``,
    ``linear_sync``, ``kalman``), passing keyword options to its constructor."""
    if name not in TEMPO_MODELS:
        raise AccompanyConfigError(
            f"unknown tempo model {name!r}; choose one of {sorted(TEMPO_MODELS)}"
        )
    return TEMPO_MODELS[name](**options)


MEMORY_MODELS = {"rehearsal": RehearsedTempo, "timing": RehearsedTiming}
"""The suffixes of a tempo-model name that give it earlier takes (``kalman+timing``)."""


def split_tempo_model_name(name: str) -> tuple[str, str]:
    """``"kalman+timing"`` -> ``("kalman", "timing")``; ``"kalman"`` -> ``("kalman", "")``.

    Raises
    ------
    AccompanyConfigError
        For an unknown model or suffix.
    """
    base, _, suffix = str(name).partition("+")
    if base not in TEMPO_MODELS:
        raise AccompanyConfigError(
            f"unknown tempo model {base!r}; choose one of {sorted(TEMPO_MODELS)}, optionally "
            f"with a suffix {sorted('+' + m for m in MEMORY_MODELS)}"
        )
    if suffix and suffix not in MEMORY_MODELS:
        raise AccompanyConfigError(
            f"tempo model {name!r}: the suffixes are '+rehearsal' and '+timing'"
        )
    return base, suffix


def build_tempo_model(
    name: str, curves: list[tuple[np.ndarray, np.ndarray]] | None = None
) -> TempoModel | RehearsedTempo | RehearsedTiming:
    """A tempo model by name, suffix included: ``kalman+timing`` is
    ``RehearsedTiming(KalmanTempo(), curves)``; with no earlier takes (``curves`` empty) a
    suffixed model plays plain."""
    base, suffix = split_tempo_model_name(name)
    model = make_tempo_model(base)
    return MEMORY_MODELS[suffix](model, curves) if suffix and curves else model
