"""Compare frgan.evaluate runs on expression fidelity: one column per run, the best of each row
in bold. Prints the table; with --docs also writes it as a results page.

    python scripts/expression_table.py NAME=EVAL_FOLDER [NAME=EVAL_FOLDER ...] [--note TEXT]
        [--docs [FOLDER]]

Each EVAL_FOLDER is an output folder of `python -m frgan.evaluate` (its metrics.json; the
expression rows need the expression analysis, on in `evaluation=no_fvd`). A column shows the
run's model, the last method evaluate lists (a two-stage checkpoint: the refined clip). --docs
writes FOLDER/comparison.md and comparison.json (default docs/expression/) under a header that
states the command, commit, machine and date. A figure a run lacks is shown as "—"; "n/a" is the
report's: the figure exists but is undefined (an amplitude where the truth hardly moves).
--note adds a paragraph above the runs (repeatable): a column's training command is what the
run was started with, and a default may since have changed.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from frgan.errors import ConfigError
from frgan.evaluation.expression_report import (
    MEASURE_LABELS,
    ROW_LABELS,
    format_calibrated,
    format_ratio,
)
from frgan.evaluation.expression_summary import COPY, NOISE_FLOOR
from frgan.evaluation_report import format_cell
from frgan.inference.model import run_folder, training_config_path
from frgan.metrics import registry
from frgan.utils.cli import report_user_errors
from frgan.utils.results_page import (
    Table,
    add_docs_option,
    named_folder,
    text_table,
    write_results_page,
)

DOCS_EXPRESSION = Path("docs/expression")
PAGE = "comparison"
MISSING = "—"  # the run's metrics.json lacks the figure
HIGHER, LOWER, NEAR_ONE = "higher", "lower", "closest to 1"
EXPRESSIONS = ("surprise", "anger", "fear", "happiness", "disgust", "sadness")
CROSS_EXPRESSIONS = ("happiness", "surprise")
DISTANCE_FORMAT = "{:.2f}"  # as the report's distance tables
ABSENT = object()


@dataclass(frozen=True)
class Run:
    """One evaluate output folder: its name on the page and its metrics.json."""

    name: str
    folder: Path
    metrics: dict[str, Any]

    @property
    def method(self) -> str | None:
        """The model's method the column shows: the last one evaluate lists, copying aside."""
        methods = [m for m in self.metrics.get("methods") or {} if m != COPY]
        return methods[-1] if methods else None

    def find(self, *path: str | None) -> Any:
        """The value at `path` in metrics.json; ABSENT where a key is missing."""
        value: Any = self.metrics
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return ABSENT
            value = value[key]
        return value


@dataclass(frozen=True)
class Value:
    """A cell: `number` is what the row compares (None: undefined, never the best)."""

    number: float | None
    text: str


Read = Callable[[Run], Value | None]  # None: the run lacks the figure


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    better: str  # HIGHER, LOWER or NEAR_ONE
    read: Read
    references: tuple[tuple[str, Read], ...] = ()  # baselines: in the label when runs agree


def _number(value: Any, text: str) -> Value:
    finite = isinstance(value, (int, float)) and math.isfinite(value)
    return Value(float(value) if finite else None, text)


def _frame_metric(key: str, method: str | None = None) -> Read:
    """A metric of the registry for the run's method (or `method`), as evaluate's table."""
    metric = registry.get(key)

    def read(run: Run) -> Value | None:
        value = run.find("methods", method or run.method, key)
        return None if value is ABSENT else _number(value, format_cell(value, metric.fmt))

    return read


def _gain(key: str) -> Read:
    """How far the method beats copying the first frame on a registry metric."""
    metric = registry.get(key)

    def read(run: Run) -> Value | None:
        model, copy = run.find("methods", run.method, key), run.find("methods", COPY, key)
        if model is ABSENT or copy is ABSENT:
            return None
        gain = None if model is None or copy is None else metric.gain_over(model, copy)
        return _number(gain, format_cell(gain, metric.fmt))

    return read


