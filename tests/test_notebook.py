"""examples/tutorial.ipynb runs from top to bottom (so it never rots) and plays and shows things.

The notebook is executed with nbclient in a kernel on this interpreter: a kernelspec written to
a temporary folder on ``JUPYTER_PATH`` names ``sys.executable`` explicitly, so neither a user's
own ``python3`` kernelspec nor the ``PATH`` can start another Python (one without musicgym, or
another checkout's).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from musicgym.follow.duets import BRAHMS, default_duets_dir

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tutorial.ipynb"
KERNEL = "musicgym-tutorial-test"


def _data(outputs: list, kind: str) -> list[str]:
    """The ``kind`` (a MIME type) contents among a cell's display outputs."""
    return [o["data"][kind] for o in outputs if kind in o.get("data", {})]


def test_notebook_is_committed_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert NOTEBOOK.stat().st_size < 64_000


@pytest.mark.slow
def test_notebook_runs_and_shows_sounds_and_pictures(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("stable_baselines3")
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "musicgym test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on an error

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    by_section = {}
    section = None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            section = cell.source.splitlines()[0][3:].split(":")[0]
        elif cell.cell_type == "code" and section:
            by_section.setdefault(section, []).extend(cell.outputs)
    players = {name: [h for h in _data(outs, "text/html") if "<audio" in h]
               for name, outs in by_section.items()}
    pictures = {name: _data(outs, "image/png") for name, outs in by_section.items()}
    for name in ("1. The engine", "2. Sound matching", "3. Composition", "4. Improvisation"):
        assert players[name], f"no audio player in section {name!r}"
        assert pictures[name], f"no picture in section {name!r}"
    assert len(players["2. Sound matching"]) == 4  # target, agent, random search, CMA-ES
    accompaniment = "5. Accompaniment"
    if (default_duets_dir() / BRAHMS).is_dir():
        assert players[accompaniment] and pictures[accompaniment]
    else:
        text = "".join(o.get("text", "") for o in by_section[accompaniment])
        assert "skipped, the real duets are not here" in text
