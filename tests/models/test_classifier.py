import importlib.util
import json
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_attn.models.classifier  # noqa: F401  (registers the classifier presets)
from keras_attn import layers
from keras_attn.models import registry
from keras_attn.models.classifier import attention_classifier

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = {"widths": (8, 16, 32), "depths": (1, 1, 1)}

# Measured at the presets' defaults; a change here changes every trained checkpoint.
PRESET_PARAMS = {
    "attention_cnn_base": 11_534_122,
    "attention_cnn_small": 720_922,
    "attention_cnn_tiny": 81_542,
    "botnet": 219_610,
    "cbam_resnet": 279_343,
    "classifier_digits": 81_254,
    "classifier_fashion": 498_122,
    "plain_resnet": 274_042,
    "se_resnet": 282_526,
}


def images(rng, batch, shape):
    return rng.uniform(size=(batch, *shape)).astype("float32")


def test_every_preset_is_registered_with_its_size():
    assert registry.list_models("classifier") == sorted(PRESET_PARAMS)
    for name, params in PRESET_PARAMS.items():
        spec = registry.get_spec(name)
        assert spec.family == "classifier" and spec.description
        assert spec.defaults["num_classes"] == 10
        expected = {"classifier_digits": (32, 32, 1), "classifier_fashion": (28, 28, 1)}
        assert spec.defaults["input_shape"] == expected.get(name, (32, 32, 3))
        assert registry.build_model(name).count_params() == params, name


@pytest.mark.parametrize("name", registry.list_models("classifier"))
def test_every_preset_builds_trains_and_round_trips(name, tmp_path, rng):
    # Smallest size: the preset's attention, stem and channels, tiny widths, one block a stage.
    stages = len(registry.get_spec(name).defaults["widths"])
    model = registry.build_model(
        name, widths=tuple(8 * 2**s for s in range(stages)), depths=(1,) * stages, num_classes=5
    )
    x = images(rng, 4, model.input_shape[1:])
    assert model.input_shape[1:3] == ((28, 28) if name == "classifier_fashion" else (32, 32))
    probabilities = np.asarray(model(x))
    assert probabilities.shape == (4, 5) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert (probabilities > 0).all()

    # One eager training step (model.fit's traced step costs 6-9 s per model here).
    before = [w.numpy() for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(
            np.array([0, 1, 2, 3]), model(x, training=True)
        )
        loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, model.trainable_weights)
    assert np.isfinite(float(loss)) and all(g is not None for g in gradients)
    keras.optimizers.Adam(1e-2).apply(gradients, model.trainable_weights)
    after = [w.numpy() for w in model.trainable_weights]
    assert np.mean([not np.allclose(b, a) for b, a in zip(before, after, strict=True)]) > 0.9

    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded(x), model(x), atol=1e-6)
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]


def test_attention_by_name_and_per_stage_lists():
    model = attention_classifier(
        (32, 32, 3),
        10,
        attention=[None, "cbam", "self"],
        widths=(8, 16, 32),
        depths=(2, 1, 2),
        name="net",
    )
    attention_layers = {
        layer.name: type(layer)
        for layer in model.layers
        if isinstance(layer, tuple(layers.ATTENTION_LAYERS.values()))
    }
    assert attention_layers == {
        "net_stage2_block1_cbam": layers.CBAM,
        "net_stage3_block1_self": layers.SelfAttention2D,
        "net_stage3_block2_self": layers.SelfAttention2D,
    }
    # BoTNet: self-attention replaces the second 3x3 convolution of every block in its stage.
    names = {layer.name for layer in model.layers}
    assert "net_stage3_block1_conv2" not in names and "net_stage3_block1_conv1" in names
    assert "net_stage2_block1_conv2" in names
    self_attention = model.get_layer("net_stage3_block2_self")
    assert (self_attention.num_heads, self_attention.key_dim) == (4, 8)
    assert self_attention.position == "relative"
    assert self_attention.input is model.get_layer("net_stage3_block2_relu1").output
    # CBAM gates the residual branch before the addition.
    cbam = model.get_layer("net_stage2_block1_cbam")
    assert cbam.input is model.get_layer("net_stage2_block1_bn2").output
    assert cbam.output is model.get_layer("net_stage2_block1_add").input[1]


