import numpy as np
import pytest
import tensorflow as tf

from keras_attn.layers import PixelShuffle
from tests.helpers import run_layer_test


@pytest.mark.parametrize("scale", [2, 3])
def test_layer(scale, rng):
    x = rng.normal(size=(2, 4, 5, 2 * scale * scale))
    run_layer_test(PixelShuffle, {"scale": scale}, x, (2, 4 * scale, 5 * scale, 2), 0)


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_matches_depth_to_space_and_formula(scale, rng):
    x = rng.normal(size=(2, 3, 4, 3 * scale * scale)).astype("float32")
    output = np.asarray(PixelShuffle(scale)(x))
    expected = x if scale == 1 else tf.nn.depth_to_space(x, scale).numpy()  # TF rejects 1
    np.testing.assert_array_equal(output, expected)
    # output[b, h*s + i, w*s + j, c] == input[b, h, w, (i*s + j)*C + c]
    b, h, w, i, j, c = 1, 2, 3, scale - 1, 0, 2
    assert output[b, h * scale + i, w * scale + j, c] == x[b, h, w, (i * scale + j) * 3 + c]


def test_channels_not_divisible():
    with pytest.raises(ValueError, match=r"divisible by scale\*\*2 = 4.*channels=6"):
        PixelShuffle(2)(np.zeros((1, 2, 2, 6), "float32"))


@pytest.mark.parametrize("scale", [0, -2, 1.5])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale="):
        PixelShuffle(scale)
