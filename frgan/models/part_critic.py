"""Part critics: WGAN critics that see one face part only — the mouth, or the eyes with their
brows — cropped from the frame and from its structure map along the target's 68 landmarks.

The whole-frame critic spends itself where most pixels are (the head's outline, the skin); a
mouth is a few hundred pixels of a 64 px frame, so a smile painted without its teeth costs it
almost nothing, and L1 alone settles on the blurred median of where the teeth might be. A crop
resampled to a fixed size, upright along the eye line and scaled by the eye distance, gives the
part a critic of its own that judges it against its structure (the local discriminators of
face completion: Iizuka et al. 2017, Li et al. 2017).

    crop:  part_crops(images [B,C,H,W], landmarks [B,68,2], part) -> [B,C,h,w]   differentiable
    score: PartCritic(concat(image crop, structure crop)) -> [B]
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from frgan.models.blocks import DownBlock, conv3x3

_LEFT_EYE, _RIGHT_EYE = list(range(36, 42)), list(range(42, 48))


class PartFrame(NamedTuple):
    """A crop box in eye-distance units around the mean of `points`, and its size in pixels as
    fractions of the image size (height, width)."""

    points: tuple[int, ...]
    width: float
    height: float
    pixels: tuple[float, float]


PARTS = {
    # the lips and their opening, with room for a dropped jaw and pulled corners
    "mouth": PartFrame(tuple(range(48, 68)), width=1.3, height=1.3, pixels=(0.5, 0.5)),
    # both brows and both eyes, lids included
    "eyes_brows": PartFrame(
        tuple(range(17, 27)) + tuple(range(36, 48)), width=2.1, height=1.1, pixels=(0.375, 0.75)
    ),
}


def crop_size(part: str, image_size: int) -> tuple[int, int]:
    """(height, width) of a part's crops for frames of `image_size` px: multiples of 8."""
    return tuple(max(8, 8 * round(f * image_size / 8)) for f in PARTS[part].pixels)


def _part_box(landmarks: torch.Tensor, part: str) -> tuple[torch.Tensor, ...]:
    """(centre [B,2], u [B,2] along the eye line, v [B,2] down the face, half extents
    [B,2] across and down) of a part's crop box, in pixels."""
    frame = PARTS[part]
    points = landmarks[..., :2].float()
    left, right = points[:, _LEFT_EYE].mean(1), points[:, _RIGHT_EYE].mean(1)
    along = right - left
    eye_distance = along.norm(dim=-1, keepdim=True).clamp_min(1e-3)
    u = along / eye_distance  # along the eye line
    v = torch.stack([-u[:, 1], u[:, 0]], dim=-1)  # down the face (image y points down)
    centre = points[:, list(frame.points)].mean(1)
    half = eye_distance * 0.5 * torch.tensor([frame.width, frame.height], device=points.device)
    return centre, u, v, half


def part_grid(landmarks: torch.Tensor, part: str, image_size: int) -> torch.Tensor:
    """grid_sample coordinates [B,h,w,2] of a part's crop box for 68-point landmarks [B,68,≥2]
    in pixels (pixel centres at +0.5): centred on the part's points, turned with the eye line,
    sized by the distance between the eye centres."""
    centre, u, v, half = _part_box(landmarks, part)
    height, width = crop_size(part, image_size)
    # pixel centres of the crop, in [-1, 1] across its box
    a = (torch.arange(width, device=centre.device) + 0.5) / width * 2 - 1
    b = (torch.arange(height, device=centre.device) + 0.5) / height * 2 - 1
    across = a.view(1, 1, width, 1) * half[:, 0].view(-1, 1, 1, 1) * u.view(-1, 1, 1, 2)
    down = b.view(1, height, 1, 1) * half[:, 1].view(-1, 1, 1, 1) * v.view(-1, 1, 1, 2)
    xy = centre.view(-1, 1, 1, 2) + across + down
    return xy / image_size * 2 - 1  # align_corners=False: pixel edges at ±1


def part_points(landmarks: torch.Tensor, part: str) -> torch.Tensor:
    """The part's own landmarks [B,P,2] in its crop's coordinates ([-1, 1] across the box,
    x across, y down): where they lie in the crops part_grid makes."""
    centre, u, v, half = _part_box(landmarks, part)
    offsets = landmarks[:, list(PARTS[part].points), :2].float() - centre[:, None]
    across = (offsets * u[:, None]).sum(-1) / half[:, None, 0]
    down = (offsets * v[:, None]).sum(-1) / half[:, None, 1]
    return torch.stack([across, down], dim=-1)


def crop(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Crops [B,C,h,w] of images [B,C,S,S] at a part_grid (bilinear, the border repeated)."""
    return F.grid_sample(
        images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )


def part_crops(images: torch.Tensor, landmarks: torch.Tensor, part: str) -> torch.Tensor:
    """Crops [B,C,h,w] of one part from images [B,C,S,S]."""
    return crop(images, part_grid(landmarks, part, images.shape[-1]))


class PartCritic(nn.Module):
    """conv 6->c, three down blocks (LeakyReLU 0.01), a 1x1 conv to a patch map, its mean.
    No normalization (the gradient penalty is per sample) and no sigmoid."""

    def __init__(self, width: int, max_channels: int):
        super().__init__()
        widths = [min(width * 2**k, max_channels) for k in range(4)]
        self.stem = conv3x3(6, widths[0])
        self.blocks = nn.Sequential(
            *(DownBlock(widths[k], widths[k + 1], negative_slope=0.01) for k in range(3))
        )
        self.to_score = nn.Conv2d(widths[-1], 1, kernel_size=1)

    def features(self, image: torch.Tensor, structure: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps after the stem and after each down block, finest first."""
        features = [self.stem(torch.cat([image, structure], dim=1))]
        for block in self.blocks:
            features.append(block(features[-1]))
        return features

    def forward(self, image: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        """image, structure crops [B,3,h,w] in [-1,1] (h, w multiples of 8) -> scores [B]."""
        return self.to_score(self.features(image, structure)[-1]).mean(dim=(1, 2, 3))


def feature_matching(critic: PartCritic, real, fake, structure) -> torch.Tensor:
    """[B]: the mean |f(real) − f(fake)| over each of the critic's feature maps, summed over the
    maps (pix2pixHD's feature matching): a paired loss in the terms the critic tells real parts
    from painted ones by. The critic is not trained by it (its real features are detached)."""
    pairs = zip(critic.features(real, structure), critic.features(fake, structure), strict=True)
    return sum((f - r.detach()).abs().mean(dim=(1, 2, 3)) for r, f in pairs)
