"""Forecast generator G(x0, s0, st) -> x̂t (reference section 2).

Two encoders: one for the source image, one shared by the source and target structure
maps. Latent analogy z' = z_img + (z_st - z_s0). A dense U-Net decoder: the input of every
level is the concatenation of the skips of all three encoder passes at that size (image,
target structure, source structure) and of every earlier decoder output, the code's
projection f included, nearest-upsampled to that size (channel order as released, so the
released weights map one to one). The head paints a residual image r
and a mask w, and the result copies the source wherever w = 0:  x̂ = w·r + (1 − w)·x0.

How r is drawn from the head's output h (`residual`):
    paint  r = tanh(h)                 the release: r is painted from scratch
    edit   r = tanh(atanh(x0) + h)     r is an edit of the source (h = 0 gives x0), so a mask
                                       that spills past what moves does no harm there

With `head_blocks` = n > 0, the full-size features pass through n residual blocks
(x + conv(relu(conv(relu(x)))), through as many channels as the stem has) before the head: the release's head is one linear conv, so
the structure map reaches the output at full size only linearly (a teeth band or a lid opening
a pixel or two high must otherwise come through the half-size decoder, blurred).

With `landmark_warp`, the flow starts from the thin-plate spline that carries the source's 68
landmarks l0 onto the target's lt (frgan/models/tps.py face_flow: a closing lid held a slit
apart so that a blink cannot fold it), and the head's flow, if any, corrects it: x0 becomes
warp(x0, spline + flow). The structure maps are drawn from those landmarks, so the spline moves
each lip corner, lid and brow where the target has it, which the decoder would otherwise have
to paint through its blur; what the source does not show (a mouth's cavity, teeth) is still
the residual's to paint.

With `mouth_interior`, a learnt texture of the mouth's inside in the opening's own coordinates
(teeth, the cavity: frgan/models/mouth_interior.py) fills the target's mouth opening in the moved
source where the source shows no opening of its own, so the residual edits teeth that are
already there instead of painting them from the lips.

With `part_refiners` (mouth, eyes_brows), a small network of its own repaints each part's
window of the composited frame (frgan/models/part_refiner.py); `frame` is then the refined one.

With `warp`, the head also predicts a flow field (pixels, at most MAX_FLOW·size, starting at
zero) and the source is moved by it before anything else uses it: x0 becomes warp(x0, flow)
in the composite and in the edit. A sharp outline that shifts by a few pixels (a head that
turns) is then moved, not repainted through the decoder's blur.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from frgan.models.blocks import UpBlock, conv3x3
from frgan.models.encoder import Encoder
from frgan.models.mouth_interior import MouthInterior
from frgan.models.part_refiner import WINDOWS, PartRefiner, refine_parts
from frgan.models.presets import Architecture, architecture
from frgan.models.tps import face_flow
from frgan.models.warp import warp
from frgan.utils.checks import check_choice

RESIDUALS = ("paint", "edit")
# atanh of a source pixel at exactly ±1 is infinite: clamp it to ±(1 − 1e-3) first
_EDIT_LIMIT = 1 - 1e-3
MAX_FLOW = 0.125  # the largest displacement, as a fraction of the image size (8 px at 64)


class Forecast(NamedTuple):
    frame: torch.Tensor  # x̂t [B,3,H,W] in [-1,1]
    residual: torch.Tensor  # r [B,3,H,W] in [-1,1]
    mask: torch.Tensor  # w [B,1,H,W] in [0,1]
    flow: torch.Tensor | None = None  # [B,2,H,W] (x, y) in pixels, with warp only


def composite(residual: torch.Tensor, mask: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """x̂ = w·r + (1 − w)·x0: pixels with w = 0 are copied from the source frame."""
    return mask * residual + (1 - mask) * source


def upsample_to(x: torch.Tensor, size: int) -> torch.Tensor:
    factor = size // x.shape[-1]
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


class HeadBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))) at full size, through `hidden` channels; the second conv
    starts at zero, so a new block is the identity."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv1 = conv3x3(channels, hidden)
        self.conv2 = conv3x3(hidden, channels)

    def zero_(self) -> None:
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Generator(nn.Module):
    def __init__(
        self,
        arch: Architecture,
        residual: str = "paint",
        warp: bool = False,
        head_blocks: int = 0,
        part_refiners: Sequence[str] = (),
        landmark_warp: bool = False,
        mouth_interior: bool = False,
    ):
        super().__init__()
        check_choice("model.residual", residual, RESIDUALS)
        self.landmark_warp = bool(landmark_warp)
        self.mouth_interior = MouthInterior() if mouth_interior else None
        for part in part_refiners:
            check_choice("model.part_refiners", part, tuple(WINDOWS))
        ch, levels = arch.channels, arch.levels
        self.arch = arch
        self.residual = residual
        self.image_encoder = Encoder(arch)
        self.structure_encoder = Encoder(arch)
        self.from_code = nn.Linear(arch.latent, ch[-1] * arch.bottleneck**2)

        # up block k goes from level k to level k-1; its input: 3 skips + all earlier outputs
        self.up_blocks = nn.ModuleList()
        earlier_channels = ch[-1]  # f
        for k in range(levels, 0, -1):
            self.up_blocks.append(UpBlock(3 * ch[k] + earlier_channels, ch[k - 1]))
            earlier_channels += ch[k - 1]

        self.head_norm = nn.BatchNorm2d(ch[0])
        self.head_blocks = nn.Sequential(*(HeadBlock(4 * ch[0], ch[0]) for _ in range(head_blocks)))
        self.to_mask = conv3x3(4 * ch[0], 1)
        self.to_residual = conv3x3(4 * ch[0], 3)
        self.to_flow = conv3x3(4 * ch[0], 2) if warp else None
        self.part_refiners = nn.ModuleDict(
            {part: PartRefiner(max(2 * ch[0], 16)) for part in part_refiners}
        )

    @property
    def needs_landmarks(self) -> bool:
        """Whether forward needs the landmarks l0 and lt (landmark_warp, mouth_interior)."""
        return self.landmark_warp or self.mouth_interior is not None

    def zero_flow(self) -> None:
        """Start the flow at zero everywhere, i.e. the warp as the identity, and the head
        blocks and part refiners as the identity (after init)."""
        if self.to_flow is not None:
            nn.init.zeros_(self.to_flow.weight)
            nn.init.zeros_(self.to_flow.bias)
        for block in self.head_blocks:
            block.zero_()
        for refiner in self.part_refiners.values():
            refiner.zero_()

    @classmethod
    def from_preset(
        cls,
        preset: str = "paper",
        image_size: int = 64,
        residual: str = "paint",
        warp: bool = False,
        head_blocks: int = 0,
        part_refiners: Sequence[str] = (),
        landmark_warp: bool = False,
        mouth_interior: bool = False,
    ) -> Generator:
        arch = architecture(preset, image_size)
        return cls(arch, residual, warp, head_blocks, part_refiners, landmark_warp, mouth_interior)

    def head(
        self, features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The mask's, the residual's and the flow's logits, from one convolution with the
        heads' weights stacked: on CPUs a convolution to 1, 2 or 3 channels costs about as
        much as one to 6 (`python scripts/bench_train.py --separate-heads` for the ablation)."""
        heads = [self.to_mask, self.to_residual]
        if self.to_flow is not None:
            heads.append(self.to_flow)
        weight = torch.cat([head.weight for head in heads])
        bias = torch.cat([head.bias for head in heads])
        out = F.conv2d(features, weight, bias, padding=1)
        mask, residual, *flow = out.split([head.out_channels for head in heads], dim=1)
        return mask, residual, flow[0] if flow else None

    def forward(
        self,
        x0: torch.Tensor,
        s0: torch.Tensor,
        st: torch.Tensor,
        l0: torch.Tensor | None = None,
        lt: torch.Tensor | None = None,
    ) -> Forecast:
        """x0 source frame, s0 its structure map, st target structure map: [B,3,H,W] in [-1,1];
        l0, lt their 68 landmarks [B,68,2] (pixels), needed with landmark_warp or
        mouth_interior (needs_landmarks)."""
        prior = None
        if self.needs_landmarks and (l0 is None or lt is None):
            raise ValueError(
                "a generator with landmark_warp or mouth_interior needs the landmarks l0 and lt"
            )
        if self.landmark_warp:
            prior = face_flow(l0, lt, x0.shape[-2], x0.shape[-1])
        z_image, image_skips = self.image_encoder(x0)
        # one pass of the shared encoder over both structure maps (it has no batch norm)
        z_structure, structure_skips = self.structure_encoder(torch.cat([st, s0]))
        z_target, z_source = z_structure.chunk(2)
        code = z_image + (z_target - z_source)

        # skips[k] = image, target structure, source structure features at level k
        skips = [
            torch.cat([img, *s.chunk(2)], dim=1)
            for img, s in zip(image_skips, structure_skips, strict=True)
        ]

        f = rearrange(
            self.from_code(code),
            "b (c h w) -> b c h w",
            h=self.arch.bottleneck,
            w=self.arch.bottleneck,
        )
        outputs = [f]
        for k, block in zip(range(self.arch.levels, 0, -1), self.up_blocks, strict=True):
            size = self.arch.size(k)
            outputs.append(
                block(torch.cat([skips[k], *(upsample_to(o, size) for o in outputs)], dim=1))
            )

        features = torch.cat([skips[0], F.relu(self.head_norm(outputs[-1]))], dim=1)
        features = self.head_blocks(features)
        mask_logit, h, flow_logit = self.head(features)
        flow, source = prior, x0
        if flow_logit is not None:
            learnt = MAX_FLOW * x0.shape[-1] * torch.tanh(flow_logit)
            flow = learnt if prior is None else prior + learnt
        if flow is not None:
            source = warp(x0, flow)
        if self.mouth_interior is not None:
            source = self.mouth_interior(source, l0, lt, flow)
        mask = torch.sigmoid(mask_logit)
        if self.residual == "edit":
            h = h + torch.atanh(source.clamp(-_EDIT_LIMIT, _EDIT_LIMIT))
        residual = torch.tanh(h)
        frame = composite(residual, mask, source)
        if self.part_refiners:
            frame = refine_parts(self.part_refiners, frame, st, source, _EDIT_LIMIT)
        return Forecast(frame, residual, mask, flow)


