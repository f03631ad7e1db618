"""musicgym works as an installed package, away from its source checkout.

A wheel is built from a copy of the project (so no ``build/`` or ``*.egg-info`` lands in the
checkout, and parallel runs do not share one) and installed with ``pip install --target`` into a
temporary folder. Everything else runs in a child interpreter started with ``-S -I``: no
``site`` processing, so the editable install's ``.pth`` (which puts the checkout's ``src`` on the
path) is never read, and no ``PYTHONPATH``; the child's path is the wheel's folder, then this
interpreter's site-packages for the dependencies, and the child checks that ``musicgym`` really
comes from the wheel and that no ``src`` folder is on its path. The console script is the
wheel's own entry point (read from its metadata), started from a temporary working folder.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from musicgym.datapath import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]

# The child's start: the wheel first, then the dependencies; ``musicgym`` must come from the
# wheel. ``python -S -I BOOT TARGET SITE_DIRS script ARGS`` runs the wheel's console script,
# ``... code SOURCE`` runs Python source.
BOOT = textwrap.dedent("""
    import os, sys
    target, site_dirs, mode, *rest = sys.argv[1:]
    sys.path[:0] = [target]
    sys.path += site_dirs.split(os.pathsep)
    import musicgym
    from importlib.metadata import distribution
    assert musicgym.__file__.startswith(target), musicgym.__file__
    assert not [p for p in sys.path if p.rstrip("/").endswith("src")], sys.path
    dist = distribution("musicgym")
    assert str(dist.locate_file("")).startswith(target), dist.locate_file("")
    if mode == "script":
        (entry,) = [e for e in dist.entry_points
                    if e.group == "console_scripts" and e.name == "musicgym"]
        sys.argv = ["musicgym", *rest]
        sys.exit(entry.load()())
    exec(compile(rest[0], "<check>", "exec"), {"__name__": "__main__"})
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, folder it is installed in, a runner of the child interpreter)."""
    tmp = tmp_path_factory.mktemp("package")
    project = tmp / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(project), "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp / "dist")], check=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("musicgym-*.whl")
    target = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, timeout=300)
    boot = tmp / "boot.py"
    boot.write_text(BOOT)
    site_dirs = os.pathsep.join(site.getsitepackages())
    cwd = tmp / "elsewhere"
    cwd.mkdir()

    def run(mode: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith(("MUSICGYM_DATA_DIR", "MUSICGYM_DUETS_DIR",
                                        "MUSICGYM_ONESHOTS_DIR", "PYTHON"))}
        environ.update(env or {})
        return subprocess.run([sys.executable, "-S", "-I", str(boot), str(target), site_dirs,
                               mode, *args], cwd=cwd, env=environ, capture_output=True,
                              text=True, timeout=600)

    return wheel, target, run


@pytest.mark.slow
def test_wheel_holds_the_package_data(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    defaults = sorted(p.name for p in (ROOT / "src/musicgym/train/defaults").glob("*.yaml"))
    assert defaults and all(f"musicgym/train/defaults/{n}" in names for n in defaults)
    assert "musicgym/datapath.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/")) or "__pycache__" in n]
    assert any(n.endswith("entry_points.txt") for n in names)


@pytest.mark.slow
def test_console_script_version_and_train(installed):
    _, _, run = installed
    proc = run("script", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "musicgym 0.1.0"
    proc = run("script", "train", "musicgym/Kick-v0", "--steps", "64", "--n-envs", "2",
               "--eval-every", "64", "--no-progress", "--runs", "runs")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (Path(installed[1]).parent / "elsewhere" / "runs").iterdir()
    assert (run_dir / "config.yaml").is_file() and (run_dir / "model.zip").is_file()
    assert (run_dir / "evaluations.json").is_file()


@pytest.mark.slow
def test_envs_render_and_data_setting(installed):
    _, _, run = installed
    code = """
import gymnasium as gym
import numpy as np
import musicgym
from musicgym.datapath import checkout_data_dir
from musicgym.errors import AccompanyConfigError, DataNotFoundError
from musicgym.follow.corpus import brahms_takes
from musicgym.synth import render

assert checkout_data_dir() is None  # an installed copy has no checkout around it
ids = [i for i in gym.registry if i.startswith("musicgym/")]
assert "musicgym/Kick-v0" in ids and "musicgym/Accompany-v0" in ids, ids
env = gym.make("musicgym/Kick-v0")
env.reset(seed=0)
print("reward", env.step(env.action_space.sample())[1])
audio = render("o: sin 440", seconds=0.1)
assert audio.shape == (2, 4410) and np.abs(audio).max() > 0.5
try:
    brahms_takes()
except AccompanyConfigError as exc:
    assert "MUSICGYM_DATA_DIR" in str(exc), exc
    print("no data:", exc)
else:
    raise AssertionError("the duets were found without MUSICGYM_DATA_DIR")
"""
    proc = run("code", code)
    assert proc.returncode == 0, proc.stderr
    assert "no data: no data folder for the real duets: set MUSICGYM_DATA_DIR" in proc.stdout


@pytest.mark.slow
def test_real_duets_through_musicgym_data_dir(installed):
    data = shared_data_dir()
    if data is None or not (data / "duets").is_dir():
        pytest.skip("the real duets are not here (set MUSICGYM_DATA_DIR)")
    _, _, run = installed
    code = """
import gymnasium as gym
import numpy as np
import musicgym

env = gym.make("musicgym/Accompany-v0", split="test", follower="oracle")
obs, info = env.reset(seed=0, options={"take": 6})
obs, reward, terminated, truncated, info = env.step(np.zeros(1, dtype=np.float32))
print("take", info.get("take"), "ok")
"""
    proc = run("code", code, env={"MUSICGYM_DATA_DIR": str(data)})
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


@pytest.mark.slow
def test_missing_glicol_engine_says_how_to_install_it(installed, tmp_path):
    _, _, run = installed
    patch = Path(installed[1]).parent / "elsewhere" / "tone.glicol"
    patch.write_text("o: sin 440\n")
    nowhere = tmp_path / "no-glicol"
    proc = run("script", "render", str(patch), "--seconds", "0.1", "--backend", "glicol",
               "--file", str(tmp_path / "tone.wav"), env={"MUSICGYM_GLICOL_DIR": str(nowhere)})
    assert proc.returncode != 0
    assert f"npm install --prefix {nowhere} glicol@0.4.0" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
