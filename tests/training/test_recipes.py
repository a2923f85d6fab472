"""The SR and classifier recipes: their settings and checks, the classifier's loss with and
without label smoothing, the bicubic baseline, and the table of trainers. (A whole run of each,
through `keras-attn train`, is in tests/test_cli.py.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attn import data, families
from keras_attn.models import registry
from keras_attn.training import aligner_recipe, evaluation, recipes
from keras_attn.training.recipe_base import Recipe
from keras_attn.training.recipes import ClassifierRecipe, SuperResolutionRecipe


def test_trainers_cover_every_family_with_its_recipe_and_function():
    assert set(recipes.TRAINERS) == set(families.names())
    assert recipes.TRAINERS["sr"] == (SuperResolutionRecipe, recipes.train_super_resolution)
    assert recipes.TRAINERS["classifier"] == (ClassifierRecipe, recipes.train_classifier)
    assert recipes.TRAINERS["aligner"] == (
        aligner_recipe.AlignerRecipe,
        aligner_recipe.train_aligner,
    )
    for recipe_class, _ in recipes.TRAINERS.values():
        assert issubclass(recipe_class, Recipe)


def test_default_recipes_name_registered_presets():
    sr = SuperResolutionRecipe(output="x")
    assert f"{sr.model}_x{sr.scale}" in registry.list_models("sr")
    assert ClassifierRecipe(output="x").model in registry.list_models("classifier")
    assert registry.get_spec(aligner_recipe.AlignerRecipe(output="x").model).family == "aligner"
    # each family redeclares the defaults that differ from the shared ones
    assert ClassifierRecipe(output="x").dataset == "bundled_digits"
    assert ClassifierRecipe(output="x").val_split is None  # validate on the test split
    assert SuperResolutionRecipe(output="x").dataset == "bundled_photos"


@pytest.mark.parametrize(
    "settings, overrides",
    [
        ({}, {}),
        ({"attention": "none"}, {"attention": None}),
        ({"attention": " cbam "}, {"attention": "cbam"}),
        ({"attention": "none,none,self"}, {"attention": (None, None, "self")}),
        ({"widths": "8,16,32", "depths": "1,2,1"}, {"widths": (8, 16, 32), "depths": (1, 2, 1)}),
    ],
)
def test_classifier_architecture_overrides(settings, overrides):
    assert ClassifierRecipe(output="x", **settings).architecture_overrides() == overrides


def test_classifier_overrides_build_the_model_they_describe():
    recipe = ClassifierRecipe(output="x", attention="none", widths="4,8,8", depths="1,2,1")
    model = registry.build_model(recipe.model, **recipe.architecture_overrides())
    layers = {layer.name: layer for layer in model.layers}
    assert layers["classifier_digits_stem_conv"].filters == 4
    assert layers["classifier_digits_stage3_block1_conv2"].filters == 8
    assert "classifier_digits_stage2_block2_conv1" in layers  # 2 blocks in stage 2
    assert "classifier_digits_stage3_block2_conv1" not in layers
    assert not [name for name in layers if name.endswith("_se")]  # the preset's SE is gone


@pytest.mark.parametrize(
    "settings, overrides",
    [
        ({}, {}),
        ({"attention": "none"}, {"attention": None}),
        ({"attention": " NonLocal "}, {"attention": "nonlocal"}),
    ],
)
def test_sr_architecture_overrides(settings, overrides):
    assert SuperResolutionRecipe(output="x", **settings).architecture_overrides() == overrides


def test_sr_attention_override_adds_or_removes_the_stage():
    def stages(recipe):
        model = registry.build_model(
            f"{recipe.model}_x{recipe.scale}", **recipe.architecture_overrides()
        )
        return sorted(layer.name for layer in model.layers if "_attention_" in layer.name)

    assert stages(SuperResolutionRecipe(output="x")) == []  # sr_fast has none
    added = stages(SuperResolutionRecipe(output="x", attention="nonlocal"))
    assert "sr_fast_x2_attention_nonlocal" in added
    assert stages(SuperResolutionRecipe(output="x", model="sr_base")) != []  # its "self" stage
    assert stages(SuperResolutionRecipe(output="x", model="sr_base", attention="none")) == []


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"attention": "foo"}, r"--attention: Unknown attention 'foo'"),
        ({"model": "espcn_skip", "attention": "nonlocal"}, r"the reference 'espcn_skip' has no"),
        ({"mix": "tiles"}, r"--mix must be one of \['pixels', 'equal'\]\. Received: 'tiles'"),
        ({"min_detail": -1.0}, r"--min-detail must be in \[0, 255\)\. Received: -1.0"),
    ],
)
def test_sr_recipe_rejects_bad_attention(settings, message):
    with pytest.raises(ValueError, match=message):
        SuperResolutionRecipe(output="x", **settings)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"widths": "16,a,64"}, r"--widths must be comma-separated integers.*'16,a,64'"),
        ({"depths": "3;3"}, r"--depths must be comma-separated integers"),
        ({"label_smoothing": 1.0}, r"--label-smoothing must be in \[0, 1\)\. Received: 1.0"),
        ({"label_smoothing": -0.1}, r"--label-smoothing"),
        ({"random_erasing": 1.5}, r"--random-erasing must be a probability in \[0, 1\]"),
        ({"weight_decay": -1e-4}, r"--weight-decay must be >= 0"),
    ],
)
def test_classifier_recipe_rejects_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        ClassifierRecipe(output="x", **settings)


def test_loss_without_smoothing_is_sparse_cross_entropy_on_integer_labels():
    loss, accuracy, targets = recipes.loss_and_metric(0.0, 3)
    images, labels = tf.zeros((2, 4, 4, 1)), tf.constant([2, 0])
    assert targets(images, labels)[1] is labels
    probabilities = tf.constant([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    expected = -np.mean(np.log([0.5, 0.6]))
    assert float(loss(labels, probabilities)) == pytest.approx(expected, rel=1e-6)
    accuracy.update_state(labels, probabilities)
    assert accuracy.name == "accuracy" and float(accuracy.result()) == 1.0


def test_loss_with_smoothing_uses_smoothed_one_hot_targets():
    loss, accuracy, targets = recipes.loss_and_metric(0.1, 4)
    _, one_hot = targets(tf.zeros((2, 4, 4, 1)), tf.constant([1, 3]))
    np.testing.assert_array_equal(one_hot, [[0, 1, 0, 0], [0, 0, 0, 1]])
    probabilities = np.array([[0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]], "float32")
    # label smoothing 0.1 over 4 classes: 0.925 on the label, 0.025 elsewhere
    smoothed = np.asarray(one_hot) * 0.9 + 0.1 / 4
    expected = -np.mean(np.sum(smoothed * np.log(probabilities), axis=-1))
    assert float(loss(one_hot, probabilities)) == pytest.approx(expected, rel=1e-5)
    accuracy.update_state(one_hot, probabilities)
    assert accuracy.name == "accuracy" and isinstance(accuracy, keras.metrics.CategoricalAccuracy)
    assert float(accuracy.result()) == 0.5  # the tie in the second row picks class 0


def test_bicubic_psnr_is_the_mean_over_every_image_not_every_batch():
    photo = data.load_photo("chelsea").astype("float32") / 255.0
    hr = np.stack([photo[i * 40 : i * 40 + 32, 100:132] for i in range(4)])
    lr = data.bicubic_downscale(tf.constant(hr), 2).numpy()
    dataset = tf.data.Dataset.from_tensor_slices((lr, hr)).batch(3)  # batches of 3 and 1
    per_image = [
        evaluation.score_upscaled(evaluation.bicubic_upscale(lr[i], (32, 32)), hr[i], 2)[0]
        for i in range(4)
    ]
    assert recipes.bicubic_psnr(dataset, 2) == pytest.approx(np.mean(per_image), abs=1e-4)
    assert np.mean(per_image) != pytest.approx(
        (np.mean(per_image[:3]) + per_image[3]) / 2, abs=1e-3
    )
