"""What the improvisation env listens to: a synth's descriptors (rendered, or from a lookup
table) and a corpus of musician's tracks analysed frame by frame, plus their tables on disk.

The one rule: a synth state and a corpus frame are analysed the same way (the same window
``frame_length``, the same descriptors), so their numbers can be compared. A synth state is the
window of ``frame_length`` samples it plays after a pre-roll (at least one window, which settles
the loudness filter); a track is cut into windows every ``hop_length`` samples.
"""

from __future__ import annotations

import csv
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from musicgym.audio.descriptors import FEATURE_GROUPS, descriptors, feature_names
from musicgym.envs.synths import Synth
from musicgym.errors import AudioFileError, ImproviseConfigError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


def analyze_synth(synth: Synth, u, *, features, sr: int = 44100, frame_length: int = 1024
                  ) -> np.ndarray:
    """Descriptors (B, F) of the window each parameter row plays, all rows in one render.

    Parameters
    ----------
    synth : Synth
    u : array_like, shape (B, N)
        Parameters in [0, 1].
    features : sequence of str
        Descriptor names (already expanded, see ``feature_names``).
    """
    preroll = max(int(round(synth.preroll_s * sr)), frame_length)
    audio = synth.render(u, n_samples=frame_length, sr=sr, preroll=preroll)
    return analyze_window(audio, features=features, sr=sr, frame_length=frame_length)


def analyze_held(synth: Synth, u, *, features, sr: int = 44100, frame_length: int = 1024
                 ) -> np.ndarray:
    """Mean descriptors (B, F) of the frames each parameter row plays when held still.

    For a synth whose sound is not stationary (``synth.table_hold_s`` > 0, the granular
    synth: grains and silences), one window does not describe what a held stream plays. Each
    row is rendered for ``table_hold_s`` after the same pre-roll as :func:`analyze_synth`
    (a held stream renders the same samples: it is one render), every ``frame_length`` frame is
    analysed as the env hears it (with the frame before it, :func:`analyze_window`), and the
    descriptor values are averaged over the frames. The mean of the descriptor itself (dB for
    loudness-dBFS, Hz for pitch), not of the amplitude before converting: the env's reward and
    the evaluation's RMSE compare per-frame descriptors, and the expected squared error of a
    held setting against a target t is (mean - t)^2 + variance, least where the mean is nearest.
    """
    preroll = max(int(round(synth.preroll_s * sr)), frame_length)
    n_frames = max(1, int(round(synth.table_hold_s * sr / frame_length)))
    audio = synth.render(u, n_samples=n_frames * frame_length, sr=sr,
                         preroll=preroll)[:, preroll - frame_length:]
    pairs = np.stack([audio[:, k * frame_length:(k + 2) * frame_length]
                      for k in range(n_frames)], axis=1)   # (B, frames, 2 * frame_length)
    values = analyze_window(pairs.reshape(-1, 2 * frame_length), features=features, sr=sr,
                            frame_length=frame_length)
    return values.reshape(len(audio), n_frames, -1).mean(axis=1)


def analyze_window(audio: np.ndarray, *, features, sr: int = 44100, frame_length: int = 1024
                   ) -> np.ndarray:
    """Descriptors (B, F) of the last ``frame_length`` samples of each signal (B, n).

    The loudness descriptors read the last two windows, the one before settling the
    K-weighting filter and the oversampler (n must be at least ``2 * frame_length`` for them).
    A synth's state and a live musician's latest window are both analysed here.
    """
    names = feature_names(features)
    loud = [n for n in names if n in FEATURE_GROUPS["loudness"]]
    other = [n for n in names if n not in loud]
    columns = {}
    if loud:   # the window before settles the K-weighting filter and the oversampler
        values = descriptors(audio[:, -2 * frame_length:], sr=sr, features=loud,
                             frame_length=frame_length, hop_length=frame_length, center=False)
        columns.update(zip(loud, np.moveaxis(values[:, -1], -1, 0), strict=True))
    if other:
        values = descriptors(audio[:, -frame_length:], sr=sr, features=other,
                             frame_length=frame_length, hop_length=frame_length, center=False)
        columns.update(zip(other, np.moveaxis(values[:, 0], -1, 0), strict=True))
    return np.stack([columns[n] for n in names], axis=-1)


