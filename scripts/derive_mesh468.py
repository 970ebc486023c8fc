"""Derive the 468-point structure mesh once, from MediaPipe and the synthetic head.

    python scripts/derive_mesh468.py   # needs mediapipe (Python <= 3.12); rewrites two files

1. Triangles: every 3-clique of MediaPipe's FACEMESH_TESSELATION edge list that is a face of
   the planar mesh (no other point inside it on the mean frontal face), wound counter-clockwise
   on screen; the two eye openings are filled with a strip between the lids (as face68 does),
   the mouth opening stays a hole.
2. Mean frontal face: MediaPipe (refine_landmarks off: 468 points) run on frontal neutral
   renders of the synthetic mean head with several subjects' skin textures, averaged and
   normalised like FACE68_MEAN.
3. Synthetic ground truth: each averaged point back-projected onto the skin triangle of the
   mean head under it, as (triangle id, barycentric weights), so the generator can give the
   468 points of any posed, articulated head exactly.

Writes frgan/render/mesh468_tables.py and frgan/synthetic/mesh468_truth.py (generated: edit
this script, not them) and a preview PNG under outputs/mesh468/.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from frgan.synthetic.appearance import background_image, sample_take_lighting
from frgan.synthetic.compose import project, render_frames
from frgan.synthetic.head import SKIN
from frgan.synthetic.take_video import head_and_basis, make_subject
from frgan.utils.files import write_bytes_atomic
from frgan.utils.media import write_image

NUM_POINTS = 468
# MediaPipe points on the lips and lids, by the side of the mouth or eye slit they belong to:
# on the closed mouth both lips meet, so each point must stay on its own lip's skin.
UPPER_LIP = [191, 80, 81, 82, 13, 312, 311, 310, 415, 185, 40, 39, 37, 0, 267, 269, 270, 409]
LOWER_LIP = [95, 88, 178, 87, 14, 317, 402, 318, 324, 146, 91, 181, 84, 17, 314, 405, 321, 375]
UPPER_LIDS = [246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398]
LOWER_LIDS = [7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382]
RENDER_SIZE = 512
SUBJECTS = 8
ROOT = Path(__file__).resolve().parent.parent


def tessellation():
    from mediapipe.python.solutions import face_mesh_connections as connections

    edges = {tuple(sorted(edge)) for edge in connections.FACEMESH_TESSELATION}
    eyes = [
        {v for edge in connections.FACEMESH_RIGHT_EYE for v in edge},
        {v for edge in connections.FACEMESH_LEFT_EYE for v in edge},
    ]
    return edges, eyes


def frontal_renders(size: int, subjects: int):
    """The mean head, frontal and neutral, with each subject's skin: (images, posed mean head)."""
    head, _ = head_and_basis()
    pose = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.3 * size]])
    posed = project(head.vertices[None], pose, size)
    images = []
    for subject in range(subjects):
        person = make_subject(0, subject)
        lighting = sample_take_lighting(np.random.default_rng(subject))
        background = background_image(lighting, size)
        images.append(
            render_frames(
                head,
                posed,
                person.texture,
                person.texture_labels,
                person.appearance,
                lighting,
                background,
                np.zeros((1, 2)),
            )[0]
        )
    return np.stack(images), posed[0]


def detect(images: np.ndarray) -> np.ndarray:
    """MediaPipe's 468 points [S,468,3] in pixels (z scaled by the width, smaller nearer)."""
    import mediapipe

    found = []
    options = dict(static_image_mode=True, max_num_faces=1, refine_landmarks=False)
    with mediapipe.solutions.face_mesh.FaceMesh(**options) as mesh:
        for image in images:
            result = mesh.process(np.ascontiguousarray(image))
            if not result.multi_face_landmarks:
                raise RuntimeError("MediaPipe found no face in a frontal render of the mean head")
            points = result.multi_face_landmarks[0].landmark
            found.append([(p.x, p.y, p.z) for p in points])
    width = images.shape[2]
    return np.asarray(found, dtype=np.float64)[:, :NUM_POINTS] * width


def normalised(points: np.ndarray) -> np.ndarray:
    """Centred on the x-y box, larger box side 1, mean depth 0 (FACE68_MEAN's units)."""
    low, high = points[:, :2].min(0), points[:, :2].max(0)
    centre = np.array([*(low + high) / 2, points[:, 2].mean()])
    return (points - centre) / (high - low).max()


