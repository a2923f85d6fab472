"""Shared parts of the attention blocks whose output has their input's shape.

`SqueezeExcite`, `CBAM`, `SpatialAttention` and `NonLocal2D` (the blocks a model inserts by name
through the registry) share their output shape and spec, and the two channel attentions
(`SqueezeExcite`, `CBAM`) share their bottleneck MLP.
"""

from __future__ import annotations

import keras


class ShapePreservingAttention(keras.layers.Layer):
    """An attention block mapping `(B, H, W, C)` to `(B, H, W, C)` (subclassed, not used directly).

    Subclasses implement `call(inputs, return_attention_scores=False)` and `_scores_spec(shape)`,
    the spec (or dict of specs) of what `return_attention_scores=True` adds for inputs of
    `shape`.
    """

    def _scores_spec(self, input_shape):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, return_attention_scores=False):
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if return_attention_scores:
            return outputs, self._scores_spec(tuple(inputs.shape))
        return outputs


def channel_mlp(channels: int, ratio: float, dtype, *, use_bias: bool = True, activation=None):
    """The bottleneck MLP of channel attention, `C -> max(1, int(C * ratio)) -> C`, built.

    Args:
        channels: `C`, the channels of the feature map.
        ratio: width of the bottleneck as a fraction of `C`.
        dtype: dtype policy of the two `Dense` layers (the calling layer's).
        use_bias: whether the two `Dense` layers have biases.
        activation: activation of the second `Dense` layer (the first one's is ReLU).

    Returns:
        `(reduce, expand)`: the two built `Dense` layers, named `"reduce"` and `"expand"`.
    """
    hidden = max(1, int(channels * ratio))
    reduce = keras.layers.Dense(
        hidden, activation="relu", use_bias=use_bias, dtype=dtype, name="reduce"
    )
    expand = keras.layers.Dense(
        channels, activation=activation, use_bias=use_bias, dtype=dtype, name="expand"
    )
    reduce.build((None, channels))
    expand.build((None, hidden))
    return reduce, expand
