"""Shared part of the integer-factor upsamplers `BilinearUpsampling2D` and `PixelShuffle`."""

from __future__ import annotations

import keras

from keras_attn.layers import _checks


class Upsampling2DBase(keras.layers.Layer):
    """Maps `(B, H, W, C)` to `(B, H * scale, W * scale, C')` (subclassed, not used directly).

    Holds and checks `scale` (an integer >= 1), checks that the input is an NHWC map, and gives
    the output shape; a subclass that changes the channel count overrides `_output_channels`.
    """

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        _checks.positive_int("scale", scale)
        self.scale = scale

    def build(self, input_shape):
        _checks.feature_map_shape(self.name, "inputs", input_shape)

    def _output_channels(self, channels: int) -> int:
        return channels

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (
            batch,
            None if height is None else height * self.scale,
            None if width is None else width * self.scale,
            self._output_channels(channels),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale})
        return config
