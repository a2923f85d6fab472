"""Property tests (hypothesis): random shapes and values keep each layer's contract.

Every property holds for all inputs, not just the hand-picked ones of the per-layer tests:
output shapes, finite outputs for inputs from all-zero to large (1e3), gates that only shrink,
blockwise attention equal to full attention for any tiling, and warps that are exact shifts
for integer flows. Examples are few and derandomised, so the file is quick and the same in CI.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_attn.layers import (
    CBAM,
    CorrelationMatch2D,
    NonLocal2D,
    PixelShuffle,
    SelfAttention2D,
    SqueezeExcite,
    Warp,
)

# A 1x1 map has a single token: softmax over one key is 1 by design, and Keras warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# From a constant (all-zero) map to values far outside any normalised feature range.
SCALES = st.sampled_from([0.0, 1e-3, 1.0, 30.0, 1e3])


@st.composite
def feature_maps(draw, max_side=7, max_channels=8, min_channels=1):
    """A float32 `(B, H, W, C)` map of normal noise times a drawn scale (with its seed)."""
    shape = (
        draw(st.integers(1, 2)),
        draw(st.integers(1, max_side)),
        draw(st.integers(1, max_side)),
        draw(st.integers(min_channels, max_channels)),
    )
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(SCALES)
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


def randomise_weights(layer, seed: int) -> None:
    """Replaces zero-initialised weights (e.g. NonLocal2D's output projection) by noise, so
    the layer's computation reaches its output instead of an identity shortcut."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()]
    )


@SETTINGS
@given(x=feature_maps(), ratio=st.sampled_from([0.25, 0.5, 1.0]))
def test_squeeze_excite_gates_only_shrink(x, ratio):
    out, gates = SqueezeExcite(ratio)(x, return_attention_scores=True)
    out, gates = np.asarray(out), np.asarray(gates)
    assert out.shape == x.shape and gates.shape == (x.shape[0], x.shape[-1])
    assert np.isfinite(out).all()
    assert ((gates >= 0) & (gates <= 1)).all()
    # out = x * gate with a gate in [0, 1]: same sign, never larger.
    assert (np.abs(out) <= np.abs(x) * (1 + 1e-6)).all() and (out * x >= 0).all()
    np.testing.assert_allclose(out, x * gates[:, None, None, :], rtol=1e-6, atol=0)


@SETTINGS
@given(x=feature_maps(), kernel_size=st.sampled_from([1, 3, 7]))
def test_cbam_gates_only_shrink(x, kernel_size):
    out, maps = CBAM(ratio=0.5, kernel_size=kernel_size)(x, return_attention_scores=True)
    out = np.asarray(out)
    assert out.shape == x.shape and np.isfinite(out).all()
    assert tuple(maps["spatial"].shape) == x.shape[:-1] + (1,)
    assert (np.abs(out) <= np.abs(x) * (1 + 1e-6)).all() and (out * x >= 0).all()


@SETTINGS
@given(
    x=feature_maps(),
    num_heads=st.integers(1, 3),
    key_dim=st.integers(1, 5),
    output_dim=st.sampled_from([None, 3]),
    position=st.sampled_from(["relative", "sinusoidal", None]),
    similarity=st.sampled_from(["dot", "cosine"]),
)
def test_self_attention_shapes_finiteness_and_distributions(
    x, num_heads, key_dim, output_dim, position, similarity
):
    layer = SelfAttention2D(
        num_heads, key_dim, output_dim=output_dim, position=position, similarity=similarity
    )
    out, scores = layer(x, return_attention_scores=True)
    out, scores = np.asarray(out), np.asarray(scores)
    batch, height, width, channels = x.shape
    assert out.shape == (batch, height, width, output_dim or channels)
    assert scores.shape == (batch, num_heads, height * width, height * width)
    assert np.isfinite(out).all() and np.isfinite(scores).all()
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)


@SETTINGS
@given(
    x=feature_maps(),
    mode=st.sampled_from(["embedded_gaussian", "gaussian", "dot", "concatenation"]),
    weight_seed=st.integers(0, 1000),
)
def test_non_local_shapes_and_finiteness(x, mode, weight_seed):
    layer = NonLocal2D(inter_channels=4, mode=mode)
    layer(x)
    randomise_weights(layer, weight_seed)
    out, affinity = layer(x, return_attention_scores=True)
    out, affinity = np.asarray(out), np.asarray(affinity)
    tokens = x.shape[1] * x.shape[2]
    assert out.shape == x.shape and affinity.shape == (x.shape[0], 1, tokens, tokens)
    assert np.isfinite(out).all() and np.isfinite(affinity).all()
    if mode in ("embedded_gaussian", "gaussian"):
        np.testing.assert_allclose(affinity.sum(-1), 1.0, atol=1e-5)
    elif mode == "concatenation":  # relu(...) / N
        assert (affinity >= 0).all()


