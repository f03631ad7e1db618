"""Train a sound matcher: learn to invert a patch from random settings and their sounds.

The recipe is the sound-matching literature's supervised floor (spiegelib's nets, Yee-King
2018, InverSynth), and the first stage of Masuda & Saito's parameter-loss-then-spectral-loss
training:

* draw settings uniformly in the normalised action space [-1, 1]^d (the envs' action space,
  so ``exp`` holes are drawn log-uniformly), render them in batches with the engine
  (:class:`musicgym.synth.Patch`, one call per batch of 256); the data is unlimited and its
  answers known;
* features: the clip's log-mel image (32 mels, FFT 1024, hop 512) averaged into 16 time
  slices, standardised per feature (spiegelib feeds MFCC or mel frames to its MLP and CNN);
* net: an MLP (512 -> 256 -> 128 -> d, ReLU, ``tanh`` out), MSE on the normalised settings
  (spiegelib's loss; Masuda & Saito's parameter loss); Adam, a held-out tenth for validation.

The spectral-loss stage (our engine is not differentiable, so it is RL on the perceptual
reward, deliverable 1's second half) is :mod:`musicgym.train.matcher_rl` (``--rl-finetune``;
measured, not shipped: docs/matching.md). Not taken: InverSynth's per-parameter classes and
deep strided CNN, and real-audio fine-tuning. Search closes the gap instead:
:func:`musicgym.train.baselines.cmaes` seeded by the proposal (``policy+cmaes``).

    python -m musicgym.train.matcher --preset Kick-v0 --examples 30000 --seed 0 \\
        -o src/musicgym/data/matchers/Kick-v0

writes ``Kick-v0.npz`` (weights, no pickles) and ``Kick-v0.json`` (features, patch, command,
seed, validation error), read by :class:`musicgym.envs.matcher_model.Matcher`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musicgym.envs.matcher_model import DEFAULT_FEATURES, Matcher, matcher_features
from musicgym.envs.spaces import ParameterMap
from musicgym.errors import ConfigError, OutputError
from musicgym.synth import Patch

# BassLine-v0's step: FFT 4096 (10.8 Hz bins, a semitone is 3-7 Hz at MIDI 33-51, so the
# note is read from its harmonics), 128 mels, two time slices. Chosen on synthetic settings
# (seed 0 to train, seed 99 to validate; 12,000 renders, a 256-128 MLP, 30 epochs): notes
# right 99.1 % against 95.6 % with DEFAULT_FEATURES, cutoff median error 0.0013 against
# 0.0019. Then YIN's periodicity on a quarter-semitone grid over MIDI 28-56 (pitch_salience):
# without it the net named 37-43 % of the notes of bass lines in timbres it never heard
# (docs/matching.md, "BassLine-v0")
STEP_FEATURES = {"n_fft": 4096, "hop": 1024, "n_mels": 128, "n_frames": 2,
                 "pitch": [28, 56, 4]}
STEP_PRESETS = ("BassLine-v0",)
# a target farther from the codebook than this share of held-out synthetic sounds is out of
# the patch's distribution; 0.9 chosen on the one-shots' training half (mean MR-STFT of the
# proposal 2.48 with 0.5-0.9, 2.90 with 0.99)
OOD_QUANTILE = 0.9


def patch_spec(preset: str | None = None, code: str | None = None,
               action_space: Sequence | None = None, seconds: float | None = None,
               steps: int = 1) -> dict:
    """``{"code", "action_space", "seconds", "steps", "preset"}`` of a preset or of a patch.

    ``seconds`` is one step's length and ``steps`` the number of steps: a preset of several
    steps (BassLine-v0: 16 steps of 0.25 s, each a note and a cutoff) is a sequencer whose
    every step is rendered from a fresh engine state, so a matcher learns one step's sound
    and matches a target step by step (:func:`musicgym.train.match.match_target`). Your own
    patch is a sequencer of ``steps`` steps of ``seconds`` each (default one step).

    Raises
    ------
    ConfigError
        An unknown preset, or neither a preset nor code with an action space."""
    from musicgym.envs.presets import PRESETS

    if preset is not None:
        name = preset.removeprefix("musicgym/")
        if name not in PRESETS:
            raise ConfigError(f"unknown sound-matching preset {preset!r}: choose one of "
                              f"{', '.join(PRESETS)}")
        p = PRESETS[name]
        return {"preset": name, "code": p["code"], "action_space": p["action_space"],
                "seconds": float(p["step_len"] if seconds is None else seconds),
                "steps": int(p["total_step"])}
    if code is None or action_space is None:
        raise ConfigError("give a preset, or the patch's code and its action space")
    return {"preset": None, "code": code, "action_space": list(action_space),
            "seconds": float(0.5 if seconds is None else seconds), "steps": int(steps)}


def matcher_features_for(preset: str | None) -> dict:
    """The feature settings a matcher of ``preset`` is trained with: the one-step drum and
    tone presets (and your own patches) use :data:`DEFAULT_FEATURES`; a sequencer's step
    (BassLine-v0's 0.25 s bass notes, MIDI 33-51: 55-123 Hz) needs finer frequencies to tell
    the notes apart (:data:`STEP_FEATURES`)."""
    return dict(STEP_FEATURES if preset in STEP_PRESETS else DEFAULT_FEATURES)


def synthetic_dataset(spec: dict, n: int, *, seed: int = 0, sr: int = 44100,
                      features: dict | None = None, batch: int = 256
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, F), actions (n, d)) of ``n`` uniformly drawn settings of the patch
    (``features``: :func:`matcher_features` settings, default the preset's,
    :func:`matcher_features_for`)."""
    features = matcher_features_for(spec.get("preset")) if features is None else dict(features)
    patch = Patch(spec["code"], sr=sr)
    pmap = ParameterMap(spec["action_space"], n_holes=patch.n_params, flat=True)
    dim = pmap.space.shape[0]
    n_samples = int(round(spec["seconds"] * sr))
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(n, dim)).astype(np.float32)
    out = []
    for start in range(0, n, batch):
        chunk = actions[start:start + batch]
        audio = patch.render(pmap.params(chunk, len(chunk)), n_samples=n_samples,
                             progress=False)[:, 0]
        audio = np.nan_to_num(audio, nan=0.0, posinf=10.0, neginf=-10.0)
        out.append(matcher_features(audio, sr=sr, **features))
    return np.concatenate(out), actions


