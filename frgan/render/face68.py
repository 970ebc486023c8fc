"""The fixed triangulation of the 68 face landmarks and a mean frontal face.

Landmark order (iBUG/dlib 68): jaw 0-16, brows 17-26, nose 27-35 (bridge 27-30, base
31-35), eyes 36-47 (right eye of the subject 36-41, left 42-47), outer lips 48-59,
inner lips 60-67.

FACE68_TRIANGLES is a hand-fixed table (designed once on FACE68_MEAN, then edited by
hand for left-right symmetry, no slivers over the brows, and a clean lip ring), so
every landmark source renders the same topology for every face and expression:
- all 68 points are used; no triangle repeats; none is degenerate or overlaps another
  on the mean frontal face (checked in tests/test_face68.py);
- the eyes are filled: at 64-128 px the eye opening is a few pixels and a hole there
  would flicker, while the eyelid landmarks still tilt the eye triangles;
- the mouth opening (inside the inner lip 60-67) is a hole: the opening is the main
  visible change of surprise/happiness/fear, so the structure map shows it as background;
  a closed mouth closes the hole to zero area;
- every triangle is counter-clockwise on screen (x right, y down), so its normal
  (b - a) x (c - a) points towards the camera (negative z) on a frontal face.

FACE68_MEAN is a mean frontal face in normalized units: x right, y down, z depth
(smaller nearer), centred on the origin, the larger side of the x-y bounding box is 1
(x in [-0.5, 0.5]). The x-y layout is the widely used dlib mean shape, mirrored to be
exactly left-right symmetric; the depth is a hand-set anthropometric profile (nose tip
nearest, jaw corners farthest), mean z = 0.
"""

import numpy as np

# fmt: off
FACE68_TRIANGLES = np.array(
    [
        # Brows, brow-to-eye band and the glabella.
        (0, 36, 17), (16, 26, 45), (17, 36, 18), (18, 36, 37), (18, 37, 19), (19, 37, 20),
        (20, 37, 38), (20, 38, 21), (21, 27, 22), (21, 38, 39), (21, 39, 27), (22, 27, 42),
        (22, 42, 43), (22, 43, 23), (23, 43, 44), (23, 44, 24), (24, 44, 25), (25, 44, 45),
        (25, 45, 26),
        # Eyes: filled (the eyeball surface is there; eyelid landmarks still move the normals).
        (36, 41, 37), (37, 40, 38), (37, 41, 40), (38, 40, 39), (42, 47, 43), (43, 47, 44),
        (44, 46, 45), (44, 47, 46),
        # Nose, inner eye corners and the upper lip area under the nose.
        (27, 28, 42), (27, 39, 28), (28, 29, 42), (28, 39, 29), (29, 30, 35), (29, 31, 30),
        (29, 35, 47), (29, 39, 40), (29, 40, 31), (29, 47, 42), (30, 31, 32), (30, 32, 33),
        (30, 33, 34), (30, 34, 35), (31, 40, 41), (31, 48, 49), (31, 49, 32), (32, 49, 50),
        (32, 50, 33), (33, 50, 51), (33, 51, 52), (33, 52, 34), (34, 52, 53), (34, 53, 35),
        (35, 46, 47), (35, 53, 54),
        # Cheeks and jaw.
        (0, 1, 36), (1, 2, 41), (1, 41, 36), (2, 3, 48), (2, 31, 41), (2, 48, 31),
        (3, 4, 48), (4, 5, 48), (5, 6, 59), (5, 59, 48), (6, 7, 58), (6, 58, 59),
        (7, 8, 58), (8, 9, 56), (8, 56, 57), (8, 57, 58), (9, 10, 56), (10, 11, 55),
        (10, 55, 56), (11, 12, 54), (11, 54, 55), (12, 13, 54), (13, 14, 54), (14, 15, 46),
        (14, 35, 54), (14, 46, 35), (15, 16, 45), (15, 45, 46),
        # Lips: a ring between the outer (48-59) and inner (60-67) lip; the opening is a hole.
        (48, 59, 60), (48, 60, 49), (49, 60, 61), (49, 61, 50), (50, 61, 51), (51, 61, 62),
        (51, 62, 63), (51, 63, 52), (52, 63, 53), (53, 63, 64), (53, 64, 54), (54, 64, 55),
        (55, 64, 65), (55, 65, 56), (56, 65, 57), (57, 65, 66), (57, 66, 67), (57, 67, 58),
        (58, 67, 59), (59, 67, 60),
    ],
    dtype=np.int32,
)
# fmt: on
FACE68_TRIANGLES.flags.writeable = False

