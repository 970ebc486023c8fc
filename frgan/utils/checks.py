"""Config value checks, written once: each raises ConfigError with one line naming the key,
what it must be and what it got (the entry points print it and exit with status 2)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

from frgan.errors import ConfigError


def check_choice(key: str, value: Any, choices: Iterable[Any]) -> Any:
    """`value` if it is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(str(c) for c in choices)
        raise ConfigError(f"{key}={value!r} is invalid; valid values: {valid}")
    return value


def check_int(key: str, value: Any, least: int = 1) -> int:
    """`value` as an int if it is an integer (not a bool) >= least."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ConfigError(f"{key} must be an integer >= {least}, got {value!r}")
    return int(value)


def check_number(
    key: str,
    value: Any,
    *,
    above: float | None = None,
    least: float | None = None,
    below: float | None = None,
    most: float | None = None,
    null: str | None = None,
) -> Any:
    """`value` if it is a real number (not a bool) within the bounds (above/below: strict,
    least/most: inclusive); None too when `null` says what null means."""
    if value is None and null is not None:
        return value
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = number and (
        (above is None or value > above)
        and (least is None or value >= least)
        and (below is None or value < below)
        and (most is None or value <= most)
    )
    if ok:
        return value
    low, high = (above, "(") if above is not None else (least, "[")
    top, close = (below, ")") if below is not None else (most, "]")
    if low is not None and top is not None:
        wanted = f"in {high}{low:g}, {top:g}{close}"
    elif low is not None:
        wanted = f"{'>' if above is not None else '>='} {low:g}"
    elif top is not None:
        wanted = f"{'<' if below is not None else '<='} {top:g}"
    else:
        wanted = "a number"
    if null is not None:
        wanted += f" or null ({null})"
    raise ConfigError(f"{key} must be {wanted}, got {value!r}")