@SETTINGS
@given(x=feature_maps(max_channels=3), scale=st.integers(1, 4))
def test_pixel_shuffle_is_depth_to_space(x, scale):
    channels = x.shape[-1] * scale * scale
    inputs = np.repeat(x, scale * scale, axis=-1) + np.arange(channels, dtype="float32")
    out = np.asarray(PixelShuffle(scale)(inputs))
    batch, height, width, _ = inputs.shape
    assert out.shape == (batch, height * scale, width * scale, x.shape[-1])
    # tf.nn.depth_to_space needs a block of at least 2; scale 1 is the identity.
    expected = inputs if scale == 1 else tf.nn.depth_to_space(inputs, scale).numpy()
    np.testing.assert_array_equal(out, expected)


@SETTINGS
@given(
    fixed=feature_maps(max_side=6, min_channels=2),
    radius=st.sampled_from([None, 1, 2]),
    moving_seed=st.integers(0, 2**31 - 1),
)
def test_correlation_match_displacements_stay_on_the_grid(fixed, radius, moving_seed):
    moving = np.random.default_rng(moving_seed).normal(size=fixed.shape).astype("float32")
    displacement, confidence = CorrelationMatch2D(radius)(fixed, moving)
    displacement, confidence = np.asarray(displacement), np.asarray(confidence)
    batch, height, width, _ = fixed.shape
    assert displacement.shape == (batch, height, width, 2)
    assert confidence.shape == (batch, height, width, 1)
    assert np.isfinite(displacement).all() and np.isfinite(confidence).all()
    assert ((confidence >= 0) & (confidence <= 1 + 1e-5)).all()
    if radius is None:  # the match is a mean of moving positions: on the moving grid
        rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        matched_x, matched_y = cols + displacement[..., 0], rows + displacement[..., 1]
        assert (matched_x >= -1e-4).all() and (matched_x <= width - 1 + 1e-4).all()
        assert (matched_y >= -1e-4).all() and (matched_y <= height - 1 + 1e-4).all()
    else:
        assert (np.abs(displacement) <= radius + 1e-4).all()


@SETTINGS
@given(
    x=feature_maps(max_side=8),
    block_size=st.integers(1, 70),
    key_block_size=st.one_of(st.none(), st.integers(1, 70)),
    position=st.sampled_from(["relative", "sinusoidal", None]),
    similarity=st.sampled_from(["dot", "cosine"]),
)
def test_blockwise_self_attention_equals_full(x, block_size, key_block_size, position, similarity):
    # Large inputs make dot-product logits ~1e6 and the softmax one-hot, which hides tiling
    # errors; unit-scale features keep every key's weight visible.
    x = x / max(1.0, float(np.abs(x).max()))
    full = SelfAttention2D(2, 3, position=position, similarity=similarity)
    expected = np.asarray(full(x))
    blocked = SelfAttention2D(
        2,
        3,
        position=position,
        similarity=similarity,
        block_size=block_size,
        key_block_size=key_block_size,
    )
    blocked(x)
    blocked.set_weights(full.get_weights())
    np.testing.assert_allclose(np.asarray(blocked(x)), expected, atol=1e-4, rtol=0)


@SETTINGS
@given(moving=feature_maps(), fill_mode=st.sampled_from(["constant", "nearest"]))
def test_warp_by_zero_flow_is_identity(moving, fill_mode):
    flow = np.zeros(moving.shape[:3] + (2,), "float32")
    np.testing.assert_array_equal(np.asarray(Warp(fill_mode)([moving, flow])), moving)


@SETTINGS
@given(
    moving=feature_maps(max_side=8),
    shift=st.tuples(st.integers(-9, 9), st.integers(-9, 9)),
    fill_value=st.sampled_from([0.0, -2.5]),
)
def test_warp_by_integer_flow_is_a_shift(moving, shift, fill_value):
    """warped(y, x) = moving(y + v, x + u): np.roll inside, fill_value where it left the map."""
    u, v = shift
    batch, height, width, _ = moving.shape
    flow = np.zeros((batch, height, width, 2), "float32")
    flow[..., 0], flow[..., 1] = u, v
    warped = np.asarray(Warp("constant", fill_value=fill_value)([moving, flow]))
    rolled = np.roll(moving, (-v, -u), axis=(1, 2))
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    inside = (rows + v >= 0) & (rows + v < height) & (cols + u >= 0) & (cols + u < width)
    np.testing.assert_allclose(warped[:, inside], rolled[:, inside], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(warped[:, ~inside], fill_value)


def test_hypothesis_draws_cover_edge_cases():
    """The strategies above reach 1x1 maps, one channel and all-zero inputs (the edge cases
    where pooling, normalisation and softmax degenerate)."""
    seen = []

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(x=feature_maps())
    def collect(x):
        seen.append(x)

    collect()
    assert any(x.shape[1:3] == (1, 1) for x in seen)
    assert any(x.shape[-1] == 1 for x in seen)
    assert any(not x.any() for x in seen)
