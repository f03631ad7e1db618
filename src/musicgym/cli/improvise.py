"""``musicgym lookup`` (a synth's descriptor table, its 2-D map and a listening page) and
``musicgym analyze`` (per-track descriptor tables of a corpus): the improvisation commands."""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from pathlib import Path

import numpy as np

from musicgym.errors import ImproviseConfigError

SOUND_S = 0.2      # length of each grid point's sound on the listening page
PAGE_POINTS = 400  # most points the listening page carries (a seeded subset beyond that)
PAGE_SR = 22050    # the page's sounds are resampled to this rate to keep the page small


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "lookup", help="render a synth's parameter grid and tabulate its descriptors",
        description="Render every point of a regular grid over the synth's parameters (SUBDIV "
                    "points each, 0 and 1 included), analyse the window each plays, and write "
                    "the table, a 2-D map (PNG) and a page where each point plays its sound.")
    p.add_argument("synth", help="sine, fm, subtractive or sampler")
    p.add_argument("--subdiv", type=int, default=11, help="points per parameter (default 11)")
    p.add_argument("--window", type=int, default=1024,
                   help="analysis window in samples (default 1024)")
    p.add_argument("--sample", help="the sampler's source sound (default: a built-in tone)")
    _common(p)
    p.add_argument("--map", choices=["pca", "tsne"], default="pca",
                   help="2-D projection of the table (tsne needs scikit-learn)")
    p.add_argument("--color-by", default="specshape-centroid",
                   help="descriptor that colours the map (default specshape-centroid)")
    p.add_argument("--batch-size", type=int, default=512, help="grid points per engine call")
    p.set_defaults(func=run_lookup)

    a = subparsers.add_parser(
        "analyze", help="per-track descriptor tables of a corpus of audio files",
        description="Analyse every audio file under CORPUS_DIR frame by frame (the same "
                    "descriptors and window as `musicgym lookup`) and write one table per "
                    "track; unreadable files are skipped with a message.")
    a.add_argument("corpus", help="folder of audio files (searched recursively)")
    a.add_argument("--window", type=int, default=1024, help="window in samples (default 1024)")
    a.add_argument("--hop", type=int, default=512, help="hop in samples (default 512)")
    _common(a)
    a.set_defaults(func=run_analyze)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="out/improvise", help="output folder")
    p.add_argument("--features", nargs="+", default=["all"],
                   help="descriptor names or groups (loudness specshape mfcc chroma pitch all)")
    p.add_argument("--format", choices=["csv", "parquet"], default=None,
                   help="table format (default: parquet if pyarrow is installed, else csv)")
    p.add_argument("--sr", type=int, default=44100, help="sample rate (default 44100)")


def _suffix(choice: str | None) -> str:
    if choice is None:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return ".csv"
        return ".parquet"
    return "." + choice


def run_lookup(args: argparse.Namespace) -> int:
    from musicgym.audio.descriptors import feature_names
    from musicgym.envs.improvise_data import build_lookup, write_table
    from musicgym.envs.synths import make_synth

    synth = make_synth(args.synth, sample=args.sample)
    names = feature_names(args.features)
    if args.color_by not in names:
        raise ImproviseConfigError(f"--color-by {args.color_by!r} is not among the table's "
                                   f"descriptors {list(names)}")
    table = build_lookup(synth, subdiv=args.subdiv, features=names, sr=args.sr,
                         frame_length=args.window, batch_size=args.batch_size, progress=True)
    out = Path(args.output)
    stem = f"{synth.name}-k{args.subdiv}-w{args.window}"
    path = write_table(out / (stem + _suffix(args.format)), table.columns())
    xy = project(table.values, args.map)
    colour = table.values[:, names.index(args.color_by)]
    png = plot_map(out / f"{stem}-{args.map}.png", xy, colour, args.color_by,
                   f"{synth.name}: {len(xy)} states, {args.map.upper()}")
    page = listening_page(out / f"{stem}-{args.map}.html", synth, table, xy, colour,
                          args.color_by, args.sr, args.batch_size)
    print(f"wrote {path} ({len(xy)} rows), {png} and {page}")
    return 0


def project(values: np.ndarray, method: str) -> np.ndarray:
    """2-D coordinates of standardised rows: PCA (NumPy SVD) or t-SNE (scikit-learn)."""
    z = (values - values.mean(axis=0)) / np.where(values.std(axis=0) > 0, values.std(axis=0), 1)
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError as exc:
            raise ImproviseConfigError("--map tsne needs scikit-learn (pip install "
                                       "scikit-learn); --map pca needs nothing") from exc
        perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3.0)))
        return TSNE(n_components=2, perplexity=perplexity, random_state=0,
                    init="pca").fit_transform(z)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return z @ vt[:2].T


