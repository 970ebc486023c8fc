"""Which of MediaPipe Face Mesh's 478 points stands for each of the 68 landmarks.

The 68-point order is the usual one (iBUG 300-W / dlib / face-alignment), with "right" and
"left" meaning image left and image right for a frontal face:
jaw 0-16 (image left to right through the chin), brows 17-21 and 22-26, nose bridge 27-30,
nose base 31-35, eyes 36-41 and 42-47 (from the outer corner, upper lid first), outer lip 48-59
(from the left mouth corner, upper lip first), inner lip 60-67.

The table is the nearest-mesh-vertex correspondence that is in wide use (LatentSync 1.5 and
many others use the same indices). The mesh has no vertex exactly on some 68-point positions
(the jaw points sit slightly inside the face outline, point 0/16 a little higher than dlib's),
so expect a few pixels of systematic difference from a 68-point detector there; mouth, eyes,
brows and nose match closely.
"""

import numpy as np

MEDIAPIPE_TO_68 = np.array(
    [
        # jaw 0-16
        162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
        # brows 17-21, 22-26
        71, 63, 105, 66, 107,
        336, 296, 334, 293, 301,
        # nose bridge 27-30, nose base 31-35
        168, 197, 5, 4,
        75, 97, 2, 326, 305,
        # eyes 36-41, 42-47
        33, 160, 158, 133, 153, 144,
        362, 385, 387, 263, 373, 380,
        # outer lip 48-59, inner lip 60-67
        61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
        78, 82, 13, 312, 308, 317, 14, 87,
    ],
    dtype=np.int64,
)  # fmt: skip
