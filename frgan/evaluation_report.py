"""What frgan.evaluate writes: metrics.json, report.md (protocol + tables of every metric of
frgan.metrics.registry), psnr.png and ssim.png (quality against frame index, one curve per
method) and samples.gif."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from frgan.evaluation.expression_report import expression_markdown, write_expression_plots
from frgan.metrics import registry
from frgan.utils.files import atomic_path, write_json_atomic, write_text_atomic
from frgan.utils.media import to_uint8, write_gif
from frgan.utils.results_page import provenance, provenance_lines


def write_report(
    out_dir: Path,
    payload: dict[str, Any],
    sample_grid: torch.Tensor | None,
    command: Sequence[str] | None = None,
) -> None:
    """`command`: the command line that ran the evaluation, stated in report.md with the commit,
    machine and date (kept out of metrics.json, whose numbers repeat run for run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "metrics.json", payload, allow_nan=False)
    for metric, title in (("psnr", "PSNR (dB)"), ("ssim", "SSIM")):
        plot_per_frame(out_dir / f"{metric}.png", payload["methods"], metric, title)
    if sample_grid is not None:
        write_gif(out_dir / "samples.gif", to_uint8(sample_grid), fps=8)
    if "expression" in payload:
        write_expression_plots(out_dir, payload["expression"])
    about = provenance(command) if command is not None else None
    write_text_atomic(out_dir / "report.md", markdown(payload, sample_grid is not None, about))


def format_cell(value: Any, fmt: str) -> str:
    """A table cell: `value` formatted, or n/a when it is missing (None)."""
    return "n/a" if value is None else fmt.format(value)


def markdown(
    payload: dict[str, Any], with_samples: bool, about: dict[str, Any] | None = None
) -> str:
    protocol, methods, fvd = payload["protocol"], payload["methods"], payload["fvd"]
    with_fvd = fvd["status"] == "computed"
    columns = [m for m in registry.select() if m.region is None]
    headers = ["method"] + [m.header for m in columns]
    if with_fvd:
        headers += ["FVD ↓ (95% jackknife)", "KVD ↓", "clips"]
    lines = [
        "# Evaluation",
        "",
        *([*provenance_lines(about), ""] if about else []),
        f"Checkpoint `{protocol['checkpoint']}` ({protocol['model'].get('class')}), "
        f"dataset `{protocol['dataset']}`, test subjects {', '.join(protocol['test_subjects'])}.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + " --- |" * len(headers),
    ]
    for result in methods.values():
        row = [result["label"]] + [format_cell(result.get(m.key), m.fmt) for m in columns]
        if with_fvd:
            interval = (
                f" ({result['fvd_low']:.1f}–{result['fvd_high']:.1f})"
                if result.get("fvd_low") is not None
                else ""
            )
            row += [
                f"{result['fvd']:.1f}{interval}",
                f"{result['kvd']:.4f}",
                str(result["clips_fake"]),
            ]
        lines.append("| " + " | ".join(row) + " |")
    lines += region_table(methods)
    lines += ["", "## Protocol", ""]
    lines += [
        f"- videos: {protocol['videos']} ({protocol['takes']} test takes), "
        f"{protocol['frames_per_video']} frames each, {protocol['resolution']} px",
        f"- clips: {protocol['clip_selection']}",
        f"- averaging: {protocol['metric_averaging']}; moving region: pixels whose ground truth "
        f"differs from the source frame by more than {protocol['moving_threshold']}",
        "- seeds: " + ", ".join(f"{k} {v}" for k, v in protocol["seeds"].items()),
    ]
    if with_fvd:
        lines.append(
            f"- FVD: {fvd['features']}; resize {fvd['resize']}; Fréchet distance in float64 "
            "over all videos; few clips bias FVD upwards, so compare FVDs only over the same "
            f"numbers of clips. Interval: {fvd['interval'] or 'none (evaluation.fvd.interval)'}. "
            f"KVD: {fvd['kvd_kernel']}, no bias at any number of clips"
        )
    else:
        lines.append(f"- FVD: skipped — {fvd['reason']}")
    lines += ["", "![PSNR per frame](psnr.png) ![SSIM per frame](ssim.png)", ""]
    if with_samples:
        lines += [
            "Samples (ground truth | structure | "
            + " | ".join(r["label"] for r in methods.values())
            + "):",
            "",
            "![samples](samples.gif)",
            "",
        ]
    if "expression" in payload:
        lines += expression_markdown(payload["expression"])
    return "\n".join(lines)


def region_table(methods: dict[str, dict]) -> list[str]:
    """Markdown lines of the face-region metrics (methods as rows), none without any."""
    columns = [m for m in registry.select() if m.region is not None]
    if not columns:
        return []
    headers = ["method"] + [m.header for m in columns]
    lines = [
        "",
        "Face regions (masks from the true frame's 68 landmarks; frames where the region moves):",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + " --- |" * len(headers),
    ]
    for result in methods.values():
        row = [result["label"]] + [format_cell(result.get(m.key), m.fmt) for m in columns]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def plot_per_frame(path: Path, methods: dict[str, dict], metric: str, title: str) -> Path:
    """Full frame (left) and moving region (right) against the frame index, one curve per
    method (frame 0 is the source: nothing moves, no value)."""
    figure = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharex=True)
    for ax, key, region in (
        (axes[0], metric, "full frame"),
        (axes[1], f"{metric}_moving", "moving region"),
    ):
        for result in methods.values():
            values = result["per_frame"][key]
            points = [(t, v) for t, v in enumerate(values) if v is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=result["label"])
        ax.set_title(f"{title}, {region}")
        ax.set_xlabel("frame index")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
