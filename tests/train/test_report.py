"""The run report page: self-contained, loaded by a real browser (headless Chromium), bounded,
and safe with a run folder that comes from someone else; the sound maps likewise."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from musicgym.audio.io import write_wav  # noqa: E402
from musicgym.cli import main  # noqa: E402
from musicgym.envs.improvise_data import read_table  # noqa: E402
from musicgym.train.config import resolve  # noqa: E402
from musicgym.train.report import MAX_AUDIO_S, write_report  # noqa: E402
from musicgym.train.runner import train  # noqa: E402

KICK = dict(env_id="musicgym/Kick-v0", n_envs=4, eval_episodes=1, eval_every=32, steps=64,
            algo_kwargs={"n_steps": 8, "batch_size": 16, "n_epochs": 1})
# the tags and attributes a report page may hold: no script, no event handler, no link out
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code",
             "b", "div", "span", "audio", "table", "tr", "th", "td", "figure", "img",
             "figcaption"}
PAGE_ATTRS = {"lang", "charset", "http-equiv", "content", "class", "controls", "preload", "src",
              "alt"}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; "
                ".ci/run installs it)")


def _browse(page: Path, *args: str) -> subprocess.CompletedProcess:
    """Open ``page`` in headless Chromium; its console messages go to standard error."""
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
                           *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)


def _console(stderr: str) -> list[str]:
    """The page's console messages (script errors, blocked requests, CSP violations)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags, self.attrs, self.srcs = [], set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.add(name)
            if name == "src":
                self.srcs.append(value)


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


@pytest.mark.slow
def test_the_report_of_a_fresh_run_loads_in_a_real_browser(tmp_path_factory, tmp_path, capsys):
    _chromium()   # skip before training if there is no browser
    kick_run = train(resolve(KICK), runs_root=tmp_path_factory.mktemp("runs"), progress=False)
    # no evaluation yet: `musicgym report` runs it first
    assert not (kick_run / "eval").exists()
    assert main(["report", str(kick_run), "--episodes", "1", "-o", str(tmp_path)]) == 0
    page = tmp_path / "report.html"
    assert str(page) in capsys.readouterr().out
    assert (kick_run / "eval" / "metrics.json").is_file()
    parsed = _parse(page.read_text())
    assert set(parsed.tags) <= PAGE_TAGS and parsed.attrs <= PAGE_ATTRS
    # self-contained: every source is embedded
    assert parsed.srcs and all(s.startswith(("data:audio/wav;base64,", "data:image/png;base64,"))
                               for s in parsed.srcs)

    shot = tmp_path / "shot.png"
    done = _browse(page, f"--screenshot={shot}", "--window-size=1200,2000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not _console(done.stderr)
    dom = _browse(page, "--dump-dom")
    assert dom.returncode == 0 and not _console(dom.stderr)
    # the browser built the players (target, best and last agent clips) and the pictures
    # (learning curve, training curve, spectrogram comparison)
    players = re.findall(r'<audio controls="" preload="auto" src="data:audio/wav;base64,',
                         dom.stdout)
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', dom.stdout)
    assert len(players) == 3 and len(images) == 3
    for label in ("target", "agent (best evaluation episode)", "mean_clip_distance",
                  "Learning curves", "musicgym/Kick-v0"):
        assert label in dom.stdout

    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    grey = pixels[..., :3].mean(axis=-1)
    assert grey.std() > 0.05                      # not a blank page
    assert (grey < 0.5).mean() > 0.01             # text and plots drawn in dark ink


def test_a_hostile_run_folder_gives_a_page_without_script(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = tmp_path / 'run"><img src=x onerror=alert(1)>'
    ev = run / "eval"
    ev.mkdir(parents=True)
    (run / "config.yaml").write_text(
        'env_id: "<script>alert(1)</script>"\nalgo: ppo\n'
        'env_kwargs: {"</td><script>alert(2)</script>": "<iframe src=http://evil>"}\n')
    (ev / "metrics.json").write_text('{"<img src=x onerror=alert(3)>": 1.5, '
                                     '"family": "</title><script>alert(4)</script>"}')
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(ev / '"><svg onload=alert(5)>.png')
    plt.close(fig)
    (ev / "fake.png").write_text("<script>alert(6)</script>")    # not a PNG: left out
    sr = 8000
    write_wav(ev / "<b onmouseover=alert(7)>.wav", 0.1 * np.ones(int(25 * sr)), sr)
    outside = tmp_path / "secret.wav"
    write_wav(outside, np.zeros(100), sr)
    (ev / "link.wav").symlink_to(outside)                        # a link: not followed

    page = write_report(run)
    text = page.read_text()
    parsed = _parse(text)
    assert set(parsed.tags) <= PAGE_TAGS and parsed.attrs <= PAGE_ATTRS
    assert "script" not in parsed.tags and "iframe" not in parsed.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b onmouseover=alert(7)&gt;.wav" in text
    assert "link.wav" not in text and "alert(6)" not in text
    assert parsed.tags.count("audio") == 1 and parsed.tags.count("img") == 1
    # a long sound is cut for the page, and the page says so
    assert f"first {MAX_AUDIO_S:g} s of 25.0 s" in text
    assert page.stat().st_size < 2_000_000
    if shutil.which("chromium"):
        dom = _browse(page, "--dump-dom")
        assert dom.returncode == 0 and not _console(dom.stderr)
        assert "<script" not in dom.stdout and "<iframe" not in dom.stdout


def test_the_corpus_map_of_analyze_escapes_track_names(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    t = np.arange(22050) / 44100
    for name, freq in (("</script><script>alert(1)</script>", 330), ("plain", 660)):
        write_wav(corpus / f"{name.replace('/', '_')}.wav", 0.3 * np.sin(2 * np.pi * freq * t),
                  44100)
    out = tmp_path / "out"
    assert main(["analyze", str(corpus), "-o", str(out), "--format", "csv",
                 "--features", "loudness", "pitch"]) == 0
    page = (out / "corpus-pca.html").read_text()
    assert "corpus-pca.html" in capsys.readouterr().out
    assert (out / "corpus-pca.png").read_bytes().startswith(b"\x89PNG")
    assert "data:audio/wav;base64," in page
    # one script, the page's own; the name is inside it as escaped JSON
    assert page.count("<script") == 1 and page.count("</script>") == 1
    assert "\\u003c_script\\u003e\\u003cscript\\u003ealert(1)" in page
    if shutil.which("chromium"):
        # the page's script ran without error and drew one point per analysed frame
        frames = sum(len(read_table(p)["time_s"]) for p in out.glob("*.csv"))
        dom = _browse(out / "corpus-pca.html", "--dump-dom")
        assert dom.returncode == 0 and not _console(dom.stderr)
        assert dom.stdout.count("<circle") == frames > 10
