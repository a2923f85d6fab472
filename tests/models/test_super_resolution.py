import keras
import numpy as np
import pytest
import skimage.data
import skimage.transform

from keras_attn import models
from keras_attn.layers import CBAM, NonLocal2D, PixelShuffle, SelfAttention2D, SqueezeExcite
from keras_attn.layers.registry import attention_name
from keras_attn.models.super_resolution import super_resolution, upscale
from tests.helpers import tflite_outputs

TINY = {"channels": 8, "num_groups": 1, "blocks_per_group": 1}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_any_size_rgb_in_rgb_out(scale, rng):
    model = super_resolution(scale, **TINY)
    x = rng.uniform(size=(2, 7, 11, 3)).astype("float32")
    y = np.asarray(model(x))
    assert y.shape == (2, 7 * scale, 11 * scale, 3)
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_new_model_starts_as_bilinear_upsampling(rng):
    x = rng.uniform(size=(1, 8, 8, 3)).astype("float32")
    y = super_resolution(2, **TINY)(x)
    expected = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_structure_names_and_attention_stage():
    model = super_resolution(
        2, channels=8, num_groups=2, blocks_per_group=2, attention="self", name="net"
    )
    se = [layer for layer in model.layers if isinstance(layer, SqueezeExcite)]
    assert [layer.name for layer in se] == [
        "net_group1_block1_se",
        "net_group1_block2_se",
        "net_group2_block1_se",
        "net_group2_block2_se",
    ]
    attention = model.get_layer("net_attention_self")
    assert isinstance(attention, SelfAttention2D) and attention.block_size == 256
    assert isinstance(model.get_layer("net_pixel_shuffle"), PixelShuffle)


@pytest.mark.parametrize(
    "attention, layer_cls",
    [("nonlocal", NonLocal2D), ("CBAM", CBAM), (SqueezeExcite, SqueezeExcite)],
)
def test_attention_stage_comes_from_the_layer_registry(attention, layer_cls, rng):
    model = super_resolution(2, **TINY, attention=attention, name="net")
    stages = [layer for layer in model.layers if "_attention_" in layer.name]
    assert [type(layer) for layer in stages] == [layer_cls]
    assert stages[0].name == f"net_attention_{attention_name(layer_cls)}"
    # the stage sits between the residual groups and the body convolution
    assert stages[0].input is model.get_layer("net_group1_add").output
    assert model.get_layer("net_body_conv").input is stages[0].output
    x = rng.uniform(size=(1, 6, 7, 3)).astype("float32")
    assert model(x).shape == (1, 12, 14, 3)


@pytest.mark.parametrize("name", models.list_models("sr"))
def test_every_registered_preset_builds_trains_and_round_trips(name, tmp_path, rng):
    if not name.endswith("x2") and "tiny" not in name:
        pytest.skip("one scale per size keeps the sweep short; tiny covers every scale")
    model = models.build_model(name)
    scale = int(name[-1])
    x = rng.uniform(size=(2, 12, 12, 3)).astype("float32")
    target = rng.uniform(size=(2, 12 * scale, 12 * scale, 3)).astype("float32")
    model.compile(optimizer="adam", loss="mae")
    assert np.isfinite(model.train_on_batch(x, target))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded(x), model(x), atol=1e-6)


def test_tflite_builtins_match_keras(rng):
    model = super_resolution(3, channels=8, num_groups=1, blocks_per_group=2, attention="nonlocal")
    model.get_layer("sr_upsample_conv").kernel.assign(
        rng.normal(scale=0.1, size=model.get_layer("sr_upsample_conv").kernel.shape)
    )
    x = rng.uniform(size=(1, 10, 9, 3)).astype("float32")
    (output,), ops = tflite_outputs(model, [x])
    assert not any(op.startswith("Flex") for op in ops)
    np.testing.assert_allclose(output, model(x), atol=1e-4)


def test_bad_builder_arguments():
    with pytest.raises(ValueError, match="scale="):
        super_resolution(5)
    with pytest.raises(ValueError, match=r"Valid names: \[.*Received: attention='bogus'"):
        super_resolution(2, attention="bogus")
    with pytest.raises(ValueError, match="channels="):
        super_resolution(2, channels=0)
    with pytest.raises(ValueError, match="Unknown model 'sr_huge_x2'"):
        models.build_model("sr_huge_x2")


# --------------------------------------------------------------------------- upscale


@pytest.fixture(scope="module")
def trained_like_model():
    """A tiny model with a non-zero residual, so tiles and seams actually matter."""
    keras.utils.set_random_seed(3)
    model = super_resolution(2, channels=8, num_groups=1, blocks_per_group=2)
    conv = model.get_layer("sr_upsample_conv")
    conv.kernel.assign(np.random.default_rng(1).normal(scale=0.05, size=conv.kernel.shape))
    return model


def test_upscale_keeps_dtype_and_layout(trained_like_model):
    photo = skimage.data.astronaut()[:40, :50]
    out = upscale(trained_like_model, photo)
    assert out.dtype == np.uint8 and out.shape == (80, 100, 3)
    gray = skimage.data.camera()[:30, :20]
    out_gray = upscale(trained_like_model, gray)
    assert out_gray.dtype == np.uint8 and out_gray.shape == (60, 40)
    out_float = upscale(trained_like_model, photo.astype("float32") / 255)
    assert out_float.dtype == np.float32
    np.testing.assert_allclose(out_float * 255, out, atol=1.0)


