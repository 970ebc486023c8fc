"""Results pages for docs/: figures a script measured, as Markdown tables under a header that
says how they were made (the command, the git commit, the machine, the UTC date), and the same
figures as JSON beside the page. A page is only ever written by the script that measured it, so
the README links pages instead of carrying typed copies of their numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from frgan.errors import ConfigError
from frgan.utils.files import write_json_atomic, write_text_atomic

DOCS_BENCH = Path("docs/bench")  # where benchmarks put their pages, relative to the repository
REPOSITORY = Path(__file__).resolve().parents[2]
PROVENANCE_FIELDS = ("command", "commit", "machine", "date")  # each page's header states these


@dataclass(frozen=True)
class Table:
    """One Markdown table of a page: column names, rows of cells (written with str()), and an
    optional sentence above it saying what the rows are."""

    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""
    notes: Sequence[str] = field(default_factory=tuple)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Lines of a Markdown table; a `|` inside a cell is escaped so it cannot split the cell."""
    if any(len(row) != len(headers) for row in rows):
        raise ValueError(f"every row needs {len(headers)} cells, one per column: {list(headers)}")

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return [line(headers), "|" + " --- |" * len(headers), *(line(row) for row in rows)]


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as plain text for a terminal: columns padded, the first left-aligned."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return "\n".join([line(cells[0]), "-" * len(line(cells[0])), *map(line, cells[1:])])


def _git(folder: Path, *arguments: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *arguments], cwd=folder, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(folder: str | Path = REPOSITORY) -> str | None:
    """The short hash of HEAD in `folder`'s git checkout, "+dirty" when tracked files differ from
    it; None without git or outside a checkout."""
    commit = _git(Path(folder), "rev-parse", "--short", "HEAD")
    if not commit:
        return None
    changes = _git(Path(folder), "status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if changes else "")


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (/proc/cpuinfo), else what Python knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures were measured on; the load average matters on a shared machine."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": None if load is None else round(load[0], 2),
    }


def describe_machine(about: dict[str, Any]) -> str:
    text = f"{about['cpu']}, {about['cores']} cores"
    text += f", GPU {about['gpu']}" if about["gpu"] else ", no GPU"
    text += f"; torch {about['torch']}, Python {about['python']}"
    if about.get("load_average") is not None:
        text += f"; load average {about['load_average']} when the page was written"
    return text


def provenance(command: Sequence[str] | None = None) -> dict[str, Any]:
    """The command (this process's, as typed: `python <script> <arguments>`), commit, machine and
    UTC date of a page."""
    command = ["python", *sys.argv] if command is None else list(command)
    return {
        "command": shlex.join(command),
        "commit": git_commit(),
        "machine": machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def provenance_lines(about: dict[str, Any]) -> list[str]:
    """The Markdown list a page (or a report) opens with: command, commit, machine, date."""
    return [
        f"- command: `{about['command']}`",
        f"- commit: {about['commit'] or 'unknown (not run from a git checkout)'}",
        f"- machine: {describe_machine(about['machine'])}",
        f"- date: {about['date']}",
    ]


def page_markdown(
    title: str, tables: Sequence[Table], about: dict[str, Any], notes: Sequence[str] = ()
) -> str:
    lines = [
        f"# {title}",
        "",
        "Written by the script that measured it; do not edit by hand, run the command again.",
        "",
        *provenance_lines(about),
    ]
    for table in tables:
        lines += ["", *([table.caption, ""] if table.caption else [])]
        lines += markdown_table(table.headers, table.rows)
        lines += [line for note in table.notes for line in ("", note)]
    lines += [line for note in notes for line in ("", note)]
    return "\n".join(lines) + "\n"


def write_results_page(
    folder: str | Path,
    name: str,
    title: str,
    tables: Sequence[Table],
    figures: dict[str, Any],
    notes: Sequence[str] = (),
    command: Sequence[str] | None = None,
) -> Path:
    """Write <folder>/<name>.md (the tables under their provenance) and <folder>/<name>.json
    ({"provenance", "tables", "figures"}), each atomically; returns the page's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    about = provenance(command)
    write_json_atomic(
        folder / f"{name}.json",
        {
            "provenance": about,
            "tables": [
                {
                    "caption": t.caption,
                    "headers": list(t.headers),
                    "rows": [list(r) for r in t.rows],
                }
                for t in tables
            ],
            "figures": figures,
        },
        default=str,
    )
    return write_text_atomic(folder / f"{name}.md", page_markdown(title, tables, about, notes))


def add_docs_option(parser: argparse.ArgumentParser, folder: Path = DOCS_BENCH) -> None:
    """`--docs [FOLDER]`: also write the figures as a results page (default `folder`)."""
    parser.add_argument(
        "--docs",
        nargs="?",
        const=folder,
        default=None,
        type=Path,
        metavar="FOLDER",
        help=f"also write the figures as a Markdown page + JSON into FOLDER (default {folder})",
    )


def named_folder(argument: str, what: str) -> tuple[str, Path]:
    """(name, folder) of a `NAME=FOLDER` argument naming one column of a comparison page;
    ConfigError saying what the folder should be (`what`) when the form is wrong."""
    name, sep, folder = argument.partition("=")
    if not sep or not name or not folder:
        raise ConfigError(f"{argument!r}: give each run as NAME={what}, e.g. default=<folder>")
    return name, Path(folder)
