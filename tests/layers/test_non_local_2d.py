import numpy as np
import pytest

from keras_attn.layers import NonLocal2D
from tests.helpers import run_layer_test, softmax


@pytest.mark.parametrize(
    "mode, num_weights",
    [("embedded_gaussian", 8), ("gaussian", 4), ("dot", 8), ("concatenation", 9)],
)
def test_layer(mode, num_weights, rng):
    run_layer_test(
        NonLocal2D,
        {"mode": mode, "inter_channels": 3},
        rng.normal(size=(2, 5, 4, 6)),
        (2, 5, 4, 6),
        num_weights,
    )


@pytest.mark.parametrize("mode", ["embedded_gaussian", "gaussian", "dot", "concatenation"])
def test_matches_numpy(mode, rng):
    x = rng.normal(size=(2, 4, 3, 6)).astype("float32")
    layer = NonLocal2D(mode=mode)
    identity = layer(x)
    np.testing.assert_allclose(identity, x, atol=1e-6)  # zero-initialised output projection
    layer.output_projection.kernel.assign(rng.normal(size=layer.output_projection.kernel.shape))
    output, affinity = layer(x, return_attention_scores=True)

    tokens = x.reshape(2, 12, 6)

    def dense(d, v):
        return v @ np.array(d.kernel) + np.array(d.bias)

    if mode == "gaussian":
        f = softmax(tokens @ tokens.transpose(0, 2, 1))
    else:
        theta, phi = dense(layer.theta, tokens), dense(layer.phi, tokens)
        if mode == "embedded_gaussian":
            f = softmax(theta @ phi.transpose(0, 2, 1))
        elif mode == "dot":
            f = theta @ phi.transpose(0, 2, 1) / 12
        else:
            w = np.array(layer.concat_project.kernel)
            f = np.maximum(theta @ w[:, :1] + (phi @ w[:, 1:]).transpose(0, 2, 1), 0) / 12
    y = f @ dense(layer.g, tokens)
    expected = x + dense(layer.output_projection, y).reshape(x.shape)
    np.testing.assert_allclose(affinity[:, 0], f, atol=1e-5)
    np.testing.assert_allclose(output, expected, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, name", [({"mode": "softmax"}, "mode"), ({"inter_channels": 0}, "inter_channels")]
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"{name}="):
        NonLocal2D(**kwargs)