# short and percussive General MIDI programs (mallets, plucks, basses, drums-as-programs,
# effects): recorded one-shots unlike the patch's own sounds, the kind of sound the matcher
# meets in real use; the real one-shots (the benchmark's) are not in any SoundFont
ONESHOT_PROGRAMS = (0, 8, 9, 11, 12, 13, 14, 24, 32, 33, 36, 38, 39, 45, 46, 47, 80, 81, 87,
                    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 125, 127)
INPUT_CLIP = 6.0  # standardised features, clipped for a fine-tuned net (Matcher.forward)
SATURATION_PENALTY = 1e-2
ONESHOT_SPACING_S = 1.5  # notes rendered this far apart in one FluidSynth call


ONESHOT_KINDS = ("melodic", "drums", "mixed")
DRUM_KEYS = (35, 82)  # General MIDI percussion keys 35 (acoustic bass drum) ... 81 (open triangle)
DRUM_SEMITONES = 2.0  # a drum one-shot is played up to this much faster or slower (varispeed)


def soundfont_oneshots(n: int, *, seed: int = 0, seconds: float = 0.5, sr: int = 44100,
                       soundfonts: Sequence[str | Path] | None = None,
                       kind: str = "melodic") -> np.ndarray:
    """(n, samples) one-shots: single short notes drawn at random, through each SoundFont in
    turn, each normalised to a random peak in [0.3, 1] (produced one-shots are normalised; the
    SoundFonts' are quiet).

    ``kind``: ``"melodic"`` (:data:`ONESHOT_PROGRAMS`; program, pitch 28-89, velocity 60-127,
    length 30-300 ms), ``"drums"`` (the General MIDI drum kits both Debian SoundFonts have,
    :data:`musicgym.audio.soundfont.GM_DRUM_KITS`; percussion key 35-81, velocity 60-127,
    note 0.1-0.5 s, played up to :data:`DRUM_SEMITONES` faster or slower, as a sampler's
    tune knob) or ``"mixed"`` (the first ``n - n // 2`` melodic, the rest drums, both drawn
    from ``seed``). ``soundfonts`` defaults to Debian's GM SoundFonts there are (TimGM6mb,
    FluidR3).

    Raises
    ------
    ConfigError
        An unknown ``kind``.
    """
    if kind not in ONESHOT_KINDS:
        raise ConfigError(f"one-shot kind {kind!r}: choose one of {', '.join(ONESHOT_KINDS)}")
    if kind == "mixed":
        return np.concatenate([
            soundfont_oneshots(n - n // 2, seed=seed, seconds=seconds, sr=sr,
                               soundfonts=soundfonts, kind="melodic"),
            soundfont_oneshots(n // 2, seed=seed, seconds=seconds, sr=sr,
                               soundfonts=soundfonts, kind="drums")])
    from musicgym.audio.soundfont import GM_DRUM_KITS, find_soundfont

    if soundfonts is None:
        found = [Path("/usr/share/sounds/sf2") / f for f in ("TimGM6mb.sf2", "FluidR3_GM.sf2")]
        soundfonts = [f for f in found if f.is_file()] or [find_soundfont()]
    rng = np.random.default_rng(seed)
    if kind == "melodic":  # (font, program, pitch, velocity, length_s, peak, rate)
        draws = [(int(rng.integers(len(soundfonts))), int(rng.choice(ONESHOT_PROGRAMS)),
                  int(rng.integers(28, 90)), int(rng.integers(60, 128)),
                  float(rng.uniform(0.03, 0.3)), float(rng.uniform(0.3, 1.0)), 1.0)
                 for _ in range(n)]
    else:
        draws = [(int(rng.integers(len(soundfonts))), int(rng.choice(GM_DRUM_KITS)),
                  int(rng.integers(*DRUM_KEYS)), int(rng.integers(60, 128)),
                  float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.3, 1.0)),
                  float(2.0 ** (rng.uniform(-DRUM_SEMITONES, DRUM_SEMITONES) / 12.0)))
                 for _ in range(n)]
    return _render_oneshots(draws, soundfonts, drums=kind == "drums",
                            n_samples=int(round(seconds * sr)), sr=sr)


