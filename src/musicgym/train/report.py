"""Self-contained HTML pages: a training run's report, and the improvisation sound maps.

:func:`write_report` writes one page per run (``musicgym report RUN``; ``musicgym evaluate``
writes it too): audio players (target, agent, baselines where the run has them), the pictures
``musicgym evaluate`` draws, the learning curves (evaluations, and the training episodes'
return from ``progress.csv``), the metrics and the run's configuration, for a run of any
family. :func:`sound_map_html` is the clickable map of ``musicgym lookup`` and
``musicgym analyze``.

Everything is inside the page (sounds and pictures as ``data:`` URIs, the style inline): it
opens offline and can be mailed. A page's Content-Security-Policy forbids any network request,
and the run report carries no script at all. A run folder may come from someone else, so every
text read from it (file names, config values, metric names) is HTML-escaped, only PNG files are
shown as pictures, links are not followed, and the page's size is bounded: sounds are mixed to
mono at :data:`PAGE_SR` and cut to :data:`MAX_AUDIO_S` (the page says so), at most
:data:`MAX_SOUNDS` sounds and :data:`MAX_IMAGES` pictures of :data:`MAX_IMAGE_BYTES` each.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from musicgym.errors import ConfigError, MusicgymError, OutputError

PAGE_SR = 22050             # the page's sounds are resampled to this rate
MAX_AUDIO_S = 20.0          # and cut to this length
MAX_SOUNDS = 8
MAX_IMAGES = 16
MAX_IMAGE_BYTES = 4_000_000
MAX_CSV_BYTES = 20_000_000  # progress.csv larger than this is not drawn
MAX_TABLE_ROWS = 200

# no request leaves the page: pictures and sounds are data: URIs, the style is inline
_CSP_REPORT = ("default-src 'none'; img-src data:; media-src data:; "
               "style-src 'unsafe-inline'")
# the sound map plays its points from an inline script
_CSP_MAP = _CSP_REPORT + "; script-src 'unsafe-inline'"

# what the files musicgym evaluate writes are, in the order the page shows them
SOUNDS = {"target.wav": "target", "agent_best.wav": "agent (best evaluation episode)",
          "agent_final.wav": "agent (last evaluation episode)", "agent.wav": "agent",
          "piece/piece.wav": "the composed piece, rendered by the engine",
          "duet.wav": "the duet: soloist (high blips) and the agent's accompaniment (low)",
          "random.wav": "baseline: random search", "cmaes.wav": "baseline: CMA-ES"}
IMAGES = {"comparison.png": "target / agent / difference spectrograms",
          "curve.png": "learning curve (evaluations during training)",
          "piece/piano_roll.png": "piano roll of the composed piece",
          "descriptors.png": "descriptor traces: target vs agent",
          "asynchrony.png": "asynchrony at shared onsets (accompanist - soloist)"}

_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.5em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:left}td.n{text-align:right;font-family:monospace}figure{margin:1em 0}
figcaption{font-size:.9em;color:#555}img{max-width:100%;border:1px solid #eee}
.sound{margin:.6em 0}.sound audio{display:block;width:480px}.note{color:#777;font-size:.85em}"""


def esc(value: Any) -> str:
    """Any value as HTML text (quotes escaped too, so it is safe in an attribute)."""
    return html.escape(str(value), quote=True)


def wav_data_uri(audio: np.ndarray, sr: int, *, max_seconds: float | None = MAX_AUDIO_S,
                 page_sr: int = PAGE_SR) -> tuple[str, str]:
    """A ``data:audio/wav;base64`` URI of ``audio`` (16-bit mono at ``page_sr``) and a note
    saying what was changed to fit the page ('' if nothing).

    Parameters
    ----------
    audio : numpy.ndarray, shape (n,) or (channels, n)
    sr : int
        Its sample rate.
    max_seconds : float or None, keyword-only
        Longer audio is cut to its first ``max_seconds``.
    page_sr : int, keyword-only
        The rate of the embedded sound.
    """
    import soundfile as sf

    from musicgym.audio.io import resample

    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32))
    notes = []
    if audio.ndim == 2:
        if audio.shape[0] > 1:
            notes.append(f"{audio.shape[0]} channels mixed to mono")
        audio = audio.mean(axis=0)
    seconds = audio.size / sr
    if max_seconds is not None and seconds > max_seconds:
        audio = audio[:int(max_seconds * sr)]
        notes.append(f"first {max_seconds:g} s of {seconds:.1f} s")
    if sr != page_sr:
        audio = resample(audio, sr, page_sr)
        notes.append(f"resampled from {sr} Hz to {page_sr} Hz")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:   # 16-bit would clip it: scaled down whole, so nothing is distorted
        audio = audio / peak
        notes.append(f"scaled down {20 * np.log10(peak):.1f} dB to fit 16 bits")
    buffer = io.BytesIO()
    sf.write(buffer, audio, page_sr, subtype="PCM_16", format="WAV")
    uri = "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return uri, "; ".join(notes)


