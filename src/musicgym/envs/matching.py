"""The machinery shared by the single and the vector sound-matching env: targets, batched
rendering of segments, rewards and observations for B rows at once.

Not an env itself: ``synth_match.py`` (one env) and ``synth_match_vector.py`` (B envs in one
engine call) are thin layers over :class:`MatchCore`.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from gymnasium import spaces

from musicgym.audio.distances import (
    Distance,
    MultiResolutionSTFT,
    _finite_sound_spans,
    _sound_spans,
    all_finite,
    make_distance,
)
from musicgym.audio.features import log_mel, log_mel_of, pooled_features, stft_magnitude
from musicgym.envs.spaces import ParameterMap
from musicgym.errors import TargetError
from musicgym.synth import Patch
from musicgym.threads import num_threads, row_blocks, run_blocks

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3")
OBSERVATIONS = ("features", "audio", "goal")
FEATURE_LOW, FEATURE_HIGH = -5.0, 8.0  # log10 mel power, clipped
OBS_STFT = (1024, 512)  # the observation's log-mel STFT: (FFT size, hop)
AUDIO_BOUND = 10.0  # Glicol has no limiter: observations clip the waveform to +-10
# samples x rows per engine chunk in the one-step vector step's render blocks: at B = 64,
# 8,192-sample chunks on two threads (32 rows each), 4,096 on one. Paired Kick-v0 A/B on two
# threads against the engine's 1 << 19: 1.015x and 1.034x (1 << 17: 0.915x; one 22,050-sample
# chunk: 0.977x); on one thread 1.011x. The engine's own default suits its B = 64 1 s renders
BLOCK_CHUNK_ROWS_SAMPLES = 1 << 18
SPECTRUM_LOW = -5.0  # log10 mel power shown as black (silence) in the rendered pictures


def load_targets(target, *, sr: int, max_seconds: float = 60.0) -> list[tuple[str, np.ndarray]]:
    """Targets as (name, mono float32 array at ``sr``) from a file, folder, array or a list.

    Raises
    ------
    TargetError
        Nothing usable (an empty folder, an empty or non-finite array, a bad type).
    AudioFileError
        A file that cannot be read (named in the message).
    """
    from musicgym.audio.io import read_audio

    def one(item, name: str) -> tuple[str, np.ndarray]:
        if isinstance(item, (str, os.PathLike)):
            audio, _ = read_audio(item, sr=sr)
            name = Path(item).name
        else:
            try:
                audio = np.asarray(item, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise TargetError(f"target {name!r} is not an audio file or an array of "
                                  f"samples: {exc}") from exc
        audio = np.atleast_2d(audio)
        if audio.shape[0] > audio.shape[1]:
            audio = audio.T
        mono = audio.mean(axis=0).astype(np.float32)
        if mono.size == 0:
            raise TargetError(f"target {name!r} is empty")
        if not np.isfinite(mono).all():
            raise TargetError(f"target {name!r} contains NaN or inf samples")
        if mono.size > max_seconds * sr:
            raise TargetError(f"target {name!r} is {mono.size / sr:.1f} s long, over "
                              f"max_target_seconds={max_seconds}: trim it or raise the limit")
        return name, mono

    if isinstance(target, (str, os.PathLike)) and Path(target).is_dir():
        files = sorted(p for p in Path(target).iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise TargetError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {target}")
        return [one(f, f.name) for f in files]
    if isinstance(target, (list, tuple)) and target and (
            isinstance(target[0], (str, os.PathLike)) or not np.isscalar(target[0])):
        # a list of files (or of arrays): several targets; a list of numbers is one waveform
        return [one(t, f"target[{i}]") for i, t in enumerate(target)]
    if isinstance(target, (str, os.PathLike, np.ndarray, list, tuple)):
        return [one(target, "target")]
    raise TargetError(f"target must be an audio file, a folder, an array or a list of those, "
                      f"got {type(target).__name__}")


def single_threaded_blas() -> None:
    """Run BLAS on one thread in this process.

    The envs' matrix products are small (mel filters, DCTs); with several BLAS threads on a
    busy 2-core machine they ran 10 to 400 times slower than on one (measured), and SB3's own
    advice for CPU training is one thread. Called when a sound-matching env is built."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


