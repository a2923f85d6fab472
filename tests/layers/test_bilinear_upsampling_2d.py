import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attn.export.tflite import TFLiteModel, export_tflite
from keras_attn.layers import BilinearUpsampling2D
from tests.helpers import run_layer_test


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_bilinear_upsampling_matches_tf_image_resize(rng, scale):
    for shape in [(2, 5, 7, 3), (1, 1, 2, 4), (1, 3, 4, 5), (2, 4, 1, 2)]:
        image = rng.uniform(size=shape).astype("float32")
        size = (shape[1] * scale, shape[2] * scale)
        expected = tf.image.resize(image, size, method="bilinear").numpy()
        np.testing.assert_allclose(BilinearUpsampling2D(scale)(image), expected, atol=1e-6)
    # 3 and 2 channels (images, flow fields) take the dense convolution, 5 the depthwise one
    spec = tf.TensorSpec((None, None, None, 3), "float32")
    layer = BilinearUpsampling2D(scale)
    graph = tf.function(layer, input_signature=[spec], autograph=False)
    image = rng.uniform(size=(1, 4, 3, 3)).astype("float32")
    expected = tf.image.resize(image, (4 * scale, 3 * scale), method="bilinear").numpy()
    np.testing.assert_allclose(graph(image), expected, atol=1e-6)


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_bilinear_upsampling_layer_contract(rng):
    run_layer_test(
        BilinearUpsampling2D,
        {"scale": 3},
        rng.uniform(size=(2, 4, 5, 3)),
        expected_output_shape=(2, 12, 15, 3),
        expected_num_trainable_weights=0,
    )
    with pytest.raises(ValueError, match="Received: scale=0"):
        BilinearUpsampling2D(0)


@pytest.mark.parametrize("channels", [3, 5])
def test_bilinear_upsampling_converts_to_builtin_tflite_ops_at_any_size(channels, rng, tmp_path):
    inputs = keras.Input((None, None, channels), name="image")
    model = keras.Model(inputs, BilinearUpsampling2D(3)(inputs))
    image = rng.uniform(size=(1, 6, 5, channels)).astype("float32")
    report = export_tflite(model, tmp_path / "m.tflite", inputs={"image": image})
    assert ("CONV_2D" if channels == 3 else "DEPTHWISE_CONV_2D") in report.ops
    assert not any(op.startswith("Flex") for op in report.ops), report.ops
    # the file has open H, W: a second size runs, and gives tf.image.resize's values
    other = rng.uniform(size=(2, 4, 7, channels)).astype("float32")
    (upsampled,) = TFLiteModel(tmp_path / "m.tflite")(other).values()
    expected = tf.image.resize(other, (12, 21), method="bilinear").numpy()
    np.testing.assert_allclose(upsampled, expected, atol=1e-6)
