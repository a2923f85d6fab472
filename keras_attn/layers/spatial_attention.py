"""Spatial attention (the spatial half of CBAM)."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers._attention_block import ShapePreservingAttention


@keras.saving.register_keras_serializable(package="keras_attn")
class SpatialAttention(ShapePreservingAttention):
    """Rescales every pixel by a gate computed from channel-pooled statistics.

    The channel-wise mean and max of the map are stacked into a 2-channel map, convolved with a
    `kernel_size x kernel_size` filter and squashed by a sigmoid into a `(B, H, W, 1)` map that
    multiplies every channel. Pooling runs in float32 under mixed precision.

    Paper: Woo et al., "CBAM: Convolutional Block Attention Module",
    https://arxiv.org/abs/1807.06521

    Args:
        kernel_size: odd size of the convolution over the pooled map.

    Call arguments:
        inputs: `(B, H, W, C)` feature map; H and W may be `None`.
        return_attention_scores: also return the spatial map.

    Returns:
        `(B, H, W, C)` rescaled map; with `return_attention_scores`, also the map
        `(B, H, W, 1)` in `(0, 1)`.

    Example:

    >>> x = keras.random.uniform((2, 16, 16, 8))
    >>> y, attention = SpatialAttention(kernel_size=7)(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(attention.shape)
    ((2, 16, 16, 8), (2, 16, 16, 1))
    """

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        _checks.odd_kernel("kernel_size", kernel_size)
        self.kernel_size = kernel_size

    def build(self, input_shape):
        _checks.feature_map_shape(self.name, "inputs", input_shape)
        self.conv = keras.layers.Conv2D(
            1,
            self.kernel_size,
            padding="same",
            activation="sigmoid",
            dtype=self.dtype_policy,
            name="conv",
        )
        self.conv.build(tuple(input_shape[:-1]) + (2,))

    def call(self, inputs, return_attention_scores=False):
        inputs32 = ops.cast(inputs, "float32")
        pooled = ops.concatenate(
            [ops.mean(inputs32, axis=-1, keepdims=True), ops.max(inputs32, axis=-1, keepdims=True)],
            axis=-1,
        )
        attention = self.conv(ops.cast(pooled, self.compute_dtype))
        outputs = inputs * attention
        if return_attention_scores:
            return outputs, attention
        return outputs

    def _scores_spec(self, input_shape):
        return keras.KerasTensor(input_shape[:-1] + (1,), self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config
