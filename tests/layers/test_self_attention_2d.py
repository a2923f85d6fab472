import keras
import numpy as np
import pytest

from keras_attn.layers import SelfAttention2D
from tests.helpers import run_layer_test, softmax

# ---------------------------------------------------------------- reference in NumPy


def reference_attention(layer, x, relative=False, cosine=False):
    """Independent per-pixel loop implementation of the layer with its own weights."""
    qkv, out = layer.qkv, layer.output_dense
    heads, dim = layer.num_heads, layer.key_dim
    batch, height, width, _ = x.shape
    tokens = x.reshape(batch, height * width, -1)
    rows, cols = np.divmod(np.arange(height * width), width)

    def project(dense):
        return tokens @ np.array(dense.kernel) + np.array(dense.bias)

    q, k, v = project(qkv.query_dense), project(qkv.key_dense), project(qkv.value_dense)
    outputs = []
    for h in range(heads):
        qh, kh, vh = (t[..., h * dim : (h + 1) * dim] for t in (q, k, v))
        if cosine:
            qh = qh / np.linalg.norm(qh, axis=-1, keepdims=True)
            kh = kh / np.linalg.norm(kh, axis=-1, keepdims=True)
            scale = np.exp(min(float(np.array(layer.logit_scale)[h, 0, 0]), np.log(100.0)))
            logits = scale * np.einsum("bqd,bkd->bqk", qh, kh)
        else:
            qh = qh / np.sqrt(dim)
            logits = np.einsum("bqd,bkd->bqk", qh, kh)
        if relative:
            table_h = np.array(layer.relative_height)
            table_w = np.array(layer.relative_width)
            m = layer.max_distance
            for i in range(height * width):
                for j in range(height * width):
                    dy = np.clip(rows[j] - rows[i], -m, m) + m
                    dx = np.clip(cols[j] - cols[i], -m, m) + m
                    logits[:, i, j] += qh[:, i] @ (table_h[dy] + table_w[dx])
        outputs.append(softmax(logits) @ vh)
    merged = np.concatenate(outputs, axis=-1)
    result = merged @ np.array(out.kernel) + np.array(out.bias)
    return result.reshape(batch, height, width, -1)


# ---------------------------------------------------------------- the shared layer test


@pytest.mark.parametrize(
    "kwargs, num_weights",
    [
        ({"num_heads": 2, "key_dim": 4}, 10),
        ({"num_heads": 2, "key_dim": 4, "position": "sinusoidal", "block_size": 16}, 8),
        ({"num_heads": 2, "key_dim": 4, "block_size": 4, "key_block_size": 30}, 10),
        ({"num_heads": 1, "key_dim": 8, "position": None, "similarity": "cosine"}, 9),
        (
            {
                "num_heads": 2,
                "key_dim": 4,
                "value_dim": 6,
                "output_dim": 5,
                "block_size": 7,
                "dropout": 0.1,
                "seed": 1,
            },
            10,
        ),
    ],
)
def test_layer(kwargs, num_weights, rng):
    x = rng.normal(size=(2, 6, 5, 8))
    output_dim = kwargs.get("output_dim", 8)
    run_layer_test(SelfAttention2D, kwargs, x, (2, 6, 5, output_dim), num_weights)


# ---------------------------------------------------------------- numerics


