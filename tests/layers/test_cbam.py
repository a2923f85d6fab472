import numpy as np
import pytest

from keras_attn.layers import CBAM
from tests.helpers import reference_spatial, run_layer_test, sigmoid


def test_cbam_layer(rng):
    run_layer_test(
        CBAM, {"ratio": 0.5, "kernel_size": 5}, rng.normal(size=(2, 6, 5, 8)), (2, 6, 5, 8), 6
    )


def test_cbam_matches_numpy(rng):
    x = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    layer = CBAM(ratio=0.25, kernel_size=3)
    output, gates = layer(x, return_attention_scores=True)

    def mlp(v):
        hidden = np.maximum(v @ np.array(layer.reduce.kernel) + np.array(layer.reduce.bias), 0)
        return hidden @ np.array(layer.expand.kernel) + np.array(layer.expand.bias)

    channel = sigmoid(mlp(x.mean((1, 2))) + mlp(x.max((1, 2))))
    gated = x * channel[:, None, None, :]
    spatial = reference_spatial(layer.spatial, gated)
    np.testing.assert_allclose(gates["channel"], channel, atol=1e-6)
    np.testing.assert_allclose(gates["spatial"], spatial, atol=1e-5)
    np.testing.assert_allclose(output, gated * spatial, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [0, 4, -3, 2.0])
def test_cbam_bad_kernel_size(kernel_size):
    with pytest.raises(ValueError, match="kernel_size="):
        CBAM(kernel_size=kernel_size)


def test_cbam_bad_ratio():
    with pytest.raises(ValueError, match="ratio="):
        CBAM(ratio=0.0)
