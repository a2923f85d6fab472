"""Fitting a homography to dense matches and composing it with the previous estimate."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers import homography_ops as hom
from keras_attn.layers._homography_layer import HomographyLayer

MOTIONS = ("homography", "translation")


@keras.saving.register_keras_serializable(package="keras_attn")
class HomographyUpdate(HomographyLayer):
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
        super().__init__(image_size, **kwargs)
        _checks.positive_int("stride", stride)
        _checks.non_negative_number("regularization", regularization)
        _checks.one_of("motion", motion, MOTIONS)
        _checks.non_negative_int("robust_iterations", robust_iterations)
        _checks.positive_number("robust_scale", robust_scale)
        self.stride = stride
        self.regularization = float(regularization)
        self.motion = motion
        self.robust_iterations = robust_iterations
        self.robust_scale = float(robust_scale)

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
                "stride": self.stride,
                "regularization": self.regularization,
                "motion": self.motion,
                "robust_iterations": self.robust_iterations,
                "robust_scale": self.robust_scale,
            }
        )
        return config
