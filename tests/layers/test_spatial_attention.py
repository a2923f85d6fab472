import numpy as np
import pytest
from scipy import ndimage

from keras_attn.layers import CBAM, SpatialAttention
from tests.helpers import run_layer_test


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_spatial(layer, x):
    """Channel mean/max, 'same' zero-padded correlation with the layer's kernel, sigmoid."""
    pooled = np.stack([x.mean(-1), x.max(-1)], axis=-1)
    kernel = np.array(layer.conv.kernel)[..., 0]  # (k, k, 2)
    logits = np.zeros(x.shape[:3])
    for b in range(x.shape[0]):
        for c in range(2):
            logits[b] += ndimage.correlate(pooled[b, ..., c], kernel[..., c], mode="constant")
    return sigmoid(logits + float(np.array(layer.conv.bias)[0]))[..., None]


def test_spatial_layer(rng):
    run_layer_test(
        SpatialAttention, {"kernel_size": 3}, rng.normal(size=(2, 6, 5, 4)), (2, 6, 5, 4), 2
    )


def test_cbam_layer(rng):
    run_layer_test(
        CBAM, {"ratio": 0.5, "kernel_size": 5}, rng.normal(size=(2, 6, 5, 8)), (2, 6, 5, 8), 6
    )


def test_spatial_matches_numpy(rng):
    x = rng.normal(size=(2, 7, 6, 3)).astype("float32")
    layer = SpatialAttention(kernel_size=5)
    output, attention = layer(x, return_attention_scores=True)
    expected = reference_spatial(layer, x)
    np.testing.assert_allclose(attention, expected, atol=1e-5)
    np.testing.assert_allclose(output, x * expected, atol=1e-5)


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
def test_bad_kernel_size(kernel_size):
    with pytest.raises(ValueError, match="kernel_size="):
        SpatialAttention(kernel_size=kernel_size)
    with pytest.raises(ValueError, match="kernel_size="):
        CBAM(kernel_size=kernel_size)


def test_cbam_bad_ratio():
    with pytest.raises(ValueError, match="ratio="):
        CBAM(ratio=0.0)
