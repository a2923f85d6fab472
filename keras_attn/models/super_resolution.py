"""Super-resolution family: an RCAN-style attention network and `upscale` for numpy images."""

from __future__ import annotations

import keras
import numpy as np

from keras_attn.layers import BilinearUpsampling2D, PixelShuffle, SelfAttention2D, SqueezeExcite
from keras_attn.layers.registry import attention_name, get_attention
from keras_attn.models.registry import register_model
from keras_attn.utils import images as _images
from keras_attn.utils.model_io import single_output

SCALES = (2, 3, 4)


def super_resolution(
    scale: int = 2,
    *,
    channels: int = 32,
    num_groups: int = 2,
    blocks_per_group: int = 4,
    se_ratio: float = 0.25,
    attention: str | type[keras.layers.Layer] | None = None,
    attention_heads: int = 2,
    attention_block_size: int = 256,
    image_skip: bool = True,
    name: str = "sr",
) -> keras.Model:
    """RCAN-style super-resolution network: `(B, H, W, 3) -> (B, s*H, s*W, 3)`, RGB in [0, 1].

    Sections: a shallow 3x3 convolution; `num_groups` residual groups of `blocks_per_group`
    residual channel-attention blocks (conv-ReLU-conv, `SqueezeExcite`, skip) each closed by a
    convolution and a group skip; an optional attention stage picked by name through the layer
    registry (`NonLocal2D`, or exact blockwise `SelfAttention2D` so memory stays bounded on large
    images, or any other attention the registry holds); a long skip; a sub-pixel
    upsampler (`PixelShuffle`) to an RGB residual, added to a bilinear upsampling of the input
    (`image_skip`), and clipped to [0, 1]. Every op converts to builtin TFLite ops, and any
    input size works.

    Paper: Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
    Networks" (RCAN), https://arxiv.org/abs/1807.02758

    Args:
        scale: upscaling factor, 2, 3 or 4.
        channels: feature width.
        num_groups: residual groups.
        blocks_per_group: residual channel-attention blocks per group.
        se_ratio: bottleneck ratio of the channel attention.
        attention: the attention stage after the groups: a name of the layer registry
            (`"nonlocal"`, `"self"`, `"se"`, `"cbam"`, `"spatial"`; see
            `keras_attn.layers.get_attention`), a `keras.layers.Layer` subclass, or `None`.
            The layer is named `f"{name}_attention_{registry name}"`.
        attention_heads: heads of the `"self"` stage.
        attention_block_size: query/key tile of the `"self"` stage.
        image_skip: add the bilinearly upsampled input to the output (the network predicts
            the residual).
        name: model name, and prefix of every layer name.

    Returns:
        A `keras.Model` with input `image` `(None, None, None, 3)`.

    Example:

    >>> model = super_resolution(scale=2, channels=8, num_groups=1, blocks_per_group=1)
    >>> tuple(model(np.zeros((1, 10, 12, 3), "float32")).shape)
    (1, 20, 24, 3)
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}. Received: scale={scale!r}")
    try:
        attention_class = get_attention(attention)
    except ValueError as error:
        raise ValueError(f"{error} Received: attention={attention!r}") from None
    for arg, value in (
        ("channels", channels),
        ("num_groups", num_groups),
        ("blocks_per_group", blocks_per_group),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive integer. Received: {arg}={value!r}")

    def conv(filters, label, activation=None):
        return keras.layers.Conv2D(
            filters, 3, padding="same", activation=activation, name=f"{name}_{label}"
        )

    # ---- inputs
    image = keras.Input((None, None, 3), name="image")

    # ---- body: shallow features, residual groups of channel-attention blocks
    shallow = conv(channels, "shallow")(image)
    x = shallow
    for group in range(1, num_groups + 1):
        group_input = x
        for block in range(1, blocks_per_group + 1):
            prefix = f"group{group}_block{block}"
            y = conv(channels, f"{prefix}_conv1", activation="relu")(x)
            y = conv(channels, f"{prefix}_conv2")(y)
            y = SqueezeExcite(se_ratio, name=f"{name}_{prefix}_se")(y)
            x = keras.layers.Add(name=f"{name}_{prefix}_add")([x, y])
        x = conv(channels, f"group{group}_conv")(x)
        x = keras.layers.Add(name=f"{name}_group{group}_add")([group_input, x])

    if attention_class is not None:
        x = _attention_stage(
            x,
            attention_class,
            channels=channels,
            heads=attention_heads,
            block_size=attention_block_size,
            name=name,
        )
    x = conv(channels, "body_conv")(x)
    x = keras.layers.Add(name=f"{name}_long_skip")([shallow, x])

    # ---- head: sub-pixel upsampling to an RGB residual, image-space skip, clip to [0, 1]
    # With the image skip, a zero-initialised last convolution makes a new model start exactly
    # as bilinear upsampling instead of adding a random residual (which scores far below it).
    x = keras.layers.Conv2D(
        3 * scale * scale,
        3,
        padding="same",
        kernel_initializer="zeros" if image_skip else "glorot_uniform",
        name=f"{name}_upsample_conv",
    )(x)
    x = PixelShuffle(scale, name=f"{name}_pixel_shuffle")(x)
    # Under a mixed precision policy the residual stays in the compute dtype (small values, so
    # fine steps), while the image-space skip and the output are float32: a bfloat16 output
    # would be rounded to steps of 1/256 near white, as coarse as the errors training reduces.
    if image_skip:
        upsampled = BilinearUpsampling2D(scale, name=f"{name}_image_upsample", dtype="float32")(
            image
        )
        x = keras.layers.Add(name=f"{name}_image_skip", dtype="float32")([upsampled, x])
    upscaled = keras.layers.ReLU(max_value=1.0, name=f"{name}_clip", dtype="float32")(x)
    return keras.Model(image, upscaled, name=name)


def _attention_stage(x, layer_class, *, channels: int, heads: int, block_size: int, name: str):
    """The attention stage after the residual groups, named `f"{name}_attention_<registry name>"`.

    `SelfAttention2D` gets `heads` heads, `block_size` tiles and a residual connection; any other
    class (`NonLocal2D` has its residual inside) is built with its defaults on the trunk.
    """
    layer_name = f"{name}_attention_{attention_name(layer_class)}"
    if layer_class is SelfAttention2D:
        attended = SelfAttention2D(
            num_heads=heads,
            key_dim=max(1, channels // heads),
            block_size=block_size,
            name=layer_name,
        )(x)
        return keras.layers.Add(name=f"{name}_attention_add")([x, attended])
    return layer_class(name=layer_name)(x)


def _sr_preset(size: str, **preset):
    for scale in SCALES:
        register_model(
            f"{size}_x{scale}",
            "sr",
            super_resolution,
            description=f"RCAN-style SR, {size.removeprefix('sr_')} size, x{scale}",
            scale=scale,
            **preset,
        )


_sr_preset("sr_tiny", channels=16, num_groups=1, blocks_per_group=2)
_sr_preset("sr_small", channels=32, num_groups=2, blocks_per_group=4)
# 6 blocks instead of 8: the preset of the shipped SR models (docs/benchmarks.md,
# "Super-resolution"); trained by the same steps it matched sr_small's held-out PSNR at fewer MACs
_sr_preset("sr_fast", channels=32, num_groups=2, blocks_per_group=3)
_sr_preset("sr_base", channels=48, num_groups=3, blocks_per_group=5, attention="self")
# the quality model beside sr_fast: wider and deeper, and no attention stage, which on 96-pixel
# training crops made a step markedly slower (non-local) or several times slower (blockwise self)
# Trained like sr_x2 (30,000 steps, bfloat16) it did not beat sr_fast held out: docs/benchmarks.md
_sr_preset("sr_hq", channels=48, num_groups=3, blocks_per_group=4)


# --------------------------------------------------------------------------- task helper


def model_scale(model) -> int:
    """The upscaling factor of an SR model or callable, found by running it on an 8x8 probe."""
    probe = np.zeros((1, 8, 8, 3), "float32")
    output = single_output(model(probe))
    factor = output.shape[1] // 8
    if factor < 1 or output.shape[1] != 8 * factor or output.shape[2] != 8 * factor:
        raise ValueError(f"Not a super-resolution model: 8x8 input gave {tuple(output.shape)}")
    return int(factor)


def _feather(length: int, ramp_before: int, ramp_after: int) -> np.ndarray:
    """1D blend weights of one tile: over an overlap of `r` pixels the weight is 0 on the outer
    quarter (pixels whose receptive field ran off the tile), rises linearly over the middle
    half, and is 1 beyond; a neighbour's mirrored ramp makes the two sum to 1."""
    weights = np.ones(length, "float32")

    def ramp(size):
        position = np.arange(size, dtype="float32") + 0.5
        return np.clip((position - size / 4) / (size / 2), 0.0, 1.0)

    if ramp_before:
        weights[:ramp_before] = ramp(ramp_before)
    if ramp_after:
        weights[length - ramp_after :] = ramp(ramp_after)[::-1]
    return weights


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def upscale(
    model,
    image,
    tile: int | None = None,
    overlap: int = 16,
    *,
    progress: bool = False,
    self_ensemble: bool = False,
) -> np.ndarray:
    """Upscales an image (or a batch) with an SR model; returns the same dtype and layout.

    Args:
        model: an SR `keras.Model` (or any callable mapping `(1, H, W, 3)` float32 in [0, 1]
            to `(1, s*H, s*W, 3)`, or to a dict holding one such tensor), e.g.
            `keras_attn.pretrained.load("sr_x2")` in any format.
        image: a file path, a PIL image, or a numpy array: `(H, W, 3)` RGB, `(H, W, 4)` RGBA,
            `(H, W)` or `(H, W, 1)` grayscale, or a batch `(B, H, W, C)` of those; uint8,
            uint16 or float in [0, 1]. Grayscale is upscaled as RGB and returned as grayscale;
            alpha is upscaled bicubically beside the model's RGB.
        tile: if given, the image is processed in overlapping `tile x tile` input tiles that
            are blended with linear ramps, so memory is bounded by the tile, not the image.
        overlap: input pixels shared by neighbouring tiles (used with `tile`).
        progress: show a Keras progress bar over the tiles (or the batch).
        self_ensemble: average the model's outputs over the 8 flips and 90-degree turns of the
            input, each turned back (the geometric self-ensemble of EDSR+): a slightly better
            PSNR for 8x the compute.

    Returns:
        The upscaled image(s), `([B,] s*H, s*W[, C])`, same dtype as `image` (a path or PIL
        image gives a uint8 array, or uint16 for 16-bit files).
    """
    array = _images.image_array(image, "image")
    if array.ndim == 4:
        bar = keras.utils.Progbar(len(array), unit_name="image") if progress else None
        outputs = []
        for index, one in enumerate(array):
            outputs.append(upscale(model, one, tile, overlap, self_ensemble=self_ensemble))
            if bar is not None:
                bar.update(index + 1)
        return np.stack(outputs)
    if array.ndim == 3 and array.shape[-1] == 4:
        rgb = upscale(
            model, array[..., :3], tile, overlap, progress=progress, self_ensemble=self_ensemble
        )
        alpha = _images.to_unit_float(array[..., 3:], "image alpha")
        alpha = np.asarray(
            keras.ops.image.resize(alpha[None], rgb.shape[:2], interpolation="bicubic")
        )[0]
        alpha = np.clip(alpha, 0.0, 1.0)
        if array.dtype.kind in "ui":
            alpha = np.round(alpha * np.iinfo(array.dtype).max).astype(array.dtype)
        return np.concatenate([rgb, alpha.astype(rgb.dtype)], axis=-1)
    rgb, restore = _images.to_model_input(array, "image")
    if tile is not None:
        if not isinstance(tile, int) or tile < 8:
            raise ValueError(f"tile must be an integer >= 8. Received: tile={tile!r}")
        if not isinstance(overlap, int) or not 0 <= overlap < tile // 2:
            raise ValueError(
                f"overlap must be an integer in [0, tile // 2). Received: overlap={overlap!r}, "
                f"tile={tile}"
            )
    if not isinstance(self_ensemble, bool):
        raise ValueError(f"self_ensemble must be True or False. Received: {self_ensemble!r}")
    height, width = rgb.shape[:2]

    def once(batch):
        return np.asarray(single_output(model(np.ascontiguousarray(batch))), dtype="float32")[0]

    def run(batch):
        if not self_ensemble:
            return once(batch)
        total = 0.0
        for turns in range(4):
            for flip in (False, True):
                turned = np.rot90(batch, turns, axes=(1, 2))
                upscaled = once(turned[:, :, ::-1] if flip else turned)
                total = total + np.rot90(upscaled[:, ::-1] if flip else upscaled, -turns)
        return total / 8.0

    if tile is None or (height <= tile and width <= tile):
        return restore(run(rgb[None]))

    scale = model_scale(model)
    output = np.zeros((height * scale, width * scale, 3), "float32")
    total = np.zeros((height * scale, width * scale, 1), "float32")
    rows, cols = _tile_starts(height, tile, overlap), _tile_starts(width, tile, overlap)
    bar = keras.utils.Progbar(len(rows) * len(cols), unit_name="tile") if progress else None
    for top in rows:
        for left in cols:
            patch = rgb[top : top + tile, left : left + tile]
            upscaled = run(patch[None])
            ph, pw = upscaled.shape[:2]
            ramp = overlap * scale
            weight_rows = _feather(ph, ramp if top > 0 else 0, ramp if top + tile < height else 0)
            weight_cols = _feather(pw, ramp if left > 0 else 0, ramp if left + tile < width else 0)
            weights = (weight_rows[:, None] * weight_cols[None, :])[..., None]
            y0, x0 = top * scale, left * scale
            output[y0 : y0 + ph, x0 : x0 + pw] += upscaled * weights
            total[y0 : y0 + ph, x0 : x0 + pw] += weights
            if bar is not None:
                bar.add(1)
    return restore(output / total)
