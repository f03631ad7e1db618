"""The README's Python examples run as written (in a temporary folder holding a kick.wav)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import soundfile as sf

from musicgym.follow.duets import default_duets_dir

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    code = BLOCKS[index]
    if "Accompany-v0" in code and not default_duets_dir().is_dir():
        pytest.skip(f"the duets are not at {default_duets_dir()}: set MUSICGYM_DATA_DIR")
    from musicgym.envs.presets import kick_target

    sf.write(tmp_path / "kick.wav", kick_target(), 44100)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md block {index}", "exec"), {"__name__": "readme"})
