"""Image files in and out (Pillow), with one-line errors for anything that is not an image."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from keras_attn._io import atomic_path


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