def test_one_name_for_every_stage_and_classes_like_names():
    by_name = attention_classifier((32, 32, 3), 10, attention="se", **TINY, name="a")
    by_class = attention_classifier(
        (32, 32, 3), 10, attention=layers.SqueezeExcite, **TINY, name="a"
    )
    se = [layer.name for layer in by_name.layers if isinstance(layer, layers.SqueezeExcite)]
    assert se == ["a_stage1_block1_se", "a_stage2_block1_se", "a_stage3_block1_se"]
    assert [layer.name for layer in by_class.layers] == [layer.name for layer in by_name.layers]
    plain = attention_classifier((32, 32, 3), 10, attention=None, **TINY)
    assert by_name.count_params() > plain.count_params()
    assert not any(isinstance(layer, layers.SqueezeExcite) for layer in plain.layers)


def test_nonlocal_block_follows_the_last_block_of_its_stage():
    model = attention_classifier(
        (32, 32, 3), 10, attention="nonlocal", widths=(8, 16), depths=(2, 3), name="n"
    )
    found = [layer.name for layer in model.layers if isinstance(layer, layers.NonLocal2D)]
    assert found == ["n_stage1_block2_nonlocal", "n_stage2_block3_nonlocal"]
    block = model.get_layer("n_stage2_block3_nonlocal")
    assert block.input is model.get_layer("n_stage2_block3_out").output
    assert model.get_layer("n_head_pool").input is block.output


def test_every_layer_is_named_by_model_stage_and_block():
    model = attention_classifier(
        (32, 32, 3), 10, attention="spatial", widths=(8, 16), depths=(1, 2), dropout=0.1, name="m"
    )
    pattern = re.compile(r"m_(stem_\w+|stage\d_block\d_\w+|head_(pool|dropout|dense|softmax))")
    for layer in model.layers[1:]:
        assert pattern.fullmatch(layer.name), layer.name
    assert model.layers[0].name == "image"
    assert isinstance(model.get_layer("m_stage2_block2_spatial"), layers.SpatialAttention)
    assert model.get_layer("m_head_dropout").rate == 0.1
    # The first block of a later stage halves the resolution and projects its shortcut.
    assert model.get_layer("m_stage2_block1_conv1").strides == (2, 2)
    assert model.get_layer("m_stage2_block1_shortcut_conv").output.shape[1:] == (16, 16, 16)
    assert "m_stage2_block2_shortcut_conv" not in {layer.name for layer in model.layers}


@pytest.mark.parametrize("attention", ["se", "cbam", "spatial", "nonlocal", "self", None])
def test_none_spatial_dims_match_a_fixed_size_model(attention, rng):
    dynamic = attention_classifier((None, None, 3), 10, attention=attention, **TINY)
    fixed = attention_classifier((32, 32, 3), 10, attention=attention, **TINY)
    assert dynamic.input_shape == (None, None, None, 3)
    fixed.set_weights(dynamic.get_weights())
    x = images(rng, 2, (32, 32, 3))
    np.testing.assert_allclose(dynamic(x), fixed(x), atol=1e-5)
    assert dynamic(images(rng, 2, (20, 44, 3))).shape == (2, 10)


def test_large_stem_downsamples_four_times(rng):
    model = attention_classifier(
        (None, None, 3), 7, attention="cbam", stem="large", widths=(8, 16), depths=(1, 1), name="l"
    )
    assert model.get_layer("l_stem_conv").kernel_size == (7, 7)
    x = images(rng, 1, (64, 48, 3))
    features = keras.Model(model.input, model.get_layer("l_stage2_block1_out").output)(x)
    assert features.shape == (1, 8, 6, 16)  # /4 by the stem, /2 by stage 2
    assert model(x).shape == (1, 7)


