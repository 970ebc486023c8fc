"""Seconds per generated frame of `python -m frgan.generate`, per stage, for model presets.

    python scripts/bench_generate.py --threads 2                    # small + paper, 64 px, 32 frames
    python scripts/bench_generate.py --presets paper --image-size 128 --frames 16

Runs generate's own pipeline functions on a synthetic source frame and a synthetic take of
another subject (generated into a temporary folder, 128 px): landmarks (ground truth) and crops,
retargeting and structure rendering, then the model (ForecastGAN with random weights: the time
does not depend on them) in generate's chunks, and the grid the writers get. The video writers
are timed too (MP4 + GIF). Each configuration runs `--repeats` times; the fastest run is
reported (the least disturbed on a shared machine). MediaPipe's time per driver frame (a real
photo, 256 px) is measured once beside it, for drivers without ground truth. Prints a table and
writes JSON (--out) with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from frgan.data.datasets import to_image_tensor
from frgan.data.structure import StructureRenderer
from frgan.inference.animate import generate_clip, grid, structure_maps
from frgan.inference.faces import driver_take, find_landmarks, source_face
from frgan.inference.frames import read_driver, read_image
from frgan.models import ForecastGAN
from frgan.synthetic import generate_dataset
from frgan.utils import results_page
from frgan.utils.files import write_json_atomic
from frgan.utils.media import write_gif, write_mp4


def synthetic_inputs(root: Path, frames: int) -> tuple[Path, Path]:
    """A source frame of one synthetic subject and a take of another, `frames` frames long."""
    generate_dataset(
        root, subjects=2, takes_per_expression=1, image_size=128, min_frames=frames,
        max_frames=frames, expressions=["happiness"], workers=0, progress=False,
    )  # fmt: skip
    first, second = sorted(p for p in root.glob("s*") if p.is_dir())[:2]
    return first / "happiness" / "take000" / "img_0000.jpg", second / "happiness" / "take000"


def bench_preset(preset: str, source: Path, driver_dir: Path, args, out_dir: Path) -> dict:
    size = args.image_size
    model = ForecastGAN(preset=preset, image_size=size).eval()
    runs = []
    for _ in range(args.repeats):
        times = {}
        start = time.perf_counter()
        face = source_face(read_image(source), source, size)
        driver = driver_take(read_driver(driver_dir), size, str(driver_dir))
        times["landmarks_crop"] = time.perf_counter() - start

        start = time.perf_counter()
        maps = structure_maps(face, driver, StructureRenderer("normal", size))
        times["retarget_render"] = time.perf_counter() - start

        start = time.perf_counter()
        x0 = to_image_tensor(face.image)[None]
        generated, _ = generate_clip(model, x0, maps, chunk=args.chunk)
        times["model"] = time.perf_counter() - start

        start = time.perf_counter()
        video = grid(face, driver, maps, generated)
        write_mp4(out_dir / "animation.mp4", video)
        write_gif(out_dir / "animation.gif", video)
        times["grid_write"] = time.perf_counter() - start
        runs.append(times)
    frames = len(driver.frames)
    best = min(runs, key=lambda t: sum(t.values()))
    return {
        "preset": preset,
        "image_size": size,
        "frames": frames,
        "generator_parameters": sum(p.numel() for p in model.generator.parameters()),
        "seconds": best,
        "seconds_per_frame": sum(best.values()) / frames,
        "model_seconds_per_frame": best["model"] / frames,
        "all_runs": runs,
    }


def mediapipe_seconds_per_frame(frames: int) -> float | None:
    """MediaPipe (video mode) on a real photo moving a little, 256 px; None if not installed."""
    from PIL import Image
    from skimage.data import astronaut

    image = np.asarray(Image.fromarray(astronaut()).resize((256, 256)))
    clip = np.stack([np.roll(image, k, axis=1) for k in range(frames)])
    try:
        find_landmarks("mediapipe", clip[:1], None, None)  # import and model load, untimed
        start = time.perf_counter()
        find_landmarks("mediapipe", clip, None, None)
    except ImportError:
        return None
    return (time.perf_counter() - start) / frames


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["small", "paper"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=16, help="frames per forward pass")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/generate.json"))
    results_page.add_docs_option(parser)
    args = parser.parse_args()
    if min(args.frames, args.chunk, args.repeats) < 1:
        parser.error("--frames, --chunk and --repeats must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    console = Console()
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        source, driver_dir = synthetic_inputs(Path(tmp) / "synthetic", args.frames)
        for preset in args.presets:
            console.print(f"[bold]{preset}[/] {args.image_size} px, {args.frames} frames ...")
            results.append(bench_preset(preset, source, driver_dir, args, Path(tmp)))
    mediapipe = mediapipe_seconds_per_frame(min(args.frames, 16))
    load_after = os.getloadavg()

    title = f"frgan.generate, seconds per frame ({args.image_size} px, CPU)"
    headers = ("preset", "G params", "landmarks+crop", "retarget+render", "model", "grid+write")
    headers += ("total s/frame",)
    stages = ("landmarks_crop", "retarget_render", "model", "grid_write")
    rows = []
    for r in results:
        per_frame = [f"{r['seconds'][k] / r['frames']:.4f}" for k in stages]
        params = f"{r['generator_parameters'] / 1e6:.1f} M"
        rows.append([r["preset"], params, *per_frame, f"{r['seconds_per_frame']:.4f}"])
    table = Table(title=title)
    for column in headers:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    lines = []
    if mediapipe is not None:
        lines.append(
            f"MediaPipe landmarks (drivers without ground truth): {mediapipe:.4f} s per frame."
        )
    lines.append(
        f"Torch threads {torch.get_num_threads()}, load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after."
    )
    for line in lines:
        console.print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "results": results,
        "mediapipe_seconds_per_frame": mediapipe,
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "torch": torch.__version__,
    }
    write_json_atomic(args.out, report)
    console.print(f"JSON: {args.out}")
    if args.docs:
        caption = (
            f"Seconds per generated frame by stage, {args.frames} frames in chunks of "
            f"{args.chunk}, the fastest of {args.repeats} runs; synthetic source and driver with "
            "ground-truth landmarks, random weights (the time does not depend on them)."
        )
        page = results_page.write_results_page(
            args.docs,
            "generate",
            "Generate: seconds per frame",
            [results_page.Table(headers, rows, caption)],
            report,
            notes=lines,
        )
        console.print(f"wrote {page}")


if __name__ == "__main__":
    main()
