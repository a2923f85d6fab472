"""Reference SR networks of the keras.io examples (ESPCN, small EDSR), rebuilt for comparison.

Both take and return RGB in `[0, 1]` with any H, W, like `super_resolution`, so a benchmark can
train them on the same data for the same steps. They use builtin layers plus registered
keras_attn layers only (no Lambda layers): they load with `safe_mode=True` and convert to
builtin TFLite ops.

`BilinearUpsampling2D` stands in for `keras.layers.UpSampling2D(interpolation="bilinear")`:
in Keras 3.15.1 that layer fails on the TensorFlow backend whenever H, W are unknown inside a
graph (`predict` on a second image size, SavedModel export, TFLite conversion), because
`keras.ops.image.resize` now checks `size[0] <= 0` in Python on a symbolic size (keras-team/keras
PR #22079). It gives the same values (`tf.image.resize(..., "bilinear")`, half-pixel centres,
edges clamped) with one constant convolution and a pixel shuffle.
"""

from __future__ import annotations

import numbers

import keras

from keras_attn.layers import _checks
from keras_attn.layers.bilinear_upsampling_2d import BilinearUpsampling2D
from keras_attn.layers.pixel_shuffle import PixelShuffle
from keras_attn.models.registry import register_model

_SCALES = (2, 3, 4)


