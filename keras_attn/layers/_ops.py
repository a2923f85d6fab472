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
