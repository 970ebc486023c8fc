"""Can a loss make a trained forecast generator paint the inside of an open mouth? A probe in
minutes rather than a training run's ten: fine-tune the generator of a run, alone, on the
training pairs whose target's mouth is open, with the L1 term of training at one or more
opening weights (model.opening_weight, frgan/models/losses.py), and measure inside the
target's mouth opening before and after, on those pairs and on the held-out test subjects'
(which it never trains on): the error, and the spread of luminance (teeth with dark gaps
between lips have much, a band painted the colour of the lips little).

    python scripts/mouth_fit_probe.py RUN [--opening-weights 0 50] [--steps 400] [--replay 0.5]
        [--expression happiness] [--out FILE] [--docs [FOLDER]] [--save FOLDER]

RUN is a training run folder or checkpoint of a ForecastGAN. Every weight starts from the same
checkpoint (its sampling generator: the EMA copy when it has one), at the rate its run ended
with unless --lr is given, and sees the same batches. --replay F draws that share of each
batch from all the training pairs instead (any expression, mouth open or not): the fine-tune
then rehearses what the run learnt besides the smile. The opening: the inner lip ring of the
target's 68 landmarks, 1 px wider (frgan/metrics/regions.py mouth_opening_mask).

Writes FILE (JSON) and FILE's .png beside it: for test pairs of the wider openings, the target
structure, each weight's frame after the fine-tune, and the truth, at 4x; --docs also a results
page and the picture (default docs/expression/). --save keeps each fine-tuned generator as a run
folder FOLDER/opening_<weight>/ (checkpoints/last.ckpt and the run's .hydra/config.yaml), so
that `python -m frgan.evaluate ckpt=FOLDER/opening_<weight>` scores it by the full protocol.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from frgan.errors import ConfigError
from frgan.inference.model import training_config_path
from frgan.metrics.image import luminance
from frgan.metrics.regions import mouth_opening_mask
from frgan.models.checkpoints import load_model
from frgan.models.losses import weighted_l1
from frgan.utils.checkpoint_io import (
    AtomicCheckpointIO,
    add_digest,
    find_checkpoint,
    read_checkpoint,
)
from frgan.utils.cli import report_user_errors
from frgan.utils.files import write_json_atomic
from frgan.utils.media import side_by_side, to_uint8, write_image
from frgan.utils.results_page import Table, add_docs_option, text_table, write_results_page

KEYS = ("x0", "s0", "st", "xt", "l0", "lt")
INPUTS = ("x0", "s0", "st", "l0", "lt")  # the generator's (the landmarks for landmark_warp)
SHOWN = 6  # pairs in the picture
ZOOM = 4  # the picture's pixels per frame pixel: a teeth row is 1-2 px high at 64 px


def final_rate(hparams) -> float:
    """The generator's learning rate where its run ended: the fine-tune continues from there
    (a larger rate knocks the rest of the picture out of place, docs/expression/opening_ssim)."""
    rate = hparams.generator_lr or hparams.lr
    return rate * hparams.lr_final_fraction if hparams.lr_schedule == "cosine" else rate


def open_mouth_pairs(
    dataset, split: str, expression: str | None, min_pixels: int
) -> dict[str, torch.Tensor]:
    """The `split` dataset's pairs whose target's mouth opening has at least `min_pixels`
    pixels, of one expression or all: {x0, s0, st, xt: [N,3,H,W], opening: bool [N,1,H,W]}."""
    found = []
    for index, take in enumerate(dataset.takes):
        if expression and take.key.split("__")[1] != expression:
            continue
        first, end = int(dataset.offsets[index]), int(dataset.offsets[index + 1])
        pairs = stacked_pairs(dataset.__getitems__(list(range(first, end))))
        found.append({key: value[pairs["opening"].sum(dim=(1, 2, 3)) >= min_pixels]
                      for key, value in pairs.items()})  # fmt: skip
    if not sum(len(pairs["xt"]) for pairs in found):
        raise ConfigError(
            f"no {split} pair of {expression or 'any expression'} opens the mouth over "
            f"{min_pixels} pixels: pick another --expression or a lower --min-pixels"
        )
    return {key: torch.cat([pairs[key] for pairs in found]) for key in found[0]}


def stacked_pairs(items: list[dict]) -> dict[str, torch.Tensor]:
    """A dataset's items as {x0, s0, st, xt: [N,3,H,W], l0, lt: [N,68,2], opening: bool
    [N,1,H,W]}."""
    pairs = {key: torch.stack([item[key] for item in items]) for key in KEYS}
    return pairs | {"opening": mouth_opening_mask(pairs["lt"], *pairs["xt"].shape[-2:])}


def luminance_spread(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image, the standard deviation of luminance (0-1) over its mask's pixels: [N]."""
    luma = luminance(images)
    return torch.stack([value[mask[0]].std() for value, mask in zip(luma, masks, strict=True)])


