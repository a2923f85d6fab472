"""The training losses: reconstruction losses for super-resolution (`get_loss(name)` picks one by
name) and the aligner's.

Aligner, supervised: the corner loss compares where the predicted and the true homographies put
the moving patch's four corners (DeTone's 4-point parameterisation, in pixels), averaged over the
refinement iterations (its metric, the mean corner error, is in `metrics`). Unsupervised: local
normalised cross-correlation between the fixed image and the warped moving image (insensitive to
gain and bias, as in VoxelMorph), and a smoothness penalty on the flow.
"""

from __future__ import annotations

import numbers

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attn")
class CharbonnierLoss(keras.losses.Loss):
    """Charbonnier loss: a smooth L1, `mean(sqrt((y_true - y_pred)**2 + epsilon**2))`.

    Behaves like L1 for errors much larger than `epsilon` and like a scaled L2 near zero, so it
    is differentiable everywhere; it is the loss of LapSRN and of many later SR models. Like
    Keras's built-in losses, `call` averages over the last axis and the reduction averages the
    rest, so with the default reduction the value is the mean over every element.

    Paper: Lai et al., "Deep Laplacian Pyramid Networks for Fast and Accurate
    Super-Resolution", https://arxiv.org/abs/1704.03915

    Args:
        epsilon: positive smoothing constant.
        reduction: Keras loss reduction, default `"sum_over_batch_size"`.
        name: loss name.
        dtype: dtype of the loss computation (default: the float type, float32).

    Call arguments:
        y_true: target tensor, e.g. `(B, H, W, 3)`.
        y_pred: prediction of the same shape.
        sample_weight: optional weights broadcastable to `y_true.shape[:-1]`.

    Returns:
        A scalar (or per-sample values with `reduction=None`).

    Example:

    >>> loss = CharbonnierLoss(epsilon=1e-3)
    >>> round(float(loss(keras.ops.zeros((1, 4, 4, 3)), keras.ops.ones((1, 4, 4, 3)))), 4)
    1.0
    """

    def __init__(
        self,
        epsilon: float = 1e-3,
        reduction: str | None = "sum_over_batch_size",
        name: str = "charbonnier",
        dtype=None,
    ):
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or epsilon <= 0:
            raise ValueError(f"epsilon must be a positive number. Received: epsilon={epsilon!r}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = epsilon

    def call(self, y_true, y_pred):
        difference = ops.subtract(y_true, y_pred)
        return ops.mean(ops.sqrt(ops.square(difference) + self.epsilon**2), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "dtype": self._dtype_policy.name})
        return config


_LOSSES = {
    "charbonnier": CharbonnierLoss,
    "l1": keras.losses.MeanAbsoluteError,
    "mse": keras.losses.MeanSquaredError,
}


def get_loss(name: str) -> keras.losses.Loss:
    """A new loss instance by name: `"l1"`, `"charbonnier"` (epsilon 1e-3) or `"mse"`.

    Args:
        name: one of `"charbonnier"`, `"l1"`, `"mse"`.

    Returns:
        A `keras.losses.Loss` with its default arguments.
    """
    if not isinstance(name, str) or name not in _LOSSES:
        raise ValueError(f"name must be one of {sorted(_LOSSES)}. Received: name={name!r}")
    return _LOSSES[name]()


# --------------------------------------------------------------------------- aligner


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


def _end_point_errors(y_true, y_pred, epsilon: float = 0.0, max_error: float | None = None):
    """Per-pair mean end-point error over the visible pixels (each capped at `max_error`).

    `y_true` `(B, H, W, 3)`: the true flow `(u, v)` and a visibility mask (1 where the true
    correspondence lies inside the moving image); `y_pred` `(B, H, W, 2)`: the flow.
    """
    y_true = ops.cast(y_true, "float32")
    difference = ops.cast(y_pred, "float32") - y_true[..., :2]
    distance = ops.sqrt(ops.sum(difference * difference, axis=-1) + epsilon * epsilon)
    if max_error is not None:
        distance = ops.minimum(distance, max_error)
    visible = y_true[..., 2]
    count = ops.sum(visible, axis=(1, 2))
    return ops.sum(distance * visible, axis=(1, 2)) / ops.maximum(count, 1.0)


@keras.saving.register_keras_serializable(package="keras_attn")
class FlowEndPointLoss(keras.losses.Loss):
    """Supervised dense-flow loss: the mean end-point error (Charbonnier-smoothed) over the
    pixels whose true correspondence lies inside the moving image, each pixel's error capped
    at `max_error` px (pixels beyond it, e.g. where the global stage failed, give no gradient).

    Call arguments:
        y_true: `(B, H, W, 3)`: true flow `(u, v)` and visibility (`alignment_dataset`'s `flow`
            and `visible`, concatenated).
        y_pred: `(B, H, W, 2)` flow.
    """

    def __init__(
        self,
        epsilon: float = 0.01,
        max_error: float | None = 20.0,
        reduction="sum_over_batch_size",
        name="flow_epe",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = float(epsilon)
        self.max_error = None if max_error is None else float(max_error)

    def call(self, y_true, y_pred):
        return _end_point_errors(y_true, y_pred, self.epsilon, self.max_error)

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "max_error": self.max_error})
        return config


@keras.saving.register_keras_serializable(package="keras_attn")
class PhotometricFlowLoss(keras.losses.Loss):
    """Unsupervised dense-flow loss for pairs without a true flow: `1 - local NCC(fixed,
    warped) + smoothness * FlowSmoothness(flow)` (VoxelMorph's loss).

    Call arguments:
        y_true: `(B, H, W, C)` fixed images.
        y_pred: `(B, H, W, C + 2)`: the warped moving images, then the flow.
    """

    def __init__(
        self,
        window: int = 9,
        smoothness: float = 0.01,
        reduction="sum_over_batch_size",
        name="photometric_flow",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.ncc = NCCLoss(window, reduction=None)
        self.smooth = FlowSmoothness(reduction=None)
        self.window, self.smoothness = window, float(smoothness)

    def call(self, y_true, y_pred):
        channels = y_pred.shape[-1] - 2
        warped, flow = y_pred[..., :channels], y_pred[..., channels:]
        return self.ncc.call(y_true, warped) + self.smoothness * self.smooth.call(None, flow)

    def get_config(self):
        config = super().get_config()
        config.update({"window": self.window, "smoothness": self.smoothness})
        return config
