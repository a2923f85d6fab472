"""Squeeze-and-Excitation channel attention."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers._attention_block import ShapePreservingAttention, channel_mlp


@keras.saving.register_keras_serializable(package="keras_attn")
class SqueezeExcite(ShapePreservingAttention):
    """Squeeze-and-Excitation: rescales channels by gates computed from global context.

    The map is averaged over space ("squeeze"), passed through a bottleneck MLP
    (`C -> max(1, int(C * ratio)) -> C`, ReLU then sigmoid: "excitation"), and every channel is
    multiplied by its gate in `(0, 1)`. This is the channel attention of SENet and of RCAN's
    residual channel-attention blocks. The spatial mean is taken in float32 under mixed
    precision.

    Paper: Hu et al., "Squeeze-and-Excitation Networks", https://arxiv.org/abs/1709.01507

    Args:
        ratio: bottleneck width as a fraction of the channels, in `(0, 1]`.
        use_bias: whether the two dense layers have biases.

    Call arguments:
        inputs: `(B, H, W, C)` feature map; H and W may be `None`.
        return_attention_scores: also return the gates.

    Returns:
        `(B, H, W, C)` rescaled map; with `return_attention_scores`, also the gates `(B, C)`.

    Example:

    >>> x = keras.random.uniform((2, 8, 8, 32))
    >>> y, gates = SqueezeExcite(ratio=0.25)(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(gates.shape)
    ((2, 8, 8, 32), (2, 32))
    """

    def __init__(self, ratio: float = 0.25, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        _checks.fraction("ratio", ratio, low_inclusive=False, high_inclusive=True)
        self.ratio = ratio
        self.use_bias = use_bias

    def build(self, input_shape):
        _checks.feature_map_shape(self.name, "inputs", input_shape)
        self.reduce, self.expand = channel_mlp(
            input_shape[-1],
            self.ratio,
            self.dtype_policy,
            use_bias=self.use_bias,
            activation="sigmoid",
        )

    def call(self, inputs, return_attention_scores=False):
        pooled = ops.mean(ops.cast(inputs, "float32"), axis=(1, 2))
        gates = self.expand(self.reduce(ops.cast(pooled, self.compute_dtype)))
        outputs = inputs * gates[:, None, None, :]
        if return_attention_scores:
            return outputs, gates
        return outputs

    def _scores_spec(self, input_shape):
        return keras.KerasTensor((input_shape[0], input_shape[-1]), self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"ratio": self.ratio, "use_bias": self.use_bias})
        return config
