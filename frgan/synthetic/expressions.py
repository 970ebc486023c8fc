"""Action-unit expression bases and the six MUG expressions as action-unit combinations.

Each action unit (FACS numbering) is a displacement field over the template head at full
intensity; a frame's expression is a weight per unit, and the mesh is the linear blend
followed by one non-linear fix-up: lids and lips cannot pass through each other.
"""

import numpy as np

from frgan.synthetic.head import (
    BROW_Y,
    CHIN_Y,
    EYE_OPEN_LOWER,
    EYE_OPEN_UPPER,
    EYE_Y,
    MOUTH_HALF_WIDTH,
    MOUTH_Y,
    SKIN,
    HeadModel,
    eye_profile,
    gaussian,
    slit_profile,
    smoothstep,
)

EXPRESSIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")

ACTION_UNITS = (
    "AU1_inner_brow_raiser",
    "AU2_outer_brow_raiser",
    "AU4_brow_lowerer",
    "AU5_upper_lid_raiser",
    "AU6_cheek_raiser",
    "AU7_lid_tightener",
    "AU9_nose_wrinkler",
    "AU10_upper_lip_raiser",
    "AU12_lip_corner_puller",
    "AU15_lip_corner_depressor",
    "AU17_chin_raiser",
    "AU20_lip_stretcher",
    "AU23_lip_tightener",
    "AU25_lips_part",
    "AU26_jaw_drop",
    "AU45_blink",
)
BLINK = ACTION_UNITS.index("AU45_blink")

# Prototype action-unit weights at apex (after EMFACS prototypes, exaggerated a little so
# that the classes stay apart at 64-128 px).
EXPRESSION_ACTION_UNITS = {
    "anger": {"AU4": 1.0, "AU5": 0.5, "AU7": 1.0, "AU10": 0.25, "AU17": 0.5, "AU23": 1.0},
    "disgust": {
        "AU4": 0.4,
        "AU7": 0.4,
        "AU9": 1.0,
        "AU10": 1.0,
        "AU15": 0.5,
        "AU17": 0.6,
        "AU25": 0.3,
    },
    "fear": {
        "AU1": 1.0,
        "AU2": 0.6,
        "AU4": 0.7,
        "AU5": 1.0,
        "AU20": 1.0,
        "AU25": 0.8,
        "AU26": 0.35,
    },
    "happiness": {"AU6": 1.0, "AU12": 1.0, "AU25": 0.8, "AU26": 0.2},
    "sadness": {"AU1": 1.0, "AU4": 0.7, "AU15": 1.0, "AU17": 0.6, "AU45": 0.25},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU25": 0.8, "AU26": 1.0},
}


def expression_vector(expression: str) -> np.ndarray:
    """Apex action-unit weights [len(ACTION_UNITS)] of one expression."""
    prefixes = [name.split("_")[0] for name in ACTION_UNITS]
    weights = np.zeros(len(ACTION_UNITS))
    for unit, weight in EXPRESSION_ACTION_UNITS[expression].items():
        weights[prefixes.index(unit)] = weight
    return weights


