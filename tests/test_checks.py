"""frgan.utils.checks: one home for config value checks, each a one-line ConfigError."""

from __future__ import annotations

import numpy as np
import pytest

from frgan.errors import ConfigError
from frgan.utils.checks import check_choice, check_int, check_number


def test_check_choice_names_the_key_and_the_valid_values():
    assert check_choice("model.output", "mask", ("mask", "additive")) == "mask"
    with pytest.raises(
        ConfigError, match=r"^model.output='x' is invalid; valid values: mask, additive$"
    ):
        check_choice("model.output", "x", ("mask", "additive"))


def test_check_int_refuses_bools_floats_and_small_values():
    assert check_int("data.batch_size", np.int64(4)) == 4
    assert check_int("data.num_workers", 0, least=0) == 0
    for bad in (True, 2.0, "3", 0, None):
        with pytest.raises(ConfigError, match=r"data.batch_size must be an integer >= 1, got"):
            check_int("data.batch_size", bad)


@pytest.mark.parametrize(
    ("bounds", "good", "bad", "wanted"),
    [
        ({"above": 0.0}, 1e-4, 0.0, "must be > 0"),
        ({"least": 0.0}, 0.0, -1, "must be >= 0"),
        ({"least": 0.0, "most": 1.0}, 1.0, 1.5, r"must be in \[0, 1\]"),
        (
            {"above": 0.0, "below": 1.0, "null": "no EMA"},
            None,
            1.0,
            r"must be in \(0, 1\) or null \(no EMA\)",
        ),
    ],
)
def test_check_number_bounds_and_null(bounds, good, bad, wanted):
    assert check_number("key", good, **bounds) == good
    with pytest.raises(ConfigError, match=f"^key {wanted}, got"):
        check_number("key", bad, **bounds)
    with pytest.raises(ConfigError):
        check_number("key", True, **bounds)
    if "null" not in bounds:
        with pytest.raises(ConfigError):
            check_number("key", None, **bounds)
