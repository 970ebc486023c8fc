"""The thin-plate spline that carries the source frame's landmarks onto the target's, as a
backward flow: for every pixel p of the target, where it was in the source.

    f(p) = a + A·p + Σ_i w_i·U(|p − t_i|),   U(r) = r²·log r²,   f(t_i) ≈ s_i

t are the target's landmarks and s the source's (pixels, the project's convention: pixel (i, j)
has its centre at (j + 0.5, i + 0.5)); SMOOTHING λ relaxes the interpolation (K + λI), which
also keeps the system solvable when two landmarks coincide (a closed mouth's inner lips). The
flow f(p) − p is what frgan.models.warp.warp takes: warp(x0, flow)[p] = x0[f(p)].
face_flow is the spline of a face's landmarks, FACE68_SPLINE_POINTS of them, with the lids held
apart in the target so that a blink cannot fold it (hold_apart).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SMOOTHING = 1e-3
# The lids' (upper, lower) pairs. Two target points that meet while their source points do not
# ask one pixel to come from two places, and the spline folds the face round them (rings round
# a blinking eye), so a closing lid keeps LID_GAP of its source gap in the spline's target
# (hold_apart): the eye is squeezed to a slit the generator closes, and nothing folds.
FACE68_LID_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
LID_GAP = 0.4
# All but the inner lips' corners and lower half: a shut source mouth has no cavity to stretch,
# and held apart like the lids they made the mouth open less on anger
# (docs/expression/blinks/comparison.md).
FACE68_SPLINE_POINTS = tuple(i for i in range(68) if i not in (60, 64, 65, 66, 67))
# pixels: a pair closer than this in the source is shut
CLOSED = 1.0
# pixels per piece of the spline's kernel (B x pixels x N doubles): a piece stays in cache through
# its passes and its memory is reused, where the whole kernel (33 MB at 64 px, batch 16) would
# be fresh pages on every call
PIXEL_CHUNK = 512


def _radial(squared_distances: torch.Tensor) -> torch.Tensor:
    """U = r²·log r², written in r² (0 at r = 0)."""
    # in place: the pixels' kernel is B·H·W·N doubles, and each fresh copy of it costs about
    # as much as the arithmetic
    return squared_distances.clamp_min(1e-12).log_().mul_(squared_distances)


def _squared_distances(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """[B,P,N]: |p − c|² between points [B,P,2] and centres [B,N,2], as |p|² + |c|² − 2p·c in
    one batched product (cdist takes a square root that the spline squares again, in twice
    the time; in float64 the expansion loses nothing that matters)."""
    ones = torch.ones_like(points[..., :1]), torch.ones_like(centres[..., :1])
    lhs = torch.cat([points, ones[0], points.square().sum(-1, keepdim=True)], dim=-1)
    rhs = torch.cat([-2 * centres, centres.square().sum(-1, keepdim=True), ones[1]], dim=-1)
    return torch.bmm(lhs, rhs.transpose(1, 2)).clamp_min_(0)


def pixel_centres(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """[2,H,W]: each pixel's centre (x, y), in the dtype and on the device of `like`."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=like.dtype, device=like.device) + 0.5,
        torch.arange(width, dtype=like.dtype, device=like.device) + 0.5,
        indexing="ij",
    )
    return torch.stack([xs, ys])


def face_flow(
    l0: torch.Tensor, lt: torch.Tensor, height: int, width: int, lid_gap: float = LID_GAP
) -> torch.Tensor:
    """[B,2,H,W]: the backward flow of the spline taking the face's 68 landmarks lt [B,68,2]
    (its lids held lid_gap apart) to l0, steered by FACE68_SPLINE_POINTS."""
    source, target = hold_apart(l0[..., :2], lt[..., :2], FACE68_LID_PAIRS, lid_gap)
    points = list(FACE68_SPLINE_POINTS)
    return tps_flow(source[:, points], target[:, points], height, width)


