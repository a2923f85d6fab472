"""`grad_cam`: class activation heat maps of classifiers, checked against the CAM of Zhou et al."""

import keras
import numpy as np
import pytest

from keras_attn import models, viz


def test_grad_cam_of_classifier_preset(rng):
    model = models.build_model("attention_cnn_tiny")
    images = rng.uniform(size=(2, 32, 32, 3)).astype("float32")
    cams = viz.grad_cam(model, images)
    assert cams.shape == (2, 32, 32) and cams.dtype == np.float32
    assert cams.min() >= 0.0
    np.testing.assert_allclose(cams.max(axis=(1, 2)), 1.0)
    assert cams.std(axis=(1, 2)).min() > 0.01
    predicted = np.asarray(model(images)).argmax(axis=-1)
    np.testing.assert_allclose(viz.grad_cam(model, images, class_index=predicted), cams)
    other = viz.grad_cam(model, images, class_index=(predicted + 1) % 10)
    assert not np.allclose(other, cams)


def test_grad_cam_matches_class_activation_map(rng):
    # With global average pooling and one dense layer, Grad-CAM of logit c is the CAM of Zhou
    # et al.: relu(features @ W[:, c]) up to a constant factor.
    image = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="features")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    logits = keras.layers.Dense(4, name="dense")(pooled)
    model = keras.Model(image, keras.layers.Activation("softmax")(logits))
    images = rng.uniform(size=(3, 8, 8, 3)).astype("float32")
    cams = viz.grad_cam(model, images, class_index=2)

    maps = np.asarray(keras.Model(image, features)(images))
    expected = np.maximum(maps @ np.asarray(model.get_layer("dense").kernel)[:, 2], 0.0)
    expected /= expected.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(cams, expected, atol=1e-5)


def test_grad_cam_on_a_layer_inside_a_residual_block(rng):
    model = models.build_model("attention_cnn_tiny")
    images = rng.uniform(size=(1, 32, 32, 3)).astype("float32")
    cams = viz.grad_cam(model, images, layer="attention_cnn_tiny_stage3_block1_bn2")
    assert cams.shape == (1, 32, 32)
    np.testing.assert_allclose(cams.max(), 1.0)
    assert cams.std() > 0.01


def test_grad_cam_bad_arguments(rng):
    classifier = models.build_model("attention_cnn_tiny")
    images = rng.uniform(size=(2, 32, 32, 3)).astype("float32")
    with pytest.raises(ValueError, match="class_index"):
        viz.grad_cam(classifier, images, class_index=10)
    with pytest.raises(ValueError, match="class_index"):
        viz.grad_cam(classifier, images, class_index=[1, 2, 3])
    with pytest.raises(ValueError, match="4-D feature map"):
        viz.grad_cam(classifier, images, layer="attention_cnn_tiny_head_pool")
    with pytest.raises(ValueError, match="classifier"):
        viz.grad_cam(models.build_model("sr_tiny_x2"), images[0, :8, :8])
