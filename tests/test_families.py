"""The family registry (`keras_attn.families`) and the classifier task helper `classify`."""

import dataclasses

import keras
import numpy as np
import pytest
from PIL import Image

import keras_attn
import keras_attn_cli
from keras_attn import families, models, pretrained
from keras_attn.data import digits
from keras_attn.export.package import OUTPUT_NAMES
from keras_attn.training import evaluation


@pytest.mark.parametrize("name", families.names())
def test_every_entry_is_complete(name):
    family = families.get(name)
    assert family.name == name
    for field in dataclasses.fields(family):
        value = getattr(family, field.name)
        assert value is not None and value != "" and value != (), field.name
        if field.type.startswith("Callable"):
            assert callable(value), field.name
    for lazy in (family.demo_figure, family.task_helper):  # the lazy names resolve
        assert callable(lazy.resolve() if isinstance(lazy, families.Lazy) else lazy)
    assert list(family.output_names) == OUTPUT_NAMES[name]  # the serving names agree
    assert family.title == keras_attn_cli.FAMILY_TITLES[name]
    assert evaluation.DEFAULT_DATASETS[name] == family.default_dataset
    assert evaluation.default_dataset(name) == family.default_dataset


def test_the_registry_knows_the_three_families():
    assert families.names() == ("sr", "classifier", "aligner") == evaluation.FAMILIES
    assert families.get("classifier").task_helper is keras_attn.classify
    with pytest.raises(ValueError, match="already registered"):
        families.register(families.get("sr"))


def test_unknown_family_is_one_line_naming_the_known_ones():
    with pytest.raises(ValueError) as error:
        families.get("nope")
    message = str(error.value)
    assert "\n" not in message and "'nope'" in message
    assert all(name in message for name in families.names())
    with pytest.raises(ValueError, match="sr, classifier, aligner"):
        evaluation.calibration_data("nope", (8, 8, 3))


def test_default_dataset_follows_the_card():
    card = {"metrics": {"evaluation": {"dataset": "fashion_mnist"}}}
    assert families.default_dataset("classifier", card) == ("fashion_mnist", "test")
    assert evaluation.default_dataset("aligner", None) == ("bundled_photos", "validation")


@pytest.mark.parametrize(
    "preset, family",
    [("sr_tiny_x2", "sr"), ("attention_cnn_tiny", "classifier"), ("aligner_tiny", "aligner")],
)
def test_family_of_detects_each_family(preset, family):
    model = models.build_model(preset)
    assert families.family_of(model) == family == evaluation.family_of(model)
    assert [families.get(name).detect(model) for name in families.names()].count(True) == 1


def test_family_of_rejects_a_model_of_no_family():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="Cannot tell the family"):
        families.family_of(keras.Model(inputs, keras.layers.Reshape((2, 2))(inputs)))


def test_zoo_metric_text_of_each_family():
    assert families.get("sr").held_out_metric({"psnr_y_db": 30.0}) == (
        "PSNR-Y 30.00 dB (- over bicubic)"
    )
    assert families.get("classifier").held_out_metric({"accuracy": 0.5}) == "accuracy 50.00 %"
    with pytest.raises(ValueError, match="not quantised to int8"):
        families.get("aligner").calibration_data((128, 128, 1))


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
