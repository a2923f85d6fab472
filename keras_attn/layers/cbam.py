"""Convolutional Block Attention Module: channel attention, then spatial attention."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers._attention_block import ShapePreservingAttention, channel_mlp
from keras_attn.layers.spatial_attention import SpatialAttention


@keras.saving.register_keras_serializable(package="keras_attn")
class CBAM(ShapePreservingAttention):
    """CBAM: channel gates from average- and max-pooled context, then a spatial gate.

    Channel attention passes the spatial mean and the spatial max of the map through one shared
    bottleneck MLP (`C -> max(1, int(C * ratio)) -> C`), adds the two results and applies a
    sigmoid; the gated map then goes through `SpatialAttention`. Pooling runs in float32 under
    mixed precision.

    Paper: Woo et al., "CBAM: Convolutional Block Attention Module",
    https://arxiv.org/abs/1807.06521

    Args:
        ratio: bottleneck width of the channel MLP as a fraction of the channels, in `(0, 1]`.
        kernel_size: odd kernel size of the spatial attention convolution.

    Call arguments:
        inputs: `(B, H, W, C)` feature map; H and W may be `None`.
        return_attention_scores: also return the gates.

    Returns:
        `(B, H, W, C)` map; with `return_attention_scores`, also a dict with `"channel"`
        gates `(B, C)` and the `"spatial"` map `(B, H, W, 1)`.

    Example:

    >>> x = keras.random.uniform((2, 16, 16, 32))
    >>> y, gates = CBAM()(x, return_attention_scores=True)
    >>> tuple(gates["channel"].shape), tuple(gates["spatial"].shape)
    ((2, 32), (2, 16, 16, 1))
    """

    def __init__(self, ratio: float = 0.125, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        _checks.fraction("ratio", ratio, low_inclusive=False, high_inclusive=True)
        _checks.odd_kernel("kernel_size", kernel_size)
        self.ratio = ratio
        self.kernel_size = kernel_size

    def build(self, input_shape):
        _checks.feature_map_shape(self.name, "inputs", input_shape)
        self.reduce, self.expand = channel_mlp(input_shape[-1], self.ratio, self.dtype_policy)
        self.spatial = SpatialAttention(
            self.kernel_size, dtype=self.dtype_policy, name="spatial_attention"
        )
        self.spatial.build(input_shape)

    def call(self, inputs, return_attention_scores=False):
        inputs32 = ops.cast(inputs, "float32")
        pooled = [ops.mean(inputs32, axis=(1, 2)), ops.max(inputs32, axis=(1, 2))]
        logits = [self.expand(self.reduce(ops.cast(p, self.compute_dtype))) for p in pooled]
        channel_gates = ops.sigmoid(logits[0] + logits[1])
        gated = inputs * channel_gates[:, None, None, :]
        outputs, spatial_map = self.spatial(gated, return_attention_scores=True)
        if return_attention_scores:
            return outputs, {"channel": channel_gates, "spatial": spatial_map}
        return outputs

    def _scores_spec(self, input_shape):
        return {
            "channel": keras.KerasTensor((input_shape[0], input_shape[-1]), self.compute_dtype),
            "spatial": keras.KerasTensor(input_shape[:-1] + (1,), self.compute_dtype),
        }

    def get_config(self):
        config = super().get_config()
        config.update({"ratio": self.ratio, "kernel_size": self.kernel_size})
        return config
