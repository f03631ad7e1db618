"""Matchers for sequencer presets (BassLine-v0): real bass timbres, a note head, a baseline.

BassLine-v0 is a 16-step sequencer (``seq {note} >> sawsynth >> lpf {cutoff_hz}``, 0.25 s a
step, each step rendered from a fresh state), so a matcher learns one step's sound and
:func:`musicgym.train.match.match_target` matches a bass line step by step. What is asked of
it is musical: name each step's note (and its brightness). A search on the perceptual
distance does not: on the preset's own target the true notes and cutoffs score a worse
MR-STFT (3.74) than silence (2.80), and CMA-ES on MR-STFT, log-mel or MFCC distance names 0-2
of its 16 notes (docs/matching.md, "BassLine-v0").

This module gives the matcher what the patch's own sounds cannot: notes of other timbres,
whose pitch is known.

* :func:`soundfont_basslines`: 16-step bass lines of General MIDI programs through a
  SoundFont (TimGM6mb by default, the one CI installs), notes drawn from the preset's (MIDI
  33-51);
* :func:`learn_notes`: a note head for the matcher, a classifier (InverSynth's per-parameter
  classes) trained on the patch's own sounds and on such lines' steps;
* :func:`yin_notes`: a non-learning note namer (YIN, de Cheveigné & Kawahara 2002), the
  baseline the matcher has to beat at naming notes;
* :func:`note_accuracy`.

Training, validation and test programs are disjoint (:data:`TRAIN_PROGRAMS` less
:data:`VALIDATION_PROGRAMS` while the recipe was chosen; :data:`TEST_PROGRAMS` never).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musicgym.envs.matcher_model import yin_difference

# General MIDI programs. The matcher is tested on these, which it never hears ...
TEST_PROGRAMS = (35, 37, 39, 45, 70)  # fretless, slap 2, synth bass 2, pizzicato, bassoon
# ... and learns from every other pitched program (112-127 are percussion and effects)
TRAIN_PROGRAMS = tuple(p for p in range(112) if p not in TEST_PROGRAMS)
# the recipe was chosen with these left out of training (timbres unheard, as the test's are)
VALIDATION_PROGRAMS = TRAIN_PROGRAMS[::11]
STEP_SECONDS = 0.25
# a codebook distance no target reaches: the net's answer is always taken (learn_notes)
TRUST_NET = 1e9


def _soundfont(name: str | None) -> Path:
    """A SoundFont by file name in Debian's folder (default TimGM6mb, the one CI installs)."""
    from musicgym.audio.soundfont import find_soundfont

    path = Path("/usr/share/sounds/sf2") / (name or "TimGM6mb.sf2")
    return path if path.is_file() else find_soundfont(None if name is None else path)


def _notes_choices(spec: dict) -> list[int]:
    """The MIDI notes of the patch's first ``choose`` hole (BassLine-v0: 33-51)."""
    for entry in spec["action_space"]:
        if entry[0] == "choose":
            return [int(v) for v in entry[1]]
    raise ValueError("the patch has no 'choose' hole for the note")