@pytest.mark.parametrize("position", [None, "relative"])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_matches_numpy_reference(position, similarity, rng):
    x = rng.normal(size=(2, 4, 5, 6)).astype("float32")
    layer = SelfAttention2D(
        num_heads=2, key_dim=3, position=position, similarity=similarity, max_distance=2
    )
    layer(x)
    if position == "relative":
        # Make the position term large enough that a wrong offset would show.
        layer.relative_height.assign(rng.normal(size=layer.relative_height.shape))
        layer.relative_width.assign(rng.normal(size=layer.relative_width.shape))
    expected = reference_attention(
        layer, x, relative=position == "relative", cosine=similarity == "cosine"
    )
    np.testing.assert_allclose(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_attention_scores_are_a_distribution(rng):
    x = rng.normal(size=(1, 5, 5, 8)).astype("float32")
    _, scores = SelfAttention2D(4, 2)(x, return_attention_scores=True)
    scores = np.asarray(scores)
    assert scores.shape == (1, 4, 25, 25) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    assert (scores >= 0).all()


def assert_blockwise_equals_full(rng, block_size, key_block_size, **kwargs):
    x = rng.normal(size=(2, 6, 7, 8)).astype("float32")  # 42 tokens: most blocks do not divide it
    full = SelfAttention2D(2, 4, **kwargs)
    expected = full(x)
    blocked = SelfAttention2D(2, 4, block_size=block_size, key_block_size=key_block_size, **kwargs)
    blocked(x)
    blocked.set_weights(full.get_weights())
    np.testing.assert_allclose(blocked(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "block_size, key_block_size",
    [(1, None), (7, None), (16, None), (64, None), (5, 11), (8, 42), (6, 64), (42, 1)],
)
def test_blockwise_equals_full_for_any_tiles(block_size, key_block_size, rng):
    assert_blockwise_equals_full(rng, block_size, key_block_size, position="relative")


@pytest.mark.parametrize("position", ["relative", "sinusoidal", None])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("block_size, key_block_size", [(8, None), (16, 64)])
def test_blockwise_equals_full_for_every_option(
    position, similarity, block_size, key_block_size, rng
):
    assert_blockwise_equals_full(
        rng, block_size, key_block_size, position=position, similarity=similarity
    )


def test_blockwise_gradients_equal_full(rng):
    import tensorflow as tf

    x = tf.constant(rng.normal(size=(1, 6, 6, 8)).astype("float32"))
    full = SelfAttention2D(2, 4)
    full(x)
    blocked = SelfAttention2D(2, 4, block_size=8)
    blocked(x)
    blocked.set_weights(full.get_weights())
    grads = []
    for layer in (full, blocked):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(x)))
        grads.append(tape.gradient(loss, layer.trainable_weights))
    for g_full, g_block in zip(*grads, strict=True):
        np.testing.assert_allclose(g_block, g_full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("key_block_size", [None, 7, 1000])
def test_blockwise_dynamic_shapes_in_one_model(key_block_size, rng):
    inputs = keras.Input((None, None, 8))
    layer = SelfAttention2D(2, 4, block_size=10, key_block_size=key_block_size)
    model = keras.Model(inputs, layer(inputs))
    reference = SelfAttention2D(2, 4)
    for size in [(3, 4), (9, 11), (1, 1)]:
        x = rng.normal(size=(1, *size, 8)).astype("float32")
        reference(x)
        reference.set_weights(layer.get_weights())
        np.testing.assert_allclose(model(x), reference(x), atol=1e-5)


def test_dropout_only_in_training(rng):
    x = rng.normal(size=(2, 4, 4, 8)).astype("float32")
    layer = SelfAttention2D(2, 4, dropout=0.5, block_size=5, seed=3)
    np.testing.assert_allclose(layer(x), layer(x))
    assert not np.allclose(layer(x, training=True), layer(x))


def test_mixed_precision_softmax_in_float32(rng):
    keras.config.set_dtype_policy("mixed_float16")
    x = rng.normal(size=(1, 4, 4, 8)).astype("float32") * 50.0
    output, scores = SelfAttention2D(2, 4)(x, return_attention_scores=True)
    assert output.dtype == "float16" and scores.dtype == "float32"
    np.testing.assert_allclose(np.asarray(scores).sum(-1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_heads": 0, "key_dim": 4}, "num_heads"),
        ({"num_heads": 2, "key_dim": -1}, "key_dim"),
        ({"num_heads": 2.5, "key_dim": 4}, "num_heads"),
        ({"num_heads": 2, "key_dim": 4, "value_dim": 0}, "value_dim"),
        ({"num_heads": 2, "key_dim": 4, "dropout": 1.0}, "dropout"),
        ({"num_heads": 2, "key_dim": 4, "position": "absolute"}, "position"),
        ({"num_heads": 2, "key_dim": 4, "similarity": "l2"}, "similarity"),
        ({"num_heads": 2, "key_dim": 4, "block_size": 0}, "block_size"),
        ({"num_heads": 2, "key_dim": 4, "block_size": 4, "key_block_size": 0}, "key_block_size"),
        ({"num_heads": 2, "key_dim": 4, "key_block_size": 8}, "key_block_size"),
        ({"num_heads": 2, "key_dim": 4, "max_distance": 0}, "max_distance"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"{name}="):
        SelfAttention2D(**kwargs)


def test_wrong_rank_names_the_shape():
    with pytest.raises(ValueError, match=r"rank 4 .*Received: query.shape=\(2, 16, 8\)"):
        SelfAttention2D(2, 4)(np.zeros((2, 16, 8), "float32"))