def plot_map(path: Path, xy: np.ndarray, colour: np.ndarray, label: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    dots = ax.scatter(xy[:, 0], xy[:, 1], c=colour, s=8, cmap="viridis")
    fig.colorbar(dots, ax=ax, label=label)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    tmp = path.with_name(".partial-" + path.name)
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def listening_page(path: Path, synth, table, xy: np.ndarray, colour: np.ndarray, label: str,
                   sr: int, batch_size: int) -> Path:
    """A self-contained HTML page: the map as an SVG whose points play their sound on click.

    The sounds (``SOUND_S`` each, 16-bit at ``PAGE_SR``) sit back to back in one embedded
    WAV; a click plays that point's slice.
    """
    import soundfile as sf

    from musicgym.audio.io import resample

    keep = np.arange(len(xy))
    if len(keep) > PAGE_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(len(xy), PAGE_POINTS, replace=False))
    n = int(SOUND_S * sr)
    clips = [synth.render(table.grid[keep[i:i + batch_size]], n_samples=n, sr=sr)
             for i in range(0, len(keep), batch_size)]
    audio = resample(np.concatenate(clips, axis=0), sr, PAGE_SR) if sr != PAGE_SR else \
        np.concatenate(clips, axis=0)
    audio /= max(1e-9, float(np.abs(audio).max()))
    buffer = io.BytesIO()
    sf.write(buffer, audio.reshape(-1), PAGE_SR, subtype="PCM_16", format="WAV")
    span = np.ptp(xy[keep], axis=0)
    pos = (xy[keep] - xy[keep].min(axis=0)) / np.where(span > 0, span, 1.0) * 560 + 20
    c = (colour[keep] - colour[keep].min()) / max(1e-12, float(np.ptp(colour[keep])))
    points = [{"x": round(float(x), 1), "y": round(float(y), 1), "c": round(float(v), 3),
               "p": [round(float(q), 3) for q in table.grid[k]], "v": round(float(colour[k]), 3)}
              for (x, y), v, k in zip(pos, c, keep, strict=True)]
    text = PAGE.format(title=html.escape(f"{synth.name}: {len(keep)} states"),
                       label=html.escape(label), params=json.dumps(synth.param_names),
                       points=json.dumps(points), seconds=SOUND_S,
                       wav=base64.b64encode(buffer.getvalue()).decode("ascii"))
    tmp = path.with_name(".partial-" + path.name)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


PAGE = """<!doctype html><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif}} circle{{cursor:pointer}} circle:hover{{stroke:#000}}</style>
<h3>{title}</h3><p>Colour: {label}. Click a point to hear it. <span id="info"></span></p>
<svg id="map" width="600" height="600"></svg>
<audio id="snd" src="data:audio/wav;base64,{wav}" preload="auto"></audio>
<script>
const points = {points}, params = {params}, seconds = {seconds};
const svg = document.getElementById("map"), snd = document.getElementById("snd");
let timer = null;
points.forEach((p, i) => {{
  const c = document.createElementNS("http://www.w3.org/2000/svg", "circle");
  c.setAttribute("cx", p.x); c.setAttribute("cy", 600 - p.y); c.setAttribute("r", 4);
  c.setAttribute("fill", `hsl(${{260 - 200 * p.c}}, 70%, 50%)`);
  c.onclick = () => {{
    snd.currentTime = i * seconds; snd.play(); clearTimeout(timer);
    timer = setTimeout(() => snd.pause(), seconds * 1000);
    document.getElementById("info").textContent =
      params.map((n, k) => `${{n}}=${{p.p[k]}}`).join(" ") + ` -> ${{p.v}}`;
  }};
  svg.appendChild(c);
}});
</script>
"""


def run_analyze(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from musicgym.audio.descriptors import feature_names
    from musicgym.envs.improvise_data import analyze_track, audio_files, write_table
    from musicgym.errors import AudioFileError

    names = feature_names(args.features)
    root = Path(args.corpus)
    files = audio_files(root)
    if not files:
        raise ImproviseConfigError(f"no audio files under {str(root)!r}")
    out, suffix, written = Path(args.output), _suffix(args.format), 0
    for path in tqdm(files, desc="analyze", unit="track"):
        try:
            values = analyze_track(path, features=names, sr=args.sr,
                                   frame_length=args.window, hop_length=args.hop)
        except AudioFileError as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        columns = {"time_s": np.arange(len(values)) * args.hop / args.sr}
        columns.update({n: values[:, j] for j, n in enumerate(names)})
        write_table(out / path.relative_to(root).with_suffix(suffix), columns)
        written += 1
    print(f"wrote {written} of {len(files)} track tables to {out}")
    if not written:
        raise ImproviseConfigError(f"no readable audio file under {str(root)!r}")
    return 0
