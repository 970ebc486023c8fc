"""What a forecast paints inside the mouth: the brightness and the contrast of the teeth, the
dark cavity and the lips, the truth's against each model's, at the test takes' apex frames.

    python scripts/mouth_colours.py NAME=RUN [NAME=RUN ...] [--split test] [--docs [FOLDER]]

RUN is a training run folder or checkpoint of a ForecastGAN. Parts come from the target's 68
landmarks (frgan/render/parts.py, teeth by TEETH_EDGES, pixels the part covers fully), whatever
structure map the run was trained on. Per frame: a part's mean luminance and its spread (the
standard deviation of luminance over the part's pixels: teeth with dark gaps and edges have
much, a blurred band little), then averaged over the frames. The apex frames: the 3 frames of
each take farthest in expression from its first, blinks left out (frgan.metrics.expression
apex_frames, the protocol of frgan.evaluate's expression analysis).

--docs writes FOLDER/mouth_colours.md and .json (default docs/expression/).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from frgan.data.topology import mesh_of
from frgan.inference.model import training_config_path
from frgan.metrics.expression import apex_frames
from frgan.metrics.image import luminance
from frgan.models.checkpoints import load_model
from frgan.render.parts import part_coverage
from frgan.utils.checkpoint_io import find_checkpoint
from frgan.utils.cli import report_user_errors
from frgan.utils.files import write_json_atomic
from frgan.utils.results_page import (
    Table,
    add_docs_option,
    named_folder,
    text_table,
    write_results_page,
)

PARTS = ("teeth", "cavity", "lips")
FULL = 0.9  # a pixel belongs to a part the part covers more than this much of
APEX_FRAMES = 3


def measure_run(path: Path, split: str) -> dict:
    """{expression: {part: {truth_mean, model_mean, truth_spread, model_spread, frames}}}."""
    checkpoint = find_checkpoint(path)
    model = load_model(checkpoint)
    config = OmegaConf.load(training_config_path(checkpoint))
    config.data.num_workers = 0
    data = instantiate(config.data)
    data.setup("test" if split == "test" else "fit")
    dataset = data.datasets[split]
    found: dict[str, dict[str, list]] = {}
    for index, take in enumerate(dataset.takes):
        expression = take.key.split("__")[1]
        face68 = mesh_of(take.landmarks).face68(take.landmarks)
        for frame in apex_frames(face68, APEX_FRAMES):
            item = dataset.__getitems__([int(dataset.offsets[index] + frame)])[0]
            with torch.no_grad():
                inputs = (item[key][None] for key in ("x0", "s0", "st", "l0", "lt"))
                generated = model(*inputs).frame[0]
            size = item["xt"].shape[-1]
            parts = part_coverage(item["lt"].numpy(), size, size, teeth=True)
            for part in PARTS:
                pixels = torch.from_numpy(parts[part] > FULL)
                if pixels.sum() < 2:
                    continue
                truth, painted = luminance(item["xt"])[pixels], luminance(generated)[pixels]
                found.setdefault(expression, {}).setdefault(part, []).append(
                    [truth.mean(), painted.mean(), truth.std(), painted.std()]
                )
    keys = ("truth_mean", "model_mean", "truth_spread", "model_spread")
    return {
        expression: {
            part: {
                **dict(zip(keys, np.mean(values, axis=0).tolist(), strict=True)),
                "frames": len(values),
            }
            for part, values in sorted(by_part.items(), key=lambda item: PARTS.index(item[0]))
        }
        for expression, by_part in sorted(found.items())
    }


def table(results: dict[str, dict]) -> Table:
    names = list(results)
    headers = ["expression", "part", "frames", "truth: mean / spread"]
    headers += [f"{name}: mean / spread" for name in names]
    rows = []
    first = results[names[0]]
    for expression, by_part in first.items():
        for part, cells in by_part.items():
            row = [expression, part, cells["frames"]]
            row.append(f"{cells['truth_mean']:.2f} / {cells['truth_spread']:.3f}")
            for name in names:
                other = results[name].get(expression, {}).get(part)
                row.append(
                    "—"
                    if other is None
                    else f"{other['model_mean']:.2f} / {other['model_spread']:.3f}"
                )
            rows.append(row)
    return Table(
        headers,
        rows,
        caption="Luminance (0-1) of the parts the target's landmarks draw, at the apex frames: "
        "the mean over the part, and its spread (standard deviation over the part's pixels), "
        "averaged over frames.",
    )


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN (a training run folder or checkpoint)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/mouth_colours.json"))
    add_docs_option(parser, Path("docs/expression"))
    args = parser.parse_args(argv)
    runs = dict(named_folder(argument, "RUN") for argument in args.runs)
    results = {name: measure_run(path, args.split) for name, path in runs.items()}
    page = table(results)
    print(page.caption)
    print(text_table(page.headers, page.rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"split": args.split, "runs": {name: str(path) for name, path in runs.items()}}
    write_json_atomic(args.out, payload | {"results": results})
    if args.docs:
        written = write_results_page(
            args.docs, "mouth_colours", "What a forecast paints inside the mouth", [page],
            payload | {"results": results},
        )  # fmt: skip
        print(f"wrote {written}")


if __name__ == "__main__":
    main(sys.argv[1:])
