import numpy as np
import pytest

from keras_attn.layers import CrossAttention2D
from tests.helpers import run_layer_test, softmax


@pytest.mark.parametrize(
    "kwargs, num_weights",
    [
        ({"num_heads": 2, "key_dim": 4}, 10),
        ({"num_heads": 1, "key_dim": 4, "position": None, "block_size": 9}, 8),
    ],
)
def test_layer(kwargs, num_weights, rng):
    query = rng.normal(size=(2, 4, 5, 6))
    context = rng.normal(size=(2, 6, 3, 10))
    run_layer_test(
        CrossAttention2D, kwargs, [query, context], (2, 4, 5, 6), num_weights, input_kind="args"
    )


def test_matches_numpy_reference(rng):
    query = rng.normal(size=(2, 3, 4, 6)).astype("float32")
    context = rng.normal(size=(2, 5, 2, 7)).astype("float32")
    layer = CrossAttention2D(num_heads=2, key_dim=3, position=None)
    output, scores = layer(query, context, return_attention_scores=True)
    qkv = layer.qkv

    def project(dense, x):
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        return flat @ np.array(dense.kernel) + np.array(dense.bias)

    q = project(qkv.query_dense, query)
    k = project(qkv.key_dense, context)
    v = project(qkv.value_dense, context)
    heads, expected_scores = [], []
    for h in range(2):
        sl = slice(3 * h, 3 * h + 3)
        weights = softmax(np.einsum("bqd,bkd->bqk", q[..., sl], k[..., sl]) / np.sqrt(3))
        expected_scores.append(weights)
        heads.append(weights @ v[..., sl])
    merged = np.concatenate(heads, -1) @ np.array(layer.output_dense.kernel)
    merged += np.array(layer.output_dense.bias)
    np.testing.assert_allclose(output, merged.reshape(2, 3, 4, 6), atol=1e-5)
    np.testing.assert_allclose(scores, np.stack(expected_scores, 1), atol=1e-6)


@pytest.mark.parametrize("position", ["relative", "sinusoidal", None])
def test_blockwise_equals_full(position, rng):
    query = rng.normal(size=(1, 5, 4, 8)).astype("float32")
    context = rng.normal(size=(1, 7, 6, 8)).astype("float32")
    full = CrossAttention2D(2, 4, position=position)
    expected = full(query, context)
    blocked = CrossAttention2D(2, 4, position=position, block_size=5)
    blocked(query, context)
    blocked.set_weights(full.get_weights())
    np.testing.assert_allclose(blocked(query, context), expected, atol=1e-5)


def test_context_without_channels_is_rejected():
    with pytest.raises(ValueError, match="context"):
        CrossAttention2D(2, 4)(np.zeros((1, 4, 4, 8), "float32"), np.zeros((1, 16, 8), "float32"))
