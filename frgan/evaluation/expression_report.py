"""The expression analysis in words and pictures: the key lines frgan.evaluate prints, the
report.md section and its plots (expression_amplitude.png, expression_subjects.png,
expression_distances.png, cross_identity.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from frgan.metrics.expression import MEASURES, POINT_GROUPS
from frgan.utils.files import atomic_path

MEASURE_LABELS = {
    "mouth_opening": "mouth opening",
    "eye_opening": "eye opening",
    "brow_height": "brow height",
}
ROW_LABELS = {"copy_first_frame": "copy first frame", "noise_floor": "noise floor (JPEG)"}


def format_ratio(summary: dict | None, interval: bool = False) -> str:
    """0.55x, or with its 95% bootstrap interval 0.55x [0.48, 0.62]; n/a without a ratio."""
    if not summary or summary.get("ratio") is None:
        return "n/a"
    text = f"{summary['ratio']:.2f}x"
    if interval and summary.get("ratio_low") is not None:
        text += f" [{summary['ratio_low']:.2f}, {summary['ratio_high']:.2f}]"
    return text


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def format_calibrated(summary: dict | None) -> str:
    """Cross identity: the calibrated ratio, 1.05x; n/a without one."""
    return format_ratio({"ratio": None if summary is None else summary.get("calibrated_ratio")})


def _both(summary: dict) -> str:
    """Cross identity: ratio/calibrated ratio."""
    return f"{format_ratio(summary)}/{format_calibrated(summary)}"


def _pair(cell: dict) -> str:
    raw, aligned = cell.get("raw"), cell.get("aligned")
    if raw is None or aligned is None:
        return "n/a"
    return f"{raw:.2f}/{aligned:.2f}"


def _missed(detection: dict) -> str:
    return ", ".join(f"{name} {d['missed']}/{d['frames']}" for name, d in detection.items())


def expression_key_lines(expression: dict[str, Any]) -> list[str]:
    """The figures to read first, one line each (printed by frgan.evaluate)."""
    if expression["status"] != "computed":
        return [f"Expression analysis skipped: {expression['reason']}"]
    same = expression["same_identity"]
    lines = [
        f"Expression: {same['pairs']} apex pairs from {expression['takes']} test takes, "
        f"{same['blink_frames']} blink frames; faces not re-detected (per scored frame): "
        f"{_missed(same['detection'])}",
        f"  landmark distance to the truth ({expression['distance_unit']}, raw/aligned):",
    ]
    for row, groups in same["distances"].items():
        cells = ", ".join(f"{group} {_pair(groups[group])}" for group in POINT_GROUPS)
        lines.append(f"    {ROW_LABELS.get(row, row)}: {cells}")
    for method in expression["methods"]:
        amplitude = same["amplitude"][method]
        for measure in MEASURES:
            per = amplitude[measure]["per_expression"]
            lines.append(
                f"  {method} {MEASURE_LABELS[measure]} amplitude: "
                f"{format_ratio(amplitude[measure]['overall'], interval=True)} overall; "
                + ", ".join(f"{name} {format_ratio(s)}" for name, s in per.items())
            )
        blinks = amplitude["blinks"]
        lines.append(
            f"  {method} lowered brows: {format_ratio(amplitude['lowered_brows'], interval=True)} "
            f"({amplitude['lowered_brows']['pairs']} pairs); blinks: closure "
            f"{format_ratio(blinks)}, eyes closed on {blinks['closed']}/{blinks['visible']} blink frames "
            "(where the re-detected truth closes)"
        )
    cross = expression.get("cross_identity")
    if cross is not None:
        for method in expression["methods"]:
            mouth = cross["amplitude"][method]["mouth_opening"]
            per = mouth["per_expression"]
            lines.append(
                f"  cross-identity {method} mouth opening over the retargeted structure's "
                "(raw/calibrated by the detector's reading of true changes): "
                f"{_both(mouth['overall'])} overall (mean |error| "
                + (
                    "n/a"
                    if mouth["overall"]["error"] is None
                    else f"{mouth['overall']['error']:.3f}"
                )
                + f", {cross['pairs']} frames of {cross['runs']} runs); "
                + ", ".join(f"{name} {_both(s)}" for name, s in per.items())
            )
        lines.append(f"  cross-identity faces not re-detected: {_missed(cross['detection'])}")
    return lines


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + " --- |" * len(headers),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _amplitude_rows(amplitude: dict, breakdown: str, calibrated: bool = False) -> list[list[str]]:
    """Per group: each measure's ratio (with the true mean change), the mouth opening's mean
    absolute error (and calibrated ratio, cross identity), the pair count."""
    rows = []
    for name in ["overall", *amplitude["mouth_opening"][breakdown]]:
        summaries = {
            measure: amplitude[measure]["overall"]
            if name == "overall"
            else amplitude[measure][breakdown][name]
            for measure in MEASURES
        }
        cells = [
            f"{format_ratio(s, interval=True)} ({_signed(s['truth_change'])})"
            for s in summaries.values()
        ]
        mouth = summaries["mouth_opening"]
        error = "n/a" if mouth["error"] is None else f"{mouth['error']:.3f}"
        extra = [format_calibrated(mouth)] if calibrated else []
        rows.append([name, *cells, error, *extra, str(mouth["pairs"])])
    return rows


AMPLITUDE_HEADERS = [*(MEASURE_LABELS[m] for m in MEASURES), "mouth opening error"]


def expression_markdown(expression: dict[str, Any]) -> list[str]:
    """report.md's expression section (lines)."""
    lines = ["", "## Expression", ""]
    if expression["status"] != "computed":
        return [*lines, f"Skipped: {expression['reason']}", ""]
    same, settings = expression["same_identity"], expression["settings"]
    lines += [
        f"{same['pairs']} apex pairs ({settings['apex_per_take']} per take: the frames whose "
        "ground-truth landmarks are farthest from frame 0 once head pose is removed, blinks "
        f"excluded) from {expression['takes']} test takes, {same['blink_frames']} blink frames. "
        f"Landmarks re-detected by {expression['detector']}. Faces not re-detected: "
        f"{_missed(same['detection'])} (left out of the figures they would enter).",
        "",
        f"Landmark distance to the re-detected true frame, {expression['distance_unit']}, "
        "raw / after a 2-D similarity fit of all 68 points (pose and size removed):",
        "",
    ]
    lines += _table(
        ["row", *POINT_GROUPS, "pairs"],
        [
            [ROW_LABELS.get(row, row), *(_pair(groups[g]) for g in POINT_GROUPS)]
            + [str(groups["all"]["pairs"])]
            for row, groups in same["distances"].items()
        ],
    )
    lines += [
        "",
        "Amplitude: the generated change of each measure from the source frame over the "
        "true change (least-squares slope; 1 = the full expression, 0 = none), with its 95% "
        "bootstrap interval over the pairs in square brackets; in round brackets "
        "the true mean change (mouth opening: inner-lip gap / eye distance; eye opening: lid "
        "gap / eye width; brow height: brow to eye / eye distance). n/a: the truth hardly "
        "moves there. The detector reads the truth's own change as "
        + ", ".join(
            f"{MEASURE_LABELS[m]} {format_ratio({'ratio': v['overall']})}"
            for m, v in same["detector_calibration"].items()
        )
        + " of the ground-truth landmarks'.",
        "",
    ]
    for method in expression["methods"]:
        amplitude = same["amplitude"][method]
        lines += [f"**{method}**, per expression:", ""]
        lines += _table(
            ["expression", *AMPLITUDE_HEADERS, "pairs"],
            _amplitude_rows(amplitude, "per_expression"),
        )
        lines += ["", f"**{method}**, per subject:", ""]
        lines += _table(
            ["subject", *AMPLITUDE_HEADERS, "pairs"], _amplitude_rows(amplitude, "per_subject")
        )
        blinks, lowered = amplitude["blinks"], amplitude["lowered_brows"]
        lines += [
            "",
            f"- lowered brows (true brow height down by more than {settings['lowered_brow']}): "
            f"{format_ratio(lowered)} over {lowered['pairs']} pairs",
            f"- blinks: eye-opening closure {format_ratio(blinks)}; the eyes close (at least "
            f"{settings['closed_fraction']:.0%} of the truth's closure) on {blinks['closed']} "
            f"of the {blinks['visible']} blink frames where the re-detected truth closes "
            f"({blinks['pairs']} blink frames)",
            "",
        ]
    lines += ["![expression amplitude](expression_amplitude.png)", ""]
    lines += ["![amplitude per subject](expression_subjects.png)", ""]
    lines += ["![landmark distances](expression_distances.png)", ""]
    cross = expression.get("cross_identity")
    if cross is not None:
        lines += [
            "### Cross identity",
            "",
            f"Each test subject's first frame driven by the other test subjects' takes "
            f"({cross['runs']} runs, {cross['pairs']} apex frames of the drivers), their "
            "landmarks retargeted onto it as frgan.generate does. No true frame exists: the "
            "generated face's re-detected change over the retargeted structure's change "
            "(read it against the detector's own reading above; `calibrated` divides by that "
            "reading for the expression: 1 = as far as a true face would read). Faces not "
            "re-detected: "
            f"{_missed(cross['detection'])}.",
            "",
        ]
        for method in expression["methods"]:
            amplitude = cross["amplitude"][method]
            lines += [f"**{method}**, per driver expression:", ""]
            lines += _table(
                ["expression", *AMPLITUDE_HEADERS, "mouth opening, calibrated", "frames"],
                _amplitude_rows(amplitude, "per_expression", calibrated=True),
            )
            lines += ["", f"**{method}**, per target subject:", ""]
            lines += _table(
                ["subject", *AMPLITUDE_HEADERS, "frames"],
                _amplitude_rows(amplitude, "per_target_subject"),
            )
            lines.append("")
        lines += [
            "Distance to the retargeted structure, "
            f"{expression['distance_unit']} (raw/aligned; `source`: the re-detected source "
            "frame against its own landmarks, the detector's offset):",
            "",
        ]
        lines += _table(
            ["row", *POINT_GROUPS],
            [
                [row, *(_pair(groups[g]) for g in POINT_GROUPS)]
                for row, groups in cross["distances_to_structure"].items()
            ],
        )
        lines += ["", "![cross identity](cross_identity.png)", ""]
    return lines


