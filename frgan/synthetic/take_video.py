"""One take in memory: subject (identity + appearance), dynamics, rendering, ground truth.

Randomness is derived from the dataset seed only: a subject's draws from
SeedSequence([seed, subject]) and a take's from SeedSequence([seed, subject, expression,
take]) with the expression's index in EXPRESSIONS, so any take can be regenerated alone,
in any order, by any worker.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from frgan.synthetic.appearance import (
    SubjectAppearance,
    background_image,
    hair_displacement,
    sample_subject_appearance,
    sample_take_lighting,
    skin_texture,
)
from frgan.synthetic.compose import project, render_frames
from frgan.synthetic.expressions import EXPRESSIONS, action_unit_basis, articulate
from frgan.synthetic.head import IDENTITY_NAMES, HeadModel, build_head
from frgan.synthetic.mesh468_truth import MESH468_HEAD_TRIANGLES, MESH468_HEAD_WEIGHTS
from frgan.synthetic.takes import sample_take_dynamics

MESH_DENSITY = 1.0


@dataclass(frozen=True)
class Subject:
    identity: np.ndarray  # float [len(IDENTITY_NAMES)]
    appearance: SubjectAppearance
    rest: np.ndarray  # float [N,3] rest mesh (identity + hair volume)
    texture: np.ndarray  # float32 [Ht,Wt,3]
    texture_labels: np.ndarray  # uint8 [Ht,Wt]


@dataclass(frozen=True)
class Take:
    images: np.ndarray  # uint8 [T,S,S,3]
    landmarks: np.ndarray  # float32 [T,68,3] image pixels + depth
    landmarks_468: np.ndarray  # float32 [T,468,3] the same in MediaPipe's 468-point topology
    identity: np.ndarray  # float32 [K_id]
    action_units: np.ndarray  # float32 [T,K_au]
    pose: np.ndarray  # float32 [T,6]
    apex_frame: int
    intensity: float
    returns: bool
    vertices: np.ndarray  # float32 [T,N,3] posed dense mesh
    labels: np.ndarray | None  # uint8 [T,S,S] region labels when asked for


@lru_cache(maxsize=1)
def head_and_basis(density: float = MESH_DENSITY) -> tuple[HeadModel, np.ndarray]:
    head = build_head(density)
    return head, action_unit_basis(head)


@lru_cache(maxsize=8)
def make_subject(seed: int, subject: int) -> Subject:
    head, _ = head_and_basis()
    rng = np.random.default_rng(np.random.SeedSequence([seed, subject]))
    identity = np.clip(rng.standard_normal(len(IDENTITY_NAMES)), -2.0, 2.0)
    appearance = sample_subject_appearance(rng)
    rest = head.shape(identity) + hair_displacement(head, appearance)
    texture, labels = skin_texture(head, appearance)
    return Subject(identity, appearance, rest, texture, labels)


def mesh468_points(head: HeadModel, posed: np.ndarray) -> np.ndarray:
    """MediaPipe's 468 points [T,468,3] on posed head meshes [T,N,3]: each a fixed barycentric
    point of a skin triangle (found once by scripts/derive_mesh468.py), so it moves with the skin."""
    corners = posed[:, head.faces[MESH468_HEAD_TRIANGLES]]  # [T,468,3 corners,3]
    return np.einsum("pk,tpkd->tpd", MESH468_HEAD_WEIGHTS, corners).astype(np.float32)


def take_rng(seed: int, subject: int, expression: str, take: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([seed, subject, EXPRESSIONS.index(expression), take])
    )


def render_take(
    seed: int,
    subject: int,
    expression: str,
    take: int,
    *,
    image_size: int = 128,
    min_frames: int = 24,
    max_frames: int = 64,
    with_labels: bool = False,
) -> Take:
    """Generate one take in memory (the same take `generate_dataset` writes for these ids)."""
    if expression not in EXPRESSIONS:
        raise ValueError(f"unknown expression {expression!r}; choose from {', '.join(EXPRESSIONS)}")
    head, basis = head_and_basis()
    person = make_subject(seed, subject)
    rng = take_rng(seed, subject, expression, take)
    n_frames = int(rng.integers(min_frames, max_frames + 1))
    dynamics = sample_take_dynamics(rng, expression, n_frames, image_size)
    lighting = sample_take_lighting(rng)

    model = articulate(head, person.rest, basis, dynamics.action_units)
    posed = project(model, dynamics.pose, image_size)
    rendered = render_frames(
        head,
        posed,
        person.texture,
        person.texture_labels,
        person.appearance,
        lighting,
        background_image(lighting, image_size),
        dynamics.gaze,
        with_labels=with_labels,
    )
    images, labels = rendered if with_labels else (rendered, None)
    return Take(
        images=images,
        landmarks=posed[:, head.landmark_ids].astype(np.float32),
        landmarks_468=mesh468_points(head, posed),
        identity=person.identity.astype(np.float32),
        action_units=dynamics.action_units.astype(np.float32),
        pose=dynamics.pose.astype(np.float32),
        apex_frame=dynamics.apex_frame,
        intensity=dynamics.intensity,
        returns=dynamics.returns,
        vertices=posed.astype(np.float32),
        labels=labels,
    )
