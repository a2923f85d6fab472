"""Bilinear upsampling by an integer factor: one constant convolution and a pixel shuffle."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_attn.layers._upsampling import Upsampling2DBase

# Up to this many channels the phases come from one dense convolution (faster in TFLite and
# Keras for images and flow fields); above it from a depthwise one, whose cost grows with C,
# not C**2.
_DENSE_MAX_CHANNELS = 4


@keras.saving.register_keras_serializable(package="keras_attn")
class BilinearUpsampling2D(Upsampling2DBase):
    """Bilinear upsampling by an integer factor that works with unknown H, W in any graph.

    Gives the values of `keras.layers.UpSampling2D(size=scale, interpolation="bilinear")`
    (that is `tf.image.resize(..., "bilinear")`: half-pixel centres, coordinates clamped at
    the edges). Along each spatial axis, output phase `k` of input pixel `i` sits at
    `i + d_k` with `d_k = (2k + 1 - scale) / (2 scale)` and blends pixel `i` with its
    previous (`d_k < 0`) or next (`d_k > 0`) neighbour, edge pixels repeated. So every one of
    the `scale**2` output phases is a fixed 3x3 filter of the input with its edge pixels
    repeated once: the layer computes all phases with one constant convolution (a dense one
    for up to 4 channels, depthwise above) and interleaves them as `PixelShuffle` does. Only
    slices, concatenation, a convolution, reshape and transpose are used, so it traces with
    `None` sizes and converts to builtin TFLite ops that XNNPACK runs. It has no weights.

    The convolution replaced a formulation with a blend per phase, stacked and reshaped, which
    gave the same values (within 2.4e-7) but ran about twice as slowly at x4 in TFLite and Keras
    (`python benchmarks/bilinear_upsampling.py`).

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

    def build(self, input_shape):
        super().build(input_shape)
        channels, scale = input_shape[-1], self.scale
        axis = np.zeros((scale, 3), "float32")  # phase k: weights of pixels i - 1, i, i + 1
        for k in range(scale):
            offset = (2 * k + 1 - scale) / (2 * scale)
            axis[k] = (max(-offset, 0.0), 1.0 - abs(offset), max(offset, 0.0))
        # phase (a, b): the outer product of the two axes' weights, (scale, scale, 3, 3)
        phases = np.einsum("ai,bj->abij", axis, axis)
        if channels <= _DENSE_MAX_CHANNELS:
            # (3, 3, C, scale * scale * C), output channel (a * scale + b) * C + c as in
            # PixelShuffle; zero between different channels
            kernel = np.zeros((3, 3, channels, scale, scale, channels), "float32")
            for c in range(channels):
                kernel[:, :, c, :, :, c] = phases.transpose(2, 3, 0, 1)
            self._kernel = kernel.reshape(3, 3, channels, scale * scale * channels)
        else:
            # depthwise (3, 3, C, scale * scale): output channel c * scale * scale + a * scale + b
            kernel = phases.reshape(scale * scale, 3, 3).transpose(1, 2, 0)
            self._kernel = np.repeat(kernel[:, :, None, :], channels, axis=2)

    def call(self, inputs):
        scale, channels = self.scale, inputs.shape[-1]
        padded = ops.concatenate([inputs[:, :1], inputs, inputs[:, -1:]], axis=1)
        padded = ops.concatenate([padded[:, :, :1], padded, padded[:, :, -1:]], axis=2)
        kernel = ops.cast(self._kernel, inputs.dtype)
        shape = ops.shape(inputs)
        batch, height, width = shape[0], shape[1], shape[2]
        if channels <= _DENSE_MAX_CHANNELS:
            phases = ops.conv(padded, kernel, padding="valid")
            phases = ops.reshape(phases, (batch, height, width, scale, scale, channels))
            phases = ops.transpose(phases, (0, 1, 3, 2, 4, 5))
        else:
            phases = ops.depthwise_conv(padded, kernel, padding="valid")
            phases = ops.reshape(phases, (batch, height, width, channels, scale, scale))
            phases = ops.transpose(phases, (0, 1, 4, 2, 5, 3))
        return ops.reshape(phases, (batch, height * scale, width * scale, channels))