def test_upscale_takes_paths_pil_batches_and_rgba(trained_like_model, tmp_path):
    from PIL import Image

    photo = skimage.data.astronaut()[:40, :50]
    expected = upscale(trained_like_model, photo)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    np.testing.assert_array_equal(upscale(trained_like_model, tmp_path / "photo.png"), expected)
    np.testing.assert_array_equal(
        upscale(trained_like_model, str(tmp_path / "photo.png")), expected
    )
    np.testing.assert_array_equal(upscale(trained_like_model, Image.fromarray(photo)), expected)
    gray = upscale(trained_like_model, Image.fromarray(photo[..., 0]))  # mode L stays gray
    assert gray.shape == (80, 100) and gray.dtype == np.uint8

    batch = upscale(trained_like_model, np.stack([photo, photo[::-1]]))
    assert batch.shape == (2, 80, 100, 3)
    np.testing.assert_array_equal(batch[0], expected)
    np.testing.assert_array_equal(batch[1], upscale(trained_like_model, photo[::-1]))

    alpha = np.zeros((40, 50, 1), "uint8")
    alpha[:, 25:] = 255  # right half opaque
    rgba = upscale(trained_like_model, Image.fromarray(np.concatenate([photo, alpha], -1)))
    assert rgba.shape == (80, 100, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., :3], expected)
    assert (rgba[:, :40, 3] == 0).all() and (rgba[:, 60:, 3] == 255).all()

    with pytest.raises(ValueError, match="does not exist"):
        upscale(trained_like_model, tmp_path / "missing.png")


def test_tiled_upscale_matches_untiled_and_has_no_seams(trained_like_model):
    photo = skimage.transform.resize(skimage.data.astronaut(), (150, 130)).astype("float32")
    full = upscale(trained_like_model, photo)
    tiled = upscale(trained_like_model, photo, tile=48, overlap=16)
    assert tiled.shape == full.shape
    difference = np.abs(tiled - full)
    # Measured: mean 2.6e-4, max 4.3e-3 (without the zero-weight tile margins: 2.4e-3 / 0.05).
    assert difference.mean() < 1e-3
    assert difference.max() < 0.01


def test_self_ensemble_averages_the_eight_flips_and_turns(trained_like_model):
    photo = skimage.transform.resize(skimage.data.astronaut(), (30, 44)).astype("float32")
    expected = []
    for turns in range(4):
        for flip in (False, True):
            moved = np.rot90(photo, turns)
            moved = moved[:, ::-1] if flip else moved
            out = upscale(trained_like_model, np.ascontiguousarray(moved))
            expected.append(np.rot90(out[:, ::-1] if flip else out, -turns))
    ensemble = upscale(trained_like_model, photo, self_ensemble=True)
    assert ensemble.shape == (60, 88, 3)
    np.testing.assert_allclose(ensemble, np.mean(expected, axis=0), atol=1e-6)
    assert np.abs(ensemble - upscale(trained_like_model, photo)).max() > 1e-3  # not a no-op
    # a model that commutes with flips and turns (pixel repetition) is left unchanged
    nearest = lambda x: np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # noqa: E731
    np.testing.assert_allclose(
        upscale(nearest, photo, self_ensemble=True), upscale(nearest, photo), atol=1e-6
    )
    large = skimage.transform.resize(skimage.data.astronaut(), (150, 130)).astype("float32")
    tiled = upscale(trained_like_model, large, tile=48, overlap=16, self_ensemble=True)
    whole = upscale(trained_like_model, large, self_ensemble=True)
    assert np.abs(tiled - whole).mean() < 1e-3  # as without the ensemble (measured there)
    batch = upscale(trained_like_model, np.stack([photo, photo]), self_ensemble=True)
    np.testing.assert_allclose(batch[1], ensemble, atol=1e-6)
    with pytest.raises(ValueError, match="self_ensemble must be True or False"):
        upscale(trained_like_model, photo, self_ensemble="yes")


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((4, 4, 5), "uint8"), "must have 1 or 3 channels"),
        (np.zeros((2, 2, 4, 4, 3), "uint8"), "rank 2"),
        (np.zeros((0, 4, 3), "uint8"), "empty"),
        (np.full((4, 4, 3), np.nan, "float32"), "NaN"),
        (np.full((4, 4, 3), 200.0, "float32"), r"in \[0, 1\]"),
        (np.zeros((4, 4, 3), "int64"), "uint8, uint16 or float"),
    ],
)
def test_upscale_bad_images(trained_like_model, image, message):
    with pytest.raises(ValueError, match=message):
        upscale(trained_like_model, image)


def test_upscale_bad_tiles(trained_like_model):
    photo = np.zeros((20, 20, 3), "uint8")
    with pytest.raises(ValueError, match="tile="):
        upscale(trained_like_model, photo, tile=4)
    with pytest.raises(ValueError, match="overlap="):
        upscale(trained_like_model, photo, tile=16, overlap=8)
