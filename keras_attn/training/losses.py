"""Reconstruction losses for super-resolution, and `get_loss(name)` to choose one by name."""

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