def png_data_uri(data: bytes) -> str:
    """A ``data:image/png;base64`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def page(title: str, body: str, *, csp: str = _CSP_REPORT, style: str = _STYLE) -> str:
    """A whole HTML document; ``title`` is escaped here, ``body`` must be HTML already."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
            f"<title>{esc(title)}</title><style>{style}</style></head>\n<body>\n{body}\n"
            "</body></html>\n")


def _write(path: Path, text: str) -> Path:
    """Write a page atomically (a reader never opens half of one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".partial-" + path.name)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the page: {exc}") from None
    return path


# -- the run report ----------------------------------------------------------------------------
def write_report(run_dir: str | Path, *, eval_dir: str | Path | None = None,
                 output: str | Path | None = None, episodes: int = 8) -> Path:
    """Write the run's report page and return its path.

    Parameters
    ----------
    run_dir : path
        A folder made by ``musicgym train``.
    eval_dir : path, keyword-only
        The evaluation folder read (default ``run_dir/eval``). If it has no ``metrics.json``,
        the run is evaluated first (:func:`musicgym.train.evaluate.evaluate_run`), except an
        RLlib run, whose page shows what its folder holds.
    output : path, keyword-only
        The page written (default ``eval_dir/report.html``).
    episodes : int, keyword-only
        Episodes of that evaluation.

    Raises
    ------
    ConfigError
        ``run_dir`` is not a run folder (no ``config.yaml``), or its files cannot be read.
    OutputError
        The page cannot be written.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: no config.yaml there (is it a run folder made by "
                          "musicgym train?)")
    eval_dir = Path(eval_dir) if eval_dir is not None else run_dir / "eval"
    rllib = (run_dir / "rllib.json").is_file() and not (run_dir / "model.zip").is_file()
    if not (eval_dir / "metrics.json").is_file() and not rllib:
        from musicgym.train.evaluate import evaluate_run

        evaluate_run(run_dir, episodes, output=eval_dir)
    path = Path(output) if output is not None else eval_dir / "report.html"
    return _write(path, report_html(run_dir, eval_dir))


def report_html(run_dir: str | Path, eval_dir: str | Path) -> str:
    """The report page of a run folder and its evaluation folder, as text (nothing run)."""
    from musicgym.safeio import load_mapping

    run_dir, eval_dir = Path(run_dir), Path(eval_dir)
    config = load_mapping(run_dir / "config.yaml")
    metrics_file = eval_dir / "metrics.json"
    if not metrics_file.is_file() and (run_dir / "metrics.json").is_file():
        metrics_file = run_dir / "metrics.json"   # an RLlib run's own summary
    metrics = load_mapping(metrics_file) if metrics_file.is_file() else {}
    evaluations = _evaluations(run_dir / "evaluations.json")
    title = f"{config.get('algo', '?')} on {config.get('env_id', '?')}"
    parts = [f"<h1>{esc(title)}</h1>",
             f'<p>Run <code>{esc(run_dir.name)}</code>; evaluation folder '
             f"<code>{esc(eval_dir.name)}</code>; family "
             f"<b>{esc(metrics.get('family', '?'))}</b>.</p>"]
    sounds = _sounds(eval_dir)
    parts.append("<h2>Listen</h2>")
    parts.append("".join(sounds) if sounds else
                 '<p class="note">No sound in the evaluation folder (this family writes none, '
                 "or the run was not evaluated).</p>")
    parts.append("<h2>Metrics</h2>")
    parts.append(_table(_flatten(metrics)) if metrics else '<p class="note">no metrics.json</p>')
    parts.append("<h2>Learning curves</h2>")
    curves = _curves(eval_dir, run_dir, title)
    parts.append("".join(curves) if curves else '<p class="note">no curve: the run has no '
                 "evaluations.json or progress.csv</p>")
    if evaluations:
        keys = sorted({k for e in evaluations for k in e}, key=lambda k: (k != "steps", k))
        rows = evaluations[-MAX_TABLE_ROWS:]
        parts.append("<h3>Evaluations during training</h3>" + _grid(keys, rows))
    pictures = _pictures(eval_dir)
    parts.append("<h2>Pictures</h2>")
    parts.append("".join(pictures) if pictures else '<p class="note">no picture</p>')
    parts.append("<h2>Configuration</h2>" + _table(_flatten(config)))
    return page(f"musicgym run {run_dir.name}: {title}", "\n".join(parts))


