import numpy as np
import pytest

from keras_attn.layers import QKVProjection


def test_shapes_and_values_match_numpy(rng):
    x = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    context = rng.normal(size=(2, 2, 2, 7)).astype("float32")
    layer = QKVProjection(key_dim=3, num_heads=2, value_dim=4)
    query, key, value = layer(x, context)
    assert (
        query.shape == (2, 2, 12, 3) and key.shape == (2, 2, 4, 3) and value.shape == (2, 2, 4, 4)
    )
    expected_v = context.reshape(2, 4, 7) @ np.array(layer.value_dense.kernel)
    expected_v += np.array(layer.value_dense.bias)
    expected_v = expected_v.reshape(2, 4, 2, 4).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(value, expected_v, atol=1e-5)
    assert layer.compute_output_shape(x.shape, context.shape) == (
        (2, 2, 12, 3),
        (2, 2, 4, 3),
        (2, 2, 4, 4),
    )


def test_self_projection_config_round_trip(rng):
    layer = QKVProjection(key_dim=2, num_heads=3, use_bias=False)
    x = rng.normal(size=(1, 4, 4, 6)).astype("float32")
    query, key, value = layer(x)
    assert len(layer.trainable_weights) == 3
    clone = QKVProjection.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    for a, b in zip(clone(x), (query, key, value), strict=True):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"key_dim": 0}, "key_dim"),
        ({"key_dim": 2, "num_heads": 0}, "num_heads"),
        ({"key_dim": 2, "value_dim": -3}, "value_dim"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"{name}="):
        QKVProjection(**kwargs)
