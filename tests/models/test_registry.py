"""The model registry: presets registered by name, listed by family, built with overrides."""

import keras
import pytest

from keras_attn import models
from keras_attn.models import registry


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry, emptied for one test (and the real one put back afterwards)."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    return registry


def dense_model(units=4, activation=None, name="dense_model"):
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(units, activation=activation)(inputs), name=name)


def test_every_family_has_its_presets_listed_sorted_and_disjoint():
    everything = registry.list_models()
    assert everything == sorted(everything) and len(everything) == len(set(everything))
    by_family = {family: registry.list_models(family) for family in ("sr", "classifier", "aligner")}
    assert sorted(sum(by_family.values(), [])) == everything
    assert {"sr_tiny_x2", "sr_tiny_x3", "sr_tiny_x4"} <= set(by_family["sr"])
    assert "attention_cnn_tiny" in by_family["classifier"]
    assert "aligner_tiny" in by_family["aligner"]
    assert registry.list_models("gan") == []
    assert models.list_models is registry.list_models  # the public name is the registry's


def test_spec_keeps_family_builder_and_preset_arguments():
    spec = registry.get_spec("sr_tiny_x3")
    assert spec.name == "sr_tiny_x3" and spec.family == "sr"
    assert spec.builder is models.super_resolution
    assert spec.defaults == {"scale": 3, "channels": 16, "num_groups": 1, "blocks_per_group": 2}
    assert "x3" in spec.description


def test_build_model_names_the_model_after_the_preset_and_applies_overrides(scratch_registry):
    scratch_registry.register_model("dense_tiny", "toy", dense_model, "a toy", units=2)
    model = scratch_registry.build_model("dense_tiny")
    assert model.name == "dense_tiny" and model.output.shape == (None, 2)
    # keyword arguments replace the preset's
    model = scratch_registry.build_model("dense_tiny", units=5, activation="relu")
    assert model.name == "dense_tiny" and model.output.shape == (None, 5)
    assert model.layers[-1].activation is keras.activations.relu
    # the preset itself is unchanged by the call
    assert scratch_registry.get_spec("dense_tiny").defaults == {"units": 2}


def test_build_model_takes_a_name_override(scratch_registry):
    scratch_registry.register_model("dense_tiny", "toy", dense_model, units=2)
    assert scratch_registry.build_model("dense_tiny", name="mine").name == "mine"


def test_registered_defaults_are_a_copy(scratch_registry):
    preset = {"units": 2}
    scratch_registry.register_model("dense_tiny", "toy", dense_model, **preset)
    preset["units"] = 9
    assert scratch_registry.build_model("dense_tiny").output.shape == (None, 2)


def test_names_are_unique(scratch_registry):
    scratch_registry.register_model("dense_tiny", "toy", dense_model)
    with pytest.raises(ValueError, match="A model named 'dense_tiny' is already registered"):
        scratch_registry.register_model("dense_tiny", "toy", dense_model, units=8)
    assert scratch_registry.get_spec("dense_tiny").defaults == {}  # the first one stays


def test_unknown_name_suggests_the_closest_and_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"Unknown model 'sr_tiny_x5'\. Did you mean 'sr_tiny_x"):
        registry.build_model("sr_tiny_x5")
    with pytest.raises(ValueError) as error:
        registry.get_spec("qqqqqqqqqqqq")
    message = str(error.value)
    assert "Did you mean" not in message  # nothing close: no guess
    assert "Registered models: [" in message and "'aligner_tiny'" in message