# -- lookup tables -------------------------------------------------------------------------
@dataclass
class LookupTable:
    """A synth's descriptors on a regular grid of ``subdiv`` points per parameter (0 and 1 both
    included), with multilinear interpolation between the points.

    ``values`` has one row per grid point, the grid in C order (the last parameter fastest).
    """

    synth: str
    param_names: tuple[str, ...]
    features: tuple[str, ...]
    subdiv: int
    values: np.ndarray
    sr: int = 44100
    frame_length: int = 1024

    @property
    def grid(self) -> np.ndarray:
        """The parameter rows (subdiv ** N, N), in the order of ``values``."""
        return grid_points(self.subdiv, len(self.param_names))

    def interpolate(self, u: np.ndarray) -> np.ndarray:
        """Descriptors (B, F) at parameters u (B, N), multilinear between grid points."""
        k = self.subdiv
        pos = np.clip(u, 0.0, 1.0) * (k - 1)
        cell = np.minimum(pos.astype(np.int64), k - 2)
        frac = pos - cell
        strides, bits = self._corners
        weights = np.where(bits, frac[:, None, :], 1.0 - frac[:, None, :]).prod(axis=2)
        rows = (cell[:, None, :] + bits) @ strides
        return np.einsum("bc,bcf->bf", weights, self.values[rows])

    @cached_property
    def _corners(self) -> tuple[np.ndarray, np.ndarray]:
        """Row strides (N,) and the cell's corners (2^N, N) as 0/1 offsets, made once."""
        n = len(self.param_names)
        strides = self.subdiv ** np.arange(n - 1, -1, -1)
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n - 1, -1, -1)) & 1
        return strides, bits

    def nearest(self, u: np.ndarray) -> np.ndarray:
        """RL-impro's lookup: the row whose parameters are nearest (L1) to each of u (B, N)."""
        dist = np.abs(self.grid[None, :, :] - u[:, None, :]).sum(axis=-1)
        return self.values[np.argmin(dist, axis=1)]

    def columns(self) -> dict[str, np.ndarray]:
        grid = self.grid
        cols = {f"param-{p}": grid[:, i] for i, p in enumerate(self.param_names)}
        cols.update({f: self.values[:, j] for j, f in enumerate(self.features)})
        return cols


def grid_points(subdiv: int, n_params: int) -> np.ndarray:
    axes = np.meshgrid(*[np.linspace(0.0, 1.0, subdiv)] * n_params, indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1)


