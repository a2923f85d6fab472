"""Checks and conversions of the numpy images the visualisation functions take."""

from __future__ import annotations

import numpy as np

from keras_attn.utils.images import to_unit_float


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
    return to_unit_float(array, argument, integer_dtypes=("uint8",), values="values")


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
