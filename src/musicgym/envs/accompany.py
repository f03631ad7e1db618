"""``musicgym/Accompany-v0``: keep an accompaniment together with a live soloist."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from musicgym.envs.options import reset_options
from musicgym.envs.rendering import check_render_mode
from musicgym.errors import AccompanyConfigError
from musicgym.follow import corpus
from musicgym.follow.accompanist import (
    RESYNC_S,
    AccompanistRun,
    AgentController,
    Episode,
    action_beat_period,
    make_episode,
)
from musicgym.follow.corpus import MAX_MEMORY_TAKES
from musicgym.follow.duets import tempo_curve
from musicgym.follow.followers import FOLLOWERS, check_follower, make_follower
from musicgym.follow.observation import (  # noqa: F401  (public here since v0)
    accompany_observation,
    observation_bounds,
    run_observation,
)
from musicgym.follow.simulate import simulate_performance
from musicgym.follow.tempo import build_tempo_model, split_tempo_model_name

MAX_ASYNCHRONY_MS = 2000.0


def huber_ms(asynchrony_ms: np.ndarray, delta_ms: float) -> np.ndarray:
    """Huber loss in ms: quadratic within ``delta_ms``, then |x| - delta/2."""
    a = np.abs(np.clip(asynchrony_ms, -MAX_ASYNCHRONY_MS, MAX_ASYNCHRONY_MS))
    return np.where(a <= delta_ms, a**2 / (2.0 * delta_ms), a - delta_ms / 2.0)


class AccompanyEnv(gym.Env):
    """Play the accompaniment of a duet in time with a soloist you only hear as it plays.

    ## Description

    A soloist plays a piece (a real take of the Brahms Hungarian Dance No. 5 duet, the primo,
    or a simulated performance of a score); a score follower reports each of the soloist's score
    onsets as it hears it. The agent is the accompanist (the secondo, or a chorale's lower
    voices): at every report it sets the beat period at which it plays on until the next
    report. Its score position moves continuously at that beat period, and its notes sound when
    the position reaches them, so an action changes every later onset: the asynchrony it
    leaves now is the one it must catch up with later. The aim is that notes the score puts
    together sound together.

    ## Action Space

    ``Box(-1, 1, (1,), float32)``:

    | Num | Action | Min | Max |
    |-----|--------|-----|-----|
    | 0 | change of log beat period / ``max_log_ratio`` (new = old * exp(a * max)) | -1 | 1 |

    The beat period is also kept within [0.1, 3] s. With ``residual_on`` (a tempo-model name)
    the agent corrects that model instead of acting alone: the action played is
    ``clip(b + residual_scale * a, -1, 1)``, where ``b`` is the action with which the model
    would play this step (last entry of the observation); ``a = 0`` plays exactly as the model.

    ## Observation Space

    ``Box(low, high, (2 * history + 2 * lookahead + 8 [+ lookahead + 1 with memory]
    [+ 3 * history with timing] [+ 1 with residual_on],), float32)``, with H = ``history``
    and L = ``lookahead``:

    | Index | Observation | Min | Max |
    |-------|-------------|-----|-----|
    | 0..H-1 | log(solo beat period over each of the last H reported intervals / own) | -2 | 2 |
    | H..2H-1 | score length (beats) of those intervals | 0 | 8 |
    | 2H | solo minus own score position now (beats; > 0: the accompanist is behind) | -4 | 4 |
    | 2H+1 | the same in seconds at the own beat period | -2 | 2 |
    | 2H+2 | log(own beat period / count-in beat period) | -2 | 2 |
    | 2H+3 | own beat period (s) | 0.1 | 3 |
    | 2H+4..2H+3+L | score gaps (beats) to the soloist's next L onsets | 0 | 8 |
    | 2H+4+L..2H+3+2L | score gaps (beats) from the own position to the next L own onsets | 0 | 8 |
    | 2H+4+2L, +1 | sin, cos of 2 pi metrical phase of the solo position (bar lines) | -1 | 1 |
    | 2H+6+2L | phase of the own position in its bar | 0 | 1 |
    | 2H+7+2L | share of the episode played | 0 | 1 |
    | memory: +L | log(earlier takes' median beat period over each next gap / own) | -2 | 2 |
    | memory: +1 | 1 if earlier takes of this piece exist, else 0 | 0 | 1 |
    | timing: +H | gap heard at each of the last H reports (soloist - own, s) | -1 | 1 |
    | timing: +H | delay of each of those reports after the onset it dates (s) | 0 | 1 |
    | timing: +H | log(solo interval before each / earlier takes' median over it) | -1 | 1 |
    | residual_on: last | the tempo model's action ``b`` at this step | -1 | 1 |

    Intervals are between the follower's onset estimates; "solo position now" is the reported
    onset plus what the soloist played between that onset and the report, at the own tempo.
    The timing features (``timing=True``) are what the tempo models underneath do not read:
    the accompanist's own recent errors as heard, how late the follower's reports come (an
    unsure follower reports late) and the soloist's recent departures from the rehearsals (0
    without memory). Memory is keyed by score position and never reads the take being played:
    for real take n it is takes 1..n-1 of the duo; for a simulated performance, other takes by
    the same simulated player (same expression, other seeds).

    ## Rewards

    ``r = -sum_j huber(a_j) / 1000 - tempo_penalty * |log(bp_new / bp_old)|`` where a_j are the
    asynchronies (ms, accompanist minus soloist, clipped to +-2000) at the shared score onsets
    the accompanist played during the step, and ``huber(x) = x^2 / (2 delta)`` for
    ``|x| <= delta``, ``|x| - delta / 2`` beyond (``delta = huber_delta_ms``). Range:
    ``[-2 n_j - tempo_penalty * max_log_ratio, 0]`` with n_j the shared onsets in the step
    (usually 0 to 2). ``info["asynchrony_ms"]`` holds the a_j and ``info["shared_beat"]``
    their score beats, as tuples of floats: a step has any number of them, and a tuple (unlike
    an array whose length changes) batches in Gymnasium's vector envs.

    ## Starting State

    A (piece, take, start) is drawn: a real take of the split (probability ``p_real``) or a new
    simulated performance of one of the split's pieces, and a start report. The accompanist
    joins at the soloist's position at that report, with the soloist's beat period over the
    two beats before it (over the two after it at the very start: a count-in).

    ## Episode End

    Terminated when the accompanist has played its part up to the soloist's last reported onset
    of the segment (``episode_reports`` reports, or the whole take when None). Never truncated
    by the env itself.

    ## Arguments

    ```python
    import gymnasium as gym
    import musicgym.envs  # registers the ids

    env = gym.make(
        "musicgym/Accompany-v0",
        split="train",            # "train": takes 1-5 + train pieces; "test": takes 6-7 + others
        sources=("real", "simulated"),
        follower="oracle",        # a name of musicgym.follow.followers.FOLLOWERS: "oracle",
                                  # "noisy_oracle", "oltw" (MIDI on-line time warping) or
                                  # "hmm" (note-level hidden Markov model)
        episode_reports=64,       # reports per episode; None plays whole takes
        memory=False,             # add what earlier takes of the piece did at the coming onsets
        max_log_ratio=0.5, tempo_penalty=0.1, huber_delta_ms=25.0,
        history=6, lookahead=4, p_real=0.5, duets_dir=None,
        resync_s=0.2,             # jump to the soloist beyond this distance; None: never
        residual_on=None,         # a tempo model the agent corrects ("kalman", "kalman+timing":
                                  # "+rehearsal"/"+timing" need memory=True); None: acts alone
        residual_scale=0.1,       # the agent's action moves the model's by at most this
        pieces="chorales",        # simulated pieces: "chorales", or "many" (train split: also
                                  # 8 corpus works of musicgym.follow.stress, first 96 beats)
        takes=None,               # real takes: a subset of the split's (e.g. (1, 2, 3, 4))
        timing=False,             # add the timing features (see the observation table)
        render_mode=None,         # "rgb_array" or "ansi" (see below)
    )
    obs, info = env.reset(seed=0, options={"take": 6, "start": 0})  # options are optional
    ```

    ``reset`` options: ``take`` (a real take of the split), ``piece`` (a simulated piece of the
    split by name), ``start`` (first report), ``whole`` (play to the end of the take).

    ``render_mode``: None (default), ``"rgb_array"`` (``render()`` returns a uint8 picture
    (184, 512, 3) of the episode's time span: on top the soloist's onsets (blue once played,
    grey ahead) and the accompaniment's onsets played so far (orange), each shared onset's
    pair joined by a line coloured by its asynchrony (green within 30 ms, orange within 100
    ms, red beyond); below, the asynchrony (ms, accompanist minus soloist, axis +-200 ms) at
    each shared onset; a dark line at the time now) or ``"ansi"`` (a line: report, beat
    period, this step's asynchronies, resyncs); another raises
    :class:`~musicgym.errors.RenderModeError`. :meth:`episode_audio` plays both parts' onsets
    as short blips (soloist 660 Hz, accompaniment 330 Hz: the env knows onsets, not pitches).

    ## Version History

    * v0: Initial version; re-synchronisation (``resync_s``, default 0.2 s), residual control
      (``residual_on``, ``residual_scale``), infos that batch in vector envs
      (``asynchrony_ms`` and ``shared_beat`` as tuples), ``render_mode`` (``"rgb_array"``,
      ``"ansi"``) and :meth:`episode_audio`, ``pieces``, ``takes`` and ``timing`` (all off by
      default: the v0 observation is unchanged) added within v0.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}

    def __init__(
        self,
        *,
        split: str = "train",
        sources: tuple[str, ...] = ("real", "simulated"),
        follower: str = "oracle",
        episode_reports: int | None = 64,
        memory: bool = False,
        max_log_ratio: float = 0.5,
        tempo_penalty: float = 0.1,
        huber_delta_ms: float = 25.0,
        history: int = 6,
        lookahead: int = 4,
        p_real: float = 0.5,
        duets_dir=None,
        resync_s: float | None = RESYNC_S,
        residual_on: str | None = None,
        residual_scale: float = 0.1,
        pieces: str = "chorales",
        takes: tuple[int, ...] | None = None,
        timing: bool = False,
        render_mode: str | None = None,
    ) -> None:
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"],
                                             "Accompany-v0")
        self._last_info: dict = {}
        self.split = corpus.check_split(split)
        sources = tuple(sources)
        if not sources or set(sources) - {"real", "simulated"}:
            raise AccompanyConfigError(
                f"sources must be a non-empty subset of ('real', 'simulated'), got {sources!r}"
            )
        check_follower(follower)
        if episode_reports is not None and episode_reports < 3:
            raise AccompanyConfigError("episode_reports must be >= 3 (or None for whole takes)")
        if resync_s is not None and not resync_s > 0:
            raise AccompanyConfigError(
                f"resync_s must be > 0 seconds (or None to never jump), got {resync_s!r}"
            )
        if not (max_log_ratio > 0 and history >= 1 and lookahead >= 1 and 0 <= p_real <= 1):
            raise AccompanyConfigError(
                "need max_log_ratio > 0, history >= 1, lookahead >= 1 and 0 <= p_real <= 1"
            )
        if residual_on is not None:
            _, suffix = split_tempo_model_name(residual_on)
            if suffix and not memory:
                raise AccompanyConfigError(
                    f"residual_on {residual_on!r}: a '+{suffix}' model needs memory=True (the "
                    "earlier takes it plays by)"
                )
            if not residual_scale > 0:
                raise AccompanyConfigError(f"residual_scale must be > 0, got {residual_scale!r}")
        self.residual_on, self.residual_scale = residual_on, residual_scale
        self.sources, self.follower_name = sources, follower
        self.episode_reports, self.memory = episode_reports, memory
        self.resync_s = resync_s
        self.max_log_ratio, self.tempo_penalty = max_log_ratio, tempo_penalty
        self.huber_delta_ms, self.history, self.lookahead = huber_delta_ms, history, lookahead
        self.p_real = p_real if "simulated" in sources else 1.0
        self.p_real = self.p_real if "real" in sources else 0.0

        all_takes = corpus.brahms_takes(duets_dir) if "real" in sources else []
        self._all_takes = all_takes
        self.takes = corpus.split_takes(all_takes, split) if all_takes else []
        if takes is not None:
            split_numbers = [t.take for t in self.takes]
            if not set(takes) <= set(split_numbers) or not takes:
                raise AccompanyConfigError(
                    f"takes {takes!r} must be some of the {split} split's real takes "
                    f"{split_numbers}"
                )
            self.takes = [t for t in self.takes if t.take in set(takes)]
        if pieces not in corpus.PIECE_SETS:
            raise AccompanyConfigError(
                f"unknown pieces {pieces!r}; choose one of {corpus.PIECE_SETS}")
        self.pieces = (corpus.simulated_pieces(split, all_takes, pieces)
                       if "simulated" in sources else [])
        self.timing = bool(timing)
        self._episodes: dict[int, Episode] = {}

        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        low, high = observation_bounds(history, lookahead, memory=memory, timing=self.timing)
        if residual_on is not None:
            low, high = np.append(low, -1.0), np.append(high, 1.0)
        self.observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                            dtype=np.float32)
        self.run: AccompanistRun | None = None
        self.controller: AgentController | None = None
        self._memory_curves: list[tuple[np.ndarray, np.ndarray]] = []

    # ----- episodes
    def _real_episode(self, take_number: int) -> Episode:
        if take_number not in self._episodes:
            take = next(t for t in self._all_takes if t.take == take_number)
            reference_take = corpus.reference_take(self._all_takes, take_number)
            # the score's keys as well (the HMM reads them; as the evaluation and live play do)
            follower = make_follower(self.follower_name, reference=reference_take.solo.performed,
                                     seed=take_number, score=reference_take.solo.score)
            self._episodes[take_number] = make_episode(
                take.solo, take.accompaniment.score, follower=follower,
                accompaniment=take.accompaniment, piece=take.piece, take=take.take,
            )
        return self._episodes[take_number]

    def _simulated_episode(self, piece: corpus.Piece):
        """A new player and performance; with memory, that player's earlier takes too."""
        rng = self.np_random
        expression = corpus.random_expression(piece, rng)
        seeds = rng.integers(2**31, size=MAX_MEMORY_TAKES + 2)
        solo = simulate_performance(piece.solo, seed=int(seeds[0]), expression=expression)
        follower = make_follower(
            self.follower_name,
            reference=(corpus.plain_rendition(piece)
                       if FOLLOWERS[self.follower_name].needs_reference else None),
            seed=int(seeds[1]),
        )
        episode = make_episode(solo, piece.accompaniment, follower=follower, piece=piece.name)
        curves = []
        if self.memory:
            earlier = [
                simulate_performance(piece.solo, seed=int(s), expression=expression)
                for s in seeds[2:]
            ]
            curves = [tempo_curve(take.score) for take in earlier]
        return episode, curves

    def _choose(self, options: dict) -> tuple[Episode, list[tuple[np.ndarray, np.ndarray]]]:
        if "take" in options:
            if options["take"] not in [t.take for t in self.takes]:
                raise AccompanyConfigError(
                    f"take {options['take']!r} is not in the {self.split} split "
                    f"(takes {[t.take for t in self.takes]})"
                )
            return self._real_take_with_memory(int(options["take"]))
        if "piece" in options:
            names = [p.name for p in self.pieces]
            if options["piece"] not in names:
                raise AccompanyConfigError(
                    f"piece {options['piece']!r} is not simulated in the {self.split} split "
                    f"(pieces {names})"
                )
            return self._simulated_episode(self.pieces[names.index(options["piece"])])
        if self.takes and self.np_random.random() < self.p_real:
            take = self.takes[int(self.np_random.integers(len(self.takes)))].take
            return self._real_take_with_memory(take)
        piece = self.pieces[int(self.np_random.integers(len(self.pieces)))]
        return self._simulated_episode(piece)

    def _real_take_with_memory(self, take_number: int):
        curves = corpus.earlier_curves(self._all_takes, take_number)
        return self._real_episode(take_number), curves

    @property
    def memory_curves(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The earlier takes' solo tempo curves (beats, seconds) of the current episode (empty
        without ``memory``, or when there were none)."""
        return list(self._memory_curves)

    # ----- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(reset_options(options, AccompanyConfigError))
        episode, self._memory_curves = self._choose(options)
        n_reports = len(episode.report_sec)
        length = n_reports if options.get("whole") or self.episode_reports is None else min(
            self.episode_reports, n_reports
        )
        if "start" in options:
            start = int(options["start"])
        else:
            start = int(self.np_random.integers(0, n_reports - length + 1))
        self.run = AccompanistRun(
            episode, start, min(start + length, n_reports), max_log_ratio=self.max_log_ratio,
            resync_s=self.resync_s,
        )
        self.controller = None
        if self.residual_on is not None:
            base = build_tempo_model(self.residual_on, self._memory_curves)
            self.controller = AgentController(base, scale=self.residual_scale)
            self.controller.start(self.run)
            self.controller.observe_base(self.run)
        self._last_info = self._info(np.zeros(0), np.zeros(0))
        return self._get_obs(), self._last_info

    def step(self, action):
        if self.run is None or self.run.done:
            raise AccompanyConfigError("call reset() before step() (and after an episode ends)")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (1,) or not np.all(np.isfinite(action)):
            raise AccompanyConfigError(f"action must be one finite number, got {action!r}")
        old = self.run.beat_period_s
        if self.controller is None:
            wanted = action_beat_period(self.run, float(action[0]))
        else:
            wanted = self.controller.mix(self.run, float(np.float32(action[0])))
        shared, asynchrony_ms = self.run.advance(wanted)
        change = abs(math.log(self.run.beat_period_s / old))
        reward = -float(huber_ms(asynchrony_ms, self.huber_delta_ms).sum()) / 1000.0
        reward -= self.tempo_penalty * change
        terminated = self.run.done
        if self.controller is not None and not terminated:
            self.controller.observe_base(self.run)
        obs = self._get_obs()
        self._last_info = self._info(shared, asynchrony_ms)
        return obs, reward, terminated, False, self._last_info

    # ----- watching and listening
    def _span(self) -> tuple[float, float]:
        """The episode's time span (s), fixed at reset: the pictures share one time axis."""
        ep, run = self.run.episode, self.run
        return float(ep.report_sec[run.start]) - 0.5, float(ep.report_sec[run.stop - 1]) + 1.0

    def _played(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(accompaniment onset times (s), the shared ones' solo times, their asynchrony (ms))
        played so far."""
        ep, run = self.run.episode, self.run
        beats, secs = np.asarray(run.played_beat), np.asarray(run.played_sec)
        _, i_played, i_shared = np.intersect1d(beats, ep.shared_beat, return_indices=True)
        solo = ep.shared_solo_sec[i_shared]
        return secs, solo, 1000.0 * (secs[i_played] - solo)

    def render(self) -> np.ndarray | str | None:
        """The onsets on a timeline (``"rgb_array"``) or a line (``"ansi"``); see Arguments.
        Before the first ``reset`` there is no episode: ``None``."""
        if self.render_mode is None or self.run is None:
            return None
        run, info = self.run, self._last_info
        if self.render_mode == "ansi":
            asynchrony = " ".join(f"{a:+.0f}" for a in info.get("asynchrony_ms", ()))
            return (f"{run.episode.name} step {run.k - run.start}/{run.stop - run.start} "
                    f"beat period {run.beat_period_s:.3f} s asynchrony [{asynchrony}] ms "
                    f"resyncs {run.resyncs}")
        from musicgym.envs import rendering

        t0, t1 = self._span()
        width = 512

        def x_of(t):
            return (np.asarray(t, dtype=float) - t0) / (t1 - t0) * (width - 1)

        lanes = rendering.Canvas(80, width)
        solo = run.episode.solo_sec[(run.episode.solo_sec >= t0) & (run.episode.solo_sec <= t1)]
        for t in solo:
            lanes.vline(x_of(t), rendering.BLUE if t <= run.time_s else rendering.GREY, 8, 34)
        played, shared_solo, asynchrony = self._played()
        for t in played:
            lanes.vline(x_of(t), rendering.ORANGE, 46, 72)
        for t, a in zip(shared_solo, asynchrony, strict=True):
            colour = (rendering.GREEN if abs(a) <= 30 else
                      rendering.ORANGE if abs(a) <= 100 else rendering.RED)
            lanes.polyline([x_of(t), x_of(t + a / 1000.0)], [34, 46], colour, thickness=1)
        lanes.vline(x_of(run.time_s), rendering.DARK)
        curve = rendering.Canvas(100, width)
        for ms in (-100.0, 0.0, 100.0):
            curve.hline(50 - ms / 4.0, rendering.GREY)
        ys = 50 - np.clip(asynchrony, -196.0, 196.0) / 4.0
        curve.polyline(x_of(shared_solo), ys, rendering.RED)
        curve.vline(x_of(run.time_s), rendering.DARK)
        return rendering.stack([lanes.image, curve.image])

    def episode_audio(self, *, sr: int = 44100) -> tuple[np.ndarray, int]:
        """Both parts so far as blips at their onsets, from the episode's start (0.5 s before
        the first report): ((2, n) float32, soloist left, accompaniment right; ``sr``)."""
        from musicgym.envs.rendering import blips

        if self.run is None:
            return np.zeros((2, sr // 10), dtype=np.float32), sr
        t0, _ = self._span()
        played = self._played()[0]
        solo = self.run.episode.solo_sec
        solo = solo[(solo >= t0) & (solo <= self.run.time_s)]
        end = max([self.run.time_s, *played.tolist()]) + 0.5
        n = int(np.ceil((end - t0) * sr))
        return np.stack([blips(solo - t0, 660.0, n, sr=sr),
                         blips(played - t0, 330.0, n, sr=sr)]), sr

    def _info(self, shared: np.ndarray, asynchrony_ms: np.ndarray) -> dict:
        run = self.run
        return {
            "performance": run.episode.name,  # not "episode": SB3's Monitor owns that key
            "take": run.episode.take,
            "report": run.k,
            "beat_period_s": run.beat_period_s,
            "shared_beat": tuple(shared.tolist()),
            "asynchrony_ms": tuple(asynchrony_ms.tolist()),
            "resyncs": run.resyncs,
        }

    def _get_obs(self) -> np.ndarray:
        obs = run_observation(self.run, history=self.history, lookahead=self.lookahead,
                              memory=self.memory, curves=self._memory_curves,
                              timing=self.timing)
        if self.controller is not None:
            obs = self.controller.observation(obs)
        return obs
