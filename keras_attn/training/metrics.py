"""Super-resolution metrics on the standard SR protocol: PSNR and SSIM on the BT.601 luma.

The protocol of the SR literature (EDSR, RCAN, SwinIR, ...): crop `border` pixels (the scale)
from every side of both images, convert RGB to the Y channel of MATLAB's `rgb2ycbcr`, then
compute PSNR and SSIM (Wang et al., 11x11 Gaussian window, sigma 1.5) on that channel. The
functions here match `skimage.metrics.peak_signal_noise_ratio` and
`skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1.0)` on the same Y channel, and are written with
`keras.ops` only, so they run inside `model.evaluate` on every backend.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
from keras import ops

from keras_attn.training.losses import _corner_distances, _end_point_errors

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def rgb_to_y(images):
    """BT.601 luma of RGB images in `[0, 1]`, as MATLAB's `rgb2ycbcr` (studio swing).

    `Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`, so Y lies in `[16/255, 235/255]`.

    Args:
        images: `(..., H, W, 3)` float RGB in `[0, 1]`.

    Returns:
        `(..., H, W, 1)` float32 luma.
    """
    images = ops.cast(images, "float32")
    if images.shape[-1] is not None and images.shape[-1] != 3:
        raise ValueError(
            f"rgb_to_y expects RGB images with 3 channels in the last axis. "
            f"Received: images.shape={tuple(images.shape)}"
        )
    weights = ops.convert_to_tensor(np.array([65.481, 128.553, 24.966]) / 255.0, "float32")
    luma = ops.sum(images * weights, axis=-1, keepdims=True)
    return luma + 16.0 / 255.0


def psnr_y(y_true, y_pred, border: int):
    """Per-image PSNR in dB on the Y channel after cropping `border` pixels from every side.

    `PSNR = 10 log10(1 / MSE)` with data range 1.0 on the `[0, 1]` Y channel. Identical images
    (MSE = 0) give `inf`, as `skimage.metrics.peak_signal_noise_ratio` does; no cap is applied.

    Args:
        y_true: `(B, H, W, 3)` reference RGB in `[0, 1]`.
        y_pred: `(B, H, W, 3)` estimate, same shape.
        border: pixels cropped from each side before the comparison (the SR scale); `>= 0`.

    Returns:
        `(B,)` float32 PSNR values.
    """
    true_luma, pred_luma = _cropped_luma(y_true, y_pred, border, min_size=1)
    mse = ops.mean(ops.square(true_luma - pred_luma), axis=(1, 2, 3))
    return -10.0 * ops.log10(mse)


def ssim_y(y_true, y_pred, border: int):
    """Per-image SSIM on the Y channel after cropping `border` pixels from every side.

    Wang et al.'s SSIM with an 11x11 Gaussian window (sigma 1.5), `K1 = 0.01`, `K2 = 0.03`,
    data range 1.0 and population (not sample) covariances, averaged over the 'valid' part of
    the map (the window fully inside the cropped image), as `skimage.metrics.
    structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`.
    The window is applied as two separable 1-D depthwise convolutions.

    Paper: Wang et al., "Image Quality Assessment: From Error Visibility to Structural
    Similarity", IEEE TIP 2004, https://doi.org/10.1109/TIP.2003.819861

    Args:
        y_true: `(B, H, W, 3)` reference RGB in `[0, 1]`.
        y_pred: `(B, H, W, 3)` estimate, same shape; the cropped size must be at least 11x11.
        border: pixels cropped from each side before the comparison (the SR scale); `>= 0`.

    Returns:
        `(B,)` float32 SSIM values (1.0 for identical images).
    """
    true_luma, pred_luma = _cropped_luma(y_true, y_pred, border, min_size=_SSIM_WINDOW)
    maps = ops.concatenate(
        [
            true_luma,
            pred_luma,
            true_luma * true_luma,
            pred_luma * pred_luma,
            true_luma * pred_luma,
        ],
        axis=-1,
    )
    window = _gaussian_window(_SSIM_WINDOW, _SSIM_SIGMA)
    vertical = np.tile(window.reshape(-1, 1, 1, 1), (1, 1, 5, 1))
    horizontal = np.tile(window.reshape(1, -1, 1, 1), (1, 1, 5, 1))
    filtered = ops.depthwise_conv(maps, ops.convert_to_tensor(vertical), padding="valid")
    filtered = ops.depthwise_conv(filtered, ops.convert_to_tensor(horizontal), padding="valid")
    mean_true, mean_pred, true_sq, pred_sq, cross = ops.split(filtered, 5, axis=-1)

    var_true = true_sq - mean_true * mean_true
    var_pred = pred_sq - mean_pred * mean_pred
    covariance = cross - mean_true * mean_pred
    c1 = (_SSIM_K1 * 1.0) ** 2
    c2 = (_SSIM_K2 * 1.0) ** 2
    numerator = (2.0 * mean_true * mean_pred + c1) * (2.0 * covariance + c2)
    denominator = (mean_true * mean_true + mean_pred * mean_pred + c1) * (var_true + var_pred + c2)
    return ops.mean(numerator / denominator, axis=(1, 2, 3))


class _PerImageMean(keras.metrics.Mean):
    """Mean over images of a per-image metric `fn(y_true, clip(y_pred), border)`."""

    _fn = None

    def __init__(self, border: int, name: str, dtype=None):
        _check_border(border)
        super().__init__(name=name, dtype=dtype)
        self.border = border
        self._direction = "up"

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.clip(ops.cast(y_pred, "float32"), 0.0, 1.0)
        values = type(self)._fn(y_true, y_pred, self.border)
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {"border": self.border, "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_attn")
class PSNRY(_PerImageMean):
    """Mean PSNR (dB) on the Y channel over all images seen, with a `border`-pixel crop.

    Each image contributes `psnr_y(y_true, clip(y_pred, 0, 1), border)`; the result is their
    (optionally `sample_weight`-weighted) mean. If any image is reproduced exactly its PSNR is
    `inf` and so is the mean, as with skimage.

    Args:
        border: pixels cropped from each side (the SR scale); `>= 0`.
        name: metric name.
        dtype: dtype of the result.

    Call arguments:
        y_true: `(B, H, W, 3)` reference RGB in `[0, 1]`.
        y_pred: `(B, H, W, 3)` prediction; clipped to `[0, 1]` first.
        sample_weight: optional `(B,)` weights.

    Returns:
        A scalar: the mean PSNR in dB.

    Example:

    >>> metric = PSNRY(border=2)
    >>> images = keras.random.uniform((2, 16, 16, 3))
    >>> metric.update_state(images, 0.5 * images)
    >>> float(metric.result()) > 0
    True
    """

    _fn = staticmethod(psnr_y)

    def __init__(self, border: int, name: str = "psnr_y", dtype=None):
        super().__init__(border, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_attn")
class SSIMY(_PerImageMean):
    """Mean SSIM on the Y channel over all images seen, with a `border`-pixel crop.

    Each image contributes `ssim_y(y_true, clip(y_pred, 0, 1), border)` (11x11 Gaussian window,
    sigma 1.5, data range 1.0); the result is their (optionally weighted) mean.

    Args:
        border: pixels cropped from each side (the SR scale); `>= 0`.
        name: metric name.
        dtype: dtype of the result.

    Call arguments:
        y_true: `(B, H, W, 3)` reference RGB in `[0, 1]`, at least `11 + 2 * border` pixels
            high and wide.
        y_pred: `(B, H, W, 3)` prediction; clipped to `[0, 1]` first.
        sample_weight: optional `(B,)` weights.

    Returns:
        A scalar: the mean SSIM.

    Example:

    >>> metric = SSIMY(border=2)
    >>> images = keras.random.uniform((2, 16, 16, 3))
    >>> metric.update_state(images, images)
    >>> round(float(metric.result()), 4)
    1.0
    """

    _fn = staticmethod(ssim_y)

    def __init__(self, border: int, name: str = "ssim_y", dtype=None):
        super().__init__(border, name=name, dtype=dtype)


def _check_border(border) -> None:
    if isinstance(border, bool) or not isinstance(border, numbers.Integral) or border < 0:
        raise ValueError(f"border must be a non-negative integer. Received: border={border!r}")


def _cropped_luma(y_true, y_pred, border, *, min_size: int):
    """Checks the pair, crops `border` pixels from every side and returns both Y channels."""
    _check_border(border)
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    shapes = f"Received: y_true.shape={true_shape}, y_pred.shape={pred_shape}"
    if len(true_shape) != 4 or len(pred_shape) != 4:
        raise ValueError(f"y_true and y_pred must be (batch, height, width, 3) images. {shapes}")
    if any(
        t is not None and p is not None and t != p
        for t, p in zip(true_shape, pred_shape, strict=True)
    ):
        raise ValueError(f"y_true and y_pred must have the same shape. {shapes}")
    for size in (*true_shape[1:3], *pred_shape[1:3]):
        if size is not None and size - 2 * border < min_size:
            raise ValueError(
                f"Images must be at least {min_size + 2 * border} pixels high and wide to crop "
                f"border={border} and leave {min_size}. {shapes}"
            )
    if border:
        y_true = y_true[:, border:-border, border:-border, :]
        y_pred = y_pred[:, border:-border, border:-border, :]
    return rgb_to_y(y_true), rgb_to_y(y_pred)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of odd `size` (scipy.ndimage's kernel for truncate=3.5)."""
    offsets = np.arange(size, dtype="float64") - (size - 1) / 2
    window = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (window / window.sum()).astype("float32")


# --------------------------------------------------------------------------- aligner


@keras.saving.register_keras_serializable(package="keras_attn")
class MeanCornerError(keras.metrics.Mean):
    """Mean corner error (MACE) in pixels of the last iteration's corners.

    Call arguments: as `CornerLoss`.
    """

    def __init__(self, name: str = "mace", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_pred.shape) == 4:
            y_pred = y_pred[:, -1]
        per_pair = ops.mean(_corner_distances(y_true, y_pred), axis=-1)
        return super().update_state(per_pair, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class EndPointError(keras.metrics.Mean):
    """Mean end-point error in pixels of a dense flow over the visible pixels.

    Call arguments: as `keras_attn.training.losses.FlowEndPointLoss`.
    """

    def __init__(self, name: str = "epe", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        per_pair = _end_point_errors(y_true, y_pred)
        return super().update_state(per_pair, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
