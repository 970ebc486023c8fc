"""Part readers: small networks that read a face part's landmarks off its crop, trained on real
frames, so that the generator can be asked to paint a part whose landmarks read as the target's.

L1 settles on the blurred median of a mouth or a lid it is unsure of: the open mouth of a
smile comes out as a closed one with a dark line, a blink as a half-open eye, and a landmark
detector re-reading the frame finds the source's expression. A reader learns, from the real
crops of every batch (along the target's landmarks, frgan/models/part_critic.py), where the
part's own landmarks lie in its crop; the generator's loss then adds
    weight · mean |reader(crop of x̂) − the target's landmarks in crop coordinates|
(the landmark consistency of face reenactment). The reader trains with the critics, on real
crops only, and the generator's term does not train it.

    PartReader(crop [B,3,h,w]) -> landmarks [B,P,2] in crop coordinates ([-1, 1] across)
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from frgan.models.blocks import DownBlock, conv3x3
from frgan.models.part_critic import PARTS, crop_size


class PartReader(nn.Module):
    """conv 3->c, three down blocks (LeakyReLU 0.01), the flattened map -> 2 coordinates per
    landmark of the part. Flattened, not pooled: where a feature is tells where a lip is."""

    def __init__(self, part: str, image_size: int, width: int, max_channels: int):
        super().__init__()
        widths = [min(width * 2**k, max_channels) for k in range(4)]
        self.stem = conv3x3(3, widths[0])
        self.blocks = nn.Sequential(
            *(DownBlock(widths[k], widths[k + 1], negative_slope=0.01) for k in range(3))
        )
        height, width_px = crop_size(part, image_size)
        self.points = len(PARTS[part].points)
        self.to_points = nn.Linear(widths[-1] * (height // 8) * (width_px // 8), 2 * self.points)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image crops [B,3,h,w] in [-1,1] -> landmarks [B,P,2]."""
        features = rearrange(self.blocks(self.stem(image)), "b c h w -> b (c h w)")
        return rearrange(self.to_points(features), "b (p two) -> b p two", two=2)


def reading_error(reader: PartReader, image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """[B]: the mean |reader(image) − points| over the part's landmarks and both coordinates."""
    return (reader(image) - points).abs().mean(dim=(1, 2))
