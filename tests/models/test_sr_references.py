"""The keras.io reference SR networks (ESPCN, EDSR) at the smallest size."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attn.models.sr_references import edsr, espcn
from tests.helpers import tflite_outputs

TINY = {"espcn": {"channels": 8}, "edsr": {"channels": 8, "num_blocks": 2}}
BUILDERS = {"espcn": espcn, "edsr": edsr}


def _tiny(family, scale, skip, name="ref"):
    return BUILDERS[family](scale, skip=skip, name=name, **TINY[family])


def _train_step(model, image, rng, run_eagerly):
    """One Adam step on an L1 loss: the loss is finite and every weight moves."""
    target = rng.uniform(size=model.compute_output_shape(image.shape)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae", run_eagerly=run_eagerly)
    before = [w.numpy() for w in model.trainable_weights]
    assert np.isfinite(model.train_on_batch(image, target))
    after = [w.numpy() for w in model.trainable_weights]
    assert all(not np.allclose(b, a) for b, a in zip(before, after, strict=True))


def _weights(model):
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("family", ["espcn", "edsr"])
def test_shapes_range_training_and_reload(rng, tmp_path, family, scale, skip):
    model = _tiny(family, scale, skip)
    assert [t.name for t in model.inputs] == ["image"]
    assert all(layer.name.startswith("ref_") for layer in model.layers[1:])
    assert tuple(model.output.shape) == (None, None, None, 3)

    # Any H, W: (B, H, W, 3) -> (B, s*H, s*W, 3) in [0, 1], not constant.
    for shape in [(2, 5, 7, 3), (1, 6, 4, 3)]:
        image = rng.uniform(size=shape).astype("float32")
        output = np.asarray(model(image))
        assert output.shape == (shape[0], scale * shape[1], scale * shape[2], 3)
        assert output.min() >= 0.0 and output.max() <= 1.0
        assert output.std() > 1e-4

    # One (eager, to keep the suite fast) training step changes every weight.
    _train_step(model, image, rng, run_eagerly=True)

    # .keras round trip with safe_mode=True (no Lambda layers) gives equal outputs.
    expected = np.asarray(model(image))
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded(image), expected, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("family", ["espcn", "edsr"])
def test_skip_adds_bilinear_upsampling_and_output_is_clipped(rng, family, scale):
    image = rng.uniform(size=(1, 4, 6, 3)).astype("float32")
    size = (4 * scale, 6 * scale)
    bilinear = tf.image.resize(image, size, method="bilinear").numpy()
    for skip, expected in [(False, np.zeros_like(bilinear)), (True, np.clip(bilinear, 0, 1))]:
        model = _tiny(family, scale, skip)
        model.set_weights([np.zeros_like(w) for w in _weights(model)])
        np.testing.assert_allclose(model(image), expected, atol=1e-6)

        # A large bias on the last convolution drives every output to one side of the clip.
        conv = model.get_layer("ref_upsample_conv")
        for bias, value in [(5.0, 1.0), (-5.0, 0.0)]:
            conv.bias.assign(np.full(conv.bias.shape, bias, "float32"))
            np.testing.assert_array_equal(model(image), value)


def test_architectures_match_keras_io():
    def conv(k, c_in, c_out):
        return k * k * c_in * c_out + c_out

    # ESPCN on RGB: 5x5 64, 3x3 64, 3x3 32, 3x3 3*s^2.
    assert espcn(3).count_params() == (
        conv(5, 3, 64) + conv(3, 64, 64) + conv(3, 64, 32) + conv(3, 32, 27)
    )
    # EDSR: stem, 8 blocks of two 3x3 convs, body conv, upsampler conv to 3*s^2.
    assert edsr(2).count_params() == (
        conv(3, 3, 32) + 8 * 2 * conv(3, 32, 32) + conv(3, 32, 32) + conv(3, 32, 12)
    )
    model = edsr(4, channels=16, num_blocks=3)
    assert len([la for la in model.layers if isinstance(la, keras.layers.Add)]) == 3 + 1
    assert not any(isinstance(la, keras.layers.BatchNormalization) for la in model.layers)
    assert model.get_layer("edsr_upsample_shuffle").scale == 4


def test_graph_training_tflite_and_predict_on_any_size(rng):
    model = _tiny("edsr", 3, skip=True)
    _train_step(model, rng.uniform(size=(2, 5, 4, 3)).astype("float32"), rng, run_eagerly=False)
    image = rng.uniform(size=(1, 6, 5, 3)).astype("float32")
    (output, *_), ops = tflite_outputs(model, [image])
    assert not any(op.startswith("Flex") for op in ops), ops
    assert output.shape == (1, 18, 15, 3)
    np.testing.assert_allclose(output, model(image), atol=1e-4, rtol=0)
    # A second size makes predict retrace with unknown H, W (UpSampling2D fails there).
    for shape in [(1, 6, 5, 3), (2, 4, 7, 3)]:
        image = rng.uniform(size=shape).astype("float32")
        np.testing.assert_allclose(model.predict(image, verbose=0), model(image), atol=1e-5)


@pytest.mark.parametrize("scale", [1, 5, 2.0, True, "2", None])
def test_bad_scale_raises(scale):
    for builder in (espcn, edsr):
        with pytest.raises(ValueError) as error:
            builder(scale)
        assert str(error.value) == f"scale must be one of [2, 3, 4]. Received: scale={scale!r}"


def test_bad_widths_raise():
    with pytest.raises(ValueError, match="Received: channels=0"):
        espcn(2, channels=0)
    with pytest.raises(ValueError, match="Received: channels=1.5"):
        edsr(2, channels=1.5)
    for num_blocks in (-1, 1.5, True):
        with pytest.raises(ValueError, match=f"Received: num_blocks={num_blocks!r}"):
            edsr(2, num_blocks=num_blocks)
    with pytest.raises(TypeError):
        edsr(2, 16, 4, True)  # skip and name are keyword-only