def _files(folder: Path, suffix: str, known: dict[str, str]) -> list[tuple[Path, str]]:
    """Regular files (not links) under ``folder`` with ``suffix``: the known ones first, in
    ``known``'s order, then the others by name."""
    if not folder.is_dir():
        return []
    root = folder.resolve()
    found = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob(f"*{suffix}"))
             if p.is_file() and not p.is_symlink() and p.resolve().is_relative_to(root)}
    order = [k for k in known if k in found] + [k for k in found if k not in known]
    return [(found[k], known.get(k, k)) for k in order]


def _sounds(eval_dir: Path) -> list[str]:
    from musicgym.audio.io import read_audio

    out = []
    files = _files(eval_dir, ".wav", SOUNDS)
    for path, label in files[:MAX_SOUNDS]:
        rel = path.relative_to(eval_dir).as_posix()
        try:
            # the header's length is checked before decoding: a long file is cut, not read
            audio, sr = read_audio(path)
        except MusicgymError as exc:
            out.append(f'<div class="sound"><b>{esc(label)}</b> <span class="note">'
                       f"({esc(rel)} could not be read: {esc(exc)})</span></div>")
            continue
        uri, note = wav_data_uri(audio, sr)
        shown = f"{esc(rel)}; {esc(note)}" if note else esc(rel)
        out.append(f'<div class="sound"><b>{esc(label)}</b> <span class="note">({shown})'
                   f'</span><audio controls preload="auto" src="{uri}"></audio></div>')
    if len(files) > MAX_SOUNDS:
        out.append(f'<p class="note">{len(files) - MAX_SOUNDS} more sounds in the folder are '
                   "not on this page.</p>")
    return out


