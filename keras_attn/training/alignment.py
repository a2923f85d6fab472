"""Losses and metrics of the aligner: corner loss, mean corner error, photometric NCC, smoothness.

Supervised: the corner loss compares where the predicted and the true homographies put the moving
patch's four corners (DeTone's 4-point parameterisation, in pixels), averaged over the
refinement iterations; the mean corner error (MACE) is the standard metric on the last one.
Unsupervised: local normalised cross-correlation between the fixed image and the warped moving
image (insensitive to gain and bias, as in VoxelMorph), and a smoothness penalty on the flow.
"""

from __future__ import annotations

import numbers

import keras
from keras import ops


def _corner_distances(y_true, y_pred):
    """Euclidean distances `(B, [L,] 4)` between true `(B, 4, 2)` and predicted corners."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    if len(y_pred.shape) == 4:  # (B, iterations, 4, 2)
        y_true = y_true[:, None]
    return ops.sqrt(ops.sum(ops.square(y_pred - y_true), axis=-1) + 1e-8)


@keras.saving.register_keras_serializable(package="keras_attn")
class CornerLoss(keras.losses.Loss):
    """Mean distance in pixels between predicted and true corner positions, over iterations.

    Args:
        final_weight: weight of the last iteration relative to each earlier one (earlier
            iterations are supervised too, with weight 1, so each learns its own update).
        reduction, name, dtype: as Keras losses.

    Call arguments:
        y_true: `(B, 4, 2)` true corners.
        y_pred: `(B, 4, 2)` or `(B, iterations, 4, 2)` predicted corners.

    Returns:
        A scalar: the weighted mean corner distance in pixels.

    Example:

    >>> loss = CornerLoss()
    >>> float(loss(keras.ops.zeros((1, 4, 2)), keras.ops.ones((1, 4, 2)) * 3.0 / 2**0.5))
    3.0
    """

    def __init__(
        self,
        final_weight: float = 2.0,
        reduction: str | None = "sum_over_batch_size",
        name: str = "corner_loss",
        dtype=None,
    ):
        if (
            isinstance(final_weight, bool)
            or not isinstance(final_weight, numbers.Real)
            or final_weight <= 0
        ):
            raise ValueError(f"final_weight must be a positive number. Received: {final_weight!r}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.final_weight = float(final_weight)

    def call(self, y_true, y_pred):
        distances = ops.mean(_corner_distances(y_true, y_pred), axis=-1)
        if len(distances.shape) == 1:
            return distances
        iterations = distances.shape[-1]
        weights = [1.0] * (iterations - 1) + [self.final_weight]
        weights = ops.convert_to_tensor(weights, dtype="float32")
        return ops.sum(distances * weights, axis=-1) / ops.sum(weights)

    def get_config(self):
        config = super().get_config()
        config.update({"final_weight": self.final_weight})
        return config


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


def local_ncc(fixed, warped, window: int = 9, epsilon: float = 1e-5):
    """Per-image mean local normalised cross-correlation in [-1, 1] (VoxelMorph's NCC).

    Args:
        fixed, warped: `(B, H, W, C)` images (channels averaged first).
        window: odd side of the square window of the local statistics.

    Returns:
        `(B,)` mean local NCC (1 = identical up to local gain and bias).
    """
    if not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd positive integer. Received: window={window!r}")
    a = ops.mean(ops.cast(fixed, "float32"), axis=-1, keepdims=True)
    b = ops.mean(ops.cast(warped, "float32"), axis=-1, keepdims=True)

    def box(x):
        return ops.average_pool(x, window, strides=1, padding="same")

    mean_a, mean_b = box(a), box(b)
    var_a = box(a * a) - mean_a * mean_a
    var_b = box(b * b) - mean_b * mean_b
    cov = box(a * b) - mean_a * mean_b
    ncc = cov / ops.sqrt(ops.maximum(var_a, 0.0) * ops.maximum(var_b, 0.0) + epsilon)
    return ops.mean(ncc, axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package="keras_attn")
class NCCLoss(keras.losses.Loss):
    """Unsupervised photometric loss `1 - local NCC(fixed, warped)` for alignment.

    Paper: Balakrishnan et al., "VoxelMorph", https://arxiv.org/abs/1809.05231

    Call arguments:
        y_true: `(B, H, W, C)` fixed images.
        y_pred: `(B, H, W, C)` warped moving images.
    """

    def __init__(self, window: int = 9, reduction="sum_over_batch_size", name="ncc", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        local_ncc(ops.zeros((1, 1, 1, 1)), ops.zeros((1, 1, 1, 1)), window)  # validates window
        self.window = window

    def call(self, y_true, y_pred):
        return 1.0 - local_ncc(y_true, y_pred, self.window)

    def get_config(self):
        config = super().get_config()
        config.update({"window": self.window})
        return config


@keras.saving.register_keras_serializable(package="keras_attn")
class FlowSmoothness(keras.losses.Loss):
    """Mean squared spatial gradient of a flow field (`y_true` is ignored).

    Call arguments:
        y_true: ignored (any tensor).
        y_pred: `(B, H, W, 2)` flow.
    """

    def __init__(self, reduction="sum_over_batch_size", name="flow_smoothness", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        flow = ops.cast(y_pred, "float32")
        dy = flow[:, 1:] - flow[:, :-1]
        dx = flow[:, :, 1:] - flow[:, :, :-1]
        return ops.mean(ops.square(dy), axis=(1, 2, 3)) + ops.mean(ops.square(dx), axis=(1, 2, 3))