def forecast_frames(
    generator: Callable[..., Forecast],
    x0: torch.Tensor,
    s0: torch.Tensor,
    structures: torch.Tensor,
    chunk: int,
    l0: torch.Tensor | None = None,
    landmarks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Every frame of structures [B,T,3,H,W] forecast independently from the source frames x0
    [B,3,H,W] and their maps s0 by `generator`, `chunk` frames per call: [B,T,3,H,W]. l0
    [B,68,2] and landmarks [B,T,68,2] are the landmarks the maps were drawn from, for a
    generator that warps by them (None: the generator does not need them)."""
    frames = structures.shape[1]
    inputs = [
        repeat(x0, "b c h w -> (b t) c h w", t=frames),
        repeat(s0, "b c h w -> (b t) c h w", t=frames),
        rearrange(structures, "b t c h w -> (b t) c h w"),
    ]
    if l0 is not None and landmarks is not None:
        inputs += [
            repeat(l0, "b n d -> (b t) n d", t=frames),
            rearrange(landmarks, "b t n d -> (b t) n d"),
        ]
    parts = zip(*(tensor.split(chunk) for tensor in inputs), strict=True)
    forecast = torch.cat([generator(*part).frame for part in parts])
    return rearrange(forecast, "(b t) c h w -> b t c h w", t=frames)
