"""The classifier family's task helper `classify`: class names from the card, any image layout,
one clear error for another family's model or a bad image."""

import numpy as np
import pytest
from PIL import Image

import keras_attn
from keras_attn import models, pretrained
from keras_attn.data import digits


@pytest.fixture(scope="module")
def digits_classifier():
    return pretrained.load_predictor("classifier_digits")


def test_classify_names_classes_from_the_card(digits_classifier, tmp_path):
    images, labels = digits.load_split("test")
    classes = [str(name) for name in pretrained.card("classifier_digits")["classes"]]
    one = images[0]  # uint8, no batch axis
    single = keras_attn.classify(digits_classifier, one)
    assert set(single) == {"class", "index", "probability", "probabilities"}
    assert single["class"] == classes[single["index"]] == classes[labels[0]]
    assert single["probabilities"].shape == (len(classes),)
    assert single["probability"] == pytest.approx(single["probabilities"].max())
    assert single["probabilities"].sum() == pytest.approx(1.0, abs=1e-4)

    batch = keras_attn.classify(digits_classifier, images[:4].astype("float32") / 255.0)
    assert [result["class"] for result in batch] == [classes[label] for label in labels[:4]]
    assert batch[0]["class"] == single["class"]
    np.testing.assert_allclose(batch[0]["probabilities"], single["probabilities"], atol=1e-5)

    path = tmp_path / "digit.png"
    Image.fromarray(one[..., 0]).save(path)
    from_file = keras_attn.classify(
        "classifier_digits", str(path)
    )  # loads the shipped model by name
    assert from_file["class"] == single["class"]
    listed = keras_attn.classify(digits_classifier, [path, Image.open(path)])
    assert [result["class"] for result in listed] == [single["class"]] * 2


def test_classify_refuses_a_model_of_another_family_and_bad_images(digits_classifier):
    with pytest.raises(ValueError, match=r"super-resolution model \(use keras_attn.models.upscale"):
        keras_attn.classify(models.build_model("sr_tiny_x2"), np.zeros((8, 8), "uint8"))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        keras_attn.classify(digits_classifier, np.full((8, 8), 2.0, "float32"))
