"""The family registry (`keras_attn.families`): every entry complete, looked up by name or
detected from a model, with one-line errors for the unknown."""

import dataclasses

import keras
import pytest

import keras_attn
import keras_attn_cli
from keras_attn import families, models
from keras_attn.export.package import OUTPUT_NAMES


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
    assert families.default_dataset(name) == family.default_dataset


def test_the_registry_knows_the_three_families():
    assert families.names() == ("sr", "classifier", "aligner")
    assert families.get("classifier").task_helper.resolve() is keras_attn.classify
    with pytest.raises(ValueError, match="already registered"):
        families.register(families.get("sr"))


def test_unknown_family_is_one_line_naming_the_known_ones():
    with pytest.raises(ValueError) as error:
        families.get("nope")
    message = str(error.value)
    assert "\n" not in message and "'nope'" in message
    assert all(name in message for name in families.names())
    with pytest.raises(ValueError, match="sr, classifier, aligner"):
        families.representative_data("nope", (8, 8, 3))


def test_default_dataset_follows_the_card():
    card = {"metrics": {"evaluation": {"dataset": "fashion_mnist"}}}
    assert families.default_dataset("classifier", card) == ("fashion_mnist", "test")
    assert families.default_dataset("aligner", None) == ("bundled_photos", "validation")


@pytest.mark.parametrize(
    "preset, family",
    [("sr_tiny_x2", "sr"), ("attention_cnn_tiny", "classifier"), ("aligner_tiny", "aligner")],
)
def test_family_of_detects_each_family(preset, family):
    model = models.build_model(preset)
    assert families.family_of(model) == family
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
    corners = {
        "median_corner_error_px": 0.5,
        "over_10px_percent": 1.0,
        "auc_5px": 0.9,
        "mean_corner_error_px": 1.25,
    }
    aligner = families.get("aligner").held_out_metric
    assert aligner(corners) == (
        "median corner error 0.50 px, 1.0 % over 10 px, AUC@5 0.900; mean 1.25 px"
    )
    assert aligner({**corners, "flow": {"mean_epe_px": 2.345}}).endswith(
        "; flow on pairs with depth: mean EPE 2.35 px"
    )
    with pytest.raises(ValueError, match="not quantised to int8"):
        families.get("aligner").calibration_data((128, 128, 1))
