"""Checks and conversions of the numpy images the visualisation functions take."""

from __future__ import annotations

import numpy as np


def as_float(array, argument: str) -> np.ndarray:
    """Returns `array` as float32 in [0, 1]: uint8 is divided by 255, floats are checked.

    Raises a one-line `ValueError` naming `argument` for other dtypes, NaN or Inf, and float
    values outside [0, 1].
    """
    try:
        array = np.asarray(array)
    except Exception as error:  # noqa: BLE001 - any conversion failure is a bad input
        raise ValueError(f"{argument} must be a numpy array. Received: {type(array)}") from error
    if array.size == 0:
        raise ValueError(f"{argument} is empty. Received: {argument}.shape={array.shape}")
    if array.dtype == np.uint8:
        return array.astype("float32") / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{argument} must be uint8 or float in [0, 1]. Received: {argument}.dtype={array.dtype}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{argument} contains NaN or Inf values.")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ValueError(
            f"float {argument} must be in [0, 1]. Received values in [{low:g}, {high:g}] "
            "(pass uint8, or divide by 255)."
        )
    return np.clip(array, 0.0, 1.0).astype("float32")


def as_display_image(image, argument: str) -> np.ndarray:
    """One image as float32 `(H, W)` (grayscale) or `(H, W, 3|4)` in [0, 1] for `imshow`."""
    image = as_float(image, argument)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim != 2 and not (image.ndim == 3 and image.shape[-1] in (3, 4)):
        raise ValueError(
            f"{argument} must be one image (H, W) or (H, W, C) with 1, 3 or 4 channels. "
            f"Received: {argument}.shape={image.shape}"
        )
    return image
