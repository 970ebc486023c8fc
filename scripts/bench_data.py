"""Benchmark the data pipeline: forecast pairs per second, structure rendering included, and
preparation from video files (data=videos: decode, resample, cut detection, MediaPipe
landmarks, crop, encode) in frames per second.

    python scripts/bench_data.py                       # 64 px, 2 workers, memory and stream
    python scripts/bench_data.py --workers 4 --batch-size 128 --out outputs/bench/data.json
    python scripts/bench_data.py --modes --videos 8   # only the video preparation row

Uses the synthetic set (generated and prepared under --data-dir on first use) unless
--raw-dir points at an existing MUG-layout folder with ground_truth.npz per take. Times
whole epochs of the training DataLoader after its first batch (worker start-up is reported
apart), and the structure renderer alone for reference.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from frgan.data import FRGANDataModule
from frgan.data.structure import StructureRenderer
from frgan.render import mean_face68
from frgan.utils import results_page
from frgan.utils.files import write_json_atomic
from frgan.utils.stops import end_daemon_workers


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per mode")
    parser.add_argument(
        "--modes", nargs="*", default=["memory", "stream"], choices=["memory", "stream"]
    )
    parser.add_argument(
        "--videos", type=int, default=8, help="synthetic MP4s to prepare (0: skip that row)"
    )
    parser.add_argument("--structure", default="normal")
    parser.add_argument(
        "--data-dir", default="outputs/bench/data", help="where the benchmark's data is cached"
    )
    parser.add_argument(
        "--raw-dir", default=None, help="an existing raw folder instead of the synthetic set"
    )
    parser.add_argument("--subjects", type=int, default=8, help="synthetic subjects to generate")
    parser.add_argument("--out", default="outputs/bench/data.json")
    results_page.add_docs_option(parser)
    return parser.parse_args()


def build(args, mode: str) -> FRGANDataModule:
    data_dir = Path(args.data_dir)
    name = "synthetic" if args.raw_dir is None else "bench"
    return FRGANDataModule(
        name=name,
        raw_dir=args.raw_dir or str(data_dir / "raw"),
        shard_dir=str(data_dir / f"shards_{name}" / f"{args.image_size}px"),
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_workers=args.workers,
        mode=mode,
        structure=args.structure,
        prepare={
            "takes_per_shard": 4,
            "split_fractions": {"train": 0.75, "val": 0.125, "test": 0.125},
        },
        synth={"subjects": args.subjects, "takes_per_expression": 1, "image_size": 128, "seed": 0},
    )


def time_loader(datamodule: FRGANDataModule, epochs: int) -> dict:
    start = time.perf_counter()
    datamodule.setup("fit")
    setup_s = time.perf_counter() - start
    loader = datamodule.train_dataloader()
    pairs, first_batch_s, timed_s = 0, None, 0.0
    for _ in range(epochs):
        tick = time.perf_counter()
        for batch in loader:
            now = time.perf_counter()
            if first_batch_s is None:  # worker start-up and the first fetch: reported apart
                first_batch_s = now - tick
            else:
                pairs += len(batch["x0"])
                timed_s += now - tick
            tick = now
    return {
        "pairs_per_s": pairs / timed_s if timed_s else float("nan"),
        "timed_pairs": pairs,
        "setup_s": setup_s,
        "first_batch_s": first_batch_s,
        "epoch_pairs": datamodule.num_samples("train"),
    }


def write_videos(folder: Path, count: int, image_size: int = 128, frames: int = 48) -> Path:
    """`count` synthetic 25 fps MP4s of `frames` frames, one subject each (kept between runs)."""
    from frgan.synthetic import render_take
    from frgan.utils.media import write_mp4

    for subject in range(count):
        path = folder / f"s{subject:02d}" / "clip.mp4"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            take = render_take(
                0,
                subject,
                "happiness",
                0,
                image_size=image_size,
                min_frames=frames,
                max_frames=frames,
            )
            write_mp4(path, take.images, fps=25)
    return folder


def time_video_preparation(args) -> dict:
    """Frames per second of data=videos preparation (MediaPipe landmarks) with args.workers
    processes, from start to manifest (worker start-up included: every run pays it)."""
    from frgan.data.prepare import PrepareSettings, prepare_dataset

    raw = write_videos(Path(args.data_dir) / "videos" / "raw", args.videos)
    settings = PrepareSettings(
        image_size=args.image_size,
        landmarks="mediapipe",
        landmark_smoothing="savgol",
        split_fractions={"train": 0.75, "val": 0.125, "test": 0.125},
        takes_per_shard=2,
        videos={"take_frames": 64, "min_take_frames": 16},
    )
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    manifest = prepare_dataset(
        raw,
        Path(args.data_dir) / "videos" / "shards",
        settings,
        dataset="bench-videos",
        workers=args.workers,
        overwrite=True,
        progress=False,
        console=Console(stderr=True, quiet=True),
    )
    seconds = time.perf_counter() - start
    kept = sum(record["frames"] for record in manifest["shards"])
    rejected = sum(skip.get("frames", 0) for skip in manifest["skipped"])
    return {
        "videos": args.videos,
        "frames": kept + rejected,
        "frames_in_takes": kept,
        "seconds": seconds,
        "frames_per_s": (kept + rejected) / seconds,
        "load_average_1min_before": load_before,
        "load_average_1min_after": os.getloadavg()[0],
    }


def time_renderer(kind: str, size: int) -> float:
    """Structure maps per second of one process, in batches of 64 maps of a jittered mean face."""
    rng = np.random.default_rng(0)
    landmarks = mean_face68(size, size) + rng.normal(0, 0.5, (64, 68, 3)).astype(np.float32)
    render = StructureRenderer(kind, size)
    render(landmarks)
    start, repeats = time.perf_counter(), 20
    for _ in range(repeats):
        render(landmarks)
    return repeats * len(landmarks) / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    console = Console()
    torch.set_num_threads(1)
    results = {}
    for mode in args.modes:
        datamodule = build(args, mode)
        datamodule.prepare_data()
        results[mode] = time_loader(datamodule, args.epochs)
    # the loaders' persistent workers ignore SIGTERM, all that multiprocessing sends them at exit
    end_daemon_workers()
    renders_per_s = time_renderer(args.structure, args.image_size)
    video_preparation = time_video_preparation(args) if args.videos > 0 else None

    title = (
        f"forecast pairs/s, {args.image_size} px, {args.workers} workers, batch {args.batch_size}"
    )
    headers = ("mode", "pairs/s", "timed pairs", "setup s", "first batch s")
    rows = [
        [
            mode,
            f"{r['pairs_per_s']:.0f}",
            str(r["timed_pairs"]),
            f"{r['setup_s']:.2f}",
            f"{r['first_batch_s']:.2f}",
        ]
        for mode, r in results.items()
    ]
    table = Table(title=title)
    for column in headers:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    if results:
        console.print(table)
    lines = [
        f"Renderer alone ({args.structure}): {renders_per_s:.0f} maps/s in one process "
        "(2 maps per pair)."
    ]
    if video_preparation is not None:
        v = video_preparation
        lines.append(
            f"Preparing from video files (data=videos, mediapipe landmarks, {args.workers} "
            f"workers): {v['frames_per_s']:.1f} frames/s ({v['frames']} frames of {v['videos']} "
            f"MP4s in {v['seconds']:.1f} s, worker start-up included; load average "
            f"{v['load_average_1min_before']:.1f} -> {v['load_average_1min_after']:.1f})."
        )
    for line in lines:
        console.print(line)
    report = {
        "benchmark": "data",
        "image_size": args.image_size,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "structure": args.structure,
        "modes": results,
        "renderer_maps_per_s": renders_per_s,
        "video_preparation": video_preparation,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],  # other jobs lower the rates
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, report)
    console.print(f"wrote {out}")
    if args.docs:
        tables = (
            [results_page.Table(headers, rows, title[0].upper() + title[1:] + ":")] if rows else []
        )
        page = results_page.write_results_page(
            args.docs,
            "data",
            "Data pipeline: pairs per second, preparation from videos",
            tables,
            report,
            notes=lines,
        )
        console.print(f"wrote {page}")


if __name__ == "__main__":
    main()
