"""Differentiable bilinear backward warping of an image by a dense flow."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks

FILL_MODES = ("constant", "nearest")


@keras.saving.register_keras_serializable(package="keras_attn")
class Warp(keras.layers.Layer):
    """Resamples `moving` onto the fixed grid: `warped(y, x) = moving(y + v, x + u)`.

    Backward (pull) warping with bilinear interpolation, as VoxelMorph's spatial transformer:
    `flow[..., 0] = u` is the column (x) displacement and `flow[..., 1] = v` the row (y)
    displacement, in pixels, on the fixed grid; pixel centres sit at integer coordinates.
    Samples are gathered with `keras.ops.take` (builtin GATHER in TFLite) and computed in
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
        flow = ops.cast(flow, "float32")
        shape = ops.shape(moving)
        batch, height, width = shape[0], shape[1], shape[2]
        channels = moving.shape[-1]
        max_y = ops.cast(height - 1, "float32")
        max_x = ops.cast(width - 1, "float32")

        rows = ops.arange(height, dtype="float32")[None, :, None]
        cols = ops.arange(width, dtype="float32")[None, None, :]
        x = cols + flow[..., 0]
        y = rows + flow[..., 1]
        if self.fill_mode == "nearest":
            x = ops.clip(x, 0.0, max_x)
            y = ops.clip(y, 0.0, max_y)
        x0 = ops.floor(x)
        y0 = ops.floor(y)
        wx1 = (x - x0)[..., None]
        wy1 = (y - y0)[..., None]

        flat = ops.reshape(moving, (-1, channels))
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
        warped = top * (1.0 - wy1) + bottom * wy1
        return ops.cast(warped, out_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"fill_mode": self.fill_mode, "fill_value": self.fill_value})
        return config
