"""The landmark warp's thin-plate spline alone (frgan/models/tps.py) on the prepared takes: how
often it folds the face, and how close the source frame moved by it comes to the truth in each
face region. Every frame of a take is a target and its first frame the source, as training and
evaluation pair them; blink frames (frgan.metrics.expression.blink_frames) are counted apart.

A fold is where the backward map p -> p + flow(p) turns over: its Jacobian determinant
(least_jacobian) is negative there, and a pixel's neighbours come from the source in the wrong
order (rings round a blinking eye). Counted per pair at two depths: any turn (< 0) and a
visible one (< -0.1; shallower turns are a few pixels of stretched lips a hair out of order).
The closeness is the PSNR of the moved source against the target frame over the target's
region masks (frgan.metrics.regions). The splines:

- all 68 points: the bare spline of every landmark;
- without lower lids and inner lips: the lower lids, the inner lips' corners and lower half
  left out (the landmark warp before the lids were held apart);
- lids held at G: face_flow with lid_gap G (LID_GAP, the default, and each --lid-gaps).

    python scripts/spline_warp.py           # the test and val takes of the synthetic default
    python scripts/spline_warp.py --docs    # and a page in docs/expression/blinks/
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from frgan.data.datasets import face68_points, to_image_tensor
from frgan.data.shards import load_manifest, read_shard, shard_location
from frgan.errors import ConfigError
from frgan.metrics.expression import blink_frames
from frgan.metrics.image import DATA_RANGE, masked_mean
from frgan.metrics.regions import REGIONS, region_masks
from frgan.models.tps import (
    FACE68_LID_PAIRS,
    FACE68_SPLINE_POINTS,
    LID_GAP,
    face_flow,
    least_jacobian,
    tps_flow,
)
from frgan.models.warp import warp
from frgan.utils.cli import report_user_errors
from frgan.utils.results_page import Table, add_docs_option, text_table, write_results_page

DEPTHS = (0.0, -0.1)
DOCS_BLINKS = Path("docs/expression/blinks")
LOWER_LIDS = tuple(lower for _, lower in FACE68_LID_PAIRS)
KINDS = ("blink", "other")
Spline = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]


def _subset(points: list[int]) -> Spline:
    def flow(l0: torch.Tensor, lt: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return tps_flow(l0[:, points], lt[:, points], height, width)

    return flow


def splines(lid_gaps: Sequence[float]) -> dict[str, Spline]:
    named = {
        "all 68 points": _subset(list(range(68))),
        "without lower lids and inner lips": _subset(
            [i for i in FACE68_SPLINE_POINTS if i not in LOWER_LIDS]
        ),
    }
    for gap in sorted({LID_GAP, *lid_gaps}):
        default = " (the default)" if gap == LID_GAP else ""
        named[f"lids held at {gap:g}{default}"] = functools.partial(face_flow, lid_gap=gap)
    return named


def load_pairs(shard_dir: Path, splits: Sequence[str]) -> dict[str, torch.Tensor | np.ndarray]:
    """Each take's first frame as the source of each later frame: frames x0, xt [N,3,S,S] in
    [-1, 1], landmarks l0, lt [N,68,2], and whether each target is a blink frame [N]."""
    manifest = load_manifest(shard_dir)
    records = [r for r in manifest["shards"] if r["split"] in splits]
    if not records:
        raise ConfigError(f"{shard_dir} has no shards of the splits {', '.join(splits)}")
    parts: dict[str, list] = {"x0": [], "xt": [], "l0": [], "lt": [], "blink": []}
    for record in records:
        for take in read_shard(shard_location(shard_dir, record["file"]), record):
            frames, points = to_image_tensor(take.frames), face68_points(take.landmarks)
            later = len(points) - 1
            parts["x0"].append(frames[:1].expand(later, -1, -1, -1))
            parts["xt"].append(frames[1:])
            parts["l0"].append(points[:1].expand(later, -1, -1))
            parts["lt"].append(points[1:])
            parts["blink"].append(blink_frames(points.numpy())[1:])
    pairs = {key: torch.cat(value) for key, value in parts.items() if key != "blink"}
    return {**pairs, "blink": np.concatenate(parts["blink"])}


def measure(spline: Spline, pairs: dict, batch: int, advance: Callable[[int], None]) -> dict:
    """Fold rates and region PSNR of one spline, for blink and other target frames."""
    size = pairs["x0"].shape[-1]
    minima, errors = [], {region: [] for region in REGIONS}
    for start in range(0, len(pairs["l0"]), batch):
        window = slice(start, start + batch)
        flow = spline(pairs["l0"][window], pairs["lt"][window], size, size)
        minima.append(least_jacobian(flow))
        squared = (warp(pairs["x0"][window], flow) - pairs["xt"][window]).square()
        for region, mask in region_masks(pairs["lt"][window], size, size).items():
            errors[region].append(masked_mean(squared, mask))
        advance(len(flow))
    minimum = torch.cat(minima).numpy()
    selections = {"blink": pairs["blink"], "other": ~pairs["blink"]}
    folds = {
        f"below {depth}": {
            kind: _share(minimum[chosen] < depth) for kind, chosen in selections.items()
        }
        for depth in DEPTHS
    }
    psnr = {
        region: {
            kind: _psnr(torch.cat(values).numpy()[chosen]) for kind, chosen in selections.items()
        }
        for region, values in errors.items()
    }
    return {"folds": folds, "psnr": psnr}


def _share(flags: np.ndarray) -> float | None:
    return float(flags.mean()) if flags.size else None


def _psnr(squared_errors: np.ndarray) -> float | None:
    """PSNR of frames in [-1, 1] from their mean squared errors (an empty region's NaN skipped),
    pooled over the frames."""
    if not np.isfinite(squared_errors).any():
        return None
    return 10 * math.log10(DATA_RANGE**2 / float(np.nanmean(squared_errors)))


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _decibels(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def tables(figures: dict, caption: str) -> list[Table]:
    results = figures["splines"]
    fold_table = Table(
        ["spline"] + [f"{kind} frames, det < {depth}" for depth in DEPTHS for kind in KINDS],
        [
            [name] + [_percent(r["folds"][f"below {d}"][k]) for d in DEPTHS for k in KINDS]
            for name, r in results.items()
        ],
        f"Pairs whose spline folds anywhere in the frame. {caption}",
    )
    psnr_table = Table(
        ["spline"] + [f"{region}, {kind} frames" for region in REGIONS for kind in KINDS],
        [
            [name] + [_decibels(r["psnr"][region][k]) for region in REGIONS for k in KINDS]
            for name, r in results.items()
        ],
        "PSNR (dB) of the source moved by the spline alone against the target, over the "
        "target's face regions: what the generator starts from.",
    )
    return [fold_table, psnr_table]


@report_user_errors
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shard-dir", type=Path, default=Path("data/synthetic/shards/64px"))
    parser.add_argument("--splits", nargs="+", default=["test", "val"])
    parser.add_argument(
        "--lid-gaps", nargs="*", type=float, default=[0.25], help="more lid gaps to compare"
    )
    parser.add_argument("--batch", type=int, default=128)
    add_docs_option(parser, DOCS_BLINKS)
    args = parser.parse_args(argv)
    if any(not 0 < gap <= 1 for gap in args.lid_gaps):
        raise ConfigError(
            f"--lid-gaps {' '.join(map(str, args.lid_gaps))}: each gap is the part of a lid's "
            "source gap the spline keeps, a number in (0, 1]"
        )

    pairs = load_pairs(args.shard_dir, args.splits)
    blinks = int(pairs["blink"].sum())
    figures: dict = {"pairs": len(pairs["l0"]), "blink_pairs": blinks, "splines": {}}
    with Progress(transient=True) as progress:
        for name, spline in splines(args.lid_gaps).items():
            task = progress.add_task(name, total=len(pairs["l0"]))
            advance = functools.partial(progress.advance, task)
            figures["splines"][name] = measure(spline, pairs, args.batch, advance)

    caption = (
        f"{figures['pairs']} pairs (first frame → each later frame) of the "
        f"{', '.join(args.splits)} takes in {args.shard_dir}, {blinks} of them blink frames; "
        f"{pairs['x0'].shape[-1]} px."
    )
    pages = tables(figures, caption)
    for table in pages:
        print(table.caption)
        print(text_table(table.headers, table.rows), end="\n\n")
    if args.docs is not None:
        title = "The landmark warp's spline alone: folds and closeness"
        page = write_results_page(args.docs, "spline_warp", title, pages, figures)
        print(f"page: {page}")


if __name__ == "__main__":
    main(sys.argv[1:])
