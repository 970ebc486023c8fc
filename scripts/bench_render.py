"""Benchmark the structure renderer: normal maps per second on one core.

Cases: (a) a procedural dense face-shaped mesh the size of the original 3DMM (53,215
vertices, 105,840 triangles) filling about 40% of the image, (b) the 68-landmark mesh, (c) the 468-point MediaPipe mesh (data.structure_mesh=mesh468),
(d) one call rendering a 32-frame clip. Prints a table and writes JSON.

    python scripts/bench_render.py [--out outputs/bench/render.json] [--repeats 30]

The renderer is single-threaded; timings are the median (and best) over repeats, so a
machine shared with other jobs mostly affects the spread, not the median.
"""

import argparse
import os
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np

from frgan.render import FACE68_TRIANGLES, mean_face68, normal_map, normal_maps
from frgan.render.mesh468 import MESH468_TRIANGLES, mean_mesh468
from frgan.utils.files import write_json_atomic
from frgan.utils.results_page import Table, add_docs_option, text_table, write_results_page

DENSE_VERTICES, DENSE_TRIANGLES = 53_215, 105_840
REFERENCE_MS = {64: 40.3, 128: 66.7}  # the original release's renderer, same machines
TARGET_DENSE_MS_64 = 2.0
TARGET_FACE68_MAPS_PER_S_64 = 5_000
TARGET_MESH468_MAPS_PER_S_64 = 5_000
CLIP_FRAMES = 32


def dense_face_mesh(size: int, rows: int = 280, area_fraction: float = 0.4):
    """A face-shaped (elliptical, bulging, with a nose) triangulated patch in an image.

    Rows of vertices across an ellipse, consecutive rows zipped into triangle strips.
    A strip between rows of a and b vertices has a + b - 2 triangles, so the mesh has
    2V - n_first - n_last - 2(rows - 1) triangles; the first/last row lengths are
    chosen to hit the 3DMM's vertex and triangle counts exactly.
    """
    end_row = (2 * DENSE_VERTICES - DENSE_TRIANGLES - 2 * (rows - 1)) // 2
    t = np.linspace(-1.0, 1.0, rows)
    profile = np.sqrt(1.0 - t**2)
    widths = np.maximum(end_row, np.round(profile / profile.sum() * DENSE_VERTICES)).astype(int)
    widths[0] = widths[-1] = end_row
    middle = rows // 2
    widths[middle] += DENSE_VERTICES - widths.sum()  # make the total exact

    half_height = np.sqrt(area_fraction / np.pi * 1.1) * size  # ellipse a*b*pi = fraction
    half_width = half_height / 1.1
    u = np.concatenate(
        [np.linspace(-1.0, 1.0, n) * max(p, 0.05) for n, p in zip(widths, profile, strict=True)]
    )
    v = np.repeat(t, widths)
    bulge = np.sqrt(np.clip(1.0 - u**2 - v**2, 0.0, None))
    nose = 0.25 * np.exp(-((u / 0.12) ** 2 + ((v + 0.05) / 0.25) ** 2))
    vertices = np.stack(
        [u * half_width, v * half_height, -(0.5 * bulge + nose) * half_width], axis=1
    )
    vertices += [size / 2, size / 2, 0.0]
    row_starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    x = vertices[:, 0].tolist()

    triangles = []
    for row in range(rows - 1):
        top = range(row_starts[row], row_starts[row] + widths[row])
        bottom = range(row_starts[row + 1], row_starts[row + 1] + widths[row + 1])
        i = j = 0
        while i < len(top) - 1 or j < len(bottom) - 1:
            advance_top = j == len(bottom) - 1 or (
                i < len(top) - 1 and x[top[i + 1]] <= x[bottom[j + 1]]
            )
            if advance_top:  # counter-clockwise on screen: normals towards the camera
                triangles.append((top[i], bottom[j], top[i + 1]))
                i += 1
            else:
                triangles.append((top[i], bottom[j], bottom[j + 1]))
                j += 1
    faces = np.array(triangles, dtype=np.int32)
    if len(vertices) != DENSE_VERTICES or len(faces) != DENSE_TRIANGLES:
        raise RuntimeError(f"dense mesh has {len(vertices)} vertices / {len(faces)} triangles")
    return vertices.astype(np.float32), faces


def turning_clip(vertices: np.ndarray, frames: int, max_angle: float = 0.4) -> np.ndarray:
    """A clip of the mesh turning its head left to right about its centre (float32 [T,N,3])."""
    centre = vertices.mean(axis=0)
    clip = []
    for angle in np.linspace(-max_angle, max_angle, frames):
        cos, sin = np.cos(angle), np.sin(angle)
        turn = np.array([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])
        clip.append((vertices - centre) @ turn.T + centre)
    return np.stack(clip).astype(np.float32)


def time_per_map(render, maps_per_call: int, repeats: int) -> tuple[float, float]:
    """Median and best seconds per map over `repeats` calls (after one warm-up call)."""
    render()
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        render()
        durations.append((time.perf_counter() - start) / maps_per_call)
    return statistics.median(durations), min(durations)