def build_lookup(synth: Synth, *, subdiv: int = 11, features="all", sr: int = 44100,
                 frame_length: int = 1024, batch_size: int = 512, progress: bool = False
                 ) -> LookupTable:
    """Render and analyse the whole grid, ``batch_size`` synth states per engine call.

    Raises
    ------
    ImproviseConfigError
        ``subdiv`` below 2 or a grid over 2 million points.
    """
    if not isinstance(subdiv, (int, np.integer)) or subdiv < 2:
        raise ImproviseConfigError(f"subdiv must be an integer >= 2 (points per parameter), "
                                   f"got {subdiv!r}")
    if subdiv ** synth.n_params > 2_000_000:
        raise ImproviseConfigError(f"a grid of {subdiv}^{synth.n_params} points is too big: "
                                   "lower --subdiv")
    names = feature_names(features)
    grid = grid_points(subdiv, synth.n_params)
    rows = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(grid), desc=f"lookup {synth.name}", unit="point")
    held = getattr(synth, "table_hold_s", 0.0) > 0   # (a PdSynth declares none)
    analyze = analyze_held if held else analyze_synth
    if held:   # a held row analyses many frames: keep a batch's audio to some 100 MB
        frames = max(1, int(round(synth.table_hold_s * sr / frame_length)))
        batch_size = max(1, min(batch_size, 8192 // frames))
    for start in range(0, len(grid), batch_size):
        rows.append(analyze(synth, grid[start:start + batch_size], features=names, sr=sr,
                            frame_length=frame_length))
        if bar is not None:
            bar.update(len(rows[-1]))
    if bar is not None:
        bar.close()
    return LookupTable(synth.name, synth.param_names, names, int(subdiv), np.concatenate(rows),
                       sr, frame_length)


def lookup_from_columns(columns: dict[str, np.ndarray], *, synth: Synth, sr: int = 44100,
                        frame_length: int = 1024) -> LookupTable:
    """Rebuild a table from its columns (as :func:`read_table` returns them)."""
    params = [f"param-{p}" for p in synth.param_names]
    missing = [p for p in params if p not in columns]
    if missing:
        raise ImproviseConfigError(f"the lookup table lacks columns {missing} of synth "
                                   f"{synth.name!r}: was it made for another synth?")
    n = len(columns[params[0]])
    subdiv = int(round(n ** (1.0 / len(params))))
    grid = np.stack([columns[p] for p in params], axis=1)
    if subdiv ** len(params) != n or not np.allclose(grid, grid_points(subdiv, len(params))):
        raise ImproviseConfigError("the lookup table's parameter columns are not a full regular "
                                   "grid in musicgym's order: rebuild it with `musicgym lookup`")
    names = tuple(c for c in columns if not c.startswith("param-"))
    values = np.stack([columns[c] for c in names], axis=1)
    return LookupTable(synth.name, synth.param_names, feature_names(list(names)), subdiv, values,
                       sr, frame_length)


# -- tables on disk ------------------------------------------------------------------------
def write_table(path: str | os.PathLike, columns: dict[str, np.ndarray]) -> Path:
    """Write columns as Parquet (``.parquet``, needs pyarrow) or CSV, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".partial-{secrets.token_hex(4)}-{path.name}")
    # made with open() so the table gets the user's umask (mkstemp made it owner-only)
    open(tmp, "xb").close()
    try:
        if path.suffix == ".parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError as exc:
                raise ImproviseConfigError(f"writing {path.name} needs pyarrow (pip install "
                                           "pyarrow), or write .csv instead") from exc
            pq.write_table(pa.table({k: np.asarray(v) for k, v in columns.items()}), tmp)
        else:
            with open(tmp, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                writer.writerows(zip(*[np.asarray(v).tolist() for v in columns.values()],
                                     strict=True))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a table written by :func:`write_table`."""
    path = Path(path)
    if not path.is_file():
        raise ImproviseConfigError(f"table {str(path)!r} does not exist")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return {name: table[name].to_numpy() for name in table.column_names}
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise ImproviseConfigError(f"table {str(path)!r} has no rows")
    try:
        data = np.array(rows[1:], dtype=np.float64)
    except ValueError as exc:
        raise ImproviseConfigError(f"table {str(path)!r} holds non-numbers: {exc}") from exc
    return {name: data[:, i] for i, name in enumerate(rows[0])}


# -- corpus ------------------------------------------------------------------------------------
@dataclass
class Track:
    """One musician's track: its name and descriptors (frames, F)."""

    name: str
    features: np.ndarray


def analyze_track(source, *, features="all", sr: int = 44100, frame_length: int = 1024,
                  hop_length: int = 512) -> np.ndarray:
    """Descriptors (frames, F) of an audio file or a mono array already at ``sr``."""
    if isinstance(source, (str, os.PathLike)):
        from musicgym.audio.io import read_audio

        audio, _ = read_audio(source, sr=sr)
        source = audio.mean(axis=0)
    return descriptors(np.asarray(source, dtype=np.float64), sr=sr, features=features,
                       frame_length=frame_length, hop_length=hop_length)


def audio_files(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImproviseConfigError(f"corpus folder {str(folder)!r} does not exist")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def load_corpus(corpus, *, features="all", sr: int = 44100, frame_length: int = 1024,
                hop_length: int = 512, on_skip=None) -> list[Track]:
    """Analyse a corpus: a folder, a list of files, or a dict name -> mono array at ``sr``.

    Unreadable files are skipped (``on_skip(path, error)`` is told); a corpus with no readable
    track raises :class:`ImproviseConfigError`.
    """
    if isinstance(corpus, dict):
        items = list(corpus.items())
    else:
        paths = audio_files(corpus) if isinstance(corpus, (str, os.PathLike)) else corpus
        items = [(Path(p).stem, p) for p in paths]
    tracks = []
    for name, source in items:
        try:
            values = analyze_track(source, features=features, sr=sr, frame_length=frame_length,
                                   hop_length=hop_length)
        except AudioFileError as exc:
            if on_skip is not None:
                on_skip(source, exc)
            continue
        tracks.append(Track(str(name), values))
    if not tracks:
        raise ImproviseConfigError(f"the corpus {corpus!r} has no readable audio track "
                                   f"({', '.join(AUDIO_SUFFIXES)})")
    return tracks


def split_tracks(tracks: list[Track], *, holdout: float = 0.2) -> tuple[list[Track], list[Track]]:
    """Train and held-out tracks: every track whose rank in name order falls on the held-out
    fraction (at least one held out when there are two tracks or more)."""
    if not 0.0 <= holdout < 1.0:
        raise ImproviseConfigError(f"holdout must be a fraction in [0, 1), got {holdout!r}")
    ordered = sorted(tracks, key=lambda t: t.name)
    n_test = 0 if len(ordered) < 2 or holdout == 0 else max(1, int(round(holdout * len(ordered))))
    # spread the held-out tracks over the corpus rather than taking its tail
    test_idx = set(np.linspace(len(ordered) - 1, 0, n_test).round().astype(int).tolist()
                   if n_test else [])
    train = [t for i, t in enumerate(ordered) if i not in test_idx]
    test = [t for i, t in enumerate(ordered) if i in test_idx]
    return train, test