def soundfont_basslines(n: int, spec: dict, *, seed: int = 0,
                        programs: Sequence[int] = TEST_PROGRAMS, sr: int = 44100,
                        soundfont: str | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(clips (n, steps * step samples), notes (n, steps), programs (n,))``: bass lines of
    ``spec["steps"]`` notes, one a step, each held 0.15-0.24 s; the notes a walk over the
    patch's notes (steps of -7..+7 semitones, kept in range, one line's velocity and
    program fixed), through ``soundfont`` (a file name in /usr/share/sounds/sf2, default
    TimGM6mb.sf2); each line normalised to a peak of 0.5-1."""
    from musicgym.audio.soundfont import Part, render_notes

    font = _soundfont(soundfont)
    choices = np.array(_notes_choices(spec))
    steps, step_s = int(spec["steps"]), float(spec["seconds"])
    step_n = int(round(step_s * sr))
    rng = np.random.default_rng(seed)
    clips = np.zeros((n, steps * step_n), np.float32)
    notes = np.zeros((n, steps), np.int64)
    progs = np.zeros(n, np.int64)
    for i in range(n):
        progs[i] = int(rng.choice(programs))
        k = int(rng.integers(len(choices)))
        for s in range(steps):
            notes[i, s] = choices[k]
            k = int(np.clip(k + rng.integers(-7, 8), 0, len(choices) - 1))
        velocity = int(rng.integers(60, 128))
        part = Part([(s * step_s, s * step_s + float(rng.uniform(0.15, 0.24)), int(p), velocity)
                     for s, p in enumerate(notes[i])], program=int(progs[i]))
        audio = render_notes(part, sr=sr, soundfont=font, duration=steps * step_s)[0]
        clips[i, :min(len(audio), clips.shape[1])] = audio[:clips.shape[1]]
        peak = np.abs(clips[i]).max()
        if peak > 0:
            clips[i] *= float(rng.uniform(0.5, 1.0)) / peak
    return clips, notes, progs


def yin_notes(clips: np.ndarray, *, sr: int = 44100, fmin: float = 40.0, fmax: float = 200.0,
              threshold: float = 0.15, frame: int = 4096) -> np.ndarray:
    """(B,) MIDI notes of (B, n) one-step clips by YIN (de Cheveigné & Kawahara 2002): the
    cumulative-mean-normalised difference of the clip's loudest ``frame`` samples, its first
    dip under ``threshold`` (else its minimum) between ``fmin`` and ``fmax``, refined by a
    parabola; rounded to the nearest MIDI note. A silent clip gets -1."""
    clips = np.atleast_2d(np.asarray(clips, np.float64))
    lo, hi = int(sr / fmax), int(sr / fmin)
    out = np.full(len(clips), -1, np.int64)
    for b, clip in enumerate(clips):
        if not np.any(clip):
            continue
        # the frame of highest energy (the note's body, past its attack)
        energy = np.convolve(clip ** 2, np.ones(frame), mode="valid")
        start = int(np.argmax(energy[::256]) * 256) if len(energy) else 0
        x = clip[start:start + frame + hi]
        if len(x) < 2 * hi:
            x = np.pad(x, (0, 2 * hi - len(x)))
        cmnd = yin_difference(x[None], hi)[0]
        below = np.flatnonzero(cmnd[lo:hi] < threshold)
        if below.size:
            tau = lo + int(below[0])
            while tau + 1 < hi and cmnd[tau + 1] < cmnd[tau]:
                tau += 1
        else:
            tau = lo + int(np.argmin(cmnd[lo:hi]))
        if 1 <= tau < hi:
            a, c, e = cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]
            den = a - 2 * c + e
            tau = tau + (0.5 * (a - e) / den if den > 0 else 0.0)
        out[b] = int(round(69 + 12 * np.log2(sr / tau / 440.0)))
    return out


def note_accuracy(named: np.ndarray, true: np.ndarray) -> float:
    """Share of steps whose note is named exactly."""
    return float(np.mean(np.asarray(named) == np.asarray(true)))


def learn_notes(matcher, spec: dict, x: np.ndarray, y: np.ndarray, lines: int, *,
                seed: int = 0, epochs: int = 20, hidden: Sequence[int] = (256, 128),
                lr: float = 1e-3, programs: Sequence[int] = TRAIN_PROGRAMS, log=print):
    """The matcher with a note head: a classifier over the patch's notes
    (:meth:`~musicgym.envs.matcher_model.Matcher.forward` takes its argmax for the note),
    trained with cross-entropy on the synthetic examples ``(x, y)`` (the note their settings
    play) and on the steps of ``lines`` SoundFont bass lines (:func:`soundfont_basslines` of
    ``programs``, seed ``seed + 1``), whose notes are known. The regression net keeps the
    cutoff (a bass line's brightness under the patch's filter is not known). The head reads
    the standardised features clipped to +-:data:`~musicgym.train.matcher.INPUT_CLIP`; the
    net is trusted on every target (``ood_threshold`` :data:`TRUST_NET`: the codebook's
    fallback would replace the head's note by its neighbours')."""
    import torch

    from musicgym.envs.matcher_model import Matcher
    from musicgym.train.matcher import INPUT_CLIP, fit_net, matcher_arrays, net_weights

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    clips, notes, _ = soundfont_basslines(lines, spec, seed=seed + 1, programs=programs,
                                          sr=matcher.sr)
    steps = clips.reshape(-1, clips.shape[1] // int(spec["steps"]))
    col, choices = _note_column(spec)
    n = len(choices)
    synthetic = np.minimum(((y[:, col] + 1.0) / 2.0 * n).astype(np.int64), n - 1)
    sung = np.array([choices.index(int(v)) for v in notes.reshape(-1)], np.int64)
    feats = np.concatenate([x, matcher.features(steps)])
    h = np.clip((feats - matcher.mean) / matcher.std, -INPUT_CLIP, INPUT_CLIP)
    xs = torch.from_numpy(h.astype(np.float32))
    ys = torch.from_numpy(np.concatenate([synthetic, sung]))
    sizes = [xs.shape[1], *hidden, n]
    layers: list = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)

    def report(epoch: int) -> None:
        if epoch % 5 == 4 or epoch == epochs - 1:
            with torch.no_grad():
                right = (net(xs[len(x):]).argmax(1) == ys[len(x):]).float().mean().item()
            log(f"note head epoch {epoch + 1}: bass-line steps named {right:.3f} (training)")

    fit_net(net, torch.arange(len(xs)),
            lambda idx: torch.nn.functional.cross_entropy(net(xs[idx]), ys[idx]),
            epochs=epochs, lr=lr, seed=seed, report=report)
    head = net_weights(net, matcher.mean, matcher.std)
    weights = matcher_arrays(matcher)
    weights.update({f"C{k[1:]}" if k[0] == "W" else f"c{k[1:]}": v
                    for k, v in head.items() if k[0] in "Wb"})
    meta = dict(matcher.meta)
    meta.update(note_column=col, note_hidden=list(hidden), note_epochs=epochs, note_lr=lr,
                note_input_clip=INPUT_CLIP, sf_lines=lines, sf_lines_seed=seed + 1,
                sf_programs=list(programs), ood_threshold=TRUST_NET)
    return Matcher(weights, meta)


def _note_column(spec: dict) -> tuple[int, list[int]]:
    """(the flat action column of the patch's first ``choose`` hole, its values)."""
    from musicgym.envs.spaces import ParameterMap

    pmap = ParameterMap(spec["action_space"], flat=True)
    hole = pmap.discrete[0]
    agent = [i for i, m in enumerate(pmap.mappings) if m.kind != "rel"]
    return agent.index(hole), [int(v) for v in pmap.mappings[hole].choices]
