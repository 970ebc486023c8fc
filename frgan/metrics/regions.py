"""Face regions from the 68 landmarks: where an expression shows.

    mouth:      the outer lip ring (48-59)
    eyes_brows: each brow with the eye below it (17-21 + 36-41, 22-26 + 42-47)
    face_rest:  the face outline (jaw 0-16, brows) less the two regions above
mouth_opening (not a metric region: a weight of the forecast's L1 term) is the inner lip ring
(60-67) dilated by 1 px: the teeth and cavity an open mouth shows, empty while it is closed.
mouth and eyes_brows are dilated by `dilate` px (chessboard) so that a mouth opening wider
than the target's is still inside the region. Both structure meshes give the 68 points
(StructureMesh.face68), so the regions mean the same for face68 and mesh468 data.

Landmarks are (x, y) in pixels of the image; pixel (i, j) has its centre at (j + 0.5, i + 0.5)
(the project's convention, frgan/render).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

REGIONS = ("mouth", "eyes_brows", "face_rest")
DEFAULT_DILATE = 2
COVERAGE_SAMPLES = 2  # per side of a pixel, for polygon_coverage
SHUT_AREA = 0.25  # pixels²: an inner lip ring enclosing less is a closed mouth

_MOUTH = list(range(48, 60))
# the inner lip ring: the left corner, the upper lip, the right corner, the lower lip
INNER_LIPS = tuple(range(60, 68))
_LEFT_EYE_BROW = [17, 18, 19, 20, 21, 39, 40, 41, 36]
_RIGHT_EYE_BROW = [22, 23, 24, 25, 26, 45, 46, 47, 42]
_FACE = list(range(17)) + list(range(26, 16, -1))


def polygon_mask(polygon: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """bool [B,1,H,W]: pixel centres inside the closed polygon [B,K,2] (even-odd rule)."""
    batch = polygon.shape[0]
    py = (torch.arange(height, dtype=polygon.dtype, device=polygon.device) + 0.5).view(1, -1, 1)
    x1, y1 = polygon[..., 0][:, None, :], polygon[..., 1][:, None, :]
    x2, y2 = x1.roll(-1, dims=-1), y1.roll(-1, dims=-1)
    spans = (y1 > py) != (y2 > py)  # [B,H,K]: the edges that cross each pixel row
    # x where the edge crosses the row; the where() keeps horizontal edges finite
    crossing = x1 + (py - y1) * (x2 - x1) / torch.where(y2 == y1, torch.ones_like(y1), y2 - y1)
    # a centre j + 0.5 lies left of a crossing c for j < ceil(c - 0.5): each crossing edge
    # counts for the columns before that, so a running sum of +1 at column 0 and -1 there
    # counts every pixel's crossings to its right (in H*(W+K), not H*W*K)
    ends = (crossing - 0.5).ceil().nan_to_num(0).clamp(0, width).long()
    counts = polygon.new_zeros(batch, height, width + 1)
    counts[..., 0] = spans.sum(-1)
    counts.scatter_add_(-1, ends, -spans.to(counts.dtype))
    inside = counts[..., :width].cumsum(-1) % 2 == 1
    return inside.unsqueeze(1)


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """bool [B,1,H,W] grown by `pixels` (chessboard distance)."""
    if pixels <= 0:
        return mask
    return F.max_pool2d(mask.float(), 2 * pixels + 1, stride=1, padding=pixels) > 0


def region_masks(
    landmarks: torch.Tensor, height: int, width: int | None = None, dilate_px: int = DEFAULT_DILATE
) -> dict[str, torch.Tensor]:
    """{region: bool [B,1,H,W]} for 68-point landmarks [B,68,≥2] (REGIONS, in order)."""
    if landmarks.ndim != 3 or landmarks.shape[1] != 68 or landmarks.shape[2] < 2:
        raise ValueError(
            f"region masks need 68-point landmarks [B,68,2+], got {tuple(landmarks.shape)}"
        )
    width = height if width is None else width
    points = landmarks[..., :2].float()
    mouth = dilate(polygon_mask(points[:, _MOUTH], height, width), dilate_px)
    eyes_brows = dilate(
        polygon_mask(points[:, _LEFT_EYE_BROW], height, width)
        | polygon_mask(points[:, _RIGHT_EYE_BROW], height, width),
        dilate_px,
    )
    face = polygon_mask(points[:, _FACE], height, width)
    return {
        "mouth": mouth,
        "eyes_brows": eyes_brows & ~mouth,
        "face_rest": face & ~mouth & ~eyes_brows,
    }


def mouth_opening_mask(landmarks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """bool [B,1,H,W]: the pixels inside the inner lip ring of 68-point landmarks [B,68,≥2],
    grown by 1 px so the inner lip edges belong to it; empty where no pixel centre lies between
    the lips (a closed mouth)."""
    return dilate(polygon_mask(landmarks[:, list(INNER_LIPS), :2].float(), height, width), 1)


def polygon_coverage(
    polygon: torch.Tensor, height: int, width: int, samples: int = COVERAGE_SAMPLES
) -> torch.Tensor:
    """float [B,1,H,W] in [0, 1]: how much of each pixel the closed polygon [B,K,2] covers,
    from samples × samples points per pixel (an anti-aliased polygon_mask)."""
    fine = polygon_mask(polygon * samples, height * samples, width * samples)
    return F.avg_pool2d(fine.float(), samples)


def mouth_opening_coverage(landmarks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """float [B,1,H,W]: how much of each pixel lies inside the inner lip ring of 68-point
    landmarks [B,68,≥2]; 0 everywhere for a ring enclosing less than SHUT_AREA, which is not
    rasterised (most sources and many targets are closed mouths)."""
    rings = landmarks[:, list(INNER_LIPS), :2].float()
    coverage = rings.new_zeros(rings.shape[0], 1, height, width)
    opened = polygon_area(rings) >= SHUT_AREA
    if opened.any():
        coverage[opened] = polygon_coverage(rings[opened], height, width)
    return coverage


def polygon_area(polygon: torch.Tensor) -> torch.Tensor:
    """[B]: the area enclosed by the closed polygon [B,K,2] (shoelace formula, unsigned)."""
    x, y = polygon[..., 0], polygon[..., 1]
    return (x * y.roll(-1, dims=-1) - x.roll(-1, dims=-1) * y).sum(-1).abs() / 2