def _render_oneshots(draws: list[tuple], soundfonts: Sequence[str | Path], *, drums: bool,
                     n_samples: int, sr: int) -> np.ndarray:
    """:func:`soundfont_oneshots`' clips: one FluidSynth call per (font, program), the notes
    :data:`ONESHOT_SPACING_S` apart; each clip read at its rate, then normalised."""
    from musicgym.audio.soundfont import Part, render_notes

    spacing = int(round(ONESHOT_SPACING_S * sr))
    clips = np.zeros((len(draws), n_samples), np.float32)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (font, program, *_rest) in enumerate(draws):
        groups.setdefault((font, program), []).append(i)
    for (font, program), rows in groups.items():
        notes = [(j * ONESHOT_SPACING_S, j * ONESHOT_SPACING_S + draws[i][4], draws[i][2],
                  draws[i][3]) for j, i in enumerate(rows)]
        audio = render_notes(Part(notes, program=program, drums=drums), sr=sr,
                             soundfont=soundfonts[font],
                             duration=len(rows) * ONESHOT_SPACING_S)[0]
        for j, i in enumerate(rows):
            rate = draws[i][6]
            if rate == 1.0:
                clip = audio[j * spacing:j * spacing + n_samples]
            else:  # varispeed: read the note faster (higher, shorter) or slower
                note = audio[j * spacing:(j + 1) * spacing]
                clip = np.interp(np.arange(n_samples) * rate, np.arange(len(note)), note,
                                 right=0.0).astype(np.float32)
            clips[i, :len(clip)] = clip
            peak = np.abs(clips[i]).max()
            if peak > 0:
                clips[i] *= draws[i][5] / peak
    return clips


def search_labels(matcher: Matcher, spec: dict, clips: np.ndarray, *, budget: int = 100,
                  log=print) -> tuple[np.ndarray, np.ndarray]:
    """(actions (n, d), MR-STFT (n,)) that ``policy+nm`` (the matcher's guesses, then
    Nelder-Mead, ``budget`` renders) finds for each clip: the search's answers, to learn from
    (expert iteration: the net guides the search, then imitates it)."""
    from musicgym.envs.matching import MatchCore
    from musicgym.train.match import (
        MIN_SIGMA,
        NM_CANDIDATES,
        Evaluations,
        env_kwargs,
        nelder_mead,
    )

    actions, costs = [], []
    t0 = time.perf_counter()
    for i, clip in enumerate(clips):
        evaluate = Evaluations(MatchCore(**env_kwargs(spec, clip)))
        # the matcher's own candidates (not a critic's choice: the labels of the shipped
        # fine-tune were searched so)
        evaluate(matcher.candidates(evaluate.core.target_clips[0], NM_CANDIDATES))
        nelder_mead(evaluate, evaluate.best, budget, max(MIN_SIGMA, matcher.spread))
        actions.append(evaluate.best)
        costs.append(evaluate.best_cost)
        if (i + 1) % 250 == 0:
            log(f"searched {i + 1}/{len(clips)} one-shots in {time.perf_counter() - t0:.0f} s "
                f"(mean MR-STFT {np.mean(costs):.3f})")
    return np.asarray(actions, np.float32), np.asarray(costs, np.float32)


