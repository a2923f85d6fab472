"""Shared part of the three homography layers: float32, on images of a known size."""

from __future__ import annotations

import keras

from keras_attn.layers import _checks


class HomographyLayer(keras.layers.Layer):
    """A float32 layer on homographies of `(height, width)` images (subclassed, not used directly).

    Convention (see `homography_ops`): the layers carry `G`, the fixed->moving homography in
    normalised coordinates, which is what backward warping needs; `HomographyOutputs` turns it
    into the published moving->fixed pixel homography. The least-squares fits and projective
    divisions run in float32 under any dtype policy, so `dtype` defaults to `"float32"`.

    Args:
        image_size: `(height, width)` of the images in pixels, integers > 1.
    """

    def __init__(self, image_size, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = _checks.image_size("image_size", image_size)

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size})
        return config