def test_mixed_precision_outputs_float32_probabilities(rng):
    kwargs = {"attention": ["se", "cbam", "self"], **TINY}
    reference = attention_classifier((32, 32, 3), 10, **kwargs)
    keras.config.set_dtype_policy("mixed_float16")
    mixed = attention_classifier((32, 32, 3), 10, **kwargs)
    keras.config.set_dtype_policy("float32")
    mixed.set_weights(reference.get_weights())
    assert mixed.get_layer("attention_classifier_stage3_block1_self").compute_dtype == "float16"
    x = images(rng, 2, (32, 32, 3))
    output = mixed(x)
    assert output.dtype == "float32"
    np.testing.assert_allclose(output, reference(x), atol=1e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attention": "transformer"}, r"Valid names: .*attention='transformer'"),
        ({"attention": ["se", "bogus", None]}, r"attention\[1\]='bogus'"),
        ({"attention": ["se", None]}, r"one entry per stage \(3.*attention=\['se', None\]"),
        ({"widths": ()}, r"widths=\(\)"),
        ({"widths": (8, 0, 16)}, "widths="),
        ({"depths": (1, 1)}, r"depths=\(1, 1\)"),
        ({"depths": (1, -1, 1)}, "depths="),
        ({"stem": "huge"}, "stem='huge'"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"num_classes": 1}, "num_classes=1"),
        ({"input_shape": (32, 32)}, r"input_shape=\(32, 32\)"),
        ({"input_shape": (32, 32, None)}, "input_shape="),
        ({"attention_heads": 0}, "attention_heads=0"),
        ({"num_classes": 2.5}, "num_classes=2.5"),
        ({"attention": "self", "widths": (2, 4, 8)}, "attention_heads=4"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    arguments = {"input_shape": (32, 32, 3), "num_classes": 10, **TINY, **kwargs}
    with pytest.raises(ValueError, match=message):
        attention_classifier(**arguments)


def test_unknown_keyword_arguments_raise():
    with pytest.raises(TypeError, match="colour"):
        registry.build_model("classifier_digits", colour=True)
    with pytest.raises(ValueError, match="Unknown model 'attention_cnn_huge'"):
        registry.build_model("attention_cnn_huge")


# --------------------------------------------------------------------------- example script


def load_example():
    spec = importlib.util.spec_from_file_location(
        "train_classifier", ROOT / "examples" / "train_classifier.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_script_trains_writes_metrics_and_resumes(digits_dir, tmp_path, capsys):
    example = load_example()
    output = str(tmp_path / "run")
    argv = [
        *("--data-dir", digits_dir, "--epochs", "1", "--steps-per-epoch", "2"),
        *("--batch-size", "16", "--image-size", "16", "--verbose", "0"),
        *("--precision", "mixed_float16", "--output", output),
    ]
    assert example.main(argv) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["model"] == "classifier_digits" and metrics["dataset"] == "bundled_digits"
    assert metrics["test_examples"] == 359 and metrics["steps"] == 2
    assert metrics["params"] == PRESET_PARAMS["classifier_digits"]  # size-independent
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and np.isfinite(metrics["test_loss"])
    assert metrics["epochs_run_this_call"] == 1 and metrics["precision"] == "mixed_float16"
    assert metrics["command"].endswith("--output " + output)
    assert (tmp_path / "run" / "model.keras").exists()
    assert keras.config.dtype_policy().name == "float32"  # restored after the run

    # The same command again restores the finished run instead of training it again.
    capsys.readouterr()
    assert example.main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert again["epochs_run_this_call"] == 0
    assert again["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert again["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-3)


def test_example_label_smoothing_uses_one_hot_targets(tmp_path):
    example = load_example()
    loss, accuracy, targets = example.loss_and_metric(0.1, num_classes=4)
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    assert isinstance(accuracy, keras.metrics.CategoricalAccuracy)
    images, one_hot = targets(np.zeros((2, 3, 3, 1)), tf.constant([1, 3]))
    np.testing.assert_array_equal(one_hot, [[0, 1, 0, 0], [0, 0, 0, 1]])
    # Smoothed targets: 0.9 * one-hot + 0.1 / 4.
    probabilities = np.array([[0.1, 0.7, 0.1, 0.1]], "float32")
    expected = -np.sum((0.9 * np.array([0, 1, 0, 0]) + 0.025) * np.log(probabilities))
    assert float(loss(one_hot[:1], probabilities)) == pytest.approx(expected, rel=1e-5)

    loss, accuracy, targets = example.loss_and_metric(0.0, num_classes=4)
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    assert isinstance(accuracy, keras.metrics.SparseCategoricalAccuracy)
    assert targets("images", "labels") == ("images", "labels")
    with pytest.raises(SystemExit):
        example.parse_args(["--output", str(tmp_path), "--label-smoothing", "1.5"])


def test_example_validation_split_erasing_and_weight_decay(digits_dir, tmp_path, monkeypatch):
    """--val-split validates on a slice of the training data (the test split is read only by
    the final evaluation), --random-erasing reaches the training pipeline only, and
    --weight-decay switches the optimiser to AdamW."""
    from keras_attn.data import classification
    from keras_attn.training import fit

    example = load_example()
    loaded, optimizers = [], []
    original_dataset = classification.classification_dataset
    original_optimizer = fit.make_optimizer

    def recording_dataset(name, split, *args, **kwargs):
        loaded.append(
            (split, args[2] if len(args) > 2 else kwargs.get("training"), kwargs["random_erasing"])
        )
        return original_dataset(name, split, *args, **kwargs)

    def recording_optimizer(config):
        optimizers.append(original_optimizer(config))
        return optimizers[-1]

    monkeypatch.setattr(classification, "classification_dataset", recording_dataset)
    monkeypatch.setattr(fit, "make_optimizer", recording_optimizer)
    argv = [
        *("--data-dir", digits_dir, "--epochs", "1", "--steps-per-epoch", "2"),
        *("--batch-size", "16", "--image-size", "16", "--verbose", "0"),
        *("--val-split", "train[:32]", "--random-erasing", "0.5", "--weight-decay", "0.05"),
        *("--output", str(tmp_path / "run")),
    ]
    assert example.main(argv) == 0
    assert loaded == [("train", True, 0.5), ("test", False, 0.0), ("train[:32]", False, 0.0)]
    assert isinstance(optimizers[0], keras.optimizers.AdamW)
    assert optimizers[0].weight_decay == pytest.approx(0.05)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val_split"] == "train[:32]" and metrics["test_split"] == "test"
    assert metrics["random_erasing"] == 0.5 and metrics["weight_decay"] == 0.05
    assert metrics["test_examples"] == 359
    for bad in (["--random-erasing", "1.5"], ["--weight-decay", "-1"]):
        with pytest.raises(SystemExit):
            example.parse_args(["--output", str(tmp_path / "bad"), *bad])


def test_example_architecture_overrides(digits_dir, tmp_path):
    """--attention/--widths/--depths replace the preset's (the variant benchmark's runs)."""
    example = load_example()
    argv = [
        *("--data-dir", digits_dir, "--epochs", "1", "--steps-per-epoch", "1"),
        *("--batch-size", "8", "--image-size", "16", "--verbose", "0"),
        *("--attention", "none,none,cbam", "--widths", "8,16,16", "--depths", "1,1,1"),
        *("--output", str(tmp_path / "run")),
    ]
    assert example.main(argv) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    expected = registry.build_model(
        "classifier_digits", attention=(None, None, "cbam"), widths=(8, 16, 16), depths=(1, 1, 1)
    )
    assert metrics["params"] == expected.count_params() != PRESET_PARAMS["classifier_digits"]
    assert metrics["architecture_overrides"] == {
        "attention": [None, None, "cbam"],
        "widths": [8, 16, 16],
        "depths": [1, 1, 1],
    }
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.get_layer("classifier_digits_stage3_block1_cbam") is not None
    with pytest.raises(SystemExit):
        example.parse_args(["--output", str(tmp_path / "bad"), "--widths", "8,x"])
