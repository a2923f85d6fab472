"""Layers that fit, compose, apply and export homographies inside a functional aligner.

Convention (the model cards' and `keras-attn predict`'s): the aligner's output `homography` maps
**moving** pixel coordinates to **fixed** ones. Internally the layers carry `G`, its inverse, in
normalised coordinates: `G` maps a fixed-grid point to where it is found in the moving image, which
is what backward warping needs. All ops are TFLite builtins (see `_homography.py`).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers import _homography as hom

MOTIONS = ("homography", "translation")


def _image_size(value):
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and v > 1 for v in value)
    ):
        raise ValueError(
            f"image_size must be (height, width), integers > 1. Received: image_size={value!r}"
        )
    return tuple(int(v) for v in value)


@keras.saving.register_keras_serializable(package="keras_attn")
class HomographyUpdate(keras.layers.Layer):
    """Fits a homography to weighted dense matches and composes it with the previous estimate.

    The matches come from `CorrelationMatch2D` on a stride-`stride` grid of features of the
    fixed image and of the moving image already warped by the previous estimate `G`; the fitted
    residual `R` (weighted DLT least squares, solved in-graph) gives `G' = G R`.

    Outlier matches are down-weighted by iteratively reweighted least squares (Cauchy weights
    of the residuals). With `motion="translation"` only a shift is fitted: the robust choice
    for a first, coarse, global match.

    Args:
        image_size: `(height, width)` of the images in pixels.
        stride: downsampling factor of the feature grid that was matched.
        regularization: Tikhonov weight towards the identity (relative to unit total weight).
        motion: `"homography"` (8 degrees of freedom) or `"translation"` (2).
        robust_iterations: IRLS reweighting rounds (0: plain weighted least squares).
        robust_scale: Cauchy scale of the residuals, in normalised units (0.05 ~ 3 px at 128).

    Call arguments:
        displacement: `(B, h, w, 2)` matches in cells (from `CorrelationMatch2D`).
        weights: `(B, h, w, 1)` non-negative weights of the matches.
        previous: optional `(B, 3, 3)` normalised fixed->moving estimate (identity if omitted).

    Returns:
        `(B, 3, 3)` normalised fixed->moving homographies with `G[2, 2] == 1`.

    Example:

    >>> update = HomographyUpdate(image_size=(64, 64), stride=8)
    >>> tuple(update(keras.ops.zeros((2, 8, 8, 2)), keras.ops.ones((2, 8, 8, 1))).shape)
    (2, 3, 3)
    """

    def __init__(
        self,
        image_size,
        stride: int = 1,
        regularization: float = 1e-3,
        motion: str = "homography",
        robust_iterations: int = 4,
        robust_scale: float = 0.05,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = _image_size(image_size)
        _checks.positive_int("stride", stride)
        _checks.one_of("motion", motion, MOTIONS)
        if (
            isinstance(robust_iterations, bool)
            or not isinstance(robust_iterations, int)
            or (robust_iterations < 0)
        ):
            raise ValueError(
                f"robust_iterations must be a non-negative integer. "
                f"Received: robust_iterations={robust_iterations!r}"
            )
        if not isinstance(robust_scale, (int, float)) or robust_scale <= 0:
            raise ValueError(f"robust_scale must be > 0. Received: robust_scale={robust_scale!r}")
        self.motion = motion
        self.robust_iterations = robust_iterations
        self.robust_scale = float(robust_scale)
        if not isinstance(regularization, (int, float)) or regularization < 0:
            raise ValueError(
                f"regularization must be a non-negative number. Received: {regularization!r}"
            )
        self.stride = stride
        self.regularization = float(regularization)

    def call(self, displacement, weights, previous=None):
        height, width = self.image_size
        displacement = ops.cast(displacement, "float32")
        weights = ops.cast(weights, "float32")
        batch = ops.shape(displacement)[0]
        source = hom.grid(height, width, self.stride)[None]
        scale = ops.convert_to_tensor(
            [2.0 * self.stride / (width - 1.0), 2.0 * self.stride / (height - 1.0)]
        )
        target = source + ops.reshape(displacement, (batch, -1, 2)) * scale
        source = ops.tile(source, (batch, 1, 1))
        weights = ops.reshape(weights, (batch, -1))
        if self.motion == "translation":
            residual = hom.robust_translation(
                source, target, weights, self.robust_iterations, self.robust_scale
            )
        else:
            residual = hom.robust_fit(
                source,
                target,
                weights,
                self.regularization,
                self.robust_iterations,
                self.robust_scale,
            )
        if previous is None:
            return residual
        return hom.normalise(ops.matmul(ops.cast(previous, "float32"), residual))

    def compute_output_shape(self, displacement_shape, weights_shape, previous_shape=None):
        return (displacement_shape[0], 3, 3)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "stride": self.stride,
                "regularization": self.regularization,
                "motion": self.motion,
                "robust_iterations": self.robust_iterations,
                "robust_scale": self.robust_scale,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_attn")
class HomographyFlow(keras.layers.Layer):
    """Dense backward flow, in pixels on the fixed grid, of a normalised fixed->moving homography.

    `flow(y, x) = G(x, y) - (x, y)` in pixels, which `Warp` consumes:
    `Warp()([moving, flow])` resamples the moving image onto the fixed grid.

    With `stride > 1` the flow is given on the grid of cell centres of a stride-`stride`
    feature map, in cells, so that `Warp` can resample feature maps.

    Args:
        image_size: `(height, width)` of the images in pixels.
        stride: 1 for the image grid, or the stride of a feature map.
        stop_gradient: do not backpropagate into the homography (used between refinement
            iterations, like RAFT's detached flow, so each iteration learns its own update).

    Call arguments:
        matrix: `(B, 3, 3)` normalised fixed->moving homographies.

    Returns:
        `(B, height / stride, width / stride, 2)` float32 flow `(u, v)`.

    Example:

    >>> flow = HomographyFlow(image_size=(16, 16))(keras.ops.eye(3)[None])
    >>> tuple(flow.shape)
    (1, 16, 16, 2)
    """

    def __init__(self, image_size, stride: int = 1, stop_gradient: bool = False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = _image_size(image_size)
        _checks.positive_int("stride", stride)
        self.stride = stride
        self.stop_gradient = bool(stop_gradient)

    def call(self, matrix):
        height, width = self.image_size
        matrix = ops.cast(matrix, "float32")
        if self.stop_gradient:
            matrix = ops.stop_gradient(matrix)
        batch = ops.shape(matrix)[0]
        points = ops.tile(hom.grid(height, width, self.stride)[None], (batch, 1, 1))
        mapped = hom.apply(matrix, points)
        to_cells = ops.convert_to_tensor(
            [(width - 1.0) / (2.0 * self.stride), (height - 1.0) / (2.0 * self.stride)]
        )
        flow = (mapped - points) * to_cells
        return ops.reshape(flow, (batch, height // self.stride, width // self.stride, 2))

    def compute_output_shape(self, matrix_shape):
        height, width = self.image_size
        return (matrix_shape[0], height // self.stride, width // self.stride, 2)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "stride": self.stride,
                "stop_gradient": self.stop_gradient,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_attn")
class HomographyOutputs(keras.layers.Layer):
    """Turns a normalised fixed->moving `G` into the published moving->fixed pixel homography.

    Also returns where the moving patch's corners land in the fixed image (DeTone's 4-point
    parameterisation), the quantity the corner loss and the mean corner error are computed on.

    Args:
        image_size: `(height, width)` of the images in pixels.

    Call arguments:
        matrix: `(B, 3, 3)` normalised fixed->moving homographies.

    Returns:
        `(homography, corners)`: `(B, 3, 3)` moving->fixed pixel homographies with
        `H[2, 2] == 1` (OpenCV's `warpPerspective(moving, H, (W, H))` gives the fixed view), and
        `(B, 4, 2)` images of the corners `(0, 0), (W-1, 0), (W-1, H-1), (0, H-1)` under `H`.

    Example:

    >>> h, corners = HomographyOutputs(image_size=(8, 8))(keras.ops.eye(3)[None])
    >>> tuple(h.shape), tuple(corners.shape)
    ((1, 3, 3), (1, 4, 2))
    """

    def __init__(self, image_size, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = _image_size(image_size)

    def call(self, matrix):
        height, width = self.image_size
        inverse = hom.invert(ops.cast(matrix, "float32"))
        homography = hom.to_pixels(inverse, height, width)
        corners = ops.convert_to_tensor(
            [[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]]
        )
        batch = ops.shape(matrix)[0]
        mapped = hom.apply(homography, ops.tile(corners[None], (batch, 1, 1)))
        return homography, mapped

    def compute_output_spec(self, matrix):
        batch = matrix.shape[0]
        return (
            keras.KerasTensor((batch, 3, 3), "float32"),
            keras.KerasTensor((batch, 4, 2), "float32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size})
        return config