def _bars(ax, groups: list[str], series: dict[str, list[float | None]], title: str) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for index, (label, values) in enumerate(series.items()):
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x + (index - (len(series) - 1) / 2) * width, heights, width, label=label)
    ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _save(figure: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def _amplitude_figure(path: Path, amplitude: dict, methods: list[str], breakdown: str, what: str):
    figure = Figure(figsize=(12, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(MEASURES), sharey=True)
    for ax, measure in zip(axes, MEASURES, strict=True):
        names = list(amplitude[methods[0]][measure][breakdown])
        series = {
            method: [amplitude[method][measure]["overall"]["ratio"]]
            + [amplitude[method][measure][breakdown][n]["ratio"] for n in names]
            for method in methods
        }
        _bars(ax, ["overall", *names], series, f"{MEASURE_LABELS[measure]}: {what}")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes[0].set_ylabel("amplitude ratio (1 = full)")
    axes[0].legend(fontsize=8)
    _save(figure, path)


def write_expression_plots(out_dir: Path, expression: dict[str, Any]) -> None:
    """expression_amplitude.png, expression_distances.png and cross_identity.png."""
    if expression["status"] != "computed":
        return
    methods, same = expression["methods"], expression["same_identity"]
    _amplitude_figure(
        out_dir / "expression_amplitude.png",
        same["amplitude"],
        methods,
        "per_expression",
        "generated / true change",
    )
    _amplitude_figure(
        out_dir / "expression_subjects.png",
        same["amplitude"],
        methods,
        "per_subject",
        "per subject",
    )
    figure = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharey=True)
    rows = same["distances"]
    for ax, alignment in zip(axes, ("raw", "aligned"), strict=True):
        series = {
            ROW_LABELS.get(row, row): [rows[row][g][alignment] for g in POINT_GROUPS]
            for row in rows
        }
        _bars(ax, list(POINT_GROUPS), series, f"landmark distance, {alignment}")
    axes[0].set_ylabel(expression["distance_unit"])
    axes[0].legend(fontsize=8)
    _save(figure, out_dir / "expression_distances.png")
    cross = expression.get("cross_identity")
    if cross is not None and cross["pairs"]:
        _amplitude_figure(
            out_dir / "cross_identity.png",
            cross["amplitude"],
            methods,
            "per_expression",
            "generated / structure",
        )