def forecast(generator, pairs: dict[str, torch.Tensor], chunk: int = 64) -> torch.Tensor:
    generator.eval()
    with torch.no_grad():
        frames = [
            generator(*(pairs[key][i : i + chunk] for key in INPUTS)).frame
            for i in range(0, len(pairs["xt"]), chunk)
        ]
    generator.train()
    return torch.cat(frames)


def measure(generator, splits: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    """{<split>_opening_error, <split>_frame_error, <split>_opening_spread} for each split."""
    measured = {}
    for split, pairs in splits.items():
        frames = forecast(generator, pairs)
        error = (frames - pairs["xt"]).abs().mean(dim=1, keepdim=True)
        opening = pairs["opening"].float()
        measured |= {
            f"{split}_opening_error": float((error * opening).sum() / opening.sum()),
            f"{split}_frame_error": float(error.mean()),
            f"{split}_opening_spread": float(luminance_spread(frames, pairs["opening"]).mean()),
        }
    return measured


def replayed_pairs(dataset, count: int, draw: torch.Generator) -> dict[str, torch.Tensor]:
    """`count` pairs drawn uniformly from all of `dataset`, with their mouth openings."""
    indices = torch.randint(len(dataset), (count,), generator=draw).tolist()
    return stacked_pairs(dataset.__getitems__(indices))


def probe(
    generator, splits: dict[str, dict[str, torch.Tensor]], weights: list[float], steps: int,
    batch: int, lr: float, every: int, seed: int, replay: float = 0.0, dataset=None,
) -> tuple[dict, dict[float, torch.nn.Module]]:  # fmt: skip
    """Fine-tune a copy of `generator` per opening weight on splits["train"] (and, with
    `replay`, that share of each batch drawn from all of `dataset`); their measures on every
    split every `every` steps ({weight: [{step, <split>_opening_error, ...}]}) and the tuned
    generators."""
    pairs = splits["train"]
    replayed = round(replay * batch)
    curves, tuned_generators = {}, {}
    for weight in weights:
        tuned = copy.deepcopy(generator).train()
        optimizer = torch.optim.Adam(tuned.parameters(), lr=lr, betas=(0.0, 0.9))
        draw = torch.Generator().manual_seed(seed)
        curves[weight] = [{"step": 0, **measure(tuned, splits)}]
        for step in range(1, steps + 1):
            picked = torch.randint(len(pairs["xt"]), (batch - replayed,), generator=draw)
            drawn = {key: pairs[key][picked] for key in (*KEYS, "opening")}
            if replayed:
                rehearsed = replayed_pairs(dataset, replayed, draw)
                drawn = {key: torch.cat([value, rehearsed[key]]) for key, value in drawn.items()}
            frame = tuned(*(drawn[key] for key in INPUTS)).frame
            loss = weighted_l1(frame, drawn["xt"], drawn["x0"], 0.0, drawn["opening"], weight)
            loss = loss.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % every == 0 or step == steps:
                curves[weight].append({"step": step, **measure(tuned, splits)})
                print(f"opening weight {weight:g} step {step}/{steps}: {curves[weight][-1]}")
        tuned_generators[weight] = tuned
    return curves, tuned_generators


def save_tuned(
    checkpoint: Path, generators: dict[float, torch.nn.Module], folder: Path
) -> list[Path]:
    """Each tuned generator as a run folder of its own: the run's checkpoint with the generator
    (and its EMA copy, when it has one) replaced, its digest recomputed, beside the run's
    config."""
    written = []
    for weight, generator in generators.items():
        content = read_checkpoint(checkpoint)
        state = dict(content["state_dict"])
        for prefix in ("generator.", "generator_ema."):
            if any(name.startswith(prefix) for name in state):
                state |= {prefix + name: value for name, value in generator.state_dict().items()}
        content["state_dict"] = state
        add_digest(content)
        run = folder / f"opening_{weight:g}"
        (run / ".hydra").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(training_config_path(checkpoint), run / ".hydra" / "config.yaml")
        AtomicCheckpointIO().save_checkpoint(content, run / "checkpoints" / "last.ckpt")
        written.append(run)
    return written


def side_by_side_picture(pairs: dict[str, torch.Tensor], tuned: dict) -> np.ndarray:
    """uint8 [H,W,3] at ZOOM: for the pairs of the widest openings (the larger half by opening,
    spread over it), the target structure, each tuned generator's frame and the truth."""
    widest = pairs["opening"].sum(dim=(1, 2, 3)).argsort(descending=True)
    widest = widest[: max(1, len(widest) // 2)]
    shown = widest[torch.linspace(0, len(widest) - 1, min(SHOWN, len(widest))).long()]
    subset = {key: pairs[key][shown] for key in KEYS}
    frames = [forecast(generator, subset) for generator in tuned.values()]
    picture = torch.cat(
        [
            side_by_side([subset["st"][i], *(f[i] for f in frames), subset["xt"][i]])
            for i in range(len(shown))
        ],
        dim=-2,
    )
    return to_uint8(picture).repeat(ZOOM, axis=0).repeat(ZOOM, axis=1)


def table(curves: dict, truth_spread: dict[str, float]) -> Table:
    rows = []
    for weight, curve in curves.items():
        start, end = curve[0], curve[-1]
        for split in ("train", "test"):
            cells = [f"{weight:g}", split]
            for measure_, digits in (
                ("opening_error", 3),
                ("opening_spread", 3),
                ("frame_error", 4),
            ):
                key = f"{split}_{measure_}"
                cells.append(f"{start[key]:.{digits}f} → {end[key]:.{digits}f}")
            rows.append(cells)
    return Table(
        [
            "opening weight",
            "pairs",
            "error in the opening",
            "luminance spread in the opening",
            "error over the frame",
        ],  # fmt: skip
        rows,
        caption="Before → after the fine-tune on the training pairs, over every picked pair of "
        "the training subjects and of the held-out test subjects: mean |x̂ − xt| ([-1, 1] units, "
        "channel mean) inside the target's mouth opening and over the frame; the spread of "
        "luminance (0-1) inside the opening, whose truth is "
        f"{truth_spread['train']:.3f} (train) and {truth_spread['test']:.3f} (test).",
    )


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a training run folder or checkpoint")
    parser.add_argument("--opening-weights", type=float, nargs="+", default=[0.0, 50.0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--every", type=int, default=100, help="measure every this many steps")
    parser.add_argument(
        "--lr", type=float, default=None, help="default: the run's final generator rate"
    )
    parser.add_argument("--expression", default="happiness", help="'' for every expression")
    parser.add_argument(
        "--replay", type=float, default=0.0, help="share of each batch drawn from all pairs"
    )
    parser.add_argument("--min-pixels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/mouth_fit_probe.json"))
    parser.add_argument("--save", type=Path, default=None, metavar="FOLDER")
    add_docs_option(parser, Path("docs/expression"))
    args = parser.parse_args(argv)
    if min(args.opening_weights) < 0 or min(args.steps, args.every, args.batch) < 1:
        raise ConfigError("--opening-weights must be ≥ 0, --steps, --every and --batch ≥ 1")
    if not 0 <= args.replay < 1:
        raise ConfigError("--replay is a share of the batch: 0 ≤ F < 1")
    if args.min_pixels < 2:
        raise ConfigError("--min-pixels must be ≥ 2: a spread needs two pixels")

    checkpoint = find_checkpoint(args.run)
    model = load_model(checkpoint)
    config = OmegaConf.load(training_config_path(checkpoint))
    config.data.num_workers = 0
    data = instantiate(config.data)
    data.setup("fit")
    data.setup("test")
    splits = {
        split: open_mouth_pairs(
            data.datasets[split], split, args.expression or None, args.min_pixels
        )
        for split in ("train", "test")
    }
    print(
        f"{len(splits['train']['xt'])} training and {len(splits['test']['xt'])} test pairs "
        f"open the mouth over {args.min_pixels} pixels"
    )
    torch.manual_seed(args.seed)
    lr = args.lr or final_rate(model.hparams)
    curves, tuned = probe(
        model.sampling_generator, splits, args.opening_weights, args.steps, args.batch, lr, args.every,
        args.seed, args.replay, data.datasets["train"],
    )  # fmt: skip
    truth_spread = {
        split: float(luminance_spread(pairs["xt"], pairs["opening"]).mean())
        for split, pairs in splits.items()
    }
    page = table(curves, truth_spread)
    print(page.caption)
    print(text_table(page.headers, page.rows))
    picture = side_by_side_picture(splits["test"], tuned)
    image = write_image(args.out.with_suffix(".png"), picture)
    payload = {
        "checkpoint": str(checkpoint),
        "pairs": {split: len(pairs["xt"]) for split, pairs in splits.items()},
        "expression": args.expression or None,
        "steps": args.steps,
        "batch": args.batch,
        "replay": args.replay,
        "lr": lr,
        "truth_spread": truth_spread,
        "curves": {f"{weight:g}": curve for weight, curve in curves.items()},
        "picture": f"test pairs; columns: target structure, opening weights {list(curves)}, truth",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, payload)
    print(f"wrote {args.out} and {image}")
    if args.docs:
        written = write_results_page(
            args.docs, "mouth_fit_probe", "Can a loss make the generator paint an open mouth?",
            [page], payload,
        )  # fmt: skip
        print(f"wrote {written} and {write_image(args.docs / 'mouth_fit_probe.png', picture)}")
    if args.save:
        for run in save_tuned(checkpoint, tuned, args.save):
            print(f"wrote {run}: python -m frgan.evaluate ckpt={run}")


if __name__ == "__main__":
    main(sys.argv[1:])
