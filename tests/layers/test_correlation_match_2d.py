import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attn.layers import CorrelationMatch2D
from tests.helpers import tflite_outputs

SHIFT = (2, 1)  # (dx, dy) in cells: fixed(y, x) is found at moving(y + 1, x + 2)
INTERIOR = (slice(None), slice(0, 7), slice(0, 6))  # fixed cells whose match is not wrapped


def shifted_pair(rng, batch=2, size=8, channels=32):
    """Random features and a copy rolled by SHIFT: moving(y + dy, x + dx) = fixed(y, x)."""
    fixed = rng.normal(size=(batch, size, size, channels)).astype("float32")
    moving = np.roll(fixed, (SHIFT[1], SHIFT[0]), axis=(1, 2))
    return fixed, moving


def test_global_match_recovers_the_shift(rng):
    fixed, moving = shifted_pair(rng)
    displacement, confidence = CorrelationMatch2D()(fixed, moving)
    displacement, confidence = np.asarray(displacement), np.asarray(confidence)
    assert displacement.shape == (2, 8, 8, 2) and confidence.shape == (2, 8, 8, 1)
    assert displacement.dtype == confidence.dtype == np.float32
    np.testing.assert_allclose(
        displacement[INTERIOR], np.broadcast_to(SHIFT, (2, 7, 6, 2)), atol=0.05
    )
    # global matching also finds the wrapped-around copies, 6 cells to the left / 7 up
    np.testing.assert_allclose(displacement[:, :7, 6:, 0], SHIFT[0] - 8, atol=0.05)
    np.testing.assert_allclose(displacement[:, 7:, :6, 1], SHIFT[1] - 8, atol=0.05)
    assert confidence.min() > 0.9


def test_local_match_recovers_the_shift_inside_the_radius(rng):
    fixed, moving = shifted_pair(rng)
    displacement, confidence = CorrelationMatch2D(radius=3)(fixed, moving)
    displacement, confidence = np.asarray(displacement), np.asarray(confidence)
    np.testing.assert_allclose(
        displacement[INTERIOR], np.broadcast_to(SHIFT, (2, 7, 6, 2)), atol=0.05
    )
    assert confidence[INTERIOR].min() > 0.9
    # the wrapped copies are outside the window: every match found there is less confident
    assert confidence[:, :, 6:].max() < confidence[INTERIOR].min()


def test_soft_argmax_over_all_candidates_is_pulled_towards_their_centre(rng):
    fixed, moving = shifted_pair(rng)
    truth = np.broadcast_to(SHIFT, (2, 7, 6, 2))

    # local: the candidates are offsets centred on 0, so the all-candidates mean shrinks to 0
    peak = np.asarray(CorrelationMatch2D(3, temperature=3.0)(fixed, moving)[0])[INTERIOR]
    mean = np.asarray(CorrelationMatch2D(3, temperature=3.0, peak_radius=None)(fixed, moving)[0])
    mean = mean[INTERIOR]
    assert np.abs(peak - truth).max() < 0.25
    assert np.all(mean > 0) and np.all(mean < truth - 0.25)

    # global: the candidates are every cell, so each match is pulled towards the grid centre
    peak = np.asarray(CorrelationMatch2D(temperature=3.0)(fixed, moving)[0])[INTERIOR]
    mean = np.asarray(CorrelationMatch2D(temperature=3.0, peak_radius=None)(fixed, moving)[0])
    mean = mean[INTERIOR]
    ys, xs = np.mgrid[0:7, 0:6]
    matched = np.stack([xs, ys], axis=-1) + truth
    towards_centre = np.sum((mean - truth) * (3.5 - matched), axis=-1)
    assert towards_centre.min() > 0.1
    assert np.abs(mean - truth).mean() > 4 * np.abs(peak - truth).mean()


def test_featureless_input_gives_low_confidence():
    flat = np.ones((1, 8, 8, 16), "float32")
    _, confidence = CorrelationMatch2D()(flat, flat)
    # uniform attention over 64 cells: at most 9 of them lie around the peak
    assert np.asarray(confidence).max() <= 9 / 64 + 1e-6
    _, confidence = CorrelationMatch2D(radius=2)(flat, flat)
    assert np.asarray(confidence)[:, 2:-2, 2:-2].max() <= 9 / 25 + 1e-6


