"""Synthetic facial-expression videos in MUG's layout: the project's built-in dataset.

from frgan.synthetic import generate_dataset, render_take
generate_dataset("data/synthetic/raw", subjects=24, takes_per_expression=2, image_size=128)
"""

from frgan.synthetic.expressions import ACTION_UNITS, EXPRESSION_ACTION_UNITS, EXPRESSIONS
from frgan.synthetic.head import IDENTITY_NAMES, build_head
from frgan.synthetic.take_video import Take, render_take
from frgan.synthetic.takes import POSE_NAMES
from frgan.synthetic.writer import GENERATOR_VERSION, generate_dataset, validate_config

__all__ = [
    "ACTION_UNITS",
    "EXPRESSIONS",
    "EXPRESSION_ACTION_UNITS",
    "GENERATOR_VERSION",
    "IDENTITY_NAMES",
    "POSE_NAMES",
    "Take",
    "build_head",
    "generate_dataset",
    "render_take",
    "validate_config",
]
