"""Benchmark FVD feature extraction: clips per second through the Kinetics-400 I3D.

    python scripts/bench_fvd.py [--clips 8] [--frames 16] [--size 64] [--batch 4]
        [--out outputs/bench/fvd.json]

Clips of `size` px are resized to 224×224 as FVD does. Needs the I3D weights
(`make fvd-weights`). Prints the figures and writes JSON; the machine's load average is
recorded beside them (timings on a shared machine vary with it).
"""

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from frgan.metrics.fvd import FrechetVideoDistance
from frgan.utils.files import write_json_atomic
from frgan.utils.results_page import Table, add_docs_option, write_results_page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/fvd.json"))
    add_docs_option(parser)
    args = parser.parse_args()

    metric = FrechetVideoDistance(batch_size=args.batch)
    generator = torch.Generator().manual_seed(0)
    clips = torch.rand(args.clips, args.frames, 3, args.size, args.size, generator=generator)
    metric.features(clips[: args.batch] * 2 - 1)  # warm-up
    start = time.perf_counter()
    metric.features(clips * 2 - 1)
    seconds = time.perf_counter() - start
    result = {
        "clips": args.clips,
        "frames": args.frames,
        "input_size": args.size,
        "batch": args.batch,
        "seconds": round(seconds, 2),
        "clips_per_second": round(args.clips / seconds, 3),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(
        f"I3D features: {result['clips_per_second']} clips/s ({args.clips} clips of "
        f"{args.frames} frames at {args.size} px -> 224, batch {args.batch}, "
        f"{result['torch_threads']} threads, load {os.getloadavg()[0]:.1f})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    if args.docs:
        headers = ("clips", "frames", "input px", "batch", "threads", "seconds", "clips/s")
        row = [args.clips, args.frames, args.size, args.batch, result["torch_threads"]]
        row += [f"{seconds:.1f}", f"{result['clips_per_second']:.3f}"]
        caption = (
            "Feature extraction through the Kinetics-400 I3D (random clips resized to 224x224), "
            "after one warm-up batch."
        )
        page = write_results_page(
            args.docs, "fvd", "FVD: I3D clips per second", [Table(headers, [row], caption)], result
        )
        print(f"wrote {page}")


if __name__ == "__main__":
    main()
