"""The repository ships every source file: nothing under frgan/, conf/, tests/ or scripts/ is
git-ignored (a bare `data/` pattern once hid frgan/data and conf/data from every clone). The
package's imports form no circle (scripts/import_graph.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import load_script

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


def _import_graph():
    return load_script("import_graph")


def test_the_package_has_no_import_circle():
    graph = _import_graph()
    modules = graph.module_files(REPO)
    found = graph.circles(graph.imports(modules, graph.extension_modules(REPO)))
    assert len(modules) > 50 and "frgan.metrics.registry" in modules
    assert found == []


def test_the_circle_check_sees_imports_inside_functions_and_back_up_a_package(tmp_path):
    package = tmp_path / "frgan"
    (package / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "a.py": "from frgan.b import run\n",
        "b.py": "def run():\n    from frgan import a\n",
        "c.py": "import frgan.sub.d\n",
        "sub/__init__.py": "from frgan.sub.d import x\n",
        "sub/d.py": "def x():\n    from frgan.sub import y\n",
        "sub/_ext.pyx": "",
        "sub/e.py": "from frgan.sub import _ext\n",
    }
    for name, text in sources.items():
        (package / name).write_text(text)
    graph = _import_graph()
    edges = graph.imports(graph.module_files(tmp_path), graph.extension_modules(tmp_path))
    assert edges["frgan.c"] == {"frgan.sub.d"} and edges["frgan.sub.e"] == {"frgan.sub._ext"}
    assert graph.circles(edges) == [["frgan.a", "frgan.b"], ["frgan.sub", "frgan.sub.d"]]
