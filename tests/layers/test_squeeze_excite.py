import numpy as np
import pytest

from keras_attn.layers import SqueezeExcite
from tests.helpers import run_layer_test


def test_layer(rng):
    run_layer_test(SqueezeExcite, {"ratio": 0.25}, rng.normal(size=(2, 5, 6, 8)), (2, 5, 6, 8), 4)


def test_gate_matches_numpy(rng):
    x = rng.normal(size=(2, 5, 4, 8)).astype("float32")
    layer = SqueezeExcite(ratio=0.5)
    output, gates = layer(x, return_attention_scores=True)
    squeezed = x.mean(axis=(1, 2))
    hidden = np.maximum(squeezed @ np.array(layer.reduce.kernel) + np.array(layer.reduce.bias), 0)
    logits = hidden @ np.array(layer.expand.kernel) + np.array(layer.expand.bias)
    expected_gates = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(gates, expected_gates, atol=1e-6)
    np.testing.assert_allclose(output, x * expected_gates[:, None, None, :], atol=1e-6)
    assert layer.reduce.units == 4


def test_tiny_channel_count_keeps_one_hidden_unit(rng):
    layer = SqueezeExcite(ratio=0.1)
    layer(rng.normal(size=(1, 2, 2, 3)).astype("float32"))
    assert layer.reduce.units == 1


@pytest.mark.parametrize("ratio", [0, -0.5, 1.5, "half", True])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio="):
        SqueezeExcite(ratio=ratio)
