"""`attention_maps`: channel, spatial and token attention read from any model, by layer, with
the query pixels chosen; and clear errors for what it cannot read."""

import keras
import numpy as np
import pytest

from keras_attn import models, viz
from keras_attn.layers import CBAM, CorrelationMatch2D, CrossAttention2D, SqueezeExcite
from tests.helpers import small_classifier


def layer_inputs(model, layer, images):
    """What `layer` receives inside `model` on `images`, computed with a separate probe."""
    return keras.Model(model.input, layer.input)(images)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------- channel / spatial


def test_se_gates_of_classifier_preset(rng):
    model = models.build_model("attention_cnn_tiny")
    maps = viz.attention_maps(model, rng.uniform(size=(2, 32, 32, 3)).astype("float32"))
    names = [f"attention_cnn_tiny_stage{s}_block1_se" for s in (1, 2, 3)]
    assert list(maps) == names
    for name, channels in zip(names, (16, 32, 64), strict=True):
        assert maps[name].shape == (2, channels)
        assert maps[name].dtype == np.float32
        assert (maps[name] > 0).all() and (maps[name] < 1).all()
        assert maps[name].std() > 1e-4


def test_se_gates_match_numpy_recomputation(images):
    model = small_classifier("se")
    maps = viz.attention_maps(model, images)
    for stage in (1, 2):
        layer = model.get_layer(f"attention_classifier_stage{stage}_block1_se")
        x = np.asarray(layer_inputs(model, layer, images))
        hidden = np.maximum(
            x.mean(axis=(1, 2)) @ np.asarray(layer.reduce.kernel) + np.asarray(layer.reduce.bias),
            0.0,
        )
        expected = sigmoid(hidden @ np.asarray(layer.expand.kernel) + np.asarray(layer.expand.bias))
        np.testing.assert_allclose(maps[layer.name], expected, atol=1e-5)


def test_cbam_channel_and_spatial_maps(images):
    model = small_classifier("cbam")
    maps = viz.attention_maps(model, images)
    assert len(maps) == 4
    for stage, size, channels in ((1, 16, 8), (2, 8, 16)):
        layer = model.get_layer(f"attention_classifier_stage{stage}_block1_cbam")
        assert isinstance(layer, CBAM)
        channel, spatial = maps[f"{layer.name}/channel"], maps[f"{layer.name}/spatial"]
        assert channel.shape == (2, channels)
        assert spatial.shape == (2, size, size, 1)
        for values in (channel, spatial):
            assert (values > 0).all() and (values < 1).all()
        _, expected = layer(layer_inputs(model, layer, images), return_attention_scores=True)
        np.testing.assert_allclose(channel, expected["channel"], atol=1e-6)
        np.testing.assert_allclose(spatial, expected["spatial"], atol=1e-6)


def test_spatial_attention_maps(images):
    maps = viz.attention_maps(small_classifier("spatial"), images)
    assert [m.shape for m in maps.values()] == [(2, 16, 16, 1), (2, 8, 8, 1)]
    for values in maps.values():
        assert (values > 0).all() and (values < 1).all()
        assert values.std() > 1e-4


def test_uint8_images_are_scaled(rng):
    model = small_classifier("se")
    image = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    from_uint8 = viz.attention_maps(model, image)
    from_float = viz.attention_maps(model, image.astype("float32") / 255.0)
    for name, values in from_uint8.items():
        assert values.shape[0] == 1
        np.testing.assert_allclose(values, from_float[name], atol=1e-6)


# --------------------------------------------------------------------------- token attention


