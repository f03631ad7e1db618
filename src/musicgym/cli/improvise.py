"""The improvisation commands: ``musicgym lookup`` (a synth's descriptor table, its 2-D map and
a listening page), ``musicgym analyze`` (per-track descriptor tables of a corpus),
``musicgym live improvise`` (the OSC server) and ``musicgym evaluate-improvise`` (held-out
tracks, the agent against the nearest-neighbour oracle, random and hold-still) and
``musicgym corpus build|list`` (the musician's corpus: melodies on sampled instruments)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from musicgym.cli.live import live_modes
from musicgym.envs.improvise_agents import InverseAgent, is_agent_file
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
    p.add_argument("synth", help="sine, fm, subtractive, sampler or granular")
    p.add_argument("--subdiv", type=int, default=11, help="points per parameter (default 11)")
    p.add_argument("--window", type=int, default=1024,
                   help="analysis window in samples (default 1024)")
    p.add_argument("--sample", help="the sampler's source sound (default: a built-in tone)")
    _common(p)
    p.add_argument("--map", choices=["pca", "tsne"], default="pca",
                   help="2-D projection of the table (tsne needs scikit-learn)")
    p.add_argument("--color-by", default="specshape-centroid",
                   help="descriptor that colours the map (default specshape-centroid)")
    p.add_argument("--batch-size", type=int, default=512,
                   help="grid points per engine call (default 512)")
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
    a.add_argument("--map", choices=["pca", "tsne"], default="pca",
                   help="2-D projection of the frames on the corpus map (tsne needs "
                        "scikit-learn)")
    a.add_argument("--color-by",
                   help="descriptor that colours the corpus map (default specshape-centroid "
                        "if analysed, else the first descriptor)")
    a.set_defaults(func=run_analyze)
    _add_live(subparsers)
    _add_evaluate(subparsers)
    _add_corpus(subparsers)
    _add_train_improviser(subparsers)


def _add_train_improviser(subparsers) -> None:
    p = subparsers.add_parser(
        "train-improviser", help="train an inverse improviser (descriptors -> parameters) on a "
                                 "synth's table and a corpus's training tracks",
        description="Distil the synth's nearest-neighbour table into an MLP, then refine it by "
                    "analysis by synthesis through the interpolated table; write FILE.npz and "
                    "FILE.json (play it with --model FILE.npz). `musicgym train CONFIG.yaml` "
                    "with algo: inverse trains the same agent (same options, same seed, same "
                    "weights) into a run folder with a held-out learning curve: see "
                    "examples/improvise_inverse_*.yaml.")
    p.add_argument("synth", help="sine, fm, subtractive, sampler or granular")
    p.add_argument("--features", default="lps", choices=["lp", "lps", "lpsm"],
                   help="lp: loudness, pitch; lps: + spectral shape; lpsm: + MFCC (default lps)")
    p.add_argument("--corpus", help="a corpus folder (default: `musicgym corpus build`'s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--subdiv", type=int, help="training table points per parameter (default 65 "
                                              "for 2 parameters, 21 for 3)")
    p.add_argument("--distil-steps", type=int, default=3000, help="stage 1 steps (3000)")
    p.add_argument("--refine-steps", type=int, default=3000, help="stage 2 steps (3000)")
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128],
                   help="hidden layer widths (128 128)")
    p.add_argument("--anchor", type=float, default=0.1,
                   help="weight of the stage-1 loss kept in stage 2 (0.1)")
    p.add_argument("--search", action="store_true",
                   help="ship the training table with the agent: it refines each answer by a "
                        "local search through it")
    p.add_argument("--search-grid", action="store_true",
                   help="--search through the table's grid points only, never between them")
    p.add_argument("--stay-margin", type=float, default=0.0, metavar="M",
                   help="with a table: keep the current setting unless the answer sounds closer "
                        "by more than a fraction M of its error (0: always jump)")
    p.add_argument("--search-from-current", action="store_true",
                   help="with a table: search from the current setting too, keep the closer end")
    p.add_argument("-o", "--output", default="out/improvise", metavar="DIR",
                   help="output folder: DIR/SYNTH-FEATURES.npz and .json (out/improvise)")
    p.set_defaults(func=run_train_improviser)


def run_train_improviser(args: argparse.Namespace) -> int:
    import torch

    from musicgym.envs.improvise_corpus import build_corpus
    from musicgym.train.improvise_agents import train_command, train_inverse

    torch.set_num_threads(1)
    corpus = args.corpus or build_corpus()
    agent = train_inverse(args.synth, args.features, corpus, seed=args.seed, subdiv=args.subdiv,
                          distil_steps=args.distil_steps, refine_steps=args.refine_steps,
                          hidden=tuple(args.hidden), anchor=args.anchor, search=args.search,
                          search_grid=args.search_grid, stay_margin=args.stay_margin,
                          search_from_current=args.search_from_current,
                          log=lambda line: print(line, file=sys.stderr, flush=True))
    agent.meta["command"] = train_command(
        args.synth, args.features, seed=args.seed, distil_steps=args.distil_steps,
        refine_steps=args.refine_steps, hidden=args.hidden, anchor=args.anchor,
        search=args.search, search_grid=args.search_grid, stay_margin=args.stay_margin,
        search_from_current=args.search_from_current, subdiv=args.subdiv, corpus=args.corpus)
    path = agent.save(Path(args.output) / f"{args.synth}-{args.features}.npz")
    print(f"trained in {agent.meta['train_seconds']} s; wrote {path}")
    return 0


# -- the musician's corpus ---------------------------------------------------------------------
def _add_corpus(subparsers) -> None:
    from musicgym.envs import improvise_corpus as ic

    p = subparsers.add_parser(
        "corpus", help="build or list the improviser's corpus (melodies on sampled instruments)",
        description="Render sustained melodies (music21's chorales, played by the performance "
                    "simulator) on General MIDI instruments through a SoundFont, split by "
                    "piece and by instrument, into a cache folder the env reads as corpus=.")
    modes = p.add_subparsers(dest="corpus_mode", metavar="MODE", required=True)
    b = modes.add_parser("build", help="render the corpus (once: a cached build is reused)",
                         description="Render every train piece on every train instrument and "
                                     "every test piece on every test instrument; print the "
                                     "folder to pass as --corpus / corpus=.")
    b.add_argument("-o", "--output", metavar="DIR",
                   help="output folder (default ~/.cache/musicgym/corpus/<recipe hash>)")
    b.add_argument("--train-pieces", nargs="+", default=list(ic.TRAIN_PIECES),
                   help="music21 corpus names of the training melodies")
    b.add_argument("--test-pieces", nargs="+", default=list(ic.TEST_PIECES),
                   help="music21 corpus names of the held-out melodies")
    b.add_argument("--train-instruments", nargs="+", default=list(ic.TRAIN_INSTRUMENTS),
                   help="General MIDI instruments of the training tracks")
    b.add_argument("--test-instruments", nargs="+", default=list(ic.TEST_INSTRUMENTS),
                   help="General MIDI instruments of the held-out tracks")
    b.add_argument("--max-seconds", type=float, default=12.0,
                   help="length of each rendition in seconds (default 12)")
    b.add_argument("--seed", type=int, default=0, help="seeds the simulated players (default 0)")
    b.add_argument("--no-oneshots", action="store_true",
                   help="leave out the recorded one-shots of shared/data/oneshots")
    b.add_argument("--soundfont", help="an .sf2 file (default: Debian's GM SoundFont)")
    b.add_argument("--force", action="store_true", help="render again even if cached")
    b.set_defaults(func=run_corpus_build)
    ls = modes.add_parser("list", help="list a built corpus's tracks and their split",
                          description="Print each track of a built corpus: split, kind, piece, "
                                      "instrument, file.")
    ls.add_argument("folder", nargs="?",
                    help="a built corpus (default: every one under ~/.cache/musicgym/corpus)")
    ls.set_defaults(func=run_corpus_list)


def run_corpus_build(args: argparse.Namespace) -> int:
    from musicgym.envs.improvise_corpus import CorpusRecipe, build_corpus

    recipe = CorpusRecipe(tuple(args.train_pieces), tuple(args.test_pieces),
                          tuple(args.train_instruments), tuple(args.test_instruments),
                          max_seconds=args.max_seconds, seed=args.seed,
                          oneshots=not args.no_oneshots, soundfont=args.soundfont)

    def progress(done: int, total: int, name: str) -> None:
        print(f"[{done}/{total}] {name}", file=sys.stderr, flush=True)

    folder = build_corpus(recipe, out=args.output, force=args.force, progress=progress)
    print(folder)
    return 0


def run_corpus_list(args: argparse.Namespace) -> int:
    from musicgym.envs.improvise_corpus import cache_root, read_manifest

    folders = [Path(args.folder)] if args.folder else sorted(
        p.parent for p in cache_root().glob("*/manifest.json"))
    if args.folder and read_manifest(args.folder) is None:
        raise ImproviseConfigError(f"{args.folder!r} holds no corpus manifest: build one with "
                                   "`musicgym corpus build -o DIR`")
    for folder in folders:
        manifest = read_manifest(folder)
        print(f"{folder}: {len(manifest['tracks'])} tracks")
        for t in manifest["tracks"]:
            print(f"  {t['split']:5} {t['kind']:7} {t['piece']:16} {t['instrument']:10} "
                  f"{t['name']}")
    if not folders:
        print(f"no corpus built under {cache_root()}: run `musicgym corpus build`")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="out/improvise", metavar="DIR",
                   help="output folder (default out/improvise)")
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
    """A self-contained HTML page: the map as an SVG whose points play their sound on click
    (:func:`musicgym.train.report.write_sound_map`).

    The sounds (``SOUND_S`` each, 16-bit at ``PAGE_SR``) sit back to back in one embedded
    WAV; a click plays that point's slice.
    """
    from musicgym.audio.io import resample
    from musicgym.train.report import write_sound_map

    keep = np.arange(len(xy))
    if len(keep) > PAGE_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(len(xy), PAGE_POINTS, replace=False))
    n = int(SOUND_S * sr)
    clips = [synth.render(table.grid[keep[i:i + batch_size]], n_samples=n, sr=sr)
             for i in range(0, len(keep), batch_size)]
    audio = np.concatenate(clips, axis=0)
    audio = audio.mean(axis=1) if audio.ndim == 3 else audio   # (points, channels, n): mono
    audio = resample(audio, sr, PAGE_SR) if sr != PAGE_SR else audio
    infos = [" ".join(f"{name}={q:.3f}" for name, q in zip(synth.param_names, table.grid[k],
                                                           strict=True)) for k in keep]
    return write_sound_map(path, f"{synth.name}: {len(keep)} states", label, xy[keep],
                           colour[keep], infos, audio, PAGE_SR, SOUND_S)


def corpus_page(path: Path, tracks: list[tuple[Path, np.ndarray]], xy: np.ndarray,
                colour: np.ndarray, args: argparse.Namespace) -> Path:
    """The corpus's sound map: the analysed frames (``xy``: every track's, one after the other;
    a seeded subset of ``PAGE_POINTS`` on the page); a click plays ``SOUND_S`` of the track
    from that frame."""
    from musicgym.audio.io import read_audio
    from musicgym.train.report import write_sound_map

    owner = np.concatenate([np.full(len(v), i) for i, (_, v) in enumerate(tracks)])
    frame = np.concatenate([np.arange(len(v)) for _, v in tracks])
    keep = np.arange(len(xy))
    if len(keep) > PAGE_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(len(keep), PAGE_POINTS, replace=False))
    n = int(SOUND_S * PAGE_SR)
    audio = np.zeros((len(keep), n), dtype=np.float32)
    for i in np.unique(owner[keep]):
        mono = read_audio(tracks[i][0], sr=PAGE_SR)[0].mean(axis=0)
        for row in np.flatnonzero(owner[keep] == i):
            start = int(frame[keep[row]] * args.hop / args.sr * PAGE_SR)
            clip = mono[start:start + n]
            audio[row, :len(clip)] = clip
    infos = [f"{tracks[owner[k]][0].name} at {frame[k] * args.hop / args.sr:.2f} s" for k in keep]
    title = f"{Path(args.corpus).name}: {len(keep)} frames of {len(tracks)} tracks"
    return write_sound_map(path, title, args.color_by, xy[keep], colour[keep], infos, audio,
                           PAGE_SR, SOUND_S)


def run_analyze(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from musicgym.audio.descriptors import feature_names
    from musicgym.envs.improvise_data import analyze_track, audio_files, write_table
    from musicgym.errors import AudioFileError

    names = feature_names(args.features)
    if args.color_by is None:
        args.color_by = "specshape-centroid" if "specshape-centroid" in names else names[0]
    elif args.color_by not in names:
        raise ImproviseConfigError(f"--color-by {args.color_by!r} is not among the analysed "
                                   f"descriptors {list(names)}")
    root = Path(args.corpus)
    files = audio_files(root)
    if not files:
        raise ImproviseConfigError(f"no audio files under {str(root)!r}")
    out, suffix, tracks = Path(args.output), _suffix(args.format), []
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
        tracks.append((path, values))
    print(f"wrote {len(tracks)} of {len(files)} track tables to {out}")
    if not tracks:
        raise ImproviseConfigError(f"no readable audio file under {str(root)!r}")
    values = np.concatenate([v for _, v in tracks])
    values = np.where(np.isfinite(values), values, 0.0)   # silent frames have no pitch
    xy = project(values, args.map)
    colour = values[:, names.index(args.color_by)]
    png = plot_map(out / f"corpus-{args.map}.png", xy, colour, args.color_by,
                   f"{root.name}: {len(xy)} frames, {args.map.upper()}")
    page = corpus_page(out / f"corpus-{args.map}.html", tracks, xy, colour, args)
    print(f"wrote the corpus map {png} and its listening page {page}")
    return 0


# -- live and evaluation -----------------------------------------------------------------------
def _agent_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="RUN",
                   help="a run folder made by `musicgym train musicgym/Improvise-v0` (its "
                        "config.yaml and model.zip, or model.npz with algo: inverse), an agent "
                        "made by `musicgym "
                        "train-improviser` (FILE.npz), or builtin:NAME (sine, fm, granular, "
                        "subtractive); without it, the nearest-neighbour lookup")
    p.add_argument("--synth", help="sine, fm, subtractive, sampler or granular, or "
                                   "path/to/synth.pd (your Pd synth: N parameters in [0, 1] "
                                   "in, sound out; lookup mode) (default: the run's, or fm)")
    p.add_argument("--features", nargs="+",
                   help="without --model: descriptors kept (default: the env's, "
                        "loudness-dB specshape mfcc chroma)")
    p.add_argument("--reward-features", nargs="+",
                   help="without --model: descriptors compared (default: the env's, "
                        "loudness-dB specshape-centroid; all --features when those are given)")
    p.add_argument("--corpus", help="folder of audio tracks (normalisation; the held-out tracks "
                                    "for evaluate-improvise); overrides the run's")
    p.add_argument("--listen", choices=["render", "lookup"],
                   help="how the agent hears itself (default: the run's mode; lookup without "
                        "--model)")
    p.add_argument("--subdiv", type=int, default=11,
                   help="grid points per parameter of the nearest-neighbour table (default 11)")


def _add_live(subparsers) -> None:
    p = live_modes(subparsers).add_parser(
        "improvise", help="play a synth with a musician over OSC (descriptors or audio in, "
                          "synth parameters out)",
        description="Serve an improvising agent over OSC/UDP: /musicgym/descriptors (name value "
                    "pairs), /musicgym/audio (samples) or RL-impro's /feats/loudness in; "
                    "/musicgym/params, /musicgym/controls (and RL-impro's /agent-params) out. "
                    "pd/musicgym_improvise.pd is a Pure Data front end; --synth "
                    "path/to/synth.pd --pd-audio plays your own Pd synth live.")
    _agent_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=6666, help="UDP port to listen on (default 6666)")
    p.add_argument("--reply-host", default="127.0.0.1", help="where replies go (127.0.0.1)")
    p.add_argument("--reply-port", type=int, default=6667,
                   help="UDP port replies go to (default 6667, the Pd patch's); 0 answers each "
                        "message's sender")
    p.add_argument("--seconds", type=float, help="stop after this many seconds")
    p.add_argument("--max-packets", type=int, help="stop after this many packets")
    p.add_argument("--wav", metavar="FILE.wav",
                   help="on exit, write what the synth played to this WAV file (one decision "
                        "per hop)")
    p.add_argument("--hop", type=int, default=512,
                   help="samples between decisions in the --wav rendering (default 512)")
    p.add_argument("--audio-out", nargs="?", const="", metavar="DEVICE",
                   help="also sound the synth on an audio device (sounddevice; DEVICE: a name "
                        "or index, none: the default device), so no Pd is needed to hear it")
    p.add_argument("--audio-blocksize", type=int, default=512,
                   help="frames per audio callback with --audio-out (default 512)")
    p.add_argument("--pd-audio", nargs="?", const="jack",
                   choices=["jack", "alsa", "oss", "pa", "none"], metavar="API",
                   help="with --synth path/to/synth.pd: start Pd (pd -nogui) on this audio API "
                        "(jack, the default; alsa, oss, pa, or none: silent) playing your "
                        "synth.pd, and send it each decision's parameters over UDP (FUDI); Pd "
                        "is stopped on exit. With JACK, Pd's ports are musicgym-pd:output_1/2, "
                        "connected to system:playback")
    p.add_argument("--pd-options", metavar="'FLAGS'",
                   help="more pd flags for --pd-audio, as one argument after '=': "
                        "--pd-options='-audiodev 3 -blocksize 128', "
                        "--pd-options=-nojackconnect, --pd-options='-lib zexy'")
    p.add_argument("--realtime", action="store_true",
                   help="ask for real-time scheduling (Linux SCHED_FIFO, as JACK or pd -rt), "
                        "so that other processes do not delay a decision; needs CAP_SYS_NICE "
                        "or ulimit -r (without them, says so and serves at normal priority)")
    p.set_defaults(func=run_live_improvise)


def _add_evaluate(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate-improvise", help="held-out tracks: agent vs nearest-neighbour oracle, random "
                                   "and hold-still (per-descriptor error, time to match)",
        description="Play every held-out track of the corpus frame by frame with each method and "
                    "report the per-descriptor error and the time to match.")
    _agent_options(p)
    p.add_argument("--holdout", type=float, help="held-out fraction of the corpus (default: the "
                                                 "run's, or 0.2)")
    p.add_argument("--methods", nargs="+",
                   help="among agent oracle random hold (default: all of them; agent only "
                        "with --model)")
    p.add_argument("--match-rmse", type=float, default=0.2,
                   help="the reward's RMSE that counts as a match (default 0.2)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds start states and random moves (default 0)")
    p.add_argument("-o", "--output", default="out/improvise", metavar="DIR",
                   help="output folder: the report is DIR/evaluation.json (default "
                        "out/improvise)")
    p.set_defaults(func=run_evaluate_improvise)


def agent_setup(args: argparse.Namespace) -> tuple[dict, object]:
    """(env keywords, model or None) from --model / --synth / --features / --corpus."""
    if args.model and is_agent_file(args.model):   # builtin:NAME or a train-improviser .npz
        model = InverseAgent.load(args.model)
        if args.features or args.reward_features:
            raise ImproviseConfigError("--features and --reward-features are the agent's own: "
                                       "drop them with --model")
        env_kwargs = {**model.env_kwargs, "mode": "lookup", "subdiv": args.subdiv}
    elif args.model:
        from musicgym.train.evaluate import load_run

        config, model = load_run(args.model)
        if config.env_id != "musicgym/Improvise-v0":
            raise ImproviseConfigError(f"--model {args.model}: the run trained {config.env_id}, "
                                       "not musicgym/Improvise-v0")
        if args.features or args.reward_features:
            raise ImproviseConfigError("--features and --reward-features are the run's own: "
                                       "drop them with --model")
        env_kwargs = dict(config.env_kwargs)
    else:
        model = None
        env_kwargs = {"synth": args.synth or "fm", "mode": "lookup", "subdiv": args.subdiv}
        if args.features:
            env_kwargs["features_keep"] = args.features
            env_kwargs["features_reward"] = args.reward_features or args.features
        elif args.reward_features:
            env_kwargs["features_reward"] = args.reward_features
    if args.corpus:
        env_kwargs["corpus"] = args.corpus
    if getattr(args, "holdout", None) is not None:
        env_kwargs["holdout"] = args.holdout
    return env_kwargs, model


def _check_synth(args: argparse.Namespace, played: str) -> None:
    if args.synth and args.synth != played and Path(args.synth).stem != played:  # a .pd path
        raise ImproviseConfigError(f"--synth {args.synth}: the run's agent plays {played!r}; "
                                   f"drop --synth or use a run trained on {args.synth!r}")


def run_live_improvise(args: argparse.Namespace) -> int:
    from musicgym.envs.improvise_play import (
        Improviser,
        NearestNeighbour,
        PolicyController,
        make_core,
    )
    from musicgym.live.improvise import (
        AUDIO,
        DESCRIPTORS,
        RLIMPRO,
        ImproviseServer,
        set_realtime,
    )

    if args.wav and Path(args.wav).suffix.lower() != ".wav":
        from musicgym.cli import refuse

        return refuse(args, f"--wav {args.wav}: the synth's playing is written as WAV; give a "
                            "file ending in .wav")
    env_kwargs, model = agent_setup(args)
    if model is not None and not isinstance(model, InverseAgent):
        import torch  # one small forward pass per message: more threads only add latency

        torch.set_num_threads(1)
    core = make_core(env_kwargs, listen=args.listen)
    _check_synth(args, core.synth.name)
    if isinstance(model, InverseAgent):
        controller = model.controller(core)
    else:
        controller = PolicyController(model, core) if model is not None else \
            NearestNeighbour.from_core(core, subdiv=args.subdiv)
    improviser = Improviser(core, controller, hop_length=args.hop)
    reply_to = None if args.reply_port == 0 else (args.reply_host, args.reply_port)
    audio_out = None
    try:   # the audio output (Pd: a process of its own) is stopped whatever happens
        if args.pd_audio is not None or args.pd_options:
            audio_out = _pd_audio(args, core.synth, improviser.params, core.sr)
        elif args.audio_out is not None:
            from musicgym.live.improvise import AudioOut

            device = args.audio_out or None
            device = int(device) if device is not None and device.isdigit() else device
            audio_out = AudioOut(core.synth, improviser.params, sr=core.sr, device=device,
                                 blocksize=args.audio_blocksize).start()
        server = ImproviseServer(improviser, host=args.host, port=args.port,
                                 reply_to=reply_to, audio_out=audio_out)
        who = f"the policy of {args.model}" if model is not None else "nearest-neighbour lookup"
        print(f"listening on udp {server.host}:{server.port} ({DESCRIPTORS}, {AUDIO} at "
              f"{core.sr} Hz, {RLIMPRO}); replies to "
              f"{'each sender' if reply_to is None else f'{reply_to[0]}:{reply_to[1]}'}\n"
              f"synth {core.synth.name} {core.synth.param_names}, {who}, hearing itself by "
              f"{core.mode}; descriptors: {' '.join(core.features)}", flush=True)
        if args.realtime:
            print(f"--realtime: {set_realtime()}", flush=True)
        # Ctrl-C while serving asks the loop to stop (it looks every 50 ms) rather than raising
        # wherever the main thread happens to be (inside a render, among the engine's worker
        # threads), so the server always winds down the same way and exits.
        main_thread = threading.current_thread() is threading.main_thread()
        previous = (signal.signal(signal.SIGINT, lambda signum, frame: server.stop())
                    if main_thread else None)
        try:
            summary = server.serve(seconds=args.seconds, max_packets=args.max_packets)
        except KeyboardInterrupt:
            summary = server.summary()
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, previous)
            server.close()
    finally:
        if audio_out is not None:
            audio_out.close()
    if hasattr(audio_out, "summary"):   # --pd-audio: messages sent, Pd's exit status
        summary.update(audio_out.summary())
    elif audio_out is not None:
        summary["audio_blocks"], summary["audio_underflows"] = audio_out.blocks, \
            audio_out.underflows
    print(json.dumps(summary, indent=2))
    if args.wav and improviser.history:
        print(f"wrote {improviser.write_wav(args.wav)}")
    return 0


def _pd_audio(args: argparse.Namespace, synth, params, sr: int):
    """--pd-audio: the user's synth.pd sounding in a Pd started here (started and ready)."""
    from musicgym.envs.pd_synth import PdSynth
    from musicgym.live.pd_audio import PdAudioOut

    if args.pd_audio is None:
        raise ImproviseConfigError("--pd-options passes flags to the Pd of --pd-audio: add "
                                   "--pd-audio")
    if not isinstance(synth, PdSynth):
        raise ImproviseConfigError(f"--pd-audio plays a Pd synth (--synth path/to/synth.pd); "
                                   f"{synth.name!r} is musicgym's own: sound it with "
                                   "--audio-out")
    if args.audio_out is not None:
        raise ImproviseConfigError("--audio-out and --pd-audio both sound the synth: choose "
                                   "one (a Pd synth sounds with --pd-audio)")
    pd = PdAudioOut(synth, params, api=args.pd_audio, sr=sr, options=args.pd_options)
    where = (f"JACK client {pd.jack_name}" if pd.api == "jack" else f"audio API {pd.api}")
    print(f"--pd-audio: pd plays {synth.path} ({where}), parameters to udp "
          f"{pd.host}:{pd.port}", file=sys.stderr, flush=True)
    return pd


def run_evaluate_improvise(args: argparse.Namespace) -> int:
    from musicgym.train.evaluate_improvise import evaluate_improvisers, format_report

    env_kwargs, model = agent_setup(args)
    _check_synth(args, env_kwargs.get("synth", "fm"))
    report = evaluate_improvisers(env_kwargs, model=model, methods=args.methods,
                                  listen=args.listen, match_rmse=args.match_rmse,
                                  seed=args.seed, subdiv=args.subdiv)
    print(format_report(report))
    out = Path(args.output) / "evaluation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(".partial-" + out.name)
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0