def _figure(data: bytes, caption: str) -> str:
    return (f'<figure><img alt="{esc(caption)}" src="{png_data_uri(data)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def _read_png(path: Path) -> bytes | None:
    """The file's bytes if it is a PNG within the size limit, else None."""
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(b"\x89PNG\r\n\x1a\n") else None


def _pictures(eval_dir: Path) -> list[str]:
    out, skipped = [], 0
    files = [(p, label) for p, label in _files(eval_dir, ".png", IMAGES) if p.name != "curve.png"]
    for path, label in files:
        data = _read_png(path) if len(out) < MAX_IMAGES else None
        if data is None:
            skipped += 1
            continue
        rel = path.relative_to(eval_dir).as_posix()
        out.append(_figure(data, label if label == rel else f"{label} ({rel})"))
    if skipped:
        out.append(f'<p class="note">{skipped} PNG files left out (not PNG, over '
                   f"{MAX_IMAGE_BYTES // 1_000_000} MB, or over {MAX_IMAGES} pictures).</p>")
    return out


def _curves(eval_dir: Path, run_dir: Path, title: str) -> list[str]:
    out = []
    curve = eval_dir / "curve.png"
    data = _read_png(curve) if curve.is_file() and not curve.is_symlink() else None
    if data is not None:
        out.append(_figure(data, IMAGES["curve.png"]))
    training = _training_curve_png(run_dir / "tensorboard" / "progress.csv", title)
    if training is not None:
        out.append(_figure(training, "training episodes' mean return (progress.csv, "
                                     "rollout/ep_rew_mean)"))
    return out


def _training_curve_png(path: Path, title: str) -> bytes | None:
    """SB3's ``rollout/ep_rew_mean`` against ``time/total_timesteps``, drawn as PNG bytes."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_CSV_BYTES:
            return None
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error):
        return None
    points = []
    for row in rows:
        try:
            points.append((float(row["time/total_timesteps"]), float(row["rollout/ep_rew_mean"])))
        except (KeyError, TypeError, ValueError):
            continue
    points = [p for p in points if np.isfinite(p).all()]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, values = np.array(points).T
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, values, ".-")
    ax.set_xlabel("training steps")
    ax.set_ylabel("mean episode return (training)")
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _evaluations(path: Path) -> list[dict]:
    if not path.is_file() or path.is_symlink():
        return []
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            return []
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError, RecursionError):
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def _flatten(mapping: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += _flatten(value, name + ".")
        else:
            rows.append((name, value))
    return rows[:MAX_TABLE_ROWS * 5]


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{esc(value)}</td>"
    if isinstance(value, (int, float)):
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f'<td class="n">{esc(shown)}</td>'
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
        return f"<td><code>{esc(text if len(text) <= 300 else text[:300] + '...')}</code></td>"
    return f"<td>{esc(value)}</td>"


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th>{_cell(v)}</tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _grid(keys: list[str], rows: list[dict]) -> str:
    head = "".join(f"<th>{esc(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(_cell(r.get(k, "")) for k in keys) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# -- the sound maps of musicgym lookup and analyze ------------------------------------------------
def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no '</script>' or '<!--' can appear)."""
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


def sound_map_html(title: str, label: str, xy: np.ndarray, colour: np.ndarray,
                   infos: list[str], audio: np.ndarray, sr: int, seconds: float) -> str:
    """A page whose map (an SVG) plays each point's sound on click.

    Parameters
    ----------
    title, label : str
        The page's title and what the colour shows (escaped here).
    xy : numpy.ndarray, shape (N, 2)
        The points' 2-D coordinates (any scale: fitted to the map).
    colour : numpy.ndarray, shape (N,)
        The value each point is coloured by (shown on click too).
    infos : list of str
        What a click on each point shows beside its value (escaped: the page's script sets it
        as text).
    audio : numpy.ndarray, shape (N, n)
        Each point's sound, ``seconds`` long at ``sr``, embedded back to back as one WAV.
    """
    import soundfile as sf

    audio = np.asarray(audio, dtype=np.float32)
    audio = audio / max(1e-9, float(np.abs(audio).max()))
    buffer = io.BytesIO()
    sf.write(buffer, audio.reshape(-1), sr, subtype="PCM_16", format="WAV")
    span = np.ptp(xy, axis=0)
    pos = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1.0) * 560 + 20
    c = (colour - colour.min()) / max(1e-12, float(np.ptp(colour)))
    points = [{"x": round(float(x), 1), "y": round(float(y), 1), "c": round(float(v), 3),
               "i": str(info), "v": round(float(value), 3)}
              for (x, y), v, info, value in zip(pos, c, infos, colour, strict=True)]
    wav = base64.b64encode(buffer.getvalue()).decode("ascii")
    body = _MAP_BODY.format(title=esc(title), label=esc(label), points=_script_json(points),
                            seconds=float(seconds), wav=wav)
    return page(title, body, csp=_CSP_MAP, style=_MAP_STYLE)


def write_sound_map(path: str | Path, *args: Any, **kwargs: Any) -> Path:
    """Write :func:`sound_map_html`'s page to ``path`` atomically; return the path."""
    return _write(Path(path), sound_map_html(*args, **kwargs))


_MAP_STYLE = "body{font-family:sans-serif} circle{cursor:pointer} circle:hover{stroke:#000}"
_MAP_BODY = """<h3>{title}</h3>
<p>Colour: {label}. Click a point to hear it. <span id="info"></span></p>
<svg id="map" width="600" height="600"></svg>
<audio id="snd" src="data:audio/wav;base64,{wav}" preload="auto"></audio>
<script>
const points = {points}, seconds = {seconds};
const svg = document.getElementById("map"), snd = document.getElementById("snd");
let timer = null;
points.forEach((p, i) => {{
  const c = document.createElementNS("http://www.w3.org/2000/svg", "circle");
  c.setAttribute("cx", p.x); c.setAttribute("cy", 600 - p.y); c.setAttribute("r", 4);
  c.setAttribute("fill", `hsl(${{260 - 200 * p.c}}, 70%, 50%)`);
  c.onclick = () => {{
    snd.currentTime = i * seconds; snd.play(); clearTimeout(timer);
    timer = setTimeout(() => snd.pause(), seconds * 1000);
    document.getElementById("info").textContent = `${{p.i}} -> ${{p.v}}`;
  }};
  svg.appendChild(c);
}});
</script>"""
