"""Argument and shape checks shared by the layers; every error names the argument and its value."""

from __future__ import annotations

import numbers


def positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")


def optional_positive_int(name: str, value) -> None:
    if value is not None:
        positive_int(name, value)


def non_negative_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer. Received: {name}={value!r}")


def optional_non_negative_int(name: str, value) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0
    ):
        raise ValueError(
            f"{name} must be None or a non-negative integer. Received: {name}={value!r}"
        )


def _is_number(value) -> bool:
    """A real number that is not a boolean (`True` is an `int` in Python)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_number(name: str, value) -> None:
    if not _is_number(value) or not value > 0:
        raise ValueError(f"{name} must be a positive number. Received: {name}={value!r}")


def non_negative_number(name: str, value) -> None:
    if not _is_number(value) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number. Received: {name}={value!r}")


def boolean(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False. Received: {name}={value!r}")


def image_size(name: str, value) -> tuple[int, int]:
    """Checks a `(height, width)` pair of integers > 1 and returns it as a tuple."""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 1 for v in value
        )
    ):
        raise ValueError(
            f"{name} must be (height, width), integers > 1. Received: {name}={value!r}"
        )
    return tuple(int(v) for v in value)


def fraction(name: str, value, *, low_inclusive: bool = True, high_inclusive: bool = False) -> None:
    ok = _is_number(value)
    if ok:
        ok = (value >= 0.0 if low_inclusive else value > 0.0) and (
            value <= 1.0 if high_inclusive else value < 1.0
        )
    if not ok:
        low = "[0" if low_inclusive else "(0"
        high = "1]" if high_inclusive else "1)"
        raise ValueError(f"{name} must be a number in {low}, {high}. Received: {name}={value!r}")


def one_of(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}. Received: {name}={value!r}")


def odd_kernel(name: str, value) -> None:
    positive_int(name, value)
    if value % 2 == 0:
        raise ValueError(f"{name} must be an odd positive integer. Received: {name}={value!r}")


def feature_map_shape(layer: str, argument: str, shape) -> None:
    """Raises unless `shape` is a rank-4 NHWC shape with a known channel count."""
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(
            f"Layer '{layer}' expects `{argument}` of rank 4 (batch, height, width, channels). "
            f"Received: {argument}.shape={shape}"
        )
    if shape[-1] is None:
        raise ValueError(
            f"Layer '{layer}' needs a known channel count for `{argument}`. "
            f"Received: {argument}.shape={shape}"
        )
