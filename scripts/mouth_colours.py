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

Pictures (4x): mouth_crops.png, each expression's apex mouth per test subject, the truth's
beside each run's; mouth_interior_<NAME>.png, the learnt mouth interior of a run that has one
(model.mouth_interior), one texture per openness. Written beside --out, and with --docs beside
the page.

--docs writes FOLDER/mouth_colours.md and .json (default docs/expression/).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
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
from frgan.models.mouth_interior import OPENNESS_MAX
from frgan.render.parts import part_coverage
from frgan.utils.checkpoint_io import find_checkpoint
from frgan.utils.cli import report_user_errors
from frgan.utils.files import write_json_atomic
from frgan.utils.media import caption, to_uint8, write_image
from frgan.utils.results_page import (
    Table,
    add_docs_option,
    named_folder,
    text_table,
    write_results_page,
)

PARTS = ("teeth", "cavity", "lips")
ZOOM = 4
FULL = 0.9  # a pixel belongs to a part the part covers more than this much of
APEX_FRAMES = 3


def apex_forecasts(
    checkpoint: Path, model: torch.nn.Module, split: str
) -> Iterator[tuple[str, str, dict, torch.Tensor]]:
    """(expression, subject, the dataset's pair, the forecast [3,H,W]) at each apex frame of
    the split's takes (the data `checkpoint`'s run trained on), by `model`, its model."""
    config = OmegaConf.load(training_config_path(checkpoint))
    config.data.num_workers = 0
    data = instantiate(config.data)
    data.setup("test" if split == "test" else "fit")
    dataset = data.datasets[split]
    for index, take in enumerate(dataset.takes):
        subject, expression = take.key.split("__")[:2]
        face68 = mesh_of(take.landmarks).face68(take.landmarks)
        for frame in apex_frames(face68, APEX_FRAMES):
            item = dataset.__getitems__([int(dataset.offsets[index] + frame)])[0]
            with torch.no_grad():
                inputs = (item[key][None] for key in ("x0", "s0", "st", "l0", "lt"))
                yield expression, subject, item, model(*inputs).frame[0]


def measure(forecasts: Iterable[tuple[str, str, dict, torch.Tensor]]) -> dict:
    """{expression: {part: {truth_mean, model_mean, truth_spread, model_spread, frames}}}."""
    found: dict[str, dict[str, list]] = {}
    for expression, _, item, generated in forecasts:
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


def measure_run(path: Path, split: str) -> dict:
    """measure() of the run at `path` on `split`."""
    checkpoint = find_checkpoint(path)
    return measure(apex_forecasts(checkpoint, load_model(checkpoint), split))


def mouth_window(frame: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """[3, 3s/8, s/2] of frame [3,s,s]: the window about the centre of the lips (68-point
    landmarks [68,2]), moved inside the frame."""
    size = frame.shape[-1]
    height, width = 3 * size // 8, size // 2
    centre = landmarks[48:68].mean(dim=0).round().long()
    top = int((centre[1] - height // 2).clamp(0, size - height))
    left = int((centre[0] - width // 2).clamp(0, size - width))
    return frame[:, top : top + height, left : left + width]


def crop_sheet(forecasts: dict[str, list[tuple[str, str, dict, torch.Tensor]]]) -> np.ndarray:
    """uint8 [H,W,3] at ZOOM: one row per expression; per subject (its first apex frame of that
    expression), the truth's mouth and each run's."""
    names = list(forecasts)
    first: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, items in forecasts.items():
        for expression, subject, item, generated in items:
            shown = first.setdefault((expression, subject), {"truth": item["xt"], "lt": item["lt"]})
            shown.setdefault(name, generated)
    expressions = sorted({expression for expression, _ in first})
    subjects = sorted({subject for _, subject in first})
    rows = []
    for expression in expressions:
        cells = []
        for subject in subjects:
            shown = first.get((expression, subject))
            if shown is None:
                continue
            frames = [shown["truth"], *(shown[name] for name in names)]
            cells += [mouth_window(frame, shown["lt"]) for frame in frames]
        rows.append(to_uint8(torch.cat(cells, dim=-1)).repeat(ZOOM, 0).repeat(ZOOM, 1))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in rows]
    label = "rows: " + ", ".join(expressions) + "; per subject: truth, " + ", ".join(names)
    return np.concatenate([caption(label, width), *rows])


def interior_sheet(model: torch.nn.Module) -> np.ndarray | None:
    """uint8 [H,W,3] at ZOOM: the learnt mouth interior of a ForecastGAN, one texture per
    openness from shut to OPENNESS_MAX (frgan/models/mouth_interior.py); None without one."""
    interior = model.sampling_generator.mouth_interior
    if interior is None:
        return None
    textures = interior.texture().detach()[0].unbind(dim=1)  # each [3, v, u]
    gap = torch.ones(3, textures[0].shape[1], 2)
    picture = torch.cat([part for texture in textures for part in (texture, gap)][:-1], dim=-1)
    picture = to_uint8(picture).repeat(ZOOM, 0).repeat(ZOOM, 1)
    label = f"mouth interior by openness 0 .. {OPENNESS_MAX} (left to right)"
    return np.concatenate([caption(label, picture.shape[1]), picture])


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
    checkpoints = {name: find_checkpoint(path) for name, path in runs.items()}
    models = {name: load_model(checkpoint) for name, checkpoint in checkpoints.items()}
    forecasts = {
        name: list(apex_forecasts(checkpoints[name], models[name], args.split)) for name in runs
    }
    results = {name: measure(items) for name, items in forecasts.items()}
    page = table(results)
    print(page.caption)
    print(text_table(page.headers, page.rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"split": args.split, "runs": {name: str(path) for name, path in runs.items()}}
    write_json_atomic(args.out, payload | {"results": results})
    pictures = {"mouth_crops": crop_sheet(forecasts)}
    for name, model in models.items():
        sheet = interior_sheet(model)
        if sheet is not None:
            pictures[f"mouth_interior_{slug(name)}"] = sheet
    for folder in (args.out.parent, args.docs):
        if folder is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for stem, picture in pictures.items():
            print(f"wrote {write_image(folder / f'{stem}.png', picture)}")
    if args.docs:
        written = write_results_page(
            args.docs, "mouth_colours", "What a forecast paints inside the mouth", [page],
            payload | {"results": results},
        )  # fmt: skip
        print(f"wrote {written}")


def slug(name: str) -> str:
    """A file-name-safe form of a run's NAME."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_") or "run"


if __name__ == "__main__":
    main(sys.argv[1:])
