"""Images as users hold them: files in and out (Pillow), numpy checks and conversions.

Every function raises a one-line `ValueError` that names the file or the argument, never a
traceback from deep inside Pillow or NumPy:

- `read_image(path)`, `write_png(path, image)`: image files (atomic writes);
- `image_array(image, argument)`: a path, a PIL image or an array-like as a numpy array;
- `as_float_image(image, argument)`, `to_unit_float(array, argument)`: checked float32 in [0, 1];
- `to_model_input(image, argument)`: RGB float32 for a model and the way back to the input's
  dtype and channels.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

import numpy as np

from keras_attn._io import atomic_path

_INTEGER_RANGES = {np.dtype("uint8"): 255.0, np.dtype("uint16"): 65535.0}


def image_array(image, argument: str) -> np.ndarray:
    """A numpy array from what users hold: a file path (read with Pillow, one-line errors), a
    PIL image (its own mode: L stays grayscale, RGBA keeps alpha), or an array-like."""
    if isinstance(image, (str, os.PathLike)):
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


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as a numpy array: `(H, W, 3)` RGB or `(H, W)` grayscale.

    8-bit files give uint8, 16-bit grayscale uint16, 32-bit float (`F` mode TIFF) float32
    (checked to be finite); palette, alpha and CMYK files are converted to RGB.

    Raises:
        ValueError: a missing path, a folder, a file Pillow cannot identify as an image, or
            float pixels that are NaN/Inf, with the path in the message.
    """
    from PIL import Image, UnidentifiedImageError

    path = pathlib.Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("RGB", "L", "F"):
                array = np.asarray(image)
            elif mode in ("I;16", "I;16B", "I;16L"):
                array = np.asarray(image).astype("uint16")
            elif mode == "I":
                array = np.asarray(image)
                if array.min() < 0 or array.max() > 65535:
                    raise ValueError(f"{path}: 32-bit integer pixels outside 0..65535")
                array = array.astype("uint16")
            elif mode in ("1", "LA"):
                array = np.asarray(image.convert("L"))
            else:
                array = np.asarray(image.convert("RGB"))
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file Pillow can read") from None
    except (OSError, SyntaxError) as error:  # truncated or corrupt image data
        raise ValueError(f"{path} is not a readable image: {error}") from None
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{path} contains NaN or Inf pixels")
    return np.ascontiguousarray(array)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as `(H, W, 3)` uint8 (grayscale repeated, 16-bit scaled to 8)."""
    image = read_image(path)
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image)


def write_png(path: str | os.PathLike, image: np.ndarray) -> pathlib.Path:
    """Writes a uint8 `(H, W)` or `(H, W, 3)` image as PNG, atomically."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8 pixels. Received: dtype={image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3, 4))):
        raise ValueError(
            f"write_png expects an (H, W) or (H, W, 1|3|4) image. Received: shape={image.shape}"
        )
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return pathlib.Path(path)
