"""The repository ships every source file: nothing under frgan/, conf/, tests/ or scripts/ is
git-ignored (a bare `data/` pattern once hid frgan/data and conf/data from every clone)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_SUFFIXES = {".py", ".pyx", ".yaml"}


def test_no_source_file_is_git_ignored():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    sources = [
        str(path.relative_to(REPO))
        for folder in ("frgan", "conf", "tests", "scripts")
        for path in (REPO / folder).rglob("*")
        if path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts
    ]
    assert any(s.startswith("frgan/data/") for s in sources) and any(
        s.startswith("conf/data/") for s in sources
    )
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *sources], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert ignored == [], f"git ignores source files: {ignored}"