def test_self_attention_rows_sum_to_one_and_follow_the_query_pixel(images):
    model = small_classifier([None, "self"])
    layer = model.get_layer("attention_classifier_stage2_block1_self")
    pixels = [(0, 0), (15, 15), (5, 10)]
    maps = viz.attention_maps(model, images, query_pixels=pixels)
    assert list(maps) == [layer.name]
    attention = maps[layer.name]
    assert attention.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(attention.sum(axis=(2, 3)), 1.0, atol=1e-5)

    _, scores = layer(layer_inputs(model, layer, images), return_attention_scores=True)
    averaged = np.asarray(scores).mean(axis=1)
    # Stage 2 has stride 2: image pixel (r, c) falls in grid cell (r // 2, c // 2) of the 8x8 grid.
    for query, (row, col) in enumerate(pixels):
        expected = averaged[:, (row // 2) * 8 + col // 2].reshape(2, 8, 8)
        np.testing.assert_allclose(attention[:, query], expected, atol=1e-6)
    assert not np.allclose(attention[:, 0], attention[:, 1])


def test_default_query_pixel_is_the_centre(images):
    model = small_classifier([None, "self"])
    centre = viz.attention_maps(model, images)
    explicit = viz.attention_maps(model, images, query_pixels=(8, 8))
    corner = viz.attention_maps(model, images, query_pixels=(0, 0))
    name = "attention_classifier_stage2_block1_self"
    assert centre[name].shape == (2, 1, 8, 8)
    np.testing.assert_allclose(centre[name], explicit[name])
    assert not np.allclose(centre[name], corner[name])


def test_non_local_affinities(images):
    maps = viz.attention_maps(small_classifier("nonlocal"), images, query_pixels=[(3, 4)])
    assert [m.shape for m in maps.values()] == [(2, 1, 16, 16), (2, 1, 8, 8)]
    for values in maps.values():
        np.testing.assert_allclose(values.sum(axis=(2, 3)), 1.0, atol=1e-5)
        assert (values > 0).all()


def test_super_resolution_model_with_self_attention(rng):
    model = models.build_model("sr_tiny_x2", attention="self")
    image = rng.uniform(size=(12, 10, 3)).astype("float32")
    before = np.asarray(model(image[None]))
    maps = viz.attention_maps(model, image, query_pixels=[(0, 0), (11, 9)])
    assert list(maps) == [
        "sr_tiny_x2_group1_block1_se",
        "sr_tiny_x2_group1_block2_se",
        "sr_tiny_x2_attention_self",
    ]
    assert maps["sr_tiny_x2_group1_block1_se"].shape == (1, 16)
    attention = maps["sr_tiny_x2_attention_self"]
    assert attention.shape == (1, 2, 12, 10)
    np.testing.assert_allclose(attention.sum(axis=(2, 3)), 1.0, atol=1e-5)
    # The layers are given back untouched: same outputs, no instance-level `call` left behind.
    for layer in model.layers:
        assert "call" not in vars(layer)
    np.testing.assert_allclose(np.asarray(model(image[None])), before, atol=1e-6)


def aligner_like():
    """Two inputs, a shared nested encoder with SE, and cross-attention fixed -> moving."""
    image = keras.Input((16, 16, 1))
    features = keras.layers.Conv2D(8, 3, padding="same", name="conv")(image)
    encoder = keras.Model(image, SqueezeExcite(name="se")(features), name="encoder")
    fixed = keras.Input((16, 16, 1), name="fixed")
    moving = keras.Input((16, 16, 1), name="moving")
    fixed_features = encoder(fixed)
    moving_features = encoder(moving)
    queries = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="down")(fixed_features)
    attended = CrossAttention2D(2, 4, name="cross")(queries, moving_features)
    model = keras.Model([fixed, moving], attended)
    probe = keras.Model([fixed, moving], [queries, moving_features])
    return model, encoder, probe


def test_cross_attention_maps_live_on_the_context_grid(rng):
    model, encoder, probe = aligner_like()
    fixed = rng.uniform(size=(2, 16, 16, 1)).astype("float32")
    moving = rng.uniform(size=(2, 16, 16, 1)).astype("float32")
    maps = viz.attention_maps(model, [fixed, moving], query_pixels=[(6, 9), (0, 0)])
    assert list(maps) == ["encoder/se/0", "encoder/se/1", "cross"]
    attention = maps["cross"]
    assert attention.shape == (2, 2, 16, 16)  # (B, Q, Hc, Wc): the 16x16 moving grid
    np.testing.assert_allclose(attention.sum(axis=(2, 3)), 1.0, atol=1e-5)

    layer = model.get_layer("cross")
    _, scores = layer(*probe([fixed, moving]), return_attention_scores=True)
    averaged = np.asarray(scores).mean(axis=1)
    # The fixed queries are on an 8x8 grid: image pixel (6, 9) is cell (3, 4), token 28.
    np.testing.assert_allclose(attention[:, 0], averaged[:, 28].reshape(2, 16, 16), atol=1e-6)
    np.testing.assert_allclose(attention[:, 1], averaged[:, 0].reshape(2, 16, 16), atol=1e-6)

    # The shared encoder ran twice: once on fixed, once on moving.
    np.testing.assert_allclose(
        maps["encoder/se/0"], viz.attention_maps(encoder, fixed)["se"], atol=1e-6
    )
    np.testing.assert_allclose(
        maps["encoder/se/1"], viz.attention_maps(encoder, moving)["se"], atol=1e-6
    )
    assert not np.allclose(maps["encoder/se/0"], maps["encoder/se/1"])

    as_dict = viz.attention_maps(
        model, {"moving": moving[0], "fixed": fixed[0]}, query_pixels=[(6, 9), (0, 0)]
    )
    np.testing.assert_allclose(as_dict["cross"], attention[:1], atol=1e-6)


def test_correlation_match_global_and_local(rng):
    fixed = keras.Input((8, 8, 1), name="fixed")
    moving = keras.Input((8, 8, 1), name="moving")
    conv = keras.layers.Conv2D(4, 3, padding="same", name="features")
    fixed_features, moving_features = conv(fixed), conv(moving)
    global_match = CorrelationMatch2D(None, name="global")
    local_match = CorrelationMatch2D(1, name="local")
    displacement, _ = global_match(fixed_features, moving_features)
    refined, _ = local_match(fixed_features, moving_features)
    model = keras.Model({"fixed": fixed, "moving": moving}, [displacement, refined])
    images = {name: rng.uniform(size=(2, 8, 8, 1)).astype("float32") for name in model.input}
    maps = viz.attention_maps(model, images, query_pixels=[(4, 4), (0, 0)])
    assert sorted(maps) == ["global", "local"]

    probe = keras.Model(model.input, [fixed_features, moving_features])
    features = probe(images)
    *_, weights = global_match(*features, return_attention_scores=True)
    weights = np.asarray(weights)  # (B, 64 fixed cells, 64 moving cells)
    np.testing.assert_allclose(maps["global"][:, 0], weights[:, 36].reshape(2, 8, 8), atol=1e-6)
    np.testing.assert_allclose(maps["global"][:, 1], weights[:, 0].reshape(2, 8, 8), atol=1e-6)

    *_, window = local_match(*features, return_attention_scores=True)
    window = np.asarray(window).reshape(2, 8, 8, 3, 3)  # (dy, dx) offsets -1..1
    local = maps["local"]
    assert local.shape == (2, 2, 8, 8)
    np.testing.assert_allclose(local[:, 0, 3:6, 3:6], window[:, 4, 4], atol=1e-6)
    np.testing.assert_allclose(local[:, 1, 0:2, 0:2], window[:, 0, 0, 1:, 1:], atol=1e-6)
    assert np.count_nonzero(local[:, 0]) == 2 * 9 and np.count_nonzero(local[:, 1]) == 2 * 4
    np.testing.assert_allclose(local[:, 0].sum(axis=(1, 2)), 1.0, atol=1e-5)


def test_registered_aligner(rng):
    if "aligner_tiny" not in models.list_models("aligner"):
        pytest.skip("no aligner_tiny preset registered")
    model = models.build_model("aligner_tiny")
    height, width, channels = model.input["fixed"].shape[1:]
    pair = {
        name: rng.uniform(size=(height, width, channels)).astype("float32")
        for name in ("fixed", "moving")
    }
    maps = viz.attention_maps(model, pair)
    assert maps, "no attention maps found"
    for name, values in maps.items():
        assert values.shape[0] == 1 and np.isfinite(values).all(), name
        if values.ndim == 4:  # attention / matching rows over a grid
            assert values.sum(axis=(2, 3)).max() <= 1.0 + 1e-5, name


class GatedBlock(keras.layers.Layer):
    """A custom layer that holds an attention layer and calls it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(8, 3, padding="same")
        self.gate = SqueezeExcite(name="gate")

    def call(self, inputs):
        return self.gate(self.conv(inputs))


class SubclassedNet(keras.Model):
    def __init__(self):
        super().__init__(name="net")
        self.block = GatedBlock(name="block")
        self.pool = keras.layers.GlobalAveragePooling2D()

    def call(self, inputs):
        return self.pool(self.block(inputs))


def test_subclassed_model_and_sequential(images):
    net = SubclassedNet()
    outputs = np.asarray(net(images))
    maps = viz.attention_maps(net, images)
    assert list(maps) == ["block/gate"]
    assert maps["block/gate"].shape == (2, 8)
    np.testing.assert_allclose(np.asarray(net(images)), outputs, atol=1e-6)

    sequential = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 1), SqueezeExcite(name="se")]
    )
    assert viz.attention_maps(sequential, images[0])["se"].shape == (1, 4)


def test_layers_selects_by_name_path_or_instance(images):
    model, encoder, _ = aligner_like()
    pair = [images[..., :1], images[..., 1:2]]
    assert list(viz.attention_maps(model, pair, layers="cross")) == ["cross"]
    assert list(viz.attention_maps(model, pair, layers=["encoder/se"])) == [
        "encoder/se/0",
        "encoder/se/1",
    ]
    selected = viz.attention_maps(model, pair, layers=[encoder.get_layer("se"), "cross"])
    assert list(selected) == ["encoder/se/0", "encoder/se/1", "cross"]
    with pytest.raises(ValueError, match="'nope' is not an attention layer.*encoder/se"):
        viz.attention_maps(model, pair, layers="nope")


# --------------------------------------------------------------------------- bad input


def test_model_without_attention_layers_is_refused(images):
    model = models.attention_classifier((16, 16, 3), 3, attention=None, widths=(4,), depths=(1,))
    with pytest.raises(ValueError, match="no keras_attn attention layers"):
        viz.attention_maps(model, images)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((16, 16), "float32"), "rank 3"),
        (np.zeros((1, 1, 16, 16, 3), "float32"), "rank 3"),
        (np.zeros((16, 16, 4), "float32"), "does not fit"),
        (np.full((16, 16, 3), 255.0, "float32"), r"in \[0, 1\]"),
        (np.full((16, 16, 3), np.nan, "float32"), "NaN"),
        (np.zeros((16, 16, 3), "int64"), "uint8 or float"),
    ],
)
def test_bad_images_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        viz.attention_maps(small_classifier("se"), bad)


def test_bad_query_pixels_and_inputs_are_refused(images):
    model = small_classifier([None, "self"])
    with pytest.raises(ValueError, match="inside the 16x16"):
        viz.attention_maps(model, images, query_pixels=(16, 0))
    with pytest.raises(ValueError, match="query_pixels must be"):
        viz.attention_maps(model, images, query_pixels=[(1.5, 2.0)])
    two_inputs, _, _ = aligner_like()
    with pytest.raises(ValueError, match="has 2 inputs"):
        viz.attention_maps(two_inputs, images[..., :1])
    with pytest.raises(ValueError, match="one entry per model input"):
        viz.attention_maps(two_inputs, {"fixed": images[..., :1]})
    with pytest.raises(ValueError, match="same batch size"):
        viz.attention_maps(two_inputs, [images[..., :1], images[:1, ..., :1]])
