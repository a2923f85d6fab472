"""Bilinear upsampling by an integer factor, written with slices and reshapes only."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers._upsampling import Upsampling2DBase


@keras.saving.register_keras_serializable(package="keras_attn")
class BilinearUpsampling2D(Upsampling2DBase):
    """Bilinear upsampling by an integer factor that works with unknown H, W in any graph.

    Gives the values of `keras.layers.UpSampling2D(size=scale, interpolation="bilinear")`
    (that is `tf.image.resize(..., "bilinear")`: half-pixel centres, coordinates clamped at
    the edges). Along each spatial axis, output phase `k` of input pixel `i` sits at
    `i + d_k` with `d_k = (2k + 1 - scale) / (2 scale)` and blends pixel `i` with its
    previous (`d_k < 0`) or next (`d_k > 0`) neighbour, edge pixels repeated; the phases are
    stacked and reshaped into the larger axis. Only slices, concatenation, arithmetic and
    reshape are used, so it traces with `None` sizes and converts to builtin TFLite ops.

    Why not `UpSampling2D`: in Keras 3.15.1, `UpSampling2D(interpolation="bilinear")` with
    unknown H, W fails on TensorFlow (`OperatorNotAllowedInGraphError`) in `model.export`, TFLite
    conversion and `predict` on a second image size: `ops.image.resize` checks the size in
    Python (keras-team/keras#22079).

    Reference: `tf.image.resize(method="bilinear")` semantics (half-pixel centres), as used for
    the image-space skip of VDSR-style residual SR (Kim et al., https://arxiv.org/abs/1511.04587).

    Args:
        scale: integer upsampling factor (>= 1).

    Call arguments:
        inputs: `(B, H, W, C)` map; H and W may be `None`.

    Returns:
        `(B, H * scale, W * scale, C)` map.

    Example:

    >>> x = keras.random.uniform((1, 5, 7, 3))
    >>> tuple(BilinearUpsampling2D(3)(x).shape)
    (1, 15, 21, 3)
    """

    def call(self, inputs):
        return self._upsample_axis(self._upsample_axis(inputs, axis=1), axis=2)

    def _upsample_axis(self, x, axis: int):
        scale = self.scale
        if axis == 1:
            previous = ops.concatenate([x[:, :1], x[:, :-1]], axis=1)
            following = ops.concatenate([x[:, 1:], x[:, -1:]], axis=1)
        else:
            previous = ops.concatenate([x[:, :, :1], x[:, :, :-1]], axis=2)
            following = ops.concatenate([x[:, :, 1:], x[:, :, -1:]], axis=2)
        phases = []
        for k in range(scale):
            offset = (2 * k + 1 - scale) / (2 * scale)
            if offset < 0:
                phases.append(x + (-offset) * (previous - x))
            elif offset > 0:
                phases.append(x + offset * (following - x))
            else:
                phases.append(x)
        stacked = ops.stack(phases, axis=axis + 1)
        shape = ops.shape(x)
        new_shape = [shape[0], shape[1], shape[2], x.shape[-1]]
        new_shape[axis] = shape[axis] * scale
        return ops.reshape(stacked, new_shape)