def train_matcher(spec: dict, *, examples: int = 30_000, epochs: int = 60,
                  hidden: Sequence[int] = (256, 128), lr: float = 1e-3, seed: int = 0,
                  sr: int = 44100, codebook: int = 8192, codebook_dims: int = 24,
                  distill: int = 0, distill_budget: int = 100, finetune_epochs: int = 20,
                  distill_kind: str = "melodic", command: str | None = None,
                  log=print) -> Matcher:
    """Render ``examples`` random settings of the patch and fit the MLP to invert it.

    Returns the trained :class:`~musicgym.envs.matcher_model.Matcher` (save it with
    :func:`save_matcher`); its ``meta`` holds the validation RMSE and timings. It keeps a
    codebook of ``codebook`` training sounds (features on ``codebook_dims`` principal axes,
    float16) for targets unlike the patch's sounds (see ``Matcher.propose``).

    With ``distill`` > 0 it then learns from search (expert iteration): ``distill``
    SoundFont one-shots of ``distill_kind`` (:func:`soundfont_oneshots`, seed ``seed + 1``)
    are matched by ``policy+nm`` with the net just trained (``distill_budget`` renders each,
    :func:`search_labels`), and the net is trained ``finetune_epochs`` more epochs on its
    synthetic examples plus those sounds with the settings found
    (:func:`finetune_matcher`); the one-shots join the codebook."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    features = matcher_features_for(spec.get("preset"))
    x, y = synthetic_dataset(spec, examples, seed=seed, sr=sr, features=features)
    render_s = time.perf_counter() - t0
    log(f"rendered {examples} examples in {render_s:.0f} s")
    mean, std = x.mean(0), x.std(0) + 1e-3
    xn = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(y)
    n_val = max(1, examples // 10)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(examples))
    val, tr = perm[:n_val], perm[n_val:]
    sizes = [x.shape[1], *hidden, y.shape[1]]
    layers: list = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        layers.append(torch.nn.ReLU() if i < len(sizes) - 2 else torch.nn.Tanh())
    net = torch.nn.Sequential(*layers)

    def report(epoch: int) -> None:
        if epoch % 10 == 9 or epoch == epochs - 1:
            with torch.no_grad():
                err = (net(xn[val]) - yt[val]).numpy()
            log(f"epoch {epoch + 1}: validation RMSE {np.sqrt((err ** 2).mean()):.4f}, "
                f"median |error| {np.median(np.abs(err)):.4f}")

    fit_net(net, tr, lambda idx: torch.nn.functional.mse_loss(net(xn[idx]), yt[idx]),
            epochs=epochs, lr=lr, seed=seed, report=report)
    with torch.no_grad():
        err = (net(xn[val]) - yt[val]).numpy()
    weights = net_weights(net, mean.astype(np.float32), std.astype(np.float32))
    weights.update(_codebook(xn[tr].numpy(), y[tr.numpy()], codebook, codebook_dims))
    # out of distribution: farther from the codebook than 90 % of held-out synthetic sounds
    _, val_dist = Matcher(weights, {"features": features, "sr": sr,
                                    "clip_samples": 1}).nearest(x[val.numpy()])
    meta = {"preset": spec["preset"], "code": spec["code"],
            "action_space": [list(m) if isinstance(m, (list, tuple)) else m
                             for m in spec["action_space"]],
            "sr": sr, "clip_samples": int(round(spec["seconds"] * sr)),
            "features": features, "hidden": list(hidden), "examples": examples,
            "epochs": epochs, "lr": lr, "seed": seed, "command": command,
            "val_rmse": float(np.sqrt((err ** 2).mean())),
            "val_median_abs_error": float(np.median(np.abs(err))),
            "codebook": codebook, "codebook_dims": codebook_dims,
            "ood_threshold": float(np.quantile(val_dist, OOD_QUANTILE)),
            "seconds": round(time.perf_counter() - t0, 1)}
    matcher = Matcher(weights, meta)
    if distill > 0:
        tr_np = tr.numpy()
        matcher = distill_matcher(matcher, spec, x[tr_np], y[tr_np], distill, seed=seed,
                                  budget=distill_budget, epochs=finetune_epochs,
                                  kind=distill_kind, log=log)
        matcher.meta["seconds"] = round(time.perf_counter() - t0, 1)
    return matcher


SF_LINES_SYNTHETIC = 20_000  # synthetic examples kept beside the bass lines' steps (--sf-lines)
MAX_LABELS = 100_000  # one-shots a labels file may name (each is rendered again)
_LABELS_MEMBER_BYTES = 64 << 20  # the largest array a labels file may hold, uncompressed


def read_labels(path: str | Path, n_params: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """A ``--labels`` file, checked: (its key ``[n, seed, budget]``, the searched settings
    (n, ``n_params``) float32 in [-1, 1], their MR-STFT (n,) float32).

    Raises
    ------
    ConfigError
        If the file is not an ``.npz`` as :func:`distill_matcher` writes it (``key``,
        ``actions``, ``costs``), an array is too large, or the shapes or values do not fit:
        such a file is refused before anything is rendered from it.
    """
    path = Path(path)
    fix = "give a file --labels wrote, or a new path to search and write one"
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ConfigError(f"{path}: not a labels file ({err}); {fix}") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ConfigError(f"{path}: a single array, not a labels file (an .npz with key, "
                          f"actions and costs); {fix}")
    with data:
        missing = sorted({"key", "actions", "costs"} - set(data.files))
        if missing:
            raise ConfigError(f"{path}: no {', '.join(missing)} in this .npz; {fix}")
        try:
            sizes = {name: data.zip.getinfo(f"{name}.npy").file_size
                     for name in ("key", "actions", "costs")}
            if max(sizes.values()) > _LABELS_MEMBER_BYTES:
                raise ConfigError(f"{path}: an array of {max(sizes.values())} bytes, more than "
                                  f"a labels file of {MAX_LABELS} one-shots holds; {fix}")
            key, actions, costs = (np.asarray(data[name]) for name in ("key", "actions", "costs"))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ConfigError(f"{path}: unreadable labels file ({err}); {fix}") from err
    if key.shape != (3,) or key.dtype.kind not in "iu":
        raise ConfigError(f"{path}: key must be 3 whole numbers (n, seed, budget), got "
                          f"{key.tolist()!r}; {fix}")
    n, seed, budget = (int(v) for v in key)
    if not 1 <= n <= MAX_LABELS or seed < 0 or budget < 1:
        raise ConfigError(f"{path}: key (n, seed, budget) = {[n, seed, budget]} is out of "
                          f"range (1 <= n <= {MAX_LABELS}, seed >= 0, budget >= 1); {fix}")
    if actions.shape != (n, n_params) or actions.dtype.kind != "f" \
            or not np.isfinite(actions).all() or np.abs(actions).max() > 1:
        raise ConfigError(f"{path}: actions must be ({n}, {n_params}) finite numbers in "
                          f"[-1, 1] (one row per one-shot, one column per hole), got shape "
                          f"{actions.shape}; {fix}")
    if costs.shape != (n,) or costs.dtype.kind != "f" or not np.isfinite(costs).all():
        raise ConfigError(f"{path}: costs must be {n} finite numbers, got shape "
                          f"{costs.shape}; {fix}")
    return [n, seed, budget], actions.astype(np.float32), costs.astype(np.float32)


def labels_kind(path: str | Path) -> str:
    """The one-shot kind (:data:`ONESHOT_KINDS`) a labels file was searched on: its ``kind``
    member, ``"melodic"`` for a file without one (written before drum one-shots).

    Raises
    ------
    ConfigError
        If ``kind`` is not one of :data:`ONESHOT_KINDS` (or is not a short string)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "kind" not in data.files:
                return "melodic"
            if data.zip.getinfo("kind.npy").file_size > 1024:
                raise ConfigError(f"{path}: its kind is not a one-shot kind")
            kind = data["kind"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ConfigError(f"{path}: unreadable labels file ({err})") from err
    if kind.shape != () or kind.dtype.kind != "U" or str(kind) not in ONESHOT_KINDS:
        raise ConfigError(f"{path}: kind {kind!r} is not one of {', '.join(ONESHOT_KINDS)}")
    return str(kind)


def distill_matcher(matcher: Matcher, spec: dict, x: np.ndarray, y: np.ndarray, n: int, *,
                    seed: int = 0, budget: int = 100, epochs: int = 20,
                    labels_path: str | Path | None = None,
                    more_labels: Sequence[str | Path] = (), kind: str = "melodic",
                    log=print) -> Matcher:
    """Learn from search: ``n`` SoundFont one-shots of ``kind`` (seed ``seed + 1``,
    :func:`soundfont_oneshots`) matched by ``policy+nm`` with ``matcher``
    (:func:`search_labels`), then :func:`finetune_matcher` on ``(x, y)`` and them.
    ``labels_path``: an ``.npz`` keeping the searched settings (read back when it holds ``n``
    of them for the same seed, budget and kind, so that a fine-tune can be rerun without the
    search). ``more_labels``: further such files, of earlier rounds (each
    one's one-shots are rendered again from the seed and kind it records), learnt from as
    well."""
    clips = soundfont_oneshots(n, seed=seed + 1, seconds=spec["seconds"], sr=matcher.sr,
                               kind=kind)
    key = np.asarray([n, seed + 1, budget])
    path = None if labels_path is None else Path(labels_path)
    n_params = len(spec["action_space"])
    if path is not None and path.is_file():
        found, labels, costs = read_labels(path, n_params)
        found_kind = labels_kind(path)
        if found != key.tolist() or found_kind != kind:
            raise ConfigError(f"{path}: searched settings of another run (n, seed, "
                              f"budget = {found}, {found_kind} one-shots); remove it or "
                              "pick another --labels file")
        log(f"read the searched settings of {n} one-shots from {path}")
    else:
        log(f"rendered {n} SoundFont one-shots ({kind}); searching their settings")
        labels, costs = search_labels(matcher, spec, clips, budget=budget, log=log)
        if path is not None:  # a melodic file as before (no kind: melodic)
            np.savez(path, key=key, actions=labels, costs=costs,
                     **({} if kind == "melodic" else {"kind": np.array(kind)}))
    features, keys, kinds = [matcher.features(clips)], [], []
    labels, costs = [labels], [costs]
    for extra in map(Path, more_labels):
        if not extra.is_file():
            raise ConfigError(f"{extra}: no such labels file; each --labels file after the "
                              "first must hold the searched settings of an earlier run")
        key_extra, more, more_costs = read_labels(extra, n_params)
        n_extra, seed_extra = key_extra[0], key_extra[1]
        kind_extra = labels_kind(extra)
        if (seed_extra, kind_extra) in [(seed + 1, kind)] + list(zip(
                [k[1] for k in keys], kinds, strict=True)):
            raise ConfigError(f"{extra}: the {kind_extra} one-shots of seed {seed_extra} are "
                              "learnt from twice; give each seed's labels file once")
        keys.append(key_extra)
        kinds.append(kind_extra)
        log(f"read the searched settings of {n_extra} {kind_extra} one-shots (seed "
            f"{seed_extra}) from {extra}")
        features.append(matcher.features(soundfont_oneshots(
            n_extra, seed=seed_extra, seconds=spec["seconds"], sr=matcher.sr,
            kind=kind_extra)))
        labels.append(more)
        costs.append(more_costs)
    tuned = finetune_matcher(matcher, x, y, np.concatenate(features),
                             np.concatenate(labels), epochs=epochs, seed=seed, log=log)
    tuned.meta.update(distill=n, distill_seed=seed + 1, distill_budget=budget,
                      distill_mean_mrstft=float(costs[0].mean()))
    if kind != "melodic":
        tuned.meta.update(distill_kind=kind)
    if any(k != "melodic" for k in kinds):
        tuned.meta.update(distill_more_kinds=kinds)
    if keys:  # n, seed, budget of each earlier round's labels, and their mean MR-STFT
        tuned.meta.update(distill_more=keys,
                          distill_more_mean_mrstft=[float(c.mean()) for c in costs[1:]])
    return tuned


def finetune_matcher(matcher: Matcher, x: np.ndarray, y: np.ndarray, x_extra: np.ndarray,
                     y_extra: np.ndarray, *, epochs: int = 20, lr: float = 3e-4,
                     repeat: int = 4, seed: int = 0, extend_codebook: bool = True,
                     input_clip: float = INPUT_CLIP, log=print) -> Matcher:
    """The matcher trained further on its synthetic examples ``(x, y)`` (features, settings)
    and on ``(x_extra, y_extra)``: other sounds with the settings a search found for them
    (:func:`search_labels`), each seen ``repeat`` times an epoch; MSE on the settings, Adam,
    cosine schedule from ``lr``. The standardisation is kept (the codebook is expressed in
    it); the net reads it clipped to +-``input_clip`` (other sounds lie far out, in bands the
    patch never sounds in, and saturate the net: no gradient). With ``extend_codebook``, the
    extra sounds join the codebook: a target unlike the patch's sounds then gets the searched
    settings of the nearest such sound."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    sizes = [matcher.layers[0][0].shape[0]] + [w.shape[1] for w, _ in matcher.layers]
    layers: list = []
    for i in range(len(sizes) - 1):
        lin = torch.nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(matcher.layers[i][0].T))
            lin.bias.copy_(torch.from_numpy(matcher.layers[i][1]))
        layers += [lin] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    net = torch.nn.Sequential(*layers)  # pre-activations; tanh in the loss

    def loss_of(h, target):
        z = net(h)
        # sounds unlike the patch's drive tanh to exactly +-1 (no gradient): a penalty on
        # pre-activations beyond +-3 brings them back where the loss can move them
        return (torch.nn.functional.mse_loss(torch.tanh(z), target)
                + SATURATION_PENALTY * torch.relu(z.abs() - 3.0).pow(2).mean())

    def norm(v):
        h = np.clip((v - matcher.mean) / matcher.std, -input_clip, input_clip)
        return torch.from_numpy(h.astype(np.float32))

    xs = torch.cat([norm(x)] + [norm(x_extra)] * repeat)
    ys = torch.cat([torch.from_numpy(y.astype(np.float32))]
                   + [torch.from_numpy(y_extra.astype(np.float32))] * repeat)
    extra_x, extra_y = norm(x_extra), torch.from_numpy(y_extra.astype(np.float32))

    def report(epoch: int) -> None:
        if epoch % 5 == 4 or epoch == epochs - 1:
            with torch.no_grad():
                fit = torch.nn.functional.mse_loss(torch.tanh(net(extra_x)), extra_y).item()
            log(f"fine-tune epoch {epoch + 1}: RMSE to the searched settings {fit ** 0.5:.4f}")

    fit_net(net, torch.arange(len(xs)), lambda idx: loss_of(xs[idx], ys[idx]), epochs=epochs,
            lr=lr, seed=seed, report=report)
    weights = net_weights(net, matcher.mean, matcher.std)
    if matcher.codebook is not None:
        book, acts = matcher.codebook, matcher.codebook_actions
        if extend_codebook:
            z = (((x_extra - matcher.mean) / matcher.std) - matcher.pca_mean) @ matcher.pca
            book = np.concatenate([book, z]).astype(np.float32)
            acts = np.concatenate([acts, y_extra]).astype(np.float32)
        weights.update(pca_mean=matcher.pca_mean, pca=matcher.pca,
                       codebook=book.astype(np.float16), codebook_actions=acts.astype(np.float16))
    meta = dict(matcher.meta)
    meta.update(finetune_epochs=epochs, finetune_lr=lr, finetune_repeat=repeat,
                finetune_examples=len(x_extra), codebook_extended=bool(extend_codebook),
                input_clip=float(input_clip))
    return Matcher(weights, meta)


def fit_net(net, rows, loss_of, *, epochs: int, lr: float, seed: int, report=None,
            batch: int = 256) -> None:
    """Train torch ``net`` in place: Adam from ``lr`` with a cosine schedule over ``epochs``;
    each epoch the example indices ``rows`` (a tensor) shuffled by a generator seeded with
    ``seed``, in batches of ``batch``, minimising ``loss_of(batch of indices)``;
    ``report(epoch)`` after each epoch (the matchers' and the note head's loop)."""
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        for idx in rows[torch.randperm(len(rows), generator=gen)].split(batch):
            loss = loss_of(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if report is not None:
            report(epoch)


def net_weights(net, mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    """A matcher file's arrays for torch ``net`` (a ``Sequential`` of linear layers and
    activations) and its input scaling: ``mean``, ``std``, ``W0``, ``b0``, ... (the codebook
    is the caller's to add)."""
    import torch

    weights = {"mean": mean, "std": std}
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        weights[f"W{i}"] = lin.weight.detach().numpy().T.copy()
        weights[f"b{i}"] = lin.bias.detach().numpy().copy()
    return weights


def _codebook(xn: np.ndarray, y: np.ndarray, size: int, dims: int) -> dict[str, np.ndarray]:
    """Principal axes of standardised features and ``size`` sounds projected on them."""
    xs, ys = xn[:size], y[:size]
    centre = xs.mean(0)
    _, _, vt = np.linalg.svd(xs - centre, full_matrices=False)
    axes = vt[:dims].T.astype(np.float32)
    return {"pca_mean": centre.astype(np.float32), "pca": axes,
            # float16 halves the file; the rounding moves a distance by ~1e-3 of its value
            "codebook": ((xs - centre) @ axes).astype(np.float16),
            "codebook_actions": ys.astype(np.float16)}


def matcher_arrays(matcher: Matcher) -> dict[str, np.ndarray]:
    """A matcher's arrays as its ``.npz`` holds them: the scaling, the net ``W0, b0, ...``,
    a note head ``C0, c0, ...`` and the codebook (float16) where it has them."""
    weights = {"mean": matcher.mean, "std": matcher.std}
    if matcher.codebook is not None:
        weights.update(pca_mean=matcher.pca_mean, pca=matcher.pca,
                       codebook=matcher.codebook.astype(np.float16),
                       codebook_actions=matcher.codebook_actions.astype(np.float16))
    for i, (w, b) in enumerate(matcher.layers):
        weights[f"W{i}"], weights[f"b{i}"] = w, b
    for i, (w, b) in enumerate(matcher.note_layers):
        weights[f"C{i}"], weights[f"c{i}"] = w, b
    return weights


def save_matcher(matcher: Matcher, path: str | Path) -> Path:
    """Write ``path.npz`` (weights) and ``path.json`` (sidecar); the base path returned."""
    base = Path(path)
    if base.suffix in (".npz", ".json"):
        base = base.with_suffix("")
    weights = matcher_arrays(matcher)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(base.with_suffix(".npz"), **weights)
        # a critic was fitted to the old net's candidates: it does not follow the new one
        meta = {k: v for k, v in matcher.meta.items() if k != "critic"}
        base.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"{base}: cannot write the matcher: {exc}") from None
    return base


