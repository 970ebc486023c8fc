"""MediaPipe Face Mesh's 468 points as a structure mesh, and a mean frontal face for it.

Point order: MediaPipe Face Mesh's (the 10 iris points 468-477 that refine_landmarks adds are
not part of it). The tables in frgan/render/mesh468_tables.py are generated once by
scripts/derive_mesh468.py, so rendering never needs mediapipe:
- MESH468_TRIANGLES: the faces of MediaPipe's FACEMESH_TESSELATION edge graph, every one
  counter-clockwise on screen (x right, y down) on the mean face, like FACE68_TRIANGLES; the
  eye openings are filled with a strip between the lids and the mouth opening (inside the
  inner lip) is a hole, as in face68 (see its docstring for why); checked in
  tests/test_mesh468.py.
- MESH468_MEAN: MediaPipe's points on frontal neutral renders of the synthetic mean head,
  averaged and normalised like FACE68_MEAN (x right, y down, z depth smaller nearer, centred,
  the larger side of the x-y box is 1, mean z = 0). It is the frontal template that
  model-space normals are aligned to.

MESH468_ANCHORS are points expressions hardly move (nose bridge and tip, eye corners and the
upper face outline from temple to temple over the forehead; no mouth, jaw, brow or lid point):
the rotation removal of model-space normals and the retargeting align faces on them.
"""

import numpy as np

from frgan.render.mesh468_tables import MESH468_MEAN, MESH468_TRIANGLES

NUM_MESH468_POINTS = 468

# fmt: off
MESH468_ANCHORS = np.array(
    [
        # nose bridge, tip and base
        168, 6, 197, 195, 5, 4, 1, 2, 98, 327,
        # eye corners (outer, inner; image left then right)
        33, 133, 362, 263,
        # upper face outline: temple, over the forehead, temple
        234, 127, 162, 21, 54, 103, 67, 109, 10, 338, 297, 332, 284, 251, 389, 356, 454,
    ],
    dtype=np.int64,
)
# fmt: on
for _table in (MESH468_TRIANGLES, MESH468_MEAN, MESH468_ANCHORS):
    _table.flags.writeable = False


def mean_mesh468(height: int, width: int, *, fill: float = 0.6) -> np.ndarray:
    """MESH468_MEAN placed in an image: float32 [468,3] in pixels, centred (as mean_face68)."""
    if height <= 0 or width <= 0 or not 0 < fill:
        raise ValueError(f"need positive height, width and fill, got {height}, {width}, {fill}")
    scale = fill * min(height, width)
    centre = np.array([width / 2, height / 2, 0.0], dtype=np.float32)
    return (MESH468_MEAN * scale + centre).astype(np.float32)
