"""A learned mouth interior: what an opening mouth shows (teeth, the dark cavity) when the
source frame's closed mouth does not show it.

The spline of the landmark warp can only stretch the source's closed lips over the target's
opening, and the generator then has to paint the teeth from nothing. Painted through L1 over
many faces, they average out: at 64 px a smile's teeth band is a grey band with dark corners
and a dark line between the rows, and a band misplaced by a pixel from face to face averages to
the colour of the lips (docs/expression/mouth_colours.md). In the opening's own coordinates the
teeth of every face line up, so a texture learnt there stays sharp.

    u: across the opening, −1 at the left inner corner (68-point 60), +1 at the right (64)
    v: −1 on the upper inner lip (61-63), +1 on the lower (65-67)
    a: how far the mouth is open, |l62 − l66| / |l60 − l64|, over OPENNESS_MAX in
       OPENNESS_STEPS steps (a smile's band is not a dropped jaw's cavity)

The texture [3, a, v, u] is sampled (trilinear) at each pixel's (u, v), carried there from the
target's inner lip ring by a thin-plate spline (frgan/models/tps.py), and fills the moved source
inside the target's opening, except where the moved source shows an opening of its own (a photo
that already smiles keeps its own teeth). The generator's edit and mask then start from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from frgan.metrics.regions import INNER_LIPS, mouth_opening_coverage
from frgan.models.tps import pixel_centres, tps_flow
from frgan.models.warp import warp

# (u, v) of the inner lip ring 60..67: the left corner, the upper lip, the right corner, the
# lower lip
RING = ((-1, 0), (-0.5, -1), (0, -1), (0.5, -1), (1, 0), (0.5, 1), (0, 1), (-0.5, 1))
OPENNESS_MAX = 0.6  # a surprise's dropped jaw reaches about 0.45-0.5 on the synthetic data
OPENNESS_STEPS = 7
TEXELS = (16, 32)  # (v, u)
# Adam moves every weight by about the learning rate per step, far too little for a texel to
# reach the teeth's grey in a short run: the texture is logits × LR_GAIN (StyleGAN's learning
# rate multiplier)
LR_GAIN = 25.0


class MouthInterior(nn.Module):
    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(1, 3, OPENNESS_STEPS, *TEXELS))

    def texture(self) -> torch.Tensor:
        """[1,3,a,v,u] in [-1, 1]."""
        return torch.tanh(self.logits * LR_GAIN)

    def forward(
        self,
        source: torch.Tensor,
        l0: torch.Tensor,
        lt: torch.Tensor,
        flow: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The moved source frame [B,3,H,W] with the target's mouth opening (68-point landmarks
        lt [B,68,2]) filled by the texture wherever the source's own opening (l0, moved by the
        backward flow [B,2,H,W] that moved the source; None: not moved) does not cover it."""
        height, width = source.shape[-2:]
        source_opening = mouth_opening_coverage(l0, height, width)
        if flow is not None and source_opening.any():
            source_opening = warp(source_opening, flow)
        fill = (mouth_opening_coverage(lt, height, width) - source_opening).clamp_min(0)
        filled = fill.flatten(1).amax(dim=1) > 0
        if not filled.any():
            return source
        # the texture is read only where there is something to fill (shut mouths are many)
        interior = torch.zeros_like(source)
        interior[filled] = F.grid_sample(
            self.texture().expand(int(filled.sum()), -1, -1, -1, -1),
            opening_coordinates(lt[filled], height, width).unsqueeze(1),
            mode="bilinear",
            padding_mode="border",
            align_corners=True,
        ).squeeze(2)
        return source + fill * (interior - source)


def opening_coordinates(landmarks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B,H,W,3]: each pixel's (u, v, a) in the mouth opening of 68-point landmarks [B,68,2],
    as grid_sample reads them (a in [−1, 1] over [0, OPENNESS_MAX])."""
    ring = landmarks[:, list(INNER_LIPS), :2].float()
    canonical = torch.tensor(RING, dtype=ring.dtype, device=ring.device).expand_as(ring)
    uv = tps_flow(canonical, ring, height, width) + pixel_centres(height, width, ring)
    width_apart = (ring[:, 4] - ring[:, 0]).norm(dim=-1).clamp_min(1e-6)
    openness = (ring[:, 2] - ring[:, 6]).norm(dim=-1) / width_apart
    a = (2 * openness / OPENNESS_MAX - 1).clamp(-1, 1)
    return torch.cat(
        [uv.permute(0, 2, 3, 1), a.view(-1, 1, 1, 1).expand(-1, height, width, 1)], dim=-1
    )
