"""The aligner's any-size SavedModel endpoint: `align()` in the graph, for TF Serving and TF users.

`export_saved_model(model, path, extra_endpoints=aligner_endpoints(model))` adds `align_any_size`
next to the fixed-size `serving_default`: it takes `moving` and `fixed` batches of any height and
width (the two may differ), resizes both to the network's working size (bilinear with
antialiasing, as `keras_attn.models.align`), runs the network, and maps the homography back to
full-resolution pixel coordinates exactly, `H = inv(to_fixed) @ H_small @ to_moving` with
`to_*` the resize maps of `resize_matrix`; the flow is computed on the full fixed grid from that
homography (or, for a dense-flow model, resampled from the working-size flow) and `warped` is
the full-resolution moving image sampled by it. TFLite files keep the fixed working size: their
runtime has no antialiased resize, so `keras_attn.align` resizes around them in numpy.
"""

from __future__ import annotations

import keras

from keras_attn.models.aligner_tasks import _model_image_shape, has_dense_flow

ANY_SIZE_ENDPOINT = "align_any_size"


def aligner_endpoints(model: keras.Model) -> dict:
    """`{"align_any_size": (function, input_signature)}` for `export_saved_model`'s
    `extra_endpoints`: `function(moving, fixed)` on float32 `(B, H, W, C)` images in [0, 1] of
    any size, with the model's channel count, returns `homography` `(B, 3, 3)` moving->fixed in
    full-resolution pixels, `flow` `(B, H_fixed, W_fixed, 2)` and `warped`
    `(B, H_fixed, W_fixed, C)`."""
    import tensorflow as tf

    height, width, channels = _model_image_shape(model)
    dense = has_dense_flow(model)
    spec = [
        tf.TensorSpec((None, None, None, channels), tf.float32, name="moving"),
        tf.TensorSpec((None, None, None, channels), tf.float32, name="fixed"),
    ]

    def align_any_size(moving, fixed):
        working = (height, width)
        small = {
            "moving": tf.image.resize(moving, working, "bilinear", antialias=True),
            "fixed": tf.image.resize(fixed, working, "bilinear", antialias=True),
        }
        out = model(small, training=False)
        to_moving = _resize_matrix(tf.shape(moving)[1:3], working)
        to_fixed = _resize_matrix(tf.shape(fixed)[1:3], working)
        small_h = tf.cast(out["homography"], tf.float64)
        homography = tf.linalg.inv(to_fixed)[None] @ small_h @ to_moving[None]
        homography = homography / homography[:, 2:3, 2:3]
        fixed_shape = tf.shape(fixed)[1:3]
        if dense:
            flow = _flow_to_full(out["flow"], to_moving, fixed_shape)
        else:
            flow = _homography_flow(homography, fixed_shape)
        return {
            "homography": tf.cast(homography, tf.float32),
            "flow": flow,
            "warped": sample_bilinear(moving, flow),
        }

    return {ANY_SIZE_ENDPOINT: (align_any_size, spec)}


def _resize_matrix(from_shape, to_shape):
    """`resize_matrix` in the graph: `(3, 3)` float64 map of pixel centres of a `from_shape`
    image onto the same image resized to `to_shape`."""
    import tensorflow as tf

    from_shape = tf.cast(from_shape, tf.float64)
    sy = to_shape[0] / from_shape[0]
    sx = to_shape[1] / from_shape[1]
    zero, one = tf.constant(0.0, tf.float64), tf.constant(1.0, tf.float64)
    return tf.stack(
        [
            tf.stack([sx, zero, 0.5 * sx - 0.5]),
            tf.stack([zero, sy, 0.5 * sy - 0.5]),
            tf.stack([zero, zero, one]),
        ]
    )


def _grid(shape):
    import tensorflow as tf

    xs, ys = tf.meshgrid(tf.range(shape[1]), tf.range(shape[0]))
    return tf.cast(tf.stack([xs, ys], -1), tf.float64)


def _homography_flow(homography, shape):
    """`homography_flow` in the graph: backward flow `(B, H, W, 2)` float32 on the fixed grid."""
    import tensorflow as tf

    grid = _grid(shape)
    points = tf.concat([grid, tf.ones_like(grid[..., :1])], -1)
    mapped = tf.einsum("hwj,bij->bhwi", points, tf.linalg.inv(homography))
    depth = mapped[..., 2:]
    visible = depth > 1e-9
    source = tf.where(visible, mapped[..., :2] / tf.where(visible, depth, 1.0), -1e6)
    return tf.cast(source - grid[None], tf.float32)


def _flow_to_full(flow_small, to_moving, fixed_shape):
    """`_flow_to_full` in the graph: a working-size backward flow on the full fixed grid, in
    full moving pixels."""
    import tensorflow as tf

    height, width = flow_small.shape[1:3]
    source = _grid((height, width))[None] + tf.cast(flow_small, tf.float64)
    inverse = tf.linalg.inv(to_moving)
    source = source * tf.stack([inverse[0, 0], inverse[1, 1]]) + inverse[:2, 2]
    full = tf.image.resize(tf.cast(source, tf.float32), fixed_shape, "bilinear")
    return full - tf.cast(_grid(fixed_shape), tf.float32)[None]


def sample_bilinear(image, flow):
    """Backward warp of `image` `(B, H, W, C)` by `flow` `(B, H', W', 2)` on another grid:
    `out(y, x) = image(y + v, x + u)`, bilinear, zeros outside (as `Warp(fill_mode="constant")`)."""
    import tensorflow as tf

    image = tf.convert_to_tensor(image, tf.float32)
    shape = tf.shape(image)
    max_y = tf.cast(shape[1] - 1, tf.float32)
    max_x = tf.cast(shape[2] - 1, tf.float32)
    grid = tf.cast(_grid(tf.shape(flow)[1:3]), tf.float32)[None]
    x = grid[..., 0] + flow[..., 0]
    y = grid[..., 1] + flow[..., 1]
    x0, y0 = tf.floor(x), tf.floor(y)
    wx1, wy1 = (x - x0)[..., None], (y - y0)[..., None]
    out = 0.0
    for yi, wy in ((y0, 1.0 - wy1), (y0 + 1.0, wy1)):
        for xi, wx in ((x0, 1.0 - wx1), (x0 + 1.0, wx1)):
            inside = (xi >= 0.0) & (xi <= max_x) & (yi >= 0.0) & (yi <= max_y)
            index = tf.stack(
                [
                    tf.cast(tf.clip_by_value(yi, 0.0, max_y), tf.int32),
                    tf.cast(tf.clip_by_value(xi, 0.0, max_x), tf.int32),
                ],
                -1,
            )
            values = tf.gather_nd(image, index, batch_dims=1)
            out += values * wx * wy * tf.cast(inside, tf.float32)[..., None]
    return out
