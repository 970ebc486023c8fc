"""Jitter of MediaPipe's landmarks against the synthetic ground truth, raw and smoothed.

    PYTHONPATH=. python scripts/bench_landmarks.py [--subjects 3] [--out outputs/bench/landmarks.json]

Synthetic takes (the generator's default 128 px frames, as data=synthetic prepares them) go
through the mediapipe landmark source exactly as preparation runs it, for both meshes
(face68: the 68 mapped points; mesh468: all 468), and are compared with the take's ground
truth in the same topology (landmarks / landmarks_468):
- jitter: mean |(p[t+1] - p[t]) - (g[t+1] - g[t])| over frames, points and x, y: the part of
  the frame-to-frame motion that the face did not make, in pixels of the frame;
- error: mean distance |p - g| in x, y (it includes MediaPipe's systematic offsets from the
  generator's own landmark definition, which smoothing cannot remove);
for none, savgol and one_euro smoothing with their defaults. Also MediaPipe's time per frame,
and from it the time to prepare the default synthetic set with it. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from frgan.data.landmarks import build_landmark_source
from frgan.data.smoothing import SMOOTHING_METHODS, smoother
from frgan.inference.faces import quiet_native_output
from frgan.synthetic.expressions import EXPRESSIONS
from frgan.synthetic.take_video import render_take
from frgan.utils.files import write_json_atomic
from frgan.utils.results_page import Table, add_docs_option, text_table, write_results_page

DEFAULT_SET_FRAMES = 24 * 6 * 2 * (24 + 64) / 2  # conf/data/synthetic.yaml synth: expected frames


def jitter(points: np.ndarray, truth: np.ndarray) -> float:
    steps = np.diff(points[..., :2], axis=0) - np.diff(truth[..., :2], axis=0)
    return float(np.abs(steps).mean())


def error(points: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(points[..., :2] - truth[..., :2], axis=-1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/landmarks.json"))
    add_docs_option(parser)
    args = parser.parse_args()

    takes = [
        render_take(0, subject, expression, 0, image_size=args.image_size)
        for subject in range(args.subjects)
        for expression in EXPRESSIONS
    ]
    results, seconds, frames = {}, 0.0, 0
    for mesh, truth_key in (("face68", "landmarks"), ("mesh468", "landmarks_468")):
        with quiet_native_output():
            source = build_landmark_source("mediapipe", structure_mesh=mesh)
            detected = []
            for take in takes:
                start = time.perf_counter()
                detected.append(source(take.images))
                if mesh == "mesh468":
                    seconds += time.perf_counter() - start
                    frames += len(take.images)
        for method in SMOOTHING_METHODS:
            smooth = smoother(method)
            jitters, errors, missed = [], [], 0
            for take, points in zip(takes, detected, strict=True):
                found = np.isfinite(points).all(axis=(1, 2))
                missed += int((~found).sum())
                if found.sum() < 2:
                    continue
                truth = getattr(take, truth_key)[found]
                smoothed = smooth(points[found])
                jitters.append(jitter(smoothed, truth))
                errors.append(error(smoothed, truth))
            results[f"{mesh}/{method}"] = {
                "mesh": mesh,
                "smoothing": method,
                "jitter_px": float(np.mean(jitters)),
                "error_px": float(np.mean(errors)),
                "frames_without_face": missed,
            }
    truth_jitter = float(
        np.mean([np.abs(np.diff(t.landmarks_468[..., :2], axis=0)).mean() for t in takes])
    )
    per_frame = seconds / frames
    headers = ("mesh", "smoothing", "jitter (px)", "error (px)", "frames without face")
    rows = [
        [
            row["mesh"],
            row["smoothing"],
            f"{row['jitter_px']:.3f}",
            f"{row['error_px']:.2f}",
            str(row["frames_without_face"]),
        ]
        for row in results.values()
    ]
    summary = [
        f"{len(takes)} takes, {frames} frames at {args.image_size} px; the ground truth's own "
        f"mean frame-to-frame motion: {truth_jitter:.3f} px.",
        f"MediaPipe: {per_frame * 1e3:.1f} ms per frame; the default synthetic set "
        f"(~{DEFAULT_SET_FRAMES:.0f} frames) takes ~{DEFAULT_SET_FRAMES * per_frame / 60:.1f} "
        "min of landmark detection in one process.",
    ]
    print(text_table(headers, rows))
    print("\n".join(summary))
    report = {
        "takes": len(takes),
        "frames": frames,
        "image_size": args.image_size,
        "results": results,
        "ground_truth_motion_px": truth_jitter,
        "mediapipe_ms_per_frame": per_frame * 1e3,
        "default_set_detection_minutes": DEFAULT_SET_FRAMES * per_frame / 60,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")
    if args.docs:
        caption = (
            "Jitter: mean |(p[t+1] - p[t]) - (g[t+1] - g[t])| per coordinate, the frame-to-frame "
            "motion the face did not make; error: mean distance |p - g| (it includes MediaPipe's "
            "systematic offsets from the generator's landmark definition, which smoothing cannot "
            "remove). Pixels of the frame."
        )
        page = write_results_page(
            args.docs,
            "landmarks",
            "MediaPipe landmarks against the synthetic ground truth",
            [Table(headers, rows, caption)],
            report,
            notes=summary,
        )
        print(f"wrote {page}")


if __name__ == "__main__":
    main()
