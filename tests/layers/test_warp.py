import keras
import numpy as np
import pytest
from scipy import ndimage

from keras_attn.layers import Warp
from keras_attn.layers.warp import coverage
from tests.helpers import run_layer_test


def scipy_warp(moving, flow, mode):
    """warped(y, x) = moving(y + v, x + u) per channel with scipy's order-1 map_coordinates."""
    batch, height, width, channels = moving.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    out = np.zeros_like(moving)
    for b in range(batch):
        coords = [rows + flow[b, ..., 1], cols + flow[b, ..., 0]]
        for c in range(channels):
            out[b, ..., c] = ndimage.map_coordinates(
                moving[b, ..., c], coords, order=1, mode=mode, cval=0.0
            )
    return out


@pytest.mark.parametrize("fill_mode", ["constant", "nearest"])
def test_layer(fill_mode, rng):
    moving = rng.uniform(size=(2, 6, 7, 3))
    flow = rng.normal(scale=2.0, size=(2, 6, 7, 2))
    run_layer_test(
        Warp,
        {"fill_mode": fill_mode},
        [moving, flow],
        (2, 6, 7, 3),
        0,
        input_kind="list",
        mixed_precision_dtype="float32",
    )


# 2 channels: one gather of each 2x2 block; 6: four gathers (feature maps)
@pytest.mark.parametrize("channels", [2, 6])
@pytest.mark.parametrize(
    "fill_mode, scipy_mode", [("constant", "grid-constant"), ("nearest", "nearest")]
)
def test_matches_scipy_map_coordinates(fill_mode, scipy_mode, channels, rng):
    moving = rng.uniform(size=(2, 9, 11, channels)).astype("float32")
    flow = rng.normal(scale=3.0, size=(2, 9, 11, 2)).astype("float32")
    flow[0, :3, :3] = [[-30.0, 2.0], [4.0, 25.0], [-1.5, -0.5]]  # far outside and just outside
    warped = Warp(fill_mode=fill_mode)([moving, flow])
    np.testing.assert_allclose(warped, scipy_warp(moving, flow, scipy_mode), atol=1e-5)


def test_coverage_is_the_warp_of_ones(rng):
    flow = rng.normal(scale=3.0, size=(2, 9, 11, 2)).astype("float32")
    flow[0, 0, 0] = [-8.0, 0.0]
    layer = Warp(fill_mode="constant")
    ones = np.ones((2, 9, 11, 1), "float32")
    covered = coverage(*layer.corners(ones, flow), 9, 11)
    np.testing.assert_array_equal(np.asarray(covered), np.asarray(layer([ones, flow])))
    assert np.asarray(covered).min() == 0.0 and np.asarray(covered).max() == 1.0


def test_conventions(rng):
    """u moves along columns (x), v along rows (y): fixed(y, x) = moving(y + v, x + u)."""
    moving = rng.uniform(size=(1, 8, 8, 1)).astype("float32")
    flow = np.zeros((1, 8, 8, 2), "float32")
    flow[..., 0] = 2.0  # u = +2 columns
    flow[..., 1] = 1.0  # v = +1 row
    warped = np.asarray(Warp()([moving, flow]))
    np.testing.assert_allclose(warped[0, 2, 3, 0], moving[0, 3, 5, 0])
    np.testing.assert_allclose(Warp()([moving, np.zeros_like(flow)]), moving)


def test_gradients_flow_to_the_flow(rng):
    import tensorflow as tf

    moving = tf.constant(rng.uniform(size=(1, 8, 8, 1)).astype("float32"))
    flow = tf.Variable(rng.uniform(-1, 1, size=(1, 8, 8, 2)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(Warp()([moving, flow]))
    grad = tape.gradient(loss, flow)
    assert np.abs(grad.numpy()).sum() > 0


@pytest.mark.parametrize("channels", [1, 6])
@pytest.mark.parametrize("fill_mode", ["constant", "nearest"])
def test_gradient_on_the_border_is_the_one_sided_difference(fill_mode, channels):
    """Zero flow puts the last row and column exactly on the border. There, the gradient of
    the warp along x is the difference to the next pixel: 0 - border for "constant" (the
    fill value lies outside), 0 for "nearest" (the border repeats)."""
    import tensorflow as tf

    image = np.arange(1.0, 13.0, dtype="float32").reshape(1, 3, 4, 1)
    moving = tf.constant(np.repeat(image, channels, axis=-1))
    flow = tf.Variable(np.zeros((1, 3, 4, 2), "float32"))
    with tf.GradientTape() as tape:
        warped = Warp(fill_mode=fill_mode)([moving, flow])
    grad = tape.gradient(warped, flow).numpy()[0] / channels
    border = image[0, :, 3, 0]
    expected = -border if fill_mode == "constant" else np.zeros(3)
    np.testing.assert_allclose(grad[:, 3, 0], expected)
    np.testing.assert_allclose(grad[:, :3, 0], 1.0)  # inside: the next pixel is one more


def test_float32_under_mixed_precision(rng):
    keras.config.set_dtype_policy("mixed_float16")
    moving = rng.uniform(size=(1, 130, 130, 1)).astype("float32")
    flow = np.full((1, 130, 130, 2), 0.03125, "float32")  # not representable next to 128 in fp16
    warped = np.asarray(Warp()([moving, flow]))
    assert warped.dtype == np.float32
    np.testing.assert_allclose(warped, scipy_warp(moving, flow, "grid-constant"), atol=1e-5)


def test_mismatched_sizes_are_named():
    with pytest.raises(ValueError, match="same height"):
        Warp()([np.zeros((1, 8, 8, 1), "float32"), np.zeros((1, 6, 8, 2), "float32")])
    with pytest.raises(ValueError, match=r"flow of shape \(batch, height, width, 2\)"):
        Warp()([np.zeros((1, 8, 8, 1), "float32"), np.zeros((1, 8, 8, 3), "float32")])


def test_bad_fill_mode():
    with pytest.raises(ValueError, match="fill_mode="):
        Warp(fill_mode="reflect")