def cross2(a, b):
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def faces_from_edges(edges, points2d: np.ndarray) -> np.ndarray:
    """The triangles of the mesh: 3-cliques of the edge graph that are not separating.

    A 3-cycle that is not a face (it encloses a patch of the mesh) shares each of its three
    edges with two faces, so all its edges belong to three cliques; a face has at most one
    such edge. (A geometric test does not work here: the lips touch on the mean face.)
    """
    neighbours: dict[int, set] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    cliques = set()
    for a, b in edges:
        for c in neighbours[a] & neighbours[b]:
            cliques.add(tuple(sorted((a, b, c))))
    uses: dict[tuple, int] = {}
    for tri in cliques:
        for edge in itertools.combinations(tri, 2):
            uses[edge] = uses.get(edge, 0) + 1
    faces = [
        tri
        for tri in sorted(cliques)
        if not all(uses[e] > 2 for e in itertools.combinations(tri, 2))
    ]
    return counter_clockwise(np.array(faces), points2d)


def counter_clockwise(faces: np.ndarray, points2d: np.ndarray) -> np.ndarray:
    """Each triangle wound counter-clockwise on screen (y down): negative 2D cross product."""
    corners = points2d[faces]
    area = cross2(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    faces = faces.copy()
    faces[area > 0] = faces[area > 0][:, [0, 2, 1]]
    return faces


def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Closed loops of edges used by one triangle only."""
    count: dict[tuple, int] = {}
    for tri in faces:
        for a, b in itertools.combinations(sorted(tri), 2):
            count[(a, b)] = count.get((a, b), 0) + 1
    if max(count.values()) > 2:
        raise RuntimeError("an edge is shared by more than two triangles")
    links: dict[int, list] = {}
    for (a, b), n in count.items():
        if n == 1:
            links.setdefault(a, []).append(b)
            links.setdefault(b, []).append(a)
    loops, seen = [], set()
    for start in sorted(links):
        if start in seen:
            continue
        loop, previous, current = [start], None, start
        while True:
            seen.add(current)
            following = [v for v in links[current] if v != previous]
            previous, current = current, following[0]
            if current == start:
                break
            loop.append(current)
        loops.append(loop)
    return loops


def strip_fill(loop: list[int], points2d: np.ndarray) -> np.ndarray:
    """Triangulate an eye opening: a strip between the two lids, corner to corner by x."""
    xs = points2d[loop, 0]
    first, last = loop.index(loop[int(np.argmin(xs))]), loop.index(loop[int(np.argmax(xs))])
    rolled = loop[first:] + loop[:first]
    split = (last - first) % len(loop)
    upper, lower = rolled[: split + 1], [rolled[0]] + rolled[split:][::-1]
    # both chains run from the left corner to the right corner
    triangles, i, j = [], 0, 0
    while i < len(upper) - 1 or j < len(lower) - 1:
        advance_upper = j == len(lower) - 1 or (
            i < len(upper) - 1 and points2d[upper[i + 1], 0] <= points2d[lower[j + 1], 0]
        )
        if advance_upper:
            triangles.append((upper[i], upper[i + 1], lower[j]))
            i += 1
        else:
            triangles.append((upper[i], lower[j + 1], lower[j]))
            j += 1
    triangles = [t for t in triangles if len(set(t)) == 3]
    return counter_clockwise(np.array(triangles), points2d)


def back_project(points2d: np.ndarray, posed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each point the front skin triangle of the posed mean head under it and its weights."""
    head, _ = head_and_basis()
    skin = np.all(head.part[head.faces] == SKIN, axis=1)
    skin_faces = np.nonzero(skin)[0]
    corners = posed[head.faces[skin_faces]]  # [F,3,3]
    mouth_side = head.mouth_side[head.faces[skin_faces]]
    eye_side = head.eye_side[head.faces[skin_faces]]
    allowed_by_side = {}
    for ids, sides, wanted in (
        (UPPER_LIP, mouth_side, -1),
        (LOWER_LIP, mouth_side, 1),
        (UPPER_LIDS, eye_side, -1),
        (LOWER_LIDS, eye_side, 1),
    ):
        for index in ids:
            allowed_by_side[index] = np.all(sides == wanted, axis=1)
    triangle_ids, weights = [], []
    for index, point in enumerate(points2d):
        bary = barycentric(point, corners[:, :, :2])
        allowed = allowed_by_side.get(index, np.ones(len(bary), bool))
        bary = np.where(allowed[:, None], bary, -1.0)
        inside = np.all(bary >= -1e-9, axis=1)
        if inside.any():
            depth = np.einsum("fk,fk->f", bary[inside], corners[inside, :, 2])
            pick = np.nonzero(inside)[0][np.argmin(depth)]
            chosen = bary[pick]
        else:  # in an eye slit: the nearest front skin triangle, clamped onto it
            centres = corners.mean(1)
            front = centres[:, 2] < np.median(centres[:, 2])
            distance = np.where(
                front & allowed, np.linalg.norm(centres[:, :2] - point, axis=1), np.inf
            )
            pick = int(np.argmin(distance))
            chosen = np.clip(bary[pick], 0, None)
            chosen /= chosen.sum()
        triangle_ids.append(skin_faces[pick])
        weights.append(chosen)
    return np.array(triangle_ids, np.int64), np.array(weights)


def barycentric(point: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    area = cross2(b - a, c - a)
    area = np.where(np.abs(area) < 1e-12, np.nan, area)
    wa = cross2(b - point, c - point) / area
    wb = cross2(c - point, a - point) / area
    return np.nan_to_num(np.stack([wa, wb, 1 - wa - wb], 1), nan=-1.0)


def rows(array: np.ndarray, fmt: str, per_line: int) -> str:
    items = [
        "(" + ", ".join(fmt.format(v) for v in row) + ")" if array.ndim == 2 else fmt.format(row)
        for row in array
    ]
    lines = [", ".join(items[k : k + per_line]) + "," for k in range(0, len(items), per_line)]
    return "\n".join("        " + line for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preview", default="outputs/mesh468/derivation.png")
    args = parser.parse_args()
    edges, eyes = tessellation()
    images, posed = frontal_renders(RENDER_SIZE, SUBJECTS)
    detections = detect(images)
    points = detections.mean(0)
    spread = np.linalg.norm(detections[:, :, :2] - points[:, :2], axis=-1).mean()
    mean_face = normalised(points)

    faces = faces_from_edges(edges, mean_face[:, :2])
    loops = boundary_loops(faces)
    eye_loops = [loop for loop in loops if any(set(loop) <= eye for eye in eyes)]
    if len(eye_loops) != 2 or len(loops) != 4:
        raise RuntimeError(f"expected the outline, two eyes and the mouth, got {len(loops)} loops")
    faces = np.concatenate([faces] + [strip_fill(loop, mean_face[:, :2]) for loop in eye_loops])
    faces = faces[np.lexsort(faces.T[::-1])]
    triangle_ids, weights = back_project(points[:, :2], posed)

    tables = (
        '"""Generated by scripts/derive_mesh468.py (edit the script, not this file)."""\n\n'
        "import numpy as np\n\n# fmt: off\n"
        f"MESH468_TRIANGLES = np.array(\n    [\n{rows(faces, '{:d}', 6)}\n    ],\n"
        "    dtype=np.int32,\n)\n"
        f"MESH468_MEAN = np.array(\n    [\n{rows(mean_face, '{:+.4f}', 3)}\n    ],\n"
        "    dtype=np.float32,\n)\n# fmt: on\n"
    )
    truth = (
        '"""Generated by scripts/derive_mesh468.py (edit the script, not this file).\n\n'
        "Each of the 468 MediaPipe points as a skin triangle of the synthetic head's template\n"
        '(HeadModel.faces) and barycentric weights on it."""\n\n'
        "import numpy as np\n\n# fmt: off\n"
        f"MESH468_HEAD_TRIANGLES = np.array(\n    [\n{rows(triangle_ids, '{:d}', 10)}\n    ],\n"
        "    dtype=np.int64,\n)\n"
        f"MESH468_HEAD_WEIGHTS = np.array(\n    [\n{rows(weights, '{:.5f}', 3)}\n    ],\n"
        "    dtype=np.float64,\n)\n# fmt: on\n"
    )
    write_bytes_atomic(ROOT / "frgan/render/mesh468_tables.py", tables.encode())
    write_bytes_atomic(ROOT / "frgan/synthetic/mesh468_truth.py", truth.encode())
    overlay = images[0].copy()
    for x, y in points[:, :2].round().astype(int):
        overlay[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = (255, 255, 0)
    Path(args.preview).parent.mkdir(parents=True, exist_ok=True)
    write_image(args.preview, np.concatenate([images[0], overlay], 1))
    print(
        f"{len(faces)} triangles, {len(loops)} boundary loops before filling the eyes; "
        f"MediaPipe points spread {spread:.2f} px over {SUBJECTS} skins at {RENDER_SIZE} px; "
        f"preview {args.preview}"
    )


if __name__ == "__main__":
    main()