def benchmark_cases() -> list[tuple[str, int, int, bool, object]]:
    """(name, image size, frames per call, smooth, render function) for every case."""
    cases = []
    for size in (64, 128):
        vertices, faces = dense_face_mesh(size)
        for smooth in (False, True):
            name = "dense 3DMM-size" + (" smooth" if smooth else "")
            render = partial(normal_map, vertices, faces, size, size, smooth=smooth)
            cases.append((name, size, 1, smooth, render))
    for size in (64, 128):
        render = partial(normal_map, mean_face68(size, size), FACE68_TRIANGLES, size, size)
        cases.append(("68 landmarks", size, 1, False, render))
    for size in (64, 128):
        render = partial(normal_map, mean_mesh468(size, size), MESH468_TRIANGLES, size, size)
        cases.append(("468 landmarks", size, 1, False, render))
    vertices, faces = dense_face_mesh(64)
    dense_clip = turning_clip(vertices, CLIP_FRAMES)
    face68_clip = turning_clip(mean_face68(64, 64), CLIP_FRAMES)
    name = f"{CLIP_FRAMES}-frame clip"
    cases.append(
        (f"dense, {name}", 64, CLIP_FRAMES, False, partial(normal_maps, dense_clip, faces, 64, 64))
    )
    render = partial(normal_maps, face68_clip, FACE68_TRIANGLES, 64, 64)
    cases.append((f"68 landmarks, {name}", 64, CLIP_FRAMES, False, render))
    mesh468_clip = turning_clip(mean_mesh468(64, 64), CLIP_FRAMES)
    render = partial(normal_maps, mesh468_clip, MESH468_TRIANGLES, 64, 64)
    cases.append((f"468 landmarks, {name}", 64, CLIP_FRAMES, False, render))
    return cases


def run(repeats: int) -> list[dict]:
    results = []
    for name, size, frames, smooth, render in benchmark_cases():
        calls = repeats if "dense" in name else repeats * 20  # the small mesh is cheap
        median_s, best_s = time_per_map(render, frames, max(3, calls // frames))
        speedup = REFERENCE_MS[size] / (median_s * 1e3) if "dense" in name else None
        results.append(
            {
                "case": name,
                "size": size,
                "frames_per_call": frames,
                "smooth": smooth,
                "ms_per_map_median": median_s * 1e3,
                "ms_per_map_best": best_s * 1e3,
                "maps_per_s": 1.0 / median_s,
                "speedup_vs_reference": speedup,
            }
        )
    return results


TABLE_HEADERS = (
    "case",
    "px",
    "frames per call",
    "ms per map (median)",
    "best ms",
    "maps/s",
    "vs original",
)


def table_rows(results: list[dict]) -> list[list[str]]:
    return [
        [
            r["case"],
            str(r["size"]),
            str(r["frames_per_call"]),
            f"{r['ms_per_map_median']:.3f}",
            f"{r['ms_per_map_best']:.3f}",
            f"{r['maps_per_s']:.0f}",
            f"{r['speedup_vs_reference']:.0f}x" if r["speedup_vs_reference"] else "",
        ]
        for r in results
    ]


def check_targets(results: list[dict]) -> dict:
    dense = next(r for r in results if r["case"] == "dense 3DMM-size" and r["size"] == 64)
    face68 = next(r for r in results if r["case"] == "68 landmarks" and r["size"] == 64)
    mesh468 = next(r for r in results if r["case"] == "468 landmarks" and r["size"] == 64)
    return {
        "mesh468_64px_maps_per_s>=5000": mesh468["maps_per_s"] >= TARGET_MESH468_MAPS_PER_S_64,
        "dense_64px_ms_per_map<=2": dense["ms_per_map_median"] <= TARGET_DENSE_MS_64,
        "face68_64px_maps_per_s>=5000": face68["maps_per_s"] >= TARGET_FACE68_MAPS_PER_S_64,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/render.json"))
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per dense case")
    add_docs_option(parser)
    args = parser.parse_args()

    results = run(args.repeats)
    print(text_table(TABLE_HEADERS, table_rows(results)))
    targets = check_targets(results)
    for name, met in targets.items():
        print(f"target {name}: {'met' if met else 'NOT met'}")

    report = {
        "results": results,
        "targets": targets,
        "reference_ms_per_map": REFERENCE_MS,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")
    if args.docs:
        page = write_results_page(
            args.docs,
            "render",
            "Structure renderer: normal maps per second on one core",
            [
                Table(
                    TABLE_HEADERS,
                    table_rows(results),
                    "Median (and best) time per map over the repeats; the original release's "
                    f"renderer took {REFERENCE_MS[64]} ms (64 px) and {REFERENCE_MS[128]} ms "
                    "(128 px) per dense map on the same machines.",
                ),
                Table(
                    ("target", "met"),
                    [[name, "yes" if met else "NO"] for name, met in targets.items()],
                ),
            ],
            report,
        )
        print(f"wrote {page}")


if __name__ == "__main__":
    main()
