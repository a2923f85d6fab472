import numpy as np
import pytest

from keras_attn.layers import SpatialAttention
from tests.helpers import reference_spatial, run_layer_test


def test_spatial_layer(rng):
    run_layer_test(
        SpatialAttention, {"kernel_size": 3}, rng.normal(size=(2, 6, 5, 4)), (2, 6, 5, 4), 2
    )


def test_spatial_matches_numpy(rng):
    x = rng.normal(size=(2, 7, 6, 3)).astype("float32")
    layer = SpatialAttention(kernel_size=5)
    output, attention = layer(x, return_attention_scores=True)
    expected = reference_spatial(layer, x)
    np.testing.assert_allclose(attention, expected, atol=1e-5)
    np.testing.assert_allclose(output, x * expected, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [0, 4, -3, 2.0])
def test_bad_kernel_size(kernel_size):
    with pytest.raises(ValueError, match="kernel_size="):
        SpatialAttention(kernel_size=kernel_size)
