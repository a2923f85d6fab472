"""Differentiable bilinear backward warping of an image by a dense flow."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks

FILL_MODES = ("constant", "nearest")
# Up to this many channels (images), a pixel's four neighbours come from one gather of its 2x2
# block; above it (feature maps), from four gathers (docs/benchmarks.md, "Aligners in TFLite").
_BLOCK_GATHER_MAX_CHANNELS = 4


def coverage(x0, y0, wx1, wy1, height, width):
    """What `Warp(fill_mode="constant")` gives for an all-ones image, without sampling it:
    the bilinear weight of the neighbours inside the image, `(B, H, W, 1)`, from what
    `Warp.corners` returns (1 where the whole neighbourhood is inside, 0 where none of it is)."""

    def inside(v, size):
        mask = (v >= 0.0) & (v <= ops.cast(size - 1, "float32"))
        return ops.expand_dims(ops.cast(mask, "float32"), -1)

    along_x = inside(x0, width) * (1.0 - wx1) + inside(x0 + 1.0, width) * wx1
    return inside(y0, height) * along_x * (1.0 - wy1) + inside(y0 + 1.0, height) * along_x * wy1


@keras.saving.register_keras_serializable(package="keras_attn")
class Warp(keras.layers.Layer):
    """Resamples `moving` onto the fixed grid: `warped(y, x) = moving(y + v, x + u)`.

    Backward (pull) warping with bilinear interpolation, as VoxelMorph's spatial transformer:
    `flow[..., 0] = u` is the column (x) displacement and `flow[..., 1] = v` the row (y)
    displacement, in pixels, on the fixed grid; pixel centres sit at integer coordinates.
    Samples are gathered with `keras.ops.take` (builtin GATHER in TFLite), a pixel's four
    neighbours in one gather, and computed in
    float32 (the layer's dtype policy defaults to `"float32"` even under a global
    `mixed_float16` policy), since half-precision coordinates are off by up to 1/16 px at
    128 px. Outside the image, `"constant"` treats missing neighbours as
    `fill_value` (SciPy's `map_coordinates(..., order=1, mode="grid-constant")`) and
    `"nearest"` repeats the border (`mode="nearest"`).

    Paper: Jaderberg et al., "Spatial Transformer Networks", https://arxiv.org/abs/1506.02025

    Args:
        fill_mode: `"constant"` or `"nearest"`.
        fill_value: value outside the image for `"constant"`.

    Call arguments:
        inputs: list `[moving, flow]`: `(B, H, W, C)` image and `(B, H, W, 2)` flow `(u, v)`.

    Returns:
        `(B, H, W, C)` warped image in the dtype of `moving`.

    Example:

    >>> moving = keras.random.uniform((1, 32, 32, 3))
    >>> flow = keras.ops.ones((1, 32, 32, 2))
    >>> tuple(Warp()([moving, flow]).shape)
    (1, 32, 32, 3)
    """

    def __init__(self, fill_mode: str = "constant", fill_value: float = 0.0, **kwargs):
        # Coordinates must stay float32 under mixed precision: autocasting the flow to float16
        # before `call` would already lose sub-pixel precision, so the policy defaults to float32.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        _checks.one_of("fill_mode", fill_mode, FILL_MODES)
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(
                f"Layer '{self.name}' expects a list [moving, flow]. Received: {input_shape}"
            )
        moving_shape, flow_shape = (tuple(s) for s in input_shape)
        _checks.feature_map_shape(self.name, "moving", moving_shape)
        if len(flow_shape) != 4 or flow_shape[-1] != 2:
            raise ValueError(
                f"Layer '{self.name}' expects flow of shape (batch, height, width, 2). "
                f"Received: flow.shape={flow_shape}"
            )
        for axis, label in ((1, "height"), (2, "width")):
            if None not in (moving_shape[axis], flow_shape[axis]) and (
                moving_shape[axis] != flow_shape[axis]
            ):
                raise ValueError(
                    f"Layer '{self.name}': moving and flow must have the same {label}. "
                    f"Received: moving.shape={moving_shape}, flow.shape={flow_shape}"
                )

    def call(self, inputs):
        moving, flow = inputs
        out_dtype = moving.dtype
        moving = ops.cast(moving, "float32")
        return ops.cast(self.sample(moving, self.corners(moving, flow)), out_dtype)

    def sample(self, moving, corners):
        """The float32 bilinear samples of float32 `moving` at `corners` (`Warp.corners`)."""
        x0, y0, wx1, wy1 = corners
        if moving.shape[-1] is not None and moving.shape[-1] <= _BLOCK_GATHER_MAX_CHANNELS:
            top, bottom = self._rows_by_blocks(moving, x0, y0, wx1)
        else:
            top, bottom = self._rows_by_corners(moving, x0, y0, wx1)
        return top * (1.0 - wy1) + bottom * wy1

    def corners(self, moving, flow):
        """`(x0, y0, wx1, wy1)`: every output pixel's top-left source neighbour, `(B, H, W)`
        floats with whole values, and the bilinear weights of the next column and row,
        `(B, H, W, 1)`."""
        flow = ops.cast(flow, "float32")
        shape = ops.shape(moving)
        height, width = shape[1], shape[2]
        rows = ops.arange(height, dtype="float32")[None, :, None]
        cols = ops.arange(width, dtype="float32")[None, None, :]
        x = cols + flow[..., 0]
        y = rows + flow[..., 1]
        if self.fill_mode == "nearest":
            x = ops.clip(x, 0.0, ops.cast(width - 1, "float32"))
            y = ops.clip(y, 0.0, ops.cast(height - 1, "float32"))
        x0 = ops.floor(x)
        y0 = ops.floor(y)
        return x0, y0, (x - x0)[..., None], (y - y0)[..., None]

    def _rows_by_corners(self, moving, x0, y0, wx1):
        """The top and bottom rows of the bilinear blend, the four neighbours gathered apart."""
        shape = ops.shape(moving)
        batch, height, width = shape[0], shape[1], shape[2]
        max_y = ops.cast(height - 1, "float32")
        max_x = ops.cast(width - 1, "float32")
        flat = ops.reshape(moving, (-1, moving.shape[-1]))
        base = (ops.arange(batch, dtype="int32") * height * width)[:, None, None]

        def sample(yi, xi):
            inside = (xi >= 0.0) & (xi <= max_x) & (yi >= 0.0) & (yi <= max_y)
            xi = ops.cast(ops.clip(xi, 0.0, max_x), "int32")
            yi = ops.cast(ops.clip(yi, 0.0, max_y), "int32")
            values = ops.take(flat, base + yi * width + xi, axis=0)
            if self.fill_mode == "constant":
                values = ops.where(inside[..., None], values, self.fill_value)
            return values

        top = sample(y0, x0) * (1.0 - wx1) + sample(y0, x0 + 1.0) * wx1
        bottom = sample(y0 + 1.0, x0) * (1.0 - wx1) + sample(y0 + 1.0, x0 + 1.0) * wx1
        return top, bottom

    def _rows_by_blocks(self, moving, x0, y0, wx1):
        """The same rows from one gather per output pixel, of its whole 2x2 neighbourhood.

        The table's row `(y, x)` holds the 2x2 block with top-left `(y, x)` of the image
        padded by 2 pixels. "constant" pads with `fill_value`: a neighbour outside the image
        reads the padding, and a top-left corner further out is clipped to a block of padding
        only. "nearest" clipped the coordinates to the image already and pads by mirroring, so
        that a neighbour past the border is the border pixel (weight 0 there, and the
        gradient on the border sees what the corner path sees). Fewer, larger ops than four
        gathers: faster in TFLite for a few channels, slower for many (docs/benchmarks.md,
        "Aligners in TFLite").
        """
        shape = ops.shape(moving)
        batch, height, width = shape[0], shape[1], shape[2]
        channels = moving.shape[-1]
        pad = 2
        padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
        if self.fill_mode == "constant":
            padded = ops.pad(moving, padding, constant_values=self.fill_value)
        else:
            padded = ops.pad(moving, padding, mode="symmetric")
        blocks = ops.concatenate(
            [padded[:, :-1, :-1], padded[:, :-1, 1:], padded[:, 1:, :-1], padded[:, 1:, 1:]],
            axis=-1,
        )
        rows_out = height + 2 * pad - 1
        cols_out = width + 2 * pad - 1
        lowest = -float(pad)
        xi = ops.cast(ops.clip(x0, lowest, ops.cast(width, "float32")), "int32") + pad
        yi = ops.cast(ops.clip(y0, lowest, ops.cast(height, "float32")), "int32") + pad
        base = (ops.arange(batch, dtype="int32") * rows_out * cols_out)[:, None, None]
        table = ops.reshape(blocks, (-1, 4 * channels))
        block = ops.take(table, base + yi * cols_out + xi, axis=0)
        c = channels
        top = block[..., :c] * (1.0 - wx1) + block[..., c : 2 * c] * wx1
        bottom = block[..., 2 * c : 3 * c] * (1.0 - wx1) + block[..., 3 * c :] * wx1
        return top, bottom

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"fill_mode": self.fill_mode, "fill_value": self.fill_value})
        return config