def _distance(group: str, row: str | None = None) -> Read:
    """Landmark distance to the re-detected truth after the similarity fit, for the method (or
    the report's `row`: copy, noise floor)."""

    def read(run: Run) -> Value | None:
        where = ("expression", "same_identity", "distances", row or run.method, group, "aligned")
        value = run.find(*where)
        return None if value is ABSENT else _number(value, format_cell(value, DISTANCE_FORMAT))

    return read


def _same_identity(*path: str) -> Callable[[Run], Any]:
    return lambda run: run.find("expression", "same_identity", "amplitude", run.method, *path)


def _amplitude(find: Callable[[Run], Any]) -> Read:
    def read(run: Run) -> Value | None:
        summary = find(run)
        if not isinstance(summary, dict):
            return None
        return _number(summary.get("ratio"), format_ratio(summary))

    return read


def _blinks(run: Run) -> Value | None:
    blinks = _same_identity("blinks")(run)
    if not isinstance(blinks, dict) or "closed" not in blinks or "visible" not in blinks:
        return None
    share = blinks["closed"] / blinks["visible"] if blinks["visible"] else None
    return _number(share, f"{blinks['closed']} of {blinks['visible']}")


def _cross_mouth(expression: str | None) -> Read:
    """Cross identity: the mouth opening's calibrated ratio, overall or for a driver
    expression."""
    group = ("overall",) if expression is None else ("per_expression", expression)

    def read(run: Run) -> Value | None:
        amplitude = ("expression", "cross_identity", "amplitude", run.method, "mouth_opening")
        summary = run.find(*amplitude, *group)
        if not isinstance(summary, dict):
            return None
        return _number(summary.get("calibrated_ratio"), format_calibrated(summary))

    return read


