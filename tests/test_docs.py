"""The documentation stays true: every relative link of README.md and docs/ reaches a file (and
heading), the README opens with its two commands, every results page says how it was made, and
the helper that writes those pages records command, commit, machine and date."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from frgan.utils.files import is_temporary
from frgan.utils.results_page import (
    PROVENANCE_FIELDS,
    Table,
    git_commit,
    markdown_table,
    text_table,
    write_results_page,
)

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> str:
    """The text outside fenced code blocks (links there are examples, not links)."""
    lines, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            inside = not inside
        elif not inside:
            lines.append(line)
    return "\n".join(lines)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces to
    '-' (each space, so '  ' gives '--')."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, seen = set(), {}
    for line in prose(page.read_text()).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = anchor(match.group(1))
            count = seen.get(slug, 0)
            found.add(slug if count == 0 else f"{slug}-{count}")
            seen[slug] = count + 1
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target} (no such heading in {linked.name})")
    return broken


def test_the_anchor_rule_matches_githubs():
    assert anchor("Data: prepare shards, data config") == "data-prepare-shards-data-config"
    assert anchor("Your own videos (`data=videos`)") == "your-own-videos-datavideos"
    assert anchor("Structure meshes: 68 or 468 points") == "structure-meshes-68-or-468-points"


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n[ok](other.md#other-page) [self](#title) [web](https://example.org/x)\n"
        "[gone](missing.md) [bad heading](other.md#nothing) [bad self](#nowhere)\n"
        "```\n[in code](not-a-link.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md (no such file)",
        "other.md#nothing (no such heading in other.md)",
        "#nowhere (no such heading in page.md)",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_heading(page):
    assert broken_links(page) == []


def test_the_contents_list_names_every_section_of_the_readme():
    text = prose((REPO / "README.md").read_text())
    sections = [anchor(h) for h in re.findall(r"^## (.+)$", text, re.MULTILINE)]
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"\(#([^)]+)\)", contents)
    assert listed == [s for s in sections if s != "contents"]


def test_the_readme_opens_with_its_two_commands():
    text = (REPO / "README.md").read_text()
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == ["make train", "make test"]
    assert text.index("```bash") < text.index("## Contents")


RESULTS_PAGES = sorted(p for p in (REPO / "docs").rglob("*.md") if p.with_suffix(".json").exists())


@pytest.mark.parametrize("page", RESULTS_PAGES, ids=lambda p: str(p.relative_to(REPO / "docs")))
def test_every_results_page_says_how_it_was_made(page):
    header = page.read_text().split("\n|", 1)[0]
    for field in PROVENANCE_FIELDS:
        assert re.search(rf"^- {field}: \S", header, re.MULTILINE), f"{page.name}: no {field}"
    assert re.search(r"^- command: `python scripts/\w+\.py", header, re.MULTILINE)
    figures = json.loads(page.with_suffix(".json").read_text())
    assert set(PROVENANCE_FIELDS) <= set(figures["provenance"])
    assert figures["tables"], f"{page.name}: no table"


def test_markdown_tables_keep_their_cells():
    lines = markdown_table(["case", "ms"], [["a|b", 1.5]])
    assert lines == ["| case | ms |", "| --- | --- |", "| a\\|b | 1.5 |"]
    with pytest.raises(ValueError, match="2 cells"):
        markdown_table(["case", "ms"], [["only one"]])
    assert text_table(["case", "ms"], [["long case", "1"]]).splitlines()[2] == "long case   1"


def test_a_page_states_command_commit_machine_and_date(tmp_path):
    table = Table(["case", "maps/s"], [["68 landmarks", "26785"]], "Maps per second.")
    page = write_results_page(
        tmp_path / "bench",
        "render",
        "Renderer",
        [table],
        {"maps_per_s": 26785.0},
        notes=["A note."],
        command=["python", "scripts/bench_render.py", "--docs", "a folder"],
    )
    text = page.read_text()
    assert text.startswith("# Renderer\n")
    assert "- command: `python scripts/bench_render.py --docs 'a folder'`" in text
    assert re.search(r"^- commit: (\w{7,}(\+dirty)?|unknown .*)$", text, re.MULTILINE)
    assert re.search(r"^- machine: .+, \d+ cores, (no GPU|GPU .+); torch ", text, re.MULTILINE)
    assert re.search(r"^- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC$", text, re.MULTILINE)
    assert "| 68 landmarks | 26785 |" in text and text.rstrip().endswith("A note.")
    figures = json.loads((tmp_path / "bench" / "render.json").read_text())
    assert figures["figures"] == {"maps_per_s": 26785.0}
    assert figures["tables"][0]["rows"] == [["68 landmarks", "26785"]]
    assert not [p for p in (tmp_path / "bench").iterdir() if is_temporary(p)]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_commit_is_short_marked_dirty_and_absent_outside_git(tmp_path, monkeypatch):
    assert git_commit(tmp_path) is None  # not a checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run([*git, "add", "a.txt"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=tmp_path, check=True)
    clean = git_commit(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{7,}", clean)
    (tmp_path / "untracked.txt").write_text("x")
    assert git_commit(tmp_path) == clean  # untracked files do not change what ran
    (tmp_path / "a.txt").write_text("2")
    assert git_commit(tmp_path) == clean + "+dirty"
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no git at all
    assert git_commit(tmp_path) is None


def test_a_benchmark_writes_its_page_and_exits(tiny_data_dir, tmp_path):
    # bench_data's loaders keep persistent workers that ignore SIGTERM: the script once printed
    # its figures and then never exited, waiting on them
    command = [
        sys.executable,
        "scripts/bench_data.py",
        "--raw-dir",
        str(tiny_data_dir / "synthetic" / "raw"),
    ]
    command += ["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "data.json")]
    command += ["--image-size", "64", "--batch-size", "4", "--workers", "1", "--epochs", "1"]
    command += ["--modes", "memory", "--videos", "0", "--docs", str(tmp_path / "pages")]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = (tmp_path / "pages" / "data.md").read_text()
    assert "- command: `python scripts/bench_data.py --raw-dir" in page
    assert re.search(r"^\| memory \| \d+ \|", page, re.MULTILINE)
    assert json.loads((tmp_path / "pages" / "data.json").read_text())["figures"]["modes"]["memory"]