@pytest.mark.parametrize("radius, weights_shape", [(None, (2, 48, 48)), (2, (2, 6, 8, 25))])
def test_attention_scores(radius, weights_shape, rng):
    fixed = rng.normal(size=(2, 6, 8, 4)).astype("float32")
    moving = rng.normal(size=(2, 6, 8, 4)).astype("float32")
    layer = CorrelationMatch2D(radius)
    displacement, confidence, weights = layer(fixed, moving, return_attention_scores=True)
    assert tuple(weights.shape) == weights_shape
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(displacement, layer(fixed, moving)[0])
    # symbolic: the same shapes, batch left open
    symbolic = [keras.Input((6, 8, 4)), keras.Input((6, 8, 4))]
    outputs = layer(*symbolic, return_attention_scores=True)
    assert [tuple(t.shape) for t in outputs] == [
        (None, 6, 8, 2),
        (None, 6, 8, 1),
        (None,) + weights_shape[1:],
    ]


def test_confidence_is_the_mass_around_the_peak(rng):
    fixed = rng.normal(size=(1, 5, 5, 3)).astype("float32")
    moving = rng.normal(size=(1, 5, 5, 3)).astype("float32")
    _, confidence, weights = CorrelationMatch2D(temperature=2.0)(
        fixed, moving, return_attention_scores=True
    )
    weights = np.asarray(weights)[0].reshape(25, 5, 5)
    expected = []
    for query in weights:
        y, x = np.unravel_index(np.argmax(query), query.shape)
        expected.append(query[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].sum())
    np.testing.assert_allclose(np.asarray(confidence).reshape(25), expected, atol=1e-5)