def main(argv: list[str] | None = None) -> int:
    """``python -m musicgym.train.matcher``: train one matcher and save it."""
    ap = argparse.ArgumentParser(prog="python -m musicgym.train.matcher",
                                 description="Train a sound matcher on random settings of a "
                                             "patch.")
    ap.add_argument("--preset", required=True, help="sound-matching preset, e.g. Kick-v0")
    ap.add_argument("--examples", type=int, default=30_000, help="rendered training examples")
    ap.add_argument("--epochs", type=int, default=60, help="passes over the examples")
    ap.add_argument("--seed", type=int, default=0, help="seed of the settings and the net")
    ap.add_argument("--distill", type=int, default=0,
                    help="then learn from search on this many SoundFont one-shots (0: no)")
    ap.add_argument("--distill-kind", choices=ONESHOT_KINDS, default="melodic",
                    help="the one-shots searched and learnt from: melodic GM programs, GM "
                         "drum kits, or half each")
    ap.add_argument("--distill-budget", type=int, default=100,
                    help="renders of the search (policy+nm) per one-shot")
    ap.add_argument("--finetune-epochs", type=int, default=20,
                    help="epochs of training on synthetic + searched one-shots")
    ap.add_argument("--init", default=None,
                    help="start from this matcher (NAME.npz/.json) instead of training one; "
                         "--examples synthetic examples are rendered again for the fine-tune")
    ap.add_argument("--labels", default=None, nargs="+", metavar="FILE",
                    help="an .npz keeping the searched settings (read back if it exists); "
                         "more files: earlier rounds' searched settings, learnt from as well")
    ap.add_argument("--rl-finetune", type=int, default=0, metavar="STEPS",
                    help="then fine-tune the net with RL on -MR-STFT for STEPS updates "
                         "(musicgym.train.matcher_rl; with --init, the only step)")
    ap.add_argument("--rl-oneshots", type=int, default=1000,
                    help="SoundFont one-shots (seed --seed + 1) among the RL targets (0: "
                         "synthetic targets only)")
    ap.add_argument("--rl-targets", type=int, default=32, help="targets per RL update")
    ap.add_argument("--rl-samples", type=int, default=8, help="settings drawn per target")
    ap.add_argument("--rl-sigma", type=float, default=0.15,
                    help="the policy's standard deviation (pre-tanh settings)")
    ap.add_argument("--rl-lr", type=float, default=1e-4, help="Adam's learning rate")
    ap.add_argument("--rl-anchor", type=float, default=1.0,
                    help="weight of the parameter loss on the synthetic targets")
    ap.add_argument("--sf-lines", type=int, default=0, metavar="N",
                    help="a sequencer preset (BassLine-v0): then train a note head (a "
                         "classifier of the note) on the patch's sounds and the steps of N "
                         "SoundFont bass lines (musicgym.train.matcher_steps; 0: no)")
    ap.add_argument("-o", "--output", required=True, help="base path (writes .npz and .json)")
    args = ap.parse_args(argv)
    if args.rl_finetune < 0 or args.rl_oneshots < 0 or args.sf_lines < 0:
        raise ConfigError("--rl-finetune, --rl-oneshots and --sf-lines must be >= 0")
    command = "python -m musicgym.train.matcher " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    spec = patch_spec(args.preset)
    if args.sf_lines > 0 and spec["steps"] < 2:  # refused before any training
        raise ConfigError(f"--sf-lines: {args.preset} is not a sequencer preset (it has one "
                          "step); bass lines teach a sequencer's notes (BassLine-v0)")
    if args.init is None:
        matcher = train_matcher(spec, examples=args.examples, epochs=args.epochs,
                                seed=args.seed, distill=args.distill,
                                distill_budget=args.distill_budget,
                                distill_kind=args.distill_kind,
                                finetune_epochs=args.finetune_epochs, command=command)
    elif args.distill < 1 and args.rl_finetune > 0:  # RL fine-tune of a trained matcher only
        matcher = Matcher.load(args.init)
        matcher.meta.update(init_command=matcher.meta.get("command"))
    else:  # learn from search, starting from a trained matcher
        if args.distill < 1:
            raise ConfigError("--init needs --distill N (the one-shots to learn from) or "
                              "--rl-finetune STEPS")
        init = Matcher.load(args.init)
        x, y = synthetic_dataset(spec, args.examples, seed=args.seed, sr=init.sr,
                                 features=init.features_kwargs)
        matcher = distill_matcher(init, spec, x, y, args.distill, seed=args.seed,
                                  budget=args.distill_budget, epochs=args.finetune_epochs,
                                  labels_path=args.labels[0] if args.labels else None,
                                  more_labels=args.labels[1:] if args.labels else (),
                                  kind=args.distill_kind)
        matcher.meta.update(command=command, init_command=init.meta.get("command"))
    if args.sf_lines > 0:
        from musicgym.train.matcher_steps import learn_notes

        x, y = synthetic_dataset(spec, min(args.examples, SF_LINES_SYNTHETIC), seed=args.seed,
                                 sr=matcher.sr, features=matcher.features_kwargs)
        matcher = learn_notes(matcher, spec, x, y, args.sf_lines, seed=args.seed,
                              epochs=args.finetune_epochs)
    curve = None
    if args.rl_finetune > 0:
        from musicgym.train.matcher_rl import rl_finetune

        clips = soundfont_oneshots(args.rl_oneshots, seed=args.seed + 1,
                                   seconds=spec["seconds"], sr=matcher.sr) \
            if args.rl_oneshots else None
        matcher, curve = rl_finetune(matcher, spec, clips, steps=args.rl_finetune,
                                     targets=args.rl_targets, samples=args.rl_samples,
                                     sigma=args.rl_sigma, lr=args.rl_lr,
                                     anchor=args.rl_anchor, seed=args.seed)
        matcher.meta.update(rl_oneshots_seed=args.seed + 1)
    matcher.meta.update(command=command)
    base = save_matcher(matcher, args.output)
    if curve is not None:
        from musicgym.train.matcher_rl import write_curve

        path = write_curve(curve, f"{base}.rl_curve.csv")
        print(f"wrote the learning curve {path} (mean reward {curve[0]['mean_reward']:.3f} "
              f"-> {curve[-1]['mean_reward']:.3f})")
    print(f"wrote {base}.npz and {base}.json (validation RMSE {matcher.spread:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