_MALLOC_STEADY = [False]
STEADY_MALLOC_BYTES = 32 << 20  # glibc's largest mmap threshold on 64-bit machines


def steady_malloc() -> None:
    """Keep freed memory of up to 32 MiB blocks in this process (glibc only; else nothing).

    An env step allocates and frees the same few-megabyte arrays every time (the engine's
    chunk buffers, STFT magnitudes). glibc maps blocks over a threshold afresh from the
    system and returns freed heap beyond another: which side a step's arrays fall on depends
    on the sizes freed before, and on the wrong side every step page-faults its arrays back
    in (measured: 1,000 to 2,700 faults and 3 to 5 ms of system time per B = 64 Kick step,
    a tenth of the step). Fixed thresholds of 32 MiB (mmap) and 64 MiB (trim) keep them on
    the heap. Called when a sound-matching env is built, like :func:`single_threaded_blas`;
    skipped where ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` is set."""
    if _MALLOC_STEADY[0]:
        return
    _MALLOC_STEADY[0] = True
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ \
            or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
        libc.mallopt(m_mmap_threshold, STEADY_MALLOC_BYTES)
        libc.mallopt(m_trim_threshold, 2 * STEADY_MALLOC_BYTES)
    except (OSError, AttributeError):  # not glibc (musl...): its allocator, its rules
        pass