def action_unit_basis(head: HeadModel) -> np.ndarray:
    """Displacement fields [len(ACTION_UNITS), N, 3] at full intensity."""
    x, y, _ = head.vertices.T
    ax, sx = np.abs(x), np.sign(x)
    skin = (head.part == SKIN) * head.front
    upper_lid, lower_lid = head.eye_side < 0, head.eye_side > 0
    upper_lip, lower_lip = head.mouth_side < 0, head.mouth_side > 0
    zero = np.zeros_like(x)

    def field(dx=zero, dy=zero, dz=zero, weight=skin):
        return np.stack([dx, dy, dz], -1) * np.asarray(weight, float)[:, None]

    brow = lambda cx, sigma_x: gaussian((ax - cx) / sigma_x, (y - BROW_Y) / 0.16)  # noqa: E731
    upper_lid_shape = eye_profile(x, True) * gaussian((y - EYE_Y) / 0.12) * upper_lid
    lower_lid_shape = eye_profile(x, False) * gaussian((y - EYE_Y) / 0.1) * lower_lid
    corner = gaussian((ax - MOUTH_HALF_WIDTH) / 0.14, (y - MOUTH_Y) / 0.13)
    lips_open = slit_profile(x, MOUTH_HALF_WIDTH + 0.04, 0.6)
    cheek = gaussian((ax - 0.45) / 0.2, (y - 0.25) / 0.18)

    # Jaw: everything below the mouth moves down; beside the mouth the skin stretches
    # (a vertical ramp instead of the slit's hard split), towards the ear it fades out.
    hard_split = lower_lip.astype(float)
    ramp = smoothstep(MOUTH_Y - 0.05, MOUTH_Y + 0.3, y)
    beside_mouth = smoothstep(MOUTH_HALF_WIDTH - 0.02, MOUTH_HALF_WIDTH + 0.12, ax)
    jaw = ((1 - beside_mouth) * hard_split + beside_mouth * ramp) * smoothstep(
        0.3, 1.1, np.hypot(ax - 0.95, y + 0.05)
    )
    interior_jaw = np.where(head.part == SKIN, 0.0, (head.mouth_side > 0).astype(float))
    jaw = np.where(head.part == SKIN, jaw * head.front, interior_jaw)

    units = {
        "AU1": field(dy=-0.1 * brow(0.13, 0.14), dx=0.01 * sx * brow(0.13, 0.14)),
        "AU2": field(dy=-0.1 * brow(0.5, 0.16)),
        "AU4": field(
            dy=0.07 * brow(0.22, 0.2), dx=-0.04 * sx * brow(0.2, 0.2), dz=-0.01 * brow(0.2, 0.2)
        ),
        "AU5": field(dy=-0.035 * upper_lid_shape),
        "AU6": field(dy=-0.045 * cheek - 0.012 * lower_lid_shape, dz=-0.02 * cheek),
        "AU7": field(dy=-0.022 * lower_lid_shape + 0.012 * upper_lid_shape),
        "AU9": field(
            dy=-0.05 * gaussian(x / 0.17, (y - 0.22) / 0.13) + 0.035 * brow(0.12, 0.15),
            dx=-0.02 * sx * brow(0.12, 0.15),
        ),
        "AU10": field(
            dy=-0.07 * gaussian(x / 0.2, (y - MOUTH_Y + 0.03) / 0.09) * upper_lip * lips_open
        ),
        "AU12": field(dx=0.085 * sx * corner, dy=-0.12 * corner, dz=0.02 * corner),
        "AU15": field(dx=0.005 * sx * corner, dy=0.08 * corner),
        "AU17": field(
            dy=-0.04
            * gaussian(x / 0.25, (y - CHIN_Y + 0.1) / 0.2)
            * (lower_lip | (y > MOUTH_Y + 0.05)),
            dz=-0.02 * gaussian(x / 0.25, (y - CHIN_Y) / 0.15),
        ),
        "AU20": field(dx=0.09 * sx * corner, dy=0.01 * corner, dz=0.015 * corner),
        "AU23": field(
            dx=-0.2 * x * gaussian(x / 0.3, (y - MOUTH_Y) / 0.1),
            dy=0.01 * head.mouth_side * gaussian(x / 0.3, (y - MOUTH_Y) / 0.08),
        ),
        "AU25": field(
            dy=(
                -0.025 * upper_lip * gaussian((y - MOUTH_Y) / 0.07)
                + 0.035 * lower_lip * gaussian((y - MOUTH_Y) / 0.1)
            )
            * lips_open
        ),
        "AU26": field(dy=0.2 * jaw, dz=0.05 * jaw, weight=np.ones_like(x)),
        "AU45": field(dy=EYE_OPEN_UPPER * upper_lid_shape - EYE_OPEN_LOWER * lower_lid_shape),
    }
    return np.stack([units[name.split("_")[0]] for name in ACTION_UNITS])


def articulate(
    head: HeadModel, rest: np.ndarray, basis: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Vertices [T,N,3] of a subject's rest mesh [N,3] under action-unit weights [T,K]."""
    verts = rest[None] + (weights @ basis.reshape(len(basis), -1)).reshape(
        (len(weights),) + rest.shape
    )
    for pairs in (head.eye_pairs, head.mouth_pairs):
        upper, lower = pairs[:, 0], pairs[:, 1]
        crossed = verts[:, upper, 1] > verts[:, lower, 1]
        middle = 0.5 * (verts[:, upper, 1] + verts[:, lower, 1])
        verts[:, upper, 1] = np.where(crossed, middle, verts[:, upper, 1])
        verts[:, lower, 1] = np.where(crossed, middle, verts[:, lower, 1])
    return verts
