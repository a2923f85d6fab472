"""Validation and conversion of plain numpy images for the task helpers (upscale, align)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_INTEGER_RANGES = {np.dtype("uint8"): 255.0, np.dtype("uint16"): 65535.0}


def image_array(image, argument: str) -> np.ndarray:
    """A numpy array from what users hold: a file path (read with Pillow, one-line errors), a
    PIL image (its own mode: L stays grayscale, RGBA keeps alpha), or an array-like."""
    import os

    if isinstance(image, (str, os.PathLike)):
        from keras_attn.data.image_files import read_image

        return read_image(image)
    if hasattr(image, "getbands") and hasattr(image, "convert"):  # a PIL image
        mode = image.mode
        if mode in ("RGB", "L", "RGBA"):
            return np.asarray(image)
        if mode in ("LA", "1"):
            return np.asarray(image.convert("L"))
        if mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(image).astype("uint16")
        return np.asarray(image.convert("RGBA" if "A" in mode else "RGB"))
    return np.asarray(image)


def as_float_image(image, argument: str, channels: tuple[int, ...] = (1, 3)) -> np.ndarray:
    """Checks a numpy image and returns it as float32 in [0, 1], `(H, W, C)`.

    Raises a one-line `ValueError` naming `argument` for anything that is not a finite
    uint8/uint16 image or a float image in [0, 1] of rank 2 or 3 with an allowed channel count.
    """
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except Exception as error:  # noqa: BLE001 - any conversion failure is a bad input
            raise ValueError(
                f"{argument} must be a numpy array. Received: {type(image)}"
            ) from error
    if image.ndim not in (2, 3):
        raise ValueError(
            f"{argument} must have rank 2 (H, W) or 3 (H, W, C). "
            f"Received: {argument}.shape={image.shape}"
        )
    if image.size == 0:
        raise ValueError(f"{argument} is empty. Received: {argument}.shape={image.shape}")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] not in channels:
        raise ValueError(
            f"{argument} must have {' or '.join(map(str, channels))} channels. "
            f"Received: {argument}.shape={image.shape}"
        )
    return to_unit_float(image, argument)


def to_unit_float(
    array: np.ndarray,
    argument: str,
    integer_dtypes: tuple[str, ...] = ("uint8", "uint16"),
    values: str = "pixels",
) -> np.ndarray:
    """float32 in [0, 1] from an integer array (divided by its dtype's maximum) or a float one.

    Raises a one-line `ValueError` naming `argument` for other dtypes, NaN or Inf `values`, and
    float values outside [0, 1]. Shared by the task helpers and `keras_attn.viz`.
    """
    dtypes = [np.dtype(name) for name in integer_dtypes]
    if array.dtype in dtypes:
        return array.astype("float32") / _INTEGER_RANGES[array.dtype]
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{argument} must be {', '.join(integer_dtypes)} or float in [0, 1]. "
            f"Received: {argument}.dtype={array.dtype}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{argument} contains NaN or Inf {values}.")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ValueError(
            f"float {argument} must be in [0, 1]. Received values in [{low:g}, {high:g}] "
            "(pass uint8, or divide by 255)."
        )
    return np.clip(array, 0.0, 1.0).astype("float32")


def to_model_input(image, argument: str) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """`(H, W, 3)` float32 RGB for a model, and a function mapping an output back to the
    input's dtype and channel layout (grayscale in, grayscale out)."""
    original = np.asarray(image)
    rgb = as_float_image(original, argument)
    gray = rgb.shape[-1] == 1
    if gray:
        rgb = np.repeat(rgb, 3, axis=-1)

    def restore(output: np.ndarray) -> np.ndarray:
        output = np.clip(output, 0.0, 1.0)
        if gray:
            output = output.mean(axis=-1, keepdims=original.ndim == 3)
        if original.dtype in _INTEGER_RANGES:
            top = _INTEGER_RANGES[original.dtype]
            return np.round(output * top).astype(original.dtype)
        return output.astype(original.dtype)

    return rgb, restore


def single_output(result):
    """The one tensor of a model's output (a tensor, a 1-element list, or a 1-entry dict)."""
    if isinstance(result, dict):
        if len(result) != 1:
            raise ValueError(f"Expected one output; the model returned {sorted(result)}")
        return next(iter(result.values()))
    if isinstance(result, (list, tuple)):
        if len(result) != 1:
            raise ValueError(f"Expected one output; the model returned {len(result)}")
        return result[0]
    return result
