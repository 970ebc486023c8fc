"""The thin-plate spline that carries the source frame's landmarks onto the target's, as a
backward flow: for every pixel p of the target, where it was in the source.

    f(p) = a + A·p + Σ_i w_i·U(|p − t_i|),   U(r) = r²·log r²,   f(t_i) ≈ s_i

t are the target's landmarks and s the source's (pixels, the project's convention: pixel (i, j)
has its centre at (j + 0.5, i + 0.5)); SMOOTHING λ relaxes the interpolation (K + λI), which
also keeps the system solvable when two landmarks coincide (a closed mouth's inner lips). The
flow f(p) − p is what frgan.models.warp.warp takes: warp(x0, flow)[p] = x0[f(p)].
face_flow is the spline of a face's 68 landmarks, FACE68_SPLINE_POINTS of them.
"""

from __future__ import annotations

import torch

SMOOTHING = 1e-3
# The 68 landmarks that steer a face's spline: all but the lower lids (40, 41, 46, 47) and the
# inner lips' corners and lower half (60, 64, 65-67), which meet the upper ones when a lid or
# the lips close. Two target points that meet while their source points do not ask one pixel
# to come from two places, and the spline folds the face around them (rings round a blinking
# eye); without them the upper lid and lip move, and the rest follows smoothly.
FACE68_SPLINE_POINTS = tuple(i for i in range(68) if i not in (40, 41, 46, 47, 60, 64, 65, 66, 67))


def _radial(squared_distances: torch.Tensor) -> torch.Tensor:
    """U = r²·log r², written in r² (0 at r = 0)."""
    return squared_distances * torch.log(squared_distances.clamp_min(1e-12))


def face_flow(l0: torch.Tensor, lt: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B,2,H,W]: the backward flow of the spline taking the face's 68 landmarks lt [B,68,2]
    to l0, steered by FACE68_SPLINE_POINTS."""
    points = list(FACE68_SPLINE_POINTS)
    return tps_flow(l0[:, points], lt[:, points], height, width)


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
    system[:, :count, :count] = _radial(torch.cdist(target, target).square())
    system[:, :count, :count] += SMOOTHING * torch.eye(
        count, dtype=target.dtype, device=target.device
    )
    system[:, :count, count:] = affine
    system[:, count:, :count] = affine.transpose(1, 2)
    rhs = torch.cat([source, target.new_zeros(batch, 3, 2)], dim=1)
    coefficients = torch.linalg.solve(system, rhs)  # [B,N+3,2]

    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=target.dtype, device=target.device) + 0.5,
        torch.arange(width, dtype=target.dtype, device=target.device) + 0.5,
        indexing="ij",
    )
    pixels = torch.stack([xs, ys], dim=-1).reshape(1, -1, 2).expand(batch, -1, -1)
    kernel = _radial(torch.cdist(pixels, target).square())  # [B,HW,N]
    mapped = kernel @ coefficients[:, :count] + pixels @ coefficients[:, count + 1 :]
    mapped = mapped + coefficients[:, count : count + 1]
    return (mapped - pixels).reshape(batch, height, width, 2).permute(0, 3, 1, 2)
