"""The landmark geometry of a training step against its plain formulations, side by side in one
run: the face's thin-plate spline (frgan.models.tps.face_flow), a face-region mask
(frgan.metrics.regions.polygon_mask) and the part coverage of a structure map
(frgan.render.parts.subsample_coverage). Prints a table and writes JSON.

    python scripts/bench_geometry.py [--out outputs/bench/geometry.json] [--repeats 20] [--docs]

The plain formulations are what the project's functions replace, and what tests check them
against (tests/test_landmark_warp.py, test_metrics.py): the spline's kernel from cdist for every
pixel at once; every pixel centre tested against every polygon edge; numpy's mean over each
SUPERSAMPLE² block. Each case runs the two in alternation, `--repeats` times, and reports the
medians and their ratio (machines shared with other jobs shift both alike).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import frgan  # noqa: F401  (the entry points' thread policy, before torch loads)

# isort: split
import numpy as np
import torch

from frgan.metrics.regions import polygon_mask
from frgan.models.tps import (
    FACE68_LID_PAIRS,
    FACE68_SPLINE_POINTS,
    LID_GAP,
    SMOOTHING,
    face_flow,
    hold_apart,
    pixel_centres,
)
from frgan.render.face68 import mean_face68
from frgan.render.parts import SUPERSAMPLE, part_layers, subsample_coverage
from frgan.utils.files import write_json_atomic
from frgan.utils.results_page import Table, add_docs_option, text_table, write_results_page

BATCH, SIZE = 16, 64
FACE_OUTLINE = list(range(17)) + list(range(26, 16, -1))  # the face region's 27-point polygon


def textbook_spline(source: torch.Tensor, target: torch.Tensor, height: int, width: int):
    """[B,2,H,W]: the thin-plate spline's backward flow (target points -> source points), its
    kernel from cdist for every pixel at once, in float64."""

    def radial(squared):
        return squared * torch.log(squared.clamp_min(1e-12))

    source, target = source.double(), target.double()
    batch, count, _ = target.shape
    affine = torch.cat([target.new_ones(batch, count, 1), target], dim=-1)
    system = target.new_zeros(batch, count + 3, count + 3)
    system[:, :count, :count] = radial(torch.cdist(target, target).square())
    system[:, :count, :count] += SMOOTHING * torch.eye(count, dtype=target.dtype)
    system[:, :count, count:], system[:, count:, :count] = affine, affine.transpose(1, 2)
    rhs = torch.cat([source, target.new_zeros(batch, 3, 2)], dim=1)
    coefficients = torch.linalg.solve(system, rhs)
    pixels = pixel_centres(height, width, target).reshape(2, -1).T.expand(batch, -1, -1)
    kernel = radial(torch.cdist(pixels, target).square())
    linear = torch.cat([torch.ones_like(pixels[..., :1]), pixels], dim=-1)
    mapped = kernel @ coefficients[:, :count] + linear @ coefficients[:, count:]
    return (mapped - pixels).reshape(batch, height, width, 2).permute(0, 3, 1, 2)


def textbook_face_flow(l0: torch.Tensor, lt: torch.Tensor, height: int, width: int):
    """face_flow with textbook_spline: the same points, lids held apart alike."""
    source, target = hold_apart(l0[..., :2], lt[..., :2], FACE68_LID_PAIRS, LID_GAP)
    points = list(FACE68_SPLINE_POINTS)
    return textbook_spline(source[:, points], target[:, points], height, width).float()


def per_pixel_polygon_mask(polygon: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """bool [B,1,H,W]: the even-odd rule with every pixel centre tested against every edge."""
    py = (torch.arange(height, dtype=polygon.dtype) + 0.5).view(1, height, 1, 1)
    px = (torch.arange(width, dtype=polygon.dtype) + 0.5).view(1, 1, width, 1)
    x1, y1 = polygon[..., 0][:, None, None, :], polygon[..., 1][:, None, None, :]
    x2, y2 = x1.roll(-1, dims=-1), y1.roll(-1, dims=-1)
    spans = (y1 > py) != (y2 > py)
    run = torch.where(y2 == y1, torch.ones_like(y1), y2 - y1)
    crossing = x1 + (py - y1) * (x2 - x1) / run
    return ((spans & (px < crossing)).sum(-1) % 2 == 1).unsqueeze(1)


def block_mean_coverage(layer: np.ndarray, height: int, width: int) -> np.ndarray:
    """float64 [H,W]: numpy's mean over each SUPERSAMPLE² block of a part layer."""
    return layer.reshape(height, SUPERSAMPLE, width, SUPERSAMPLE).mean(axis=(1, 3)) / 255.0