class MatchCore:
    """Sound matching for B rows: the patch, the action mapping, targets and their features.

    Parameters are those of :class:`~musicgym.envs.synth_match.SynthMatchEnv`.
    """

    def __init__(self, code: str, target, total_step: int, step_len: float | None,
                 action_space: Sequence, *, reward="mrstft", criteria=None,
                 observation: str = "features",
                 backend: str = "numpy", sr: int = 44100, bpm: float = 120.0,
                 samples: Mapping | None = None, flat_actions: bool = False,
                 clip_actions: bool = False, obs_frames: int = 32, obs_mels: int = 32,
                 max_target_seconds: float = 60.0, threads: int | None = None) -> None:
        for name, value in (("total_step", total_step), ("obs_frames", obs_frames),
                            ("obs_mels", obs_mels)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < 1:
                raise TargetError(f"{name} must be a positive integer, got {value!r}")
        if observation not in OBSERVATIONS:
            raise TargetError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        single_threaded_blas()
        steady_malloc()
        # threads per step (None: MUSICGYM_NUM_THREADS, else 1; checked here, used per step)
        self.threads = None if threads is None else num_threads(threads)
        self.patch = Patch(code, sr=sr, bpm=bpm, backend=backend, samples=samples,
                           threads=self.threads)
        self.sr = self.patch.sr
        self.pmap = ParameterMap(action_space, n_holes=self.patch.n_params, flat=flat_actions,
                                 clip=clip_actions)
        # criteria: RaveForce's name for the reward
        spec = criteria if criteria is not None else reward
        self.distance: Distance = make_distance(spec, sr=self.sr)
        if self.threads is not None and isinstance(self.distance, MultiResolutionSTFT) \
                and not isinstance(spec, Distance):  # ours to set (a caller's: theirs)
            self.distance.threads = self.threads
        self.targets = load_targets(target, sr=self.sr, max_seconds=max_target_seconds)
        self.total_step = int(total_step)
        longest = max(t.size for _, t in self.targets)
        if step_len is None:
            step_len = longest / self.sr / self.total_step
        if not (isinstance(step_len, (int, float, np.number)) and np.isfinite(step_len)
                and step_len > 0):
            raise TargetError(f"step_len must be a positive duration in seconds, got {step_len!r}")
        self.step_len = float(step_len)
        self.seg = max(1, int(round(self.step_len * self.sr)))
        self.clip_len = self.seg * self.total_step
        # targets padded or cut to the clip, and their features per segment, computed once
        self.target_clips = np.zeros((len(self.targets), self.clip_len), dtype=np.float32)
        for i, (_, t) in enumerate(self.targets):
            self.target_clips[i, :min(t.size, self.clip_len)] = t[:self.clip_len]
        self._prepared: dict[tuple[int, int], object] = {}
        self._spectra: dict[int, np.ndarray] = {}  # each target's picture spectrogram, once
        self.observation = observation
        self.obs_frames, self.obs_mels = int(obs_frames), int(obs_mels)
        self._target_obs = [self._features(self.target_clips[i:i + 1])[0]
                            for i in range(len(self.targets))]
        self.observation_space = self._observation_space()
        self.action_space = self.pmap.space
        n = len(self.targets)
        self._reset_obs = self._observe(np.zeros((n, self.clip_len), np.float32),
                                        np.zeros(n, np.int64), np.arange(n))

    # -- spaces ------------------------------------------------------------------------------
    def _observation_space(self) -> spaces.Box:
        if self.observation == "audio":
            return spaces.Box(-AUDIO_BOUND, AUDIO_BOUND, shape=(self.clip_len + 1,),
                              dtype=np.float32)
        n = self.obs_frames * self.obs_mels * (2 if self.observation == "goal" else 1) + 1
        return spaces.Box(FEATURE_LOW, FEATURE_HIGH, shape=(n,), dtype=np.float32)

    def _features(self, clips: np.ndarray, cache: dict | None = None) -> np.ndarray:
        return self._features_of(stft_magnitude(clips, n_fft=OBS_STFT[0], hop=OBS_STFT[1],
                                                cache=cache))

    def _features_of(self, mag: np.ndarray) -> np.ndarray:
        """(B, obs_frames * obs_mels) features from (B, frames, bins) STFT magnitudes."""
        mel = log_mel_of(mag, sr=self.sr, n_mels=self.obs_mels)
        return pooled_features(mel.reshape(-1, *mel.shape[-2:]), self.obs_frames,
                               FEATURE_LOW, FEATURE_HIGH)

    def observe(self, clips: np.ndarray, steps: np.ndarray, targets: np.ndarray,
                cache: dict | None = None) -> np.ndarray:
        """(B, obs) float32 observations of the clips so far (``cache``: their STFTs, or
        under ``"features"`` the clips' features, which :meth:`step` computed)."""
        if (cache is None or "features" not in cache) and not steps.any() \
                and not clips.any():
            # every clip is still silent (just reset): the observation is known in advance
            return self.first_observation(targets)
        return self._observe(clips, steps, targets, cache)

    def first_observation(self, targets: np.ndarray) -> np.ndarray:
        """(B, obs) observations of silent clips at step 0 (just reset), for ``targets``."""
        return self._reset_obs[targets]

    def _observe(self, clips, steps, targets, cache=None) -> np.ndarray:
        progress = (steps / self.total_step).astype(np.float32)[:, None]
        if self.observation == "audio":
            body = np.clip(np.nan_to_num(clips, nan=0.0), -AUDIO_BOUND, AUDIO_BOUND)
        else:
            body = cache["features"] if cache is not None and "features" in cache \
                else self._features(clips, cache)
            if self.observation == "goal":
                body = np.concatenate([body, np.stack([self._target_obs[t] for t in targets])],
                                      axis=1)
        return np.concatenate([body, progress], axis=1).astype(np.float32)

    # -- rewards -----------------------------------------------------------------------------
    def prepared(self, target: int, segment: int):
        """The target's features for a segment (``-1``: the whole clip), computed once."""
        key = (target, segment)
        if key not in self._prepared:
            clip = self.target_clips[target]
            span = clip if segment < 0 else clip[segment * self.seg:(segment + 1) * self.seg]
            self._prepared[key] = self.distance.prepare(span)
        return self._prepared[key]

    def new_cache(self) -> dict:
        """An STFT cache for a step: only the observation's STFT is worth keeping (in arrays
        reused from step to step: a step's cache is dead by the next one)."""
        if self.observation == "audio":
            return {"keep": set()}
        return {"keep": {OBS_STFT}, "buffers": self.__dict__.setdefault("_stft_buffers", {})}

    def distances(self, audio: np.ndarray, targets: np.ndarray, segment: int,
                  cache: dict | None = None, finite: bool = False) -> np.ndarray:
        """Distances of (B, n) audio to each row's target span (rows grouped by target;
        ``cache`` holds STFTs of ``audio`` and is only used when all rows share a target;
        ``finite``: the audio was sanitised already)."""
        distance = self.distance
        if len(self.targets) == 1 or (targets == targets[0]).all():  # one target: no copies
            return distance(audio, self.prepared(int(targets[0]), segment), cache=cache,
                            finite=finite)
        out = np.empty(audio.shape[0], dtype=np.float32)
        groups = np.unique(targets)
        for t in groups:
            rows = np.nonzero(targets == t)[0]
            out[rows] = distance(audio[rows], self.prepared(int(t), segment),
                                 cache=cache if len(groups) == 1 else None, finite=finite)
        return out

    # -- the running distance of the whole clip ----------------------------------------------
    @property
    def incremental(self) -> bool:
        """Whether the running clip distance is updated frame by frame (``mrstft``)."""
        return isinstance(self.distance, MultiResolutionSTFT)

    def new_running(self, n_rows: int) -> list[np.ndarray] | None:
        """Per-frame sums of the running clip distance for ``n_rows`` clips (``None`` when
        the reward has no incremental form). Rows start from silence at their step 0."""
        if not self.incremental:
            return None
        prepared = self.prepared(0, -1)
        return [np.zeros((n_rows, r.n_frames, 2), np.float32) for r in prepared.resolutions]

    def _silent_sums(self, target: int) -> list[np.ndarray]:
        key = (target, "silent")
        if key not in self._prepared:
            self._prepared[key] = [s for _, s in self.distance.frame_sums(
                np.zeros((1, self.clip_len), np.float32), self.prepared(target, -1))]
        return self._prepared[key]

    def clip_distances(self, clips: np.ndarray, targets: np.ndarray, rows: np.ndarray, k: int,
                       running: list[np.ndarray] | None = None,
                       cache: dict | None = None) -> np.ndarray:
        """Distances of the rows' whole clips, just after segment ``k`` was written.

        With ``running`` (from :meth:`new_running`), only the frames that overlap segment
        ``k`` are recomputed: the others kept their sums from earlier steps (or from silence,
        for the frames after the segment), so the result equals the from-scratch distance;
        otherwise (other rewards) the clips are scored from scratch (``cache`` receives their
        STFTs)."""
        if running is None:
            return self.distances(clips[rows], targets[rows], -1, cache)
        out = np.empty(len(rows), dtype=np.float32)
        for t in np.unique(targets[rows]):
            sel = rows[targets[rows] == t]
            prepared = self.prepared(int(t), -1)
            if k == 0:  # a new episode: every frame is silent but the first segment's
                for state, silent in zip(running, self._silent_sums(int(t)), strict=True):
                    state[sel] = silent
            touched = self.distance.frame_sums(clips[sel], prepared, k * self.seg,
                                               (k + 1) * self.seg)
            for state, (first, sums) in zip(running, touched, strict=True):
                state[sel, first:first + sums.shape[1]] = sums
            out[np.nonzero(targets[rows] == t)[0]] = self.distance.finish(
                self.distance.from_frame_sums([state[sel] for state in running], prepared))
        return out

    # -- watching ------------------------------------------------------------------------------
    def _spectrogram(self, audio: np.ndarray) -> np.ndarray:
        """(frames, 64 mels) log10 mel power of mono audio, floored at ``SPECTRUM_LOW``."""
        return np.maximum(log_mel(audio, sr=self.sr, n_fft=1024, hop=256, n_mels=64),
                          SPECTRUM_LOW)

    def picture(self, clip: np.ndarray, target: int, step: int) -> np.ndarray:
        """uint8 (288, 512, 3): the target's log-mel spectrogram, the clip's (a white line
        where segment ``step`` starts) and their difference (red: the clip louder)."""
        from musicgym.envs import rendering

        if target not in self._spectra:
            self._spectra[target] = self._spectrogram(self.target_clips[target])
        goal, now = self._spectra[target], self._spectrogram(clip)
        hi, width = max(float(goal.max()), SPECTRUM_LOW + 1.0), 512
        middle = rendering.heatmap(now, 96, width, lo=SPECTRUM_LOW, hi=hi)
        middle[:, min(int(round(step * self.seg / self.clip_len * (width - 1))), width - 1)] = \
            rendering.WHITE
        return rendering.stack([rendering.heatmap(goal, 96, width, lo=SPECTRUM_LOW, hi=hi),
                                middle,
                                rendering.heatmap(now - goal, 88, width, lo=-4.0, hi=4.0,
                                                  diverging=True)])

    def line(self, step: int, target: int, last: dict) -> str:
        """A line of text: step, target, the last step's parameters and clip distance."""
        params = " ".join(f"{k}={v:.4g}" for k, v in last.get("params", {}).items())
        distance = last.get("clip_distance")
        return (f"step {step}/{self.total_step} target {self.targets[target][0]} "
                f"params [{params}] clip distance "
                f"{'-' if distance is None else f'{distance:.4f}'}")

    # -- stepping ----------------------------------------------------------------------------
    def render_segments(self, actions, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(parameters (B, P), left-channel segments (B, seg)) for a batch of actions."""
        params = self.pmap.params(actions, batch)
        return params, self.patch.render(params, n_samples=self.seg, progress=False,
                                         left_only=True)

    def step(self, clips: np.ndarray, steps: np.ndarray, targets: np.ndarray, actions,
             rows: np.ndarray, running: list[np.ndarray] | None = None) -> dict:
        """Advance ``rows`` (all at the same step) in place; return rewards and diagnostics.

        ``running``: the rows' running-distance state (:meth:`new_running`), updated in place;
        without it the clip distance is computed from scratch. ``out["stft_cache"]`` holds the
        observation's STFT of the rows' clips when the segment is the whole clip (one-step
        tasks), for the observation to reuse."""
        k = int(steps[rows[0]])
        span = slice(k * self.seg, (k + 1) * self.seg)
        direct = len(rows) == clips.shape[0] and (rows == np.arange(len(rows))).all()
        if self.steps_in_blocks(clips, targets, rows):
            return self._step_blocks(clips, steps, targets, actions, rows)
        if direct:  # every row, in order: render straight into the clips (no array, no copy)
            params = self.pmap.params(actions, len(rows))
            seg = self.patch.render(params, n_samples=self.seg, progress=False,
                                    left_only=True, out=clips[:, span])
        else:
            params, seg = self.render_segments(actions, len(rows))
        if not all_finite(seg):  # sanitised in place (a fresh array or the clips' span)
            np.nan_to_num(seg, copy=False, nan=0.0, posinf=AUDIO_BOUND, neginf=-AUDIO_BOUND)
        if not direct:
            clips[rows, span] = seg
        steps[rows] += 1
        cache = self.new_cache() if self.total_step == 1 else None
        reward = -self.distances(seg, targets[rows], k, cache, finite=True)
        if self.total_step == 1:
            # the segment is the whole clip: the running distance is the step's distance
            clip_distance = -reward
        else:
            cache = self.new_cache()
            clip_distance = self.clip_distances(clips, targets, rows, k, running, cache)
        return {"reward": reward.astype(np.float32), "params": params,
                "clip_distance": clip_distance, "stft_cache": cache}

    def steps_in_blocks(self, clips: np.ndarray, targets: np.ndarray, rows: np.ndarray) -> bool:
        """Whether :meth:`step` of ``rows`` takes :meth:`_step_blocks`: one-step episodes of
        every row, in order, with the NumPy engine, the MR-STFT and one target. That step
        writes every sample of ``clips`` before reading any (the vector env then need not
        zero them at the reset before)."""
        return len(rows) == clips.shape[0] and self.total_step == 1 \
            and self.patch.backend == "numpy" and isinstance(self.distance, MultiResolutionSTFT) \
            and (rows == np.arange(len(rows))).all() and (targets[rows] == targets[rows[0]]).all()

    def _step_blocks(self, clips, steps, targets, actions, rows) -> dict:
        """:meth:`step` for one-step episodes of every row (the NumPy engine, the MR-STFT, one
        target): two parallel regions. First each thread renders a block of rows (the engine
        on one thread), sanitises it and finds where its sound starts and ends; then the
        MR-STFT sorts every row by where its sound ends and each thread transforms and
        reduces chunks of rows at the three resolutions and computes those rows'
        observation features (:meth:`MultiResolutionSTFT.batch`). Before, the engine, each
        resolution and the observation were separate regions or serial, each waiting for
        its slowest thread. Every row goes through the same code as on one thread: the same
        bits (a row's render, STFT frames and per-frame sums do not depend on the other rows
        of its block or chunk)."""
        params = self.pmap.params(actions, len(rows))
        n_rows = len(rows)
        n_threads = num_threads(self.threads)
        blocks = row_blocks(n_rows, n_threads, MultiResolutionSTFT.CHUNK)
        patch = self.__dict__.get("_block_patch")
        if patch is None:  # the engine on one thread: the blocks are this method's
            patch = self._block_patch = copy.copy(self.patch)
            patch.threads = 1
            patch.chunk_rows_samples = BLOCK_CHUNK_ROWS_SAMPLES
        prepared = self.prepared(int(targets[0]), 0)
        seg = clips[:, :self.seg]
        spans = np.empty((n_rows, 2), np.int64)

        # the blocks' Python set-up here, so that the threads start on the kernels at once
        # (the worker's block started about 0.3 ms late, waiting for the GIL)
        runs = [patch.prepare_left(params[lo:hi], self.seg, seg[lo:hi]) for lo, hi in blocks]

        def render(j: int, lo: int, hi: int) -> None:
            block = runs[j]()
            # one read of the block for both
            if not _finite_sound_spans(block, spans[lo:hi]):  # sanitised in place
                np.nan_to_num(block, copy=False, nan=0.0, posinf=AUDIO_BOUND,
                              neginf=-AUDIO_BOUND)
                _sound_spans(block, spans[lo:hi])

        run_blocks(render, blocks)
        distance = self.distance  # its threads: the env's (set in __init__) or the caller's
        features = None
        cache = self.new_cache()
        if self.observation == "audio":
            on_rows = None
        else:
            features = np.empty((n_rows, self.obs_frames * self.obs_mels), np.float32)

            def on_rows(done: np.ndarray, kept: dict) -> None:  # on the rows' thread
                features[done] = self._features_of(kept[OBS_STFT])
        with np.errstate(all="ignore"):
            distance_raw = distance.batch(seg, prepared, cache, spans=spans, on_rows=on_rows)
        reward = -distance.finish(distance_raw)
        steps[rows] += 1
        return {"reward": reward, "params": params, "clip_distance": -reward,
                "stft_cache": None if features is None else {"features": features}}
