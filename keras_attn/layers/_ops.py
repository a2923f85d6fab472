"""Numeric helpers shared by the layers, written with `keras.ops` only."""

from __future__ import annotations

from keras import ops


def l2_normalize(x, *, epsilon: float, axis: int = -1):
    """`x / sqrt(sum(x**2, axis) + epsilon)`, computed and returned in float32.

    The callers choose `epsilon` (see theirs): it is where vectors stop being scaled to unit
    length. Vectors much longer than `sqrt(epsilon)` come out with unit length; shorter ones
    are scaled down instead, so a zero vector stays zero and the gradient stays below
    `~1 / sqrt(epsilon)`.

    Args:
        x: a tensor of any float dtype.
        epsilon: added to the squared norm, > 0.
        axis: the axis along which vectors are normalised.

    Returns:
        A float32 tensor of `x`'s shape.
    """
    x = ops.cast(x, "float32")
    return x / ops.sqrt(ops.sum(x * x, axis=axis, keepdims=True) + epsilon)


def first_argmax(scores):
    """Index of the first maximum along the last axis, like `ops.argmax`, in TFLite builtins.

    `ops.argmax` on floats maps -0.0 to a tiny negative number first, through a sign-bit test
    (`BitwiseAnd`) that TFLite has no builtin for. A max, a comparison and a min over the
    candidate indices give the same index (and treat -0.0 as 0.0, which only matters on ties).
    """
    count = ops.shape(scores)[-1]
    is_max = scores >= ops.max(scores, axis=-1, keepdims=True)
    indices = ops.arange(count, dtype="int32")
    return ops.min(ops.where(is_max, indices, count), axis=-1)