def faces(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(l0, lt) [B,68,2]: the mean face jittered by 1 px, and moved again by up to 2 px."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.from_numpy(mean_face68(SIZE, SIZE)).float()[:, :2]
    l0 = mean + torch.randn(batch, 68, 2, generator=generator)
    return l0, l0 + 2 * torch.rand(batch, 68, 2, generator=generator) - 1


def time_pair(ours: Callable, plain: Callable, repeats: int) -> dict:
    """Median seconds of each, timed in alternation after one untimed call each."""
    ours(), plain()
    times = {"ours_s": [], "plain_s": []}
    for _ in range(repeats):
        for key, call in (("ours_s", ours), ("plain_s", plain)):
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    ours_s, plain_s = statistics.median(times["ours_s"]), statistics.median(times["plain_s"])
    return {"ours_ms": 1e3 * ours_s, "plain_ms": 1e3 * plain_s, "speed_up": plain_s / ours_s}


def run(repeats: int) -> list[dict]:
    l0, lt = faces(BATCH)
    layers = part_layers(lt[0].numpy(), SIZE, SIZE, teeth=True)
    outline = lt[:, FACE_OUTLINE]
    cases = [
        (
            f"face spline, batch {BATCH}",
            lambda: face_flow(l0, lt, SIZE, SIZE),
            lambda: textbook_face_flow(l0, lt, SIZE, SIZE),
            "kernel from cdist, every pixel at once",
        ),
        (
            f"face region mask, batch {BATCH}",
            lambda: polygon_mask(outline, SIZE, SIZE),
            lambda: per_pixel_polygon_mask(outline, SIZE, SIZE),
            "every pixel against every edge",
        ),
        (
            f"part coverage, one face ({len(layers)} parts)",
            lambda: [subsample_coverage(layer, SIZE, SIZE) for layer in layers.values()],
            lambda: [block_mean_coverage(layer, SIZE, SIZE) for layer in layers.values()],
            "numpy block mean",
        ),
    ]
    results = []
    for name, ours, plain, plain_name in cases:
        results.append({"case": name, "plain": plain_name, **time_pair(ours, plain, repeats)})
    return results


TABLE_HEADERS = ("case", "ours ms", "plain ms", "plain", "speed-up")


def table_rows(results: list[dict]) -> list[list[str]]:
    return [
        [
            r["case"],
            f"{r['ours_ms']:.2f}",
            f"{r['plain_ms']:.2f}",
            r["plain"],
            f"{r['speed_up']:.1f}x",
        ]
        for r in results
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/geometry.json"))
    parser.add_argument("--repeats", type=int, default=20, help="timed calls of each")
    add_docs_option(parser)
    args = parser.parse_args()

    results = run(args.repeats)
    print(text_table(TABLE_HEADERS, table_rows(results)))
    report = {
        "batch": BATCH,
        "image_size": SIZE,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")
    if args.docs:
        page = write_results_page(
            args.docs,
            "geometry",
            "Landmark geometry of a training step against its plain formulations",
            [
                Table(
                    TABLE_HEADERS,
                    table_rows(results),
                    f"Median time per call over {args.repeats} calls of each, in alternation "
                    f"({torch.get_num_threads()} torch threads); 64 px frames.",
                )
            ],
            report,
        )
        print(f"wrote {page}")


if __name__ == "__main__":
    main()