def local_reference(fixed, moving, radius, scale, peak_radius):
    """NumPy: the local layer's weights, displacement and confidence, from their definition."""

    def unit(x):
        return x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-6)

    fixed, moving = unit(fixed.astype("float64")), unit(moving.astype("float64"))
    r = radius
    padded = np.pad(moving, ((0, 0), (r, r), (r, r), (0, 0)))
    height, width = fixed.shape[1:3]
    offsets = [(dx, dy) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    logits = np.stack(
        [
            (fixed * padded[:, r + dy : r + dy + height, r + dx : r + dx + width]).sum(-1)
            for dx, dy in offsets
        ],
        axis=-1,
    )
    weights = np.exp(scale * (logits - logits.max(-1, keepdims=True)))
    weights /= weights.sum(-1, keepdims=True)
    offsets = np.asarray(offsets, "float64")
    best = offsets[np.argmax(weights, axis=-1)]
    near = np.abs(offsets - best[..., None, :]).max(-1) <= peak_radius
    kept = weights * near
    mass = kept.sum(-1)
    displacement = (kept / mass[..., None]) @ offsets
    return weights, displacement, mass[..., None]


# radius 2 slices per offset, radius 3 and more multiply whole rows: both against the definition,
# a radius wider than the grid and a non-square grid among them
@pytest.mark.parametrize(
    "radius, shape", [(1, (2, 5, 7, 3)), (2, (1, 9, 4, 16)), (3, (2, 6, 5, 8)), (6, (1, 4, 9, 4))]
)
def test_local_matching_matches_numpy(radius, shape, rng):
    fixed = rng.normal(size=shape).astype("float32")
    moving = rng.normal(size=shape).astype("float32")
    moving[0, :2] = 0.0  # featureless cells: ties, resolved to the first offset
    layer = CorrelationMatch2D(radius, temperature=6.0)
    displacement, confidence, weights = layer(fixed, moving, return_attention_scores=True)
    expected = local_reference(fixed, moving, radius, 6.0, peak_radius=1)
    for got, want in zip((weights, displacement, confidence), expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)


@pytest.mark.parametrize("radius", [None, 2])
def test_dynamic_spatial_size(radius, rng):
    fixed, moving = shifted_pair(rng, channels=8)
    layer = CorrelationMatch2D(radius)
    inputs = [keras.Input((None, None, 8)), keras.Input((None, None, 8))]
    model = keras.Model(inputs, layer(*inputs))
    assert tuple(model.outputs[0].shape) == (None, None, None, 2)
    for got, expected in zip(model([fixed, moving]), layer(fixed, moving), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_learned_scale_is_the_only_weight_and_trains(rng):
    fixed, moving = shifted_pair(rng, batch=1, channels=8)
    layer = CorrelationMatch2D(radius=2, temperature=4.0)
    layer(fixed, moving)
    assert [w.name for w in layer.trainable_weights] == ["log_scale"]
    np.testing.assert_allclose(np.exp(layer.log_scale.numpy()), 4.0, rtol=1e-6)
    with tf.GradientTape() as tape:
        _, confidence = layer(fixed, moving)
        loss = -tf.reduce_mean(confidence)
    gradient = tape.gradient(loss, layer.log_scale)
    assert gradient is not None and float(gradient) < 0  # a sharper match is more confident


def _with_scale(layer, fixed, moving, value):
    layer(fixed, moving)
    layer.log_scale.assign(np.log(value))
    return layer


@pytest.mark.parametrize("radius", [None, 2])
def test_config_and_keras_round_trip(radius, tmp_path, rng):
    fixed, moving = shifted_pair(rng, channels=8)
    layer = CorrelationMatch2D(radius, temperature=5.0, peak_radius=2, name="match")
    config = layer.get_config()
    assert (config["radius"], config["temperature"], config["peak_radius"]) == (radius, 5.0, 2)
    clone = CorrelationMatch2D.from_config(config)
    assert clone.get_config() == config
    _with_scale(layer, fixed, moving, 7.0)
    _with_scale(clone, fixed, moving, 7.0)
    for a, b in zip(clone(fixed, moving), layer(fixed, moving), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)

    inputs = [keras.Input((8, 8, 8), name="fixed"), keras.Input((8, 8, 8), name="moving")]
    model = keras.Model(inputs, layer(*inputs))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")  # safe_mode=True
    np.testing.assert_allclose(
        reloaded.get_layer("match").log_scale.numpy(), np.log(7.0), rtol=1e-6
    )
    for a, b in zip(reloaded([fixed, moving]), model([fixed, moving]), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_float32_outputs_under_mixed_precision(rng):
    # regression: the float32 `log_scale` used to be autocast to float16 (error in Mul)
    fixed, moving = shifted_pair(rng, channels=8)
    expected = CorrelationMatch2D(radius=2)(fixed, moving)
    keras.config.set_dtype_policy("mixed_float16")
    layer = CorrelationMatch2D(radius=2)
    displacement, confidence = layer(fixed.astype("float16"), moving.astype("float16"))
    assert displacement.dtype == confidence.dtype == "float32"
    assert layer.log_scale.dtype == "float32"
    np.testing.assert_allclose(displacement, expected[0], atol=0.02)
    np.testing.assert_allclose(confidence, expected[1], atol=0.02)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"radius": 0}, r"radius must be a positive integer. Received: radius=0"),
        ({"radius": 1.5}, r"radius must be a positive integer"),
        ({"radius": True}, r"radius must be a positive integer"),
        ({"temperature": 0}, r"temperature must be a positive number. Received: temperature=0"),
        ({"temperature": -1.0}, r"temperature must be a positive number"),
        ({"temperature": "hot"}, r"temperature must be a positive number"),
        (
            {"temperature": True},
            r"temperature must be a positive number. Received: temperature=True",
        ),
        ({"peak_radius": -1}, r"peak_radius must be None or a non-negative integer"),
        ({"peak_radius": True}, r"Received: peak_radius=True"),
        ({"peak_radius": 1.0}, r"Received: peak_radius=1.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CorrelationMatch2D(**kwargs)


def test_bad_inputs_are_named():
    layer = CorrelationMatch2D(name="match")
    with pytest.raises(
        ValueError, match=r"'match' needs fixed and moving features on the same grid"
    ):
        layer(np.zeros((1, 8, 8, 4), "float32"), np.zeros((1, 8, 6, 4), "float32"))
    with pytest.raises(ValueError, match="same grid"):
        CorrelationMatch2D()(np.zeros((1, 8, 8, 4), "float32"), np.zeros((1, 8, 8, 5), "float32"))
    with pytest.raises(ValueError, match=r"`fixed` of rank 4"):
        CorrelationMatch2D()(np.zeros((8, 8, 4), "float32"), np.zeros((8, 8, 4), "float32"))


def _check_tflite(layer, rng):
    fixed, moving = shifted_pair(rng, batch=1, channels=8)
    inputs = [keras.Input((8, 8, 8), name="fixed"), keras.Input((8, 8, 8), name="moving")]
    model = keras.Model(inputs, layer(*inputs))
    expected = [np.asarray(t) for t in model([fixed, moving])]
    outputs, ops = tflite_outputs(model, [fixed, moving])
    assert not any(op.startswith("Flex") for op in ops), ops
    by_channels = {output.shape[-1]: output for output in outputs}
    for value in expected:
        np.testing.assert_allclose(by_channels[value.shape[-1]], value, atol=1e-4, rtol=0)
    assert np.abs(expected[0]).max() > 1.0  # real displacements, not zeros


@pytest.mark.parametrize("radius, peak_radius", [(None, 1), (2, 1), (2, None), (3, 1)])
def test_tflite_builtins_match_keras(radius, peak_radius, rng):
    _check_tflite(CorrelationMatch2D(radius, peak_radius=peak_radius), rng)