def hold_apart(
    source: torch.Tensor,
    target: torch.Tensor,
    pairs: Sequence[tuple[int, int]],
    fraction: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(source, target) [B,N,2] with each pair (a, b) of points (each point in one pair at most)
    made safe for the spline, so that no pair is turned over from one side to the other.
    A pair open in the source is moved apart in the target, symmetrically along its source
    direction s_b − s_a, as far as needed to keep `fraction` of its source separation along it.
    A pair closer than CLOSED in the source (a photo's shut eyes), whose order is noise, is laid
    along the target's direction instead, about its midpoint, as far apart as the target's
    (CLOSED at most): an opening eye is then stretched from a thin band, not from a line."""
    first, second = (list(points) for points in zip(*pairs, strict=True))
    source_apart = source[:, second] - source[:, first]
    target_apart = target[:, second] - target[:, first]
    source_length = source_apart.norm(dim=-1, keepdim=True)
    target_length = target_apart.norm(dim=-1, keepdim=True)
    shut = source_length < CLOSED

    target_direction = target_apart / target_length.clamp_min(1e-6)
    half = target_direction * target_length.clamp_max(CLOSED) / 2
    middle = (source[:, first] + source[:, second]) / 2
    source = source.clone()
    source[:, first] = torch.where(shut, middle - half, source[:, first])
    source[:, second] = torch.where(shut, middle + half, source[:, second])

    direction = torch.where(shut, 0.0, source_apart / source_length.clamp_min(CLOSED))
    gap = (target_apart * direction).sum(-1, keepdim=True)
    shift = direction * (fraction * source_length - gap).clamp_min(0) / 2
    target = target.clone()
    target[:, first] -= shift
    target[:, second] += shift
    return source, target


def tps_flow(
    source_points: torch.Tensor, target_points: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """[B,2,H,W] (x, y) in pixels: the backward flow of the spline taking target_points [B,N,2]
    to source_points [B,N,2]. Solved in float64 (r²·log r² spans ~10⁵ at 64 px) and returned in
    the points' dtype."""
    if source_points.shape != target_points.shape or source_points.ndim != 3:
        raise ValueError(
            "tps_flow needs source and target points of one shape [B,N,2], got "
            f"{tuple(source_points.shape)} and {tuple(target_points.shape)}"
        )
    with torch.autocast(source_points.device.type, enabled=False):
        flow = _solve(
            source_points[..., :2].double(), target_points[..., :2].double(), height, width
        )
    return flow.to(source_points.dtype).contiguous()


def _solve(source: torch.Tensor, target: torch.Tensor, height: int, width: int) -> torch.Tensor:
    batch, count, _ = target.shape
    ones = target.new_ones(batch, count, 1)
    affine = torch.cat([ones, target], dim=-1)  # [B,N,3]
    system = target.new_zeros(batch, count + 3, count + 3)
    system[:, :count, :count] = _radial(_squared_distances(target, target))
    system[:, :count, :count] += SMOOTHING * torch.eye(
        count, dtype=target.dtype, device=target.device
    )
    system[:, :count, count:] = affine
    system[:, count:, :count] = affine.transpose(1, 2)
    rhs = torch.cat([source, target.new_zeros(batch, 3, 2)], dim=1)
    coefficients = torch.linalg.solve(system, rhs)  # [B,N+3,2]

    pixels = pixel_centres(height, width, target).reshape(2, -1).T.expand(batch, -1, -1)
    bending = torch.cat(
        [
            _radial(_squared_distances(chunk, target)) @ coefficients[:, :count]
            for chunk in pixels.split(PIXEL_CHUNK, dim=1)
        ],
        dim=1,
    )
    mapped = bending + pixels @ coefficients[:, count + 1 :] + coefficients[:, count : count + 1]
    return (mapped - pixels).reshape(batch, height, width, 2).permute(0, 3, 1, 2)


def least_jacobian(flow: torch.Tensor) -> torch.Tensor:
    """[B]: the least Jacobian determinant (finite differences) of the backward map
    p -> p + flow(p) of flow [B,2,H,W]. Below 0 the map turns over there: a pixel's neighbours
    come from the source in the wrong order, and the picture is folded."""
    mapped = flow + pixel_centres(*flow.shape[-2:], flow)
    dx = mapped[..., :-1, 1:] - mapped[..., :-1, :-1]
    dy = mapped[..., 1:, :-1] - mapped[..., :-1, :-1]
    return (dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]).flatten(1).min(dim=1).values
