"""A musician's corpus for the improviser: sustained melodies on real sampled instruments.

Melodies are the soprano lines of Bach chorales from music21's corpus, played by the seeded
performance simulator (:mod:`musicgym.follow.simulate`: a different player per rendition, with
its own tempo, rubato, timing jitter and note velocities) and rendered through a General MIDI
SoundFont (:mod:`musicgym.audio.soundfont`, Debian's TimGM6mb by default) on flute, violin,
clarinet, saxophone, voice and more. The recorded one-shots of ``shared/data/oneshots`` join
them when that folder is there (read in place, never copied).

The split is by piece *and* by instrument: a training track is a training piece on a training
instrument; a held-out track is a held-out piece on a held-out instrument, so the evaluation
hears melodies and timbres the agent never heard. (The one-shots keep the env's own split: the
fifth of them spread over the name order.)

:func:`build_corpus` writes the WAV files and ``manifest.json`` into a cache folder
(``~/.cache/musicgym/corpus/<name>`` by default, or ``$MUSICGYM_CACHE``), once: a second
build with the same recipe reads the manifest back. The env takes that folder as its
``corpus`` and then splits by the manifest, not by name order. Nothing here is committed as
audio, and nothing downloads anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from musicgym.errors import ImproviseConfigError

MANIFEST = "manifest.json"
SPLITS = ("train", "test")
# soprano lines of four-part chorales: sustained, stepwise, singable; split by piece
TRAIN_PIECES = ("bach/bwv66.6", "bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6",
                "bach/bwv40.8")
TEST_PIECES = ("bach/bwv84.5", "bach/bwv26.6")
# General MIDI instruments (musicgym.audio.soundfont.GM_PROGRAMS) and the octave shift that puts
# a soprano line in each instrument's usual range; split by instrument
TRAIN_INSTRUMENTS = ("flute", "violin", "alto_sax", "trumpet", "cello")
TEST_INSTRUMENTS = ("clarinet", "voice")
TRANSPOSE = {"flute": 12, "violin": 0, "alto_sax": -12, "trumpet": 0, "cello": -24,
             "clarinet": 0, "voice": 0, "oboe": 0, "tenor_sax": -12, "viola": -12,
             "horn": -12, "bassoon": -24, "trombone": -24, "choir": 0, "piano": 0,
             "contrabass": -24, "strings": 0}


@dataclass
class CorpusRecipe:
    """What :func:`build_corpus` renders (every field goes into the cache key)."""

    train_pieces: tuple[str, ...] = TRAIN_PIECES
    test_pieces: tuple[str, ...] = TEST_PIECES
    train_instruments: tuple[str, ...] = TRAIN_INSTRUMENTS
    test_instruments: tuple[str, ...] = TEST_INSTRUMENTS
    max_seconds: float = 12.0       # each rendition is cut here (a phrase or two)
    sr: int = 44100
    seed: int = 0
    oneshots: bool = True           # add the recorded one-shots when the folder exists
    soundfont: str | None = None    # default: musicgym.audio.soundfont.find_soundfont()
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        from musicgym.audio.soundfont import GM_PROGRAMS

        for split in SPLITS:
            if not getattr(self, f"{split}_pieces"):
                raise ImproviseConfigError(f"the corpus needs at least one {split} piece")
            for name in getattr(self, f"{split}_instruments"):
                if name not in GM_PROGRAMS:
                    raise ImproviseConfigError(f"unknown instrument {name!r}: use one of "
                                               f"{sorted(GM_PROGRAMS)}")
            if not getattr(self, f"{split}_instruments"):
                raise ImproviseConfigError(f"the corpus needs at least one {split} instrument")
        shared = sorted(set(self.train_pieces) & set(self.test_pieces))
        if shared:
            raise ImproviseConfigError(f"pieces {shared} are both train and test: the split is "
                                       "by piece")
        shared = sorted(set(self.train_instruments) & set(self.test_instruments))
        if shared:
            raise ImproviseConfigError(f"instruments {shared} are both train and test: the "
                                       "split is by instrument")
        if not (np.isfinite(self.max_seconds) and 1.0 <= self.max_seconds <= 600.0):
            raise ImproviseConfigError(f"max_seconds must be in [1, 600], got "
                                       f"{self.max_seconds!r}")

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_root() -> Path:
    """``$MUSICGYM_CACHE/corpus`` or ``~/.cache/musicgym/corpus``."""
    base = os.environ.get("MUSICGYM_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "musicgym") / "corpus"


def melody(piece: str) -> np.ndarray:
    """The soprano line (voice 0) of a music21 corpus score as a score note array."""
    from music21 import corpus

    from musicgym.music.score import read_music21

    try:
        score = corpus.parse(piece)
    except Exception as exc:  # music21 raises its own classes for a name it lacks
        raise ImproviseConfigError(f"music21's corpus has no piece {piece!r} ({exc})") from None
    notes = read_music21(score)
    return notes[notes["voice"] == 0]


def perform(piece: str, notes: np.ndarray, seed: int) -> list[tuple[float, float, int, int]]:
    """One simulated rendition: (onset_s, offset_s, midi_pitch, velocity) per played note."""
    from musicgym.follow.corpus import Piece, random_expression
    from musicgym.follow.simulate import simulate_performance

    rng = np.random.default_rng(seed)
    expression = random_expression(Piece(piece, notes, notes[:0], 0.7), rng)
    played = simulate_performance(notes, seed=int(rng.integers(2**31)),
                                  expression=expression).performed
    # a slow phrase-long swell over the simulator's per-note velocities: dynamics, not just noise
    t = played["onset_sec"]
    swell = 18.0 * np.sin(2 * np.pi * t / rng.uniform(6.0, 12.0) + rng.uniform(0, 2 * np.pi))
    velocity = np.clip(played["velocity"] + swell, 25, 120).astype(int)
    return [(float(o), float(o + d), int(p), int(v)) for o, d, p, v in
            zip(played["onset_sec"], played["duration_sec"], played["pitch"], velocity,
                strict=True)]


def _oneshot_entries() -> list[dict]:
    from musicgym.envs.improvise_data import audio_files
    from musicgym.errors import DataNotFoundError

    try:
        from musicgym.datapath import require_data_subdir

        folder = require_data_subdir("oneshots")
    except DataNotFoundError:
        return []
    files = audio_files(folder)
    names = sorted(p.stem for p in files)
    # the env's own rule (split_tracks): a fifth spread over the name order is held out
    n_test = max(1, int(round(0.2 * len(names)))) if len(names) > 1 else 0
    test = {names[i] for i in np.linspace(len(names) - 1, 0, n_test).round().astype(int)} \
        if n_test else set()
    return [{"name": f"oneshot-{p.stem}", "path": str(p.resolve()),
             "split": "test" if p.stem in test else "train", "kind": "oneshot",
             "piece": p.stem, "instrument": "recorded"} for p in files]


def build_corpus(recipe: CorpusRecipe | None = None, *, out: str | os.PathLike | None = None,
                 force: bool = False, progress=None) -> Path:
    """Render the corpus (or find it cached); the folder holding ``manifest.json``.

    Parameters
    ----------
    recipe : CorpusRecipe, optional
        Pieces, instruments, length, seed (default: :class:`CorpusRecipe()`).
    out : path-like, optional
        Folder to write (default ``cache_root() / <recipe key>``).
    force : bool
        Render again even when the folder already holds this recipe's manifest.
    progress : callable, optional
        Told ``(done, total, name)`` after each rendition.

    Raises
    ------
    ImproviseConfigError
        A bad recipe (unknown instrument or piece, a piece or instrument in both splits).
    AudioFileError
        FluidSynth or the SoundFont is missing.
    """
    from musicgym.audio.io import write_wav
    from musicgym.audio.soundfont import GM_PROGRAMS, Part, render_notes

    recipe = recipe or CorpusRecipe()
    recipe.check()
    folder = Path(out) if out is not None else cache_root() / recipe.key()
    manifest_path = folder / MANIFEST
    if manifest_path.is_file() and not force:
        try:
            if json.loads(manifest_path.read_text()).get("key") == recipe.key():
                return folder
        except ValueError:
            pass    # a broken manifest: build again
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(split, piece, inst) for split in SPLITS
            for piece in getattr(recipe, f"{split}_pieces")
            for inst in getattr(recipe, f"{split}_instruments")]
    tracks = []
    melodies = {}
    for k, (split, piece, inst) in enumerate(jobs):
        if piece not in melodies:
            melodies[piece] = melody(piece)
        seed = recipe.seed * 1000 + k
        notes = [(o, f, int(np.clip(p + TRANSPOSE.get(inst, 0), 0, 127)), v)
                 for o, f, p, v in perform(piece, melodies[piece], seed) if o < recipe.max_seconds]
        audio = render_notes(Part(notes, program=GM_PROGRAMS[inst]), sr=recipe.sr,
                             duration=recipe.max_seconds, soundfont=recipe.soundfont)[0]
        peak = float(np.abs(audio).max())
        if peak > 0:    # a common level: the corpus's loudness is its dynamics, not the patch's
            audio = audio * (0.5 / peak)
        name = f"{piece.replace('/', '-')}-{inst}"
        path = write_wav(folder / f"{name}.wav", audio, recipe.sr)
        tracks.append({"name": name, "path": path.name, "split": split, "kind": "melody",
                       "piece": piece, "instrument": inst, "seed": seed,
                       "notes": len(notes), "seconds": recipe.max_seconds})
        if progress is not None:
            progress(k + 1, len(jobs), name)
    if recipe.oneshots:
        tracks += _oneshot_entries()
    manifest = {"key": recipe.key(), "recipe": asdict(recipe), "tracks": tracks}
    tmp = folder / f".partial-{MANIFEST}"
    tmp.write_text(json.dumps(manifest, indent=2, default=list) + "\n")
    tmp.replace(manifest_path)
    return folder


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of a corpus folder built by :func:`build_corpus`, or None for a plain folder.

    Raises
    ------
    ImproviseConfigError
        The manifest is there but unreadable or names a track file that is missing.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        tracks = manifest["tracks"]
        for t in tracks:
            if t["split"] not in SPLITS:
                raise KeyError("split")
    except (ValueError, KeyError, TypeError) as exc:
        raise ImproviseConfigError(f"corpus manifest {str(path)!r} is not one `musicgym corpus "
                                   f"build` writes ({exc}): build the corpus again") from None
    for t in tracks:
        full = Path(folder) / t["path"]
        if not full.is_file():
            raise ImproviseConfigError(f"corpus track {t['name']!r} is missing ({str(full)!r}):"
                                       " build the corpus again (musicgym corpus build --force)")
        t["file"] = str(full)
    return manifest


def manifest_split(folder: str | os.PathLike) -> tuple[dict[str, str], dict[str, str]] | None:
    """(train name -> file, test name -> file) of a built corpus, or None for a plain folder."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    split = {s: {t["name"]: t["file"] for t in manifest["tracks"] if t["split"] == s}
             for s in SPLITS}
    return split["train"], split["test"]
