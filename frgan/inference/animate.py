"""Animate a source face with a driver's expression: retarget, render, generate.

The columns people look at, per frame: source | driver | driver structure | retargeted
structure | generated. Everything is float32 [T,3,S,S] in [-1, 1] until `grid`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from frgan.data.datasets import face68_points, to_image_tensor
from frgan.data.retarget import retarget
from frgan.data.structure import StructureRenderer
from frgan.inference.faces import DriverTake, Face
from frgan.utils.media import side_by_side, to_uint8

COLUMNS = ("source", "driver", "driver structure", "retargeted structure", "generated")
# what of the driver's motion the source follows: its expression only (the source's head stays
# still), or also its head motion relative to its first frame (first-order-model's "relative")
MOTIONS = ("expression", "expression+pose")


def drive(source: Face, driver: DriverTake, motion: str = "expression") -> np.ndarray:
    """The source's landmarks [T,P,3] moved by the driver (frgan.data.retarget: the motion from
    the driver's first frame, carried over to the source's face size and pose)."""
    if motion not in MOTIONS:
        raise ValueError(f"motion={motion!r} is unknown; choose one of {', '.join(MOTIONS)}")
    return retarget(
        driver.landmarks, source.landmarks, transfer_head_motion=motion == "expression+pose"
    )


def structure_maps(
    source: Face, driver: DriverTake, render: StructureRenderer, motion: str = "expression"
) -> dict:
    """s0 [1,3,S,S] of the source, the driver's maps and the retargeted maps [T,3,S,S], and
    the 68 landmarks the source's and the retargeted maps were drawn from: "l0" [1,68,2] and
    "landmarks" [T,68,2]."""
    retargeted = drive(source, driver, motion)
    return {
        "s0": torch.from_numpy(render(source.landmarks[None])),
        "driver": torch.from_numpy(render(driver.landmarks)),
        "retargeted": torch.from_numpy(render(retargeted)),
        "l0": face68_points(source.landmarks[None]),
        "landmarks": face68_points(retargeted),
    }


@torch.no_grad()
def generate_clip(
    model,
    x0: torch.Tensor,
    maps: dict,
    chunk: int = 16,
    advance: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, str]:
    """The model's clip [T,3,S,S] for the retargeted structures of `maps` (structure_maps), and
    its name: "refined" when the model returns one (two-stage), else "forecast".

    A forecast model paints every frame from the source alone, so the clip is generated `chunk`
    frames at a time (the progress advances per chunk); any other model sees the whole clip in
    one call, since refining looks across frames.
    """
    device = next(model.parameters()).device
    structures, landmarks = maps["retargeted"], maps["landmarks"]
    frames = len(structures)
    step = chunk if getattr(model, "data_stage", None) == "forecast" else frames
    x0, s0, l0 = x0.to(device), maps["s0"].to(device), maps["l0"].to(device)
    parts, name = [], "forecast"
    for start in range(0, frames, step):
        window = slice(start, start + step)
        clip = structures[None, window].to(device)
        clips = model.animate(x0, s0, clip, l0, landmarks[None, window].to(device))
        name = "refined" if "refined" in clips else "forecast"
        parts.append(clips[name][0].float().cpu())
        if advance is not None:
            advance(clip.shape[1])
    return torch.cat(parts), name


def grid(source: Face, driver: DriverTake, maps: dict, generated: torch.Tensor) -> np.ndarray:
    """uint8 [T, S, 5·S, 3]: the COLUMNS side by side for every frame."""
    frames = len(generated)
    x0 = to_image_tensor(source.image)[None].expand(frames, -1, -1, -1)
    columns = [x0, to_image_tensor(driver.frames), maps["driver"], maps["retargeted"], generated]
    return to_uint8(side_by_side(columns))