def espcn(
    scale: int, channels: int = 64, *, skip: bool = False, name: str = "espcn"
) -> keras.Model:
    """ESPCN of keras.io's "Image Super-Resolution using an Efficient Sub-Pixel CNN", on RGB.

    conv5x5(`channels`, ReLU) -> conv3x3(`channels`, ReLU) -> conv3x3(`channels // 2`, ReLU)
    -> conv3x3(`3 * scale**2`) -> `PixelShuffle(scale)`, orthogonal kernel initialisation as in
    the example. The example works on the Y channel only; this one maps RGB to RGB. Its last
    convolution has a ReLU there; here the output is clipped to `[0, 1]` after the shuffle,
    which is the same function without `skip` and lets the network predict a signed residual
    with `skip`.

    Paper: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
    Sub-Pixel Convolutional Neural Network", https://arxiv.org/abs/1609.05158

    Args:
        scale: upscaling factor, 2, 3 or 4.
        channels: width of the first two convolutions (the third has half); 64 in keras.io.
        skip: add a bilinear upsampling of the input to the output (residual learning).
        name: model name, the prefix of every layer name.

    Returns:
        A `keras.Model` mapping `image` `(B, H, W, 3)` to `(B, scale*H, scale*W, 3)` in `[0, 1]`.
    """
    _check_arguments(scale, channels)
    conv_args = {"padding": "same", "kernel_initializer": "orthogonal"}

    # Inputs.
    image = keras.Input((None, None, 3), name="image")

    # Body: feature extraction and mapping in low resolution.
    x = keras.layers.Conv2D(channels, 5, activation="relu", name=f"{name}_conv1", **conv_args)(
        image
    )
    x = keras.layers.Conv2D(channels, 3, activation="relu", name=f"{name}_conv2", **conv_args)(x)
    x = keras.layers.Conv2D(
        max(1, channels // 2), 3, activation="relu", name=f"{name}_conv3", **conv_args
    )(x)

    # Head: sub-pixel upsampling, optional bilinear skip, clip to [0, 1].
    x = keras.layers.Conv2D(3 * scale**2, 3, name=f"{name}_upsample_conv", **conv_args)(x)
    x = PixelShuffle(scale, name=f"{name}_upsample_shuffle")(x)
    return _finish(image, x, scale, skip, name)


def edsr(
    scale: int,
    channels: int = 32,
    num_blocks: int = 8,
    *,
    skip: bool = False,
    name: str = "edsr",
) -> keras.Model:
    """Small EDSR of keras.io's "Enhanced Deep Residual Networks for single-image SR".

    conv3x3 -> `num_blocks` residual blocks (conv3x3-ReLU-conv3x3 plus identity, residual
    scaling 1.0, no batch norm) -> conv3x3 plus the long skip from the first convolution ->
    conv3x3(`3 * scale**2`) -> `PixelShuffle(scale)`. The keras.io example rescales 0-255
    inputs with `Rescaling` layers; here inputs are already RGB in `[0, 1]`. Its x4 upsampler
    (two conv + x2 shuffle stages, then conv to RGB) is replaced by one conv + shuffle to RGB
    so that every scale, 3 included, uses the same head as ESPCN and `super_resolution`.

    Paper: Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
    https://arxiv.org/abs/1707.02921

    Args:
        scale: upscaling factor, 2, 3 or 4.
        channels: feature width of the body (64 in keras.io, 32 by default here).
        num_blocks: number of residual blocks (16 in keras.io, 8 by default here); `>= 0`.
        skip: add a bilinear upsampling of the input to the output (residual learning).
        name: model name, the prefix of every layer name.

    Returns:
        A `keras.Model` mapping `image` `(B, H, W, 3)` to `(B, scale*H, scale*W, 3)` in `[0, 1]`.
    """
    _check_arguments(scale, channels)
    if (
        isinstance(num_blocks, bool)
        or not isinstance(num_blocks, numbers.Integral)
        or num_blocks < 0
    ):
        raise ValueError(
            f"num_blocks must be a non-negative integer. Received: num_blocks={num_blocks!r}"
        )

    # Inputs.
    image = keras.Input((None, None, 3), name="image")

    # Body: shallow features, residual blocks, long skip.
    features = keras.layers.Conv2D(channels, 3, padding="same", name=f"{name}_stem")(image)
    x = features
    for index in range(1, num_blocks + 1):
        prefix = f"{name}_block{index}"
        residual = keras.layers.Conv2D(
            channels, 3, padding="same", activation="relu", name=f"{prefix}_conv1"
        )(x)
        residual = keras.layers.Conv2D(channels, 3, padding="same", name=f"{prefix}_conv2")(
            residual
        )
        x = keras.layers.Add(name=f"{prefix}_add")([x, residual])
    x = keras.layers.Conv2D(channels, 3, padding="same", name=f"{name}_body_conv")(x)
    x = keras.layers.Add(name=f"{name}_body_add")([features, x])

    # Head: sub-pixel upsampling, optional bilinear skip, clip to [0, 1].
    x = keras.layers.Conv2D(3 * scale**2, 3, padding="same", name=f"{name}_upsample_conv")(x)
    x = PixelShuffle(scale, name=f"{name}_upsample_shuffle")(x)
    return _finish(image, x, scale, skip, name)


def _check_arguments(scale, channels) -> None:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale not in _SCALES:
        raise ValueError(f"scale must be one of {list(_SCALES)}. Received: scale={scale!r}")
    _checks.positive_int("channels", channels)


def _finish(image, x, scale: int, skip: bool, name: str) -> keras.Model:
    """Adds the optional bilinear skip, clips to `[0, 1]` and wraps the graph in a model; the
    skip and the clip compute in float32 under a mixed precision policy (as `super_resolution`)."""
    if skip:
        upsampled = BilinearUpsampling2D(scale, name=f"{name}_skip_upsample", dtype="float32")(
            image
        )
        x = keras.layers.Add(name=f"{name}_skip_add", dtype="float32")([x, upsampled])
    x = keras.layers.ReLU(max_value=1.0, name=f"{name}_clip", dtype="float32")(x)
    return keras.Model(image, x, name=name)


# Registered so the benchmark trains them through the same script, data and steps as ours.
for _scale in (2, 3, 4):
    for _skip in (False, True):
        _suffix = "_skip" if _skip else ""
        register_model(
            f"espcn{_suffix}_x{_scale}",
            "sr",
            espcn,
            description=f"reference: keras.io ESPCN (RGB){' + image skip' if _skip else ''}",
            scale=_scale,
            skip=_skip,
        )
        register_model(
            f"edsr_small{_suffix}_x{_scale}",
            "sr",
            edsr,
            description=f"reference: keras.io EDSR 32x8{' + image skip' if _skip else ''}",
            scale=_scale,
            skip=_skip,
        )