FACE68_MEAN = np.array(
    [
        [-0.500, -0.329, +0.331],  # 0
        [-0.498, -0.196, +0.301],  # 1
        [-0.485, -0.062, +0.251],  # 2
        [-0.458, +0.070, +0.191],  # 3
        [-0.407, +0.193, +0.121],  # 4
        [-0.328, +0.301, +0.051],  # 5
        [-0.231, +0.393, -0.009],  # 6
        [-0.123, +0.468, -0.049],  # 7
        [+0.000, +0.490, -0.069],  # 8
        [+0.123, +0.468, -0.049],  # 9
        [+0.231, +0.393, -0.009],  # 10
        [+0.328, +0.301, +0.051],  # 11
        [+0.407, +0.193, +0.121],  # 12
        [+0.458, +0.070, +0.191],  # 13
        [+0.485, -0.062, +0.251],  # 14
        [+0.498, -0.196, +0.301],  # 15
        [+0.500, -0.329, +0.331],  # 16
        [-0.396, -0.428, +0.111],  # 17
        [-0.334, -0.477, +0.041],  # 18
        [-0.250, -0.490, +0.001],  # 19
        [-0.164, -0.476, -0.019],  # 20
        [-0.082, -0.441, -0.029],  # 21
        [+0.082, -0.441, -0.029],  # 22
        [+0.164, -0.476, -0.019],  # 23
        [+0.250, -0.490, +0.001],  # 24
        [+0.334, -0.477, +0.041],  # 25
        [+0.396, -0.428, +0.111],  # 26
        [+0.000, -0.342, -0.049],  # 27
        [+0.000, -0.255, -0.099],  # 28
        [+0.000, -0.168, -0.159],  # 29
        [+0.000, -0.080, -0.219],  # 30
        [-0.097, -0.024, -0.089],  # 31
        [-0.051, -0.005, -0.119],  # 32
        [+0.000, +0.011, -0.139],  # 33
        [+0.051, -0.005, -0.119],  # 34
        [+0.097, -0.024, -0.089],  # 35
        [-0.297, -0.334, +0.071],  # 36
        [-0.245, -0.365, +0.001],  # 37
        [-0.181, -0.364, -0.004],  # 38
        [-0.128, -0.323, +0.011],  # 39
        [-0.186, -0.311, -0.004],  # 40
        [-0.249, -0.312, +0.001],  # 41
        [+0.128, -0.323, +0.011],  # 42
        [+0.181, -0.364, -0.004],  # 43
        [+0.245, -0.365, +0.001],  # 44
        [+0.297, -0.334, +0.071],  # 45
        [+0.249, -0.312, +0.001],  # 46
        [+0.186, -0.311, -0.004],  # 47
        [-0.194, +0.133, +0.001],  # 48
        [-0.124, +0.105, -0.079],  # 49
        [-0.052, +0.092, -0.119],  # 50
        [+0.000, +0.104, -0.129],  # 51
        [+0.052, +0.092, -0.119],  # 52
        [+0.124, +0.105, -0.079],  # 53
        [+0.194, +0.133, +0.001],  # 54
        [+0.126, +0.206, -0.069],  # 55
        [+0.056, +0.238, -0.109],  # 56
        [+0.000, +0.244, -0.119],  # 57
        [-0.056, +0.238, -0.109],  # 58
        [-0.126, +0.206, -0.069],  # 59
        [-0.164, +0.138, -0.019],  # 60
        [-0.052, +0.135, -0.099],  # 61
        [+0.000, +0.140, -0.109],  # 62
        [+0.052, +0.135, -0.099],  # 63
        [+0.164, +0.138, -0.019],  # 64
        [+0.053, +0.172, -0.089],  # 65
        [+0.000, +0.179, -0.099],  # 66
        [-0.053, +0.172, -0.089],  # 67
    ],
    dtype=np.float32,
)
FACE68_MEAN.flags.writeable = False


def mean_face68(height: int, width: int, *, fill: float = 0.6) -> np.ndarray:
    """FACE68_MEAN placed in an image: float32 [68,3] in pixels, centred.

    fill: size of the face (larger side of its landmark box) as a fraction of the
    smaller image side. z is scaled like x and y.
    """
    if height <= 0 or width <= 0 or not 0 < fill:
        raise ValueError(f"need positive height, width and fill, got {height}, {width}, {fill}")
    scale = fill * min(height, width)
    centre = np.array([width / 2, height / 2, 0.0], dtype=np.float32)
    return (FACE68_MEAN * scale + centre).astype(np.float32)
