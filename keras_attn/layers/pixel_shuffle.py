"""Depth-to-space upsampling (sub-pixel convolution)."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers._upsampling import Upsampling2DBase


@keras.saving.register_keras_serializable(package="keras_attn")
class PixelShuffle(Upsampling2DBase):
    """Rearranges `C * scale**2` channels into a `scale`-times larger map with `C` channels.

    `output[b, h*s + i, w*s + j, c] = input[b, h, w, (i*s + j)*C + c]`, the same ordering as
    `tf.nn.depth_to_space`, written with `keras.ops` reshape/transpose so it runs on every
    backend and converts to builtin TFLite ops. It is the learned upsampler of ESPCN, EDSR and
    RCAN when preceded by a convolution to `C * scale**2` channels.

    Paper: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
    Sub-Pixel Convolutional Neural Network", https://arxiv.org/abs/1609.05158

    Args:
        scale: integer upsampling factor (>= 1).

    Call arguments:
        inputs: `(B, H, W, C * scale**2)` map; H and W may be `None`.

    Returns:
        `(B, H * scale, W * scale, C)` map.

    Example:

    >>> x = keras.random.normal((1, 8, 8, 12))
    >>> tuple(PixelShuffle(2)(x).shape)
    (1, 16, 16, 3)
    """

    def build(self, input_shape):
        super().build(input_shape)
        if input_shape[-1] % (self.scale**2):
            raise ValueError(
                f"Layer '{self.name}' needs input channels divisible by scale**2 = "
                f"{self.scale**2}. Received: channels={input_shape[-1]}, scale={self.scale}"
            )

    def call(self, inputs):
        scale = self.scale
        channels = inputs.shape[-1] // (scale * scale)
        shape = ops.shape(inputs)
        batch, height, width = shape[0], shape[1], shape[2]
        x = ops.reshape(inputs, (batch, height, width, scale, scale, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (batch, height * scale, width * scale, channels))

    def _output_channels(self, channels):
        return channels // (self.scale**2)