def _fit_time(run: Run) -> Value | None:
    """The training run's fit time, its training steps and validation beside it: the run's own
    timing.json (frgan/callbacks/timing.py), beside its checkpoint's run folder."""
    checkpoint = (run.metrics.get("protocol") or {}).get("checkpoint")
    if not checkpoint:
        return None
    path = run_folder(Path(checkpoint)) / "timing.json"
    try:
        timing = json.loads(path.read_text())
        fit = float(timing["fit_s"])
        steps, validation = (float(timing["seconds"][key]) for key in ("steps", "validation"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    text = f"{int(fit // 60)} min {fit % 60:.0f} s (steps {steps:.0f} s, validation {validation:.0f} s)"
    return _number(fit, text)


def comparison_rows(runs: Sequence[Run]) -> list[Row]:
    """The rows of the comparison, labels from the registry and the report."""
    copy_label = ROW_LABELS[COPY]
    mouth = MEASURE_LABELS["mouth_opening"]
    rows = []
    for key in ("psnr_moving", "psnr_mouth", "psnr_eyes_brows", "psnr_face_rest"):
        rows.append(
            Row(
                key,
                registry.get(key).header,
                HIGHER,
                _frame_metric(key),
                ((copy_label, _frame_metric(key, COPY)),),
            )
        )
    for key in ("psnr_moving", "psnr_mouth", "psnr_eyes_brows"):
        metric = registry.get(key)
        label = f"{metric.label} gain over {copy_label} {metric.unit} ↑"
        rows.append(Row(f"{key}_gain", label, HIGHER, _gain(key)))
    units = {run.find("expression", "distance_unit") for run in runs} - {ABSENT}
    unit = units.pop() if len(units) == 1 else "pixels"
    rows.append(
        Row(
            "lips_distance_aligned",
            f"lips distance to the truth, pose-aligned, {unit} ↓",
            LOWER,
            _distance("lips"),
            (
                (copy_label, _distance("lips", COPY)),
                (ROW_LABELS[NOISE_FLOOR], _distance("lips", NOISE_FLOOR)),
            ),
        )
    )
    rows.append(
        Row(
            "mouth_opening",
            f"{mouth} amplitude, overall",
            NEAR_ONE,
            _amplitude(_same_identity("mouth_opening", "overall")),
        )
    )
    for expression in EXPRESSIONS:
        rows.append(
            Row(
                f"mouth_opening_{expression}",
                f"{mouth} amplitude, {expression}",
                NEAR_ONE,
                _amplitude(_same_identity("mouth_opening", "per_expression", expression)),
            )
        )
    for measure in ("eye_opening", "brow_height"):
        rows.append(
            Row(
                measure,
                f"{MEASURE_LABELS[measure]} amplitude, overall",
                NEAR_ONE,
                _amplitude(_same_identity(measure, "overall")),
            )
        )
    rows.append(
        Row(
            "lowered_brows",
            "lowered brows amplitude",
            NEAR_ONE,
            _amplitude(_same_identity("lowered_brows")),
        )
    )
    rows.append(
        Row(
            "blinks_closed",
            "blink frames on which the eyes close (of those where the truth's do)",
            HIGHER,
            _blinks,
        )
    )
    cross = f"cross identity: {mouth} over the retargeted structure's, calibrated"
    rows.append(Row("cross_mouth_opening", f"{cross}, overall", NEAR_ONE, _cross_mouth(None)))
    for expression in CROSS_EXPRESSIONS:
        rows.append(
            Row(
                f"cross_mouth_opening_{expression}",
                f"{cross}, driver {expression}",
                NEAR_ONE,
                _cross_mouth(expression),
            )
        )
    rows.append(
        Row(
            "fit_time",
            "training time, fit (the run's timing.json, on the machine as the run found it)",
            LOWER,
            _fit_time,
        )
    )
    return rows


def score(better: str, number: float) -> float:
    """Larger is better."""
    return {HIGHER: number, LOWER: -number, NEAR_ONE: -abs(number - 1.0)}[better]


def best_columns(better: str, values: Sequence[Value | None]) -> set[int]:
    """The columns holding the row's best value, with every column that reads the same (a tie
    as printed); none when fewer than two runs have a value or all of them tie."""
    scored = {
        i: score(better, v.number) for i, v in enumerate(values) if v and v.number is not None
    }
    if len(scored) < 2:
        return set()
    top = max(scored.values())
    texts = {values[i].text for i, s in scored.items() if math.isclose(s, top, abs_tol=1e-9)}
    best = {i for i in scored if values[i].text in texts}
    return best if len(best) < len(scored) else set()


def row_cells(row: Row, runs: Sequence[Run]) -> tuple[str, list[str], dict[str, Any]]:
    """The row's label and cells (best in bold), and its figures for the JSON."""
    values = [row.read(run) for run in runs]
    best = best_columns(row.better, values)
    cells = [
        MISSING if v is None else f"**{v.text}**" if i in best else v.text
        for i, v in enumerate(values)
    ]
    label_parts, references = [], {}
    for name, read in row.references:
        found = {run.name: read(run) for run in runs}
        references[name] = {r: None if v is None else v.number for r, v in found.items()}
        texts = {v.text for v in found.values() if v is not None}
        if len(texts) == 1:
            label_parts.append(f"{name} {texts.pop()}")
        elif texts:  # the runs' baselines differ: each cell carries its own
            cells = [
                cell if v is None else f"{cell} ({name} {v.text})"
                for cell, v in zip(cells, found.values(), strict=True)
            ]
    label = f"{row.label} ({', '.join(label_parts)})" if label_parts else row.label
    figures = {
        "label": label,
        "better": row.better,
        "values": {
            run.name: None if v is None else v.number for run, v in zip(runs, values, strict=True)
        },
        **({"references": references} if references else {}),
    }
    return label, cells, figures


# overrides that only say where a run writes or how it shows progress
_COSMETIC_OVERRIDES = ("hydra.", "logger=", "callbacks.progress_bar.", "paths.", "extras.")


def training_command(checkpoint: Path) -> str | None:
    """`python -m frgan.train <overrides>` as the checkpoint's training run recorded them
    (.hydra/overrides.yaml beside its config), less the cosmetic ones; None when not recorded."""
    path = training_config_path(checkpoint).with_name("overrides.yaml")
    if not path.is_file():
        return None
    overrides = OmegaConf.load(path)
    kept = [str(o) for o in overrides if not str(o).startswith(_COSMETIC_OVERRIDES)]
    return " ".join(["python -m frgan.train", *kept])


def describe_run(run: Run) -> str:
    """A page line: where the run's figures come from and the evaluation's protocol."""
    protocol = run.metrics.get("protocol") or {}
    checkpoint = protocol.get("checkpoint", "unknown checkpoint")
    label = run.find("methods", run.method, "label")
    line = f"- **{run.name}**: `{run.folder}`, checkpoint `{checkpoint}`"
    line += f" ({label if label is not ABSENT else run.method})"
    command = training_command(Path(checkpoint))
    if command:
        line += f", trained with `{command}`"
    subjects = protocol.get("test_subjects")
    if subjects is not None:
        line += f"; test subjects {', '.join(map(str, subjects))}"
    if "videos" in protocol:
        line += (
            f": {protocol['videos']} videos ({protocol.get('takes')} test takes), "
            f"{protocol.get('frames_per_video')} frames each, {protocol.get('resolution')} px"
        )
    expression = run.metrics.get("expression") or {}
    same = expression.get("same_identity")
    if same is not None:
        line += f"; {same.get('pairs')} apex pairs, {same.get('blink_frames')} blink frames"
    else:
        line += f"; no expression analysis ({expression.get('reason', 'not in metrics.json')})"
    cross = expression.get("cross_identity")
    if cross is not None:
        line += f"; cross identity: {cross.get('pairs')} frames of {cross.get('runs')} runs"
    return line


def load_run(argument: str) -> Run:
    name, folder = named_folder(argument, "EVAL_FOLDER")
    path = folder / "metrics.json"
    if not path.is_file():
        raise ConfigError(
            f"{name}: no metrics.json in {folder}; give the output folder of "
            "`python -m frgan.evaluate ckpt=<run> evaluation=no_fvd out=<folder>`"
        )
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{name}: {path} cannot be read as JSON ({error})") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("methods"), dict):
        raise ConfigError(f"{name}: {path} is not a frgan.evaluate metrics.json (no methods)")
    return Run(name, folder, metrics)


def comparison(runs: Sequence[Run]) -> tuple[Table, dict[str, Any]]:
    headers = ["figure", *(run.name for run in runs)]
    rows, figures = [], {}
    for row in comparison_rows(runs):
        label, cells, row_figures = row_cells(row, runs)
        rows.append([label, *cells])
        figures[row.key] = row_figures
    caption = (
        "Test split of each run, as `frgan.evaluate` measured it (its report.md has the "
        "intervals and every breakdown). Amplitudes: the generated change over the true change, "
        "1 = the truth's (cross identity: over the retargeted structure's, calibrated by the "
        "detector's reading of true faces); n/a: the truth hardly moves there; —: not in the "
        "run's metrics.json. Bold: the best of the row (PSNR, gains, blinks: highest; distance: "
        "lowest; amplitudes: closest to 1)."
    )
    return Table(headers, rows, caption), figures


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="NAME=EVAL_FOLDER",
        help="a column: its name and a frgan.evaluate output folder",
    )
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="TEXT",
        help="a paragraph for the page above its runs, e.g. what a column's command trained when "
        "it ran (repeatable)",
    )
    add_docs_option(parser, DOCS_EXPRESSION)
    return parser.parse_args(argv)


@report_user_errors
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_arguments(argv)
    runs = [load_run(argument) for argument in args.runs]
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise ConfigError(f"run names must differ: {', '.join(names)}")
    table, figures = comparison(runs)
    sources = [describe_run(run) for run in runs]
    print(text_table(table.headers, table.rows))
    print("\n".join(sources))
    if args.docs:
        run_figures = {
            run.name: {
                "folder": str(run.folder),
                "method": run.method,
                "protocol": run.metrics.get("protocol"),
            }
            for run in runs
        }
        page = write_results_page(
            args.docs,
            PAGE,
            "Expression fidelity: evaluated runs side by side",
            [table],
            {"runs": run_figures, "rows": figures},
            notes=[*args.note, "Runs:\n\n" + "\n".join(sources)],
        )
        print(f"wrote {page}")


if __name__ == "__main__":
    main()
