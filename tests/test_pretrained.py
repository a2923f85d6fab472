"""The shipped catalogue: every format of every shipped model agrees on real data, cards are
reproducible, and verification rejects altered files. (Writing a catalogue folder,
`package_model`, is tested in tests/export/test_package.py.)"""

import functools
import json
import pathlib
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attn import data, pretrained
from keras_attn.data import fashion_mnist
from keras_attn.training import evaluation

SHIPPED = ("classifier_digits", "classifier_fashion", "sr_x2", "sr_x3", "sr_x4")
SR_TOLERANCES = {"fp32": 1e-4, "fp16": 2e-3, "int8": 0.05}
# Max |output - Keras output| allowed per TFLite variant, on real inputs.
TOLERANCES = {
    "sr_x2": SR_TOLERANCES,
    "sr_x3": SR_TOLERANCES,
    "sr_x4": SR_TOLERANCES,
    "classifier_digits": {"fp32": 1e-4, "fp16": 5e-3, "int8": 0.2},
    "classifier_fashion": {"fp32": 1e-4, "fp16": 5e-3, "int8": 0.2},
}


@pytest.fixture(scope="module")
def real_inputs(digits_dir):
    """A real LR crop of a held-out photo for SR; 16 held-out digit scans for the classifier."""
    hr = data.load_photo("chelsea")[96:192, 144:288].astype("float32") / 255.0
    inputs = {
        f"sr_x{scale}": data.bicubic_downscale(tf.constant(hr), scale).numpy()[None]
        for scale in (2, 3, 4)
    }
    test = evaluation.classifier_test_data((32, 32, 1), batch_size=16, data_dir=digits_dir)
    digits, labels = next(iter(test))
    items, _ = fashion_mnist.load_test_sample()
    return {
        **inputs,
        "classifier_digits": digits.numpy(),
        "labels": labels.numpy(),
        "classifier_fashion": items[:16].astype("float32") / 255.0,
    }


def not_strict_json(name, constant):
    raise AssertionError(f"{constant} in {name}'s card: JSON has no NaN or Infinity")


def test_list_models_summarises_the_cards():
    listed = {entry["name"]: entry for entry in pretrained.list_models()}
    assert set(SHIPPED) <= set(listed)
    for name in SHIPPED:
        card = pretrained.card(name)
        entry = listed[name]
        assert entry["family"] == card["family"] and entry["params"] == card["params"]
        assert entry["metric"]["value"] == card["metrics"][card["key_metric"]]
        # Every format together: about 15 bytes a parameter (Keras and SavedModel float32,
        # TFLite fp32 + fp16 + int8) plus the graphs; more would mean a stray file or state.
        assert sum(entry["files"].values()) == card["total_bytes"]
        assert card["total_bytes"] < max(6_000_000, 24 * card["params"])
        assert set(entry["files"]) == {
            "model.keras",
            "saved_model/",
            "model.tflite",
            "model_fp16.tflite",
            "model_int8.tflite",
        }
        # strict JSON, as any JSON reader (a browser, jq) parses it: no NaN or Infinity
        text = (pretrained.saved_models_root() / name / "card.json").read_text()
        json.loads(text, parse_constant=functools.partial(not_strict_json, name))
    sr_card = pretrained.card("sr_x2")
    assert sr_card["metrics"]["psnr_y_db"] > sr_card["metrics"]["bicubic_psnr_y_db"] + 1.0
    assert pretrained.card("classifier_digits")["metrics"]["accuracy"] > 0.98


@pytest.mark.parametrize("name", SHIPPED)
def test_every_format_gives_the_same_outputs(name, real_inputs):
    x = real_inputs[name]
    model = pretrained.load(name)
    assert isinstance(model, keras.Model)
    expected = np.asarray(model(x))
    output = pretrained.OUTPUT_NAMES[pretrained.card(name)["family"]][0]

    loaded = pretrained.load(name, "saved_model")
    served = loaded.signatures["serving_default"](image=tf.constant(x))[output].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    path = pretrained.verify(name, "saved_model")
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    np.testing.assert_allclose(np.asarray(layer(x)[output]), expected, atol=1e-5)

    for variant, tolerance in TOLERANCES[name].items():
        runner = pretrained.load(name, "tflite", variant=variant)
        assert type(runner.interpreter).__name__ == "Interpreter"
        result = runner(image=x)[output]
        assert result.shape == expected.shape
        assert np.abs(result - expected).max() < tolerance, variant
    if name == "classifier_digits":
        labels = real_inputs["labels"]
        np.testing.assert_array_equal(expected.argmax(-1), labels)  # 16 held-out scans right


@pytest.mark.parametrize("name", SHIPPED)
def test_tensorflow_hub_loads_the_saved_model(name, real_inputs):
    """hub.load, and hub.KerasLayer inside a tf_keras (Keras 2) model, as TF Hub users do.

    The Makefile installs tensorflow-hub and tf-keras with --no-deps next to tensorflow-cpu
    (their declared dependency is the full tensorflow wheel); hub.KerasLayer cannot sit inside
    a Keras 3 model (tensorflow/hub#903): there, keras.layers.TFSMLayer is the way.
    """
    hub = pytest.importorskip("tensorflow_hub")
    tf_keras = pytest.importorskip("tf_keras")
    x = real_inputs[name]
    expected = np.asarray(pretrained.load(name)(x))
    output = pretrained.OUTPUT_NAMES[pretrained.card(name)["family"]][0]
    path = str(pretrained.verify(name, "saved_model"))

    served = hub.load(path).signatures["serving_default"](image=tf.constant(x))[output]
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-5)
    inputs = tf_keras.Input(x.shape[1:])
    layer = hub.KerasLayer(
        path, signature="serving_default", output_key=output, signature_outputs_as_dict=False
    )
    wrapped = tf_keras.Model(inputs, layer(inputs))
    np.testing.assert_allclose(wrapped(x).numpy(), expected, atol=1e-5)


def test_tensorflow_hub_is_installed_by_make():
    """`make test` installs the hub packages, so the test above runs in CI instead of skipping."""
    import importlib.util

    assert importlib.util.find_spec("tensorflow_hub") and importlib.util.find_spec("tf_keras")


def test_card_numbers_are_reproducible():
    """The chelsea PSNR-Y in the sr_x2 card is what its Keras and TFLite files give now."""
    card = pretrained.card("sr_x2")
    pairs = [pair for pair in evaluation.held_out_pairs(2) if pair[0] == "chelsea"]
    model = pretrained.load("sr_x2")
    scores = evaluation.evaluate_super_resolution(model, 2, pairs)
    expected = card["metrics"]["per_image"]["chelsea"]
    assert scores.psnr_y == pytest.approx(expected["psnr_y_db"], abs=1e-3)
    assert scores.ssim_y == pytest.approx(expected["ssim_y"], abs=1e-4)
    bicubic = evaluation.evaluate_super_resolution(None, 2, pairs)
    assert bicubic.psnr_y == pytest.approx(expected["bicubic_psnr_y_db"], abs=1e-3)
    assert card["metrics"]["command"].startswith("python scripts/ship_model.py ")
    # the command the run itself recorded (metrics.json) is the card's training command
    assert card["training"]["log"]["command"] in card["training"]["command"]
    assert (
        "train sr" in card["training"]["command"]
        and "--steps-per-epoch" in card["training"]["command"]
    )


def test_classifier_fashion_card_is_reproducible_offline():
    """The card's score on the 256 Fashion-MNIST test items the package carries is what the
    Keras and int8 TFLite files give now (the full test split needs the dataset prepared)."""
    card = pretrained.card("classifier_fashion")
    recorded = card["metrics"]["bundled_test_sample"]
    items, labels = fashion_mnist.load_test_sample()
    images = items.astype("float32") / 255.0
    predicted = pretrained.load("classifier_fashion").predict(images, verbose=0).argmax(-1)
    assert int((predicted != labels).sum()) == recorded["errors"]
    assert card["classes"] == list(fashion_mnist.CLASS_NAMES)
    assert card["metrics"]["evaluation"]["dataset"] == "fashion_mnist"
    assert card["metrics"]["examples"] == 10_000 and card["metrics"]["accuracy"] >= 0.94
    int8 = pretrained.load("classifier_fashion", "tflite", variant="int8")
    assert np.mean(int8(image=images)["probabilities"].argmax(-1) == predicted) > 0.97
    tflite = card["metrics"]["tflite"]["model_int8.tflite"]
    assert abs(tflite["accuracy"] - card["metrics"]["accuracy"]) <= 0.003  # the bound


# --------------------------------------------------------------------------- verification


@pytest.fixture
def catalogue_copy(tmp_path):
    """A copy of the shipped classifier in a catalogue of its own."""
    shutil.copytree(pretrained.saved_models_root() / "classifier_digits", tmp_path / "cls")
    return tmp_path


def flip_byte(path: pathlib.Path, offset: int = 100) -> None:
    content = bytearray(path.read_bytes())
    content[offset] ^= 0x01
    path.write_bytes(bytes(content))


def test_copy_loads_from_env_var_root(catalogue_copy, monkeypatch):
    monkeypatch.setenv(pretrained.ENV_VAR, str(catalogue_copy))
    assert pretrained.saved_models_root() == catalogue_copy
    assert [entry["name"] for entry in pretrained.list_models()] == ["cls"]
    assert pretrained.load("cls", "tflite", variant="int8").input_names == ("image",)


@pytest.mark.parametrize(
    "format, variant, relative",
    [
        ("tflite", None, "model.tflite"),
        ("tflite", "fp16", "model_fp16.tflite"),
        ("keras", None, "model.keras"),
        ("saved_model", None, "saved_model/variables/variables.data-00000-of-00001"),
    ],
)
def test_a_flipped_byte_is_rejected_naming_the_file(catalogue_copy, format, variant, relative):
    flip_byte(catalogue_copy / "cls" / relative)
    with pytest.raises(ValueError, match=f"{relative}.*sha256"):
        pretrained.load("cls", format, variant=variant, root=catalogue_copy)
    # The other formats still load: only the files a format needs are read.
    other = "keras" if format != "keras" else "tflite"
    pretrained.load("cls", other, root=catalogue_copy)


def test_truncated_missing_and_extra_files_are_rejected(catalogue_copy):
    folder = catalogue_copy / "cls"
    keras_file = folder / "model.keras"
    keras_file.write_bytes(keras_file.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"model\.keras has \d+ bytes, card\.json says"):
        pretrained.load("cls", root=catalogue_copy)
    (folder / "model_int8.tflite").unlink()
    with pytest.raises(ValueError, match=r"model_int8\.tflite is missing"):
        pretrained.load("cls", "tflite", variant="int8", root=catalogue_copy)
    (folder / "saved_model" / "extra.pb").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"extra\.pb is not listed in card\.json"):
        pretrained.load("cls", "saved_model", root=catalogue_copy)
    card = json.loads((folder / "card.json").read_text())
    del card["files"]["model.tflite"]
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"ships no model\.tflite"):
        pretrained.load("cls", "tflite", root=catalogue_copy)
    (folder / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match="card.json is not valid JSON"):
        pretrained.load("cls", root=catalogue_copy)


def test_unknown_names_formats_and_variants():
    with pytest.raises(
        ValueError, match=r"Unknown shipped model 'sr_x9'.*classifier_digits.*sr_x2"
    ):
        pretrained.load("sr_x9")
    with pytest.raises(ValueError, match="Unknown shipped model '../sr_x2'"):
        pretrained.load("../sr_x2")
    with pytest.raises(ValueError, match="format must be one of"):
        pretrained.load("sr_x2", "onnx")
    with pytest.raises(ValueError, match="variant"):
        pretrained.load("sr_x2", "keras", variant="fp16")
    with pytest.raises(ValueError, match="variant"):
        pretrained.load("sr_x2", "tflite", variant="int4")


@pytest.mark.parametrize("format", ["keras", "tflite"])
def test_uint8_0_255_and_nan_input_is_rejected_in_one_line(format, real_inputs, tmp_path):
    """A [0, 1] model fed a 0-255 photo returns white; load() says so instead (#20)."""
    model = pretrained.load("sr_x2", format)
    image = real_inputs["sr_x2"]
    calls = [lambda x: model(x)]
    if format == "keras":
        calls.append(lambda x: model.predict(x, verbose=0))
    for call in calls:
        call(image)  # [0, 1] float32 passes
        with pytest.raises(ValueError, match=r"^Input 'image' has integer dtype uint8\..*255"):
            call((image * 255).astype("uint8"))
        with pytest.raises(ValueError, match=r"^Input 'image' has values in \[.*, 2\d\d\.?\d*\]"):
            call(image * 255)
        with pytest.raises(ValueError, match="^Input 'image' contains NaN"):
            call(np.where(image > 0.5, np.nan, image))
    if format == "keras":
        # The checked model saves and reloads as the plain Keras model it was.
        model.save(tmp_path / "copy.keras")
        copy = keras.saving.load_model(tmp_path / "copy.keras", compile=False)
        assert type(copy).__name__ == type(model).__name__ == "Functional"
        np.testing.assert_allclose(copy(image), model(image), atol=1e-6)


def test_aligner_inputs_are_checked_by_name():
    model = pretrained.load("aligner_homography")
    pair = np.full((1, 128, 128, 1), 0.5, "float32")
    assert sorted(model({"moving": pair, "fixed": pair})) == ["flow", "homography", "warped"]
    with pytest.raises(ValueError, match="^Input 'fixed' has values"):
        model({"moving": pair, "fixed": pair * 255})


def test_shipped_aligner_agrees_in_every_format():
    """aligner_homography on a held-out DeTone pair: Keras, SavedModel, hub.load and
    LiteRT fp32/fp16 put the moving patch's corners at the same place.

    Corner tolerances: float32 paths agree to ~1e-4 px on this pair, but where the matcher's
    peak is nearly tied a rounding difference can move one match by a cell, so 0.1 px; fp16
    1.0 px (its card lists the measured corner differences over 100 pairs)."""
    pairs = evaluation.held_out_alignment_pairs(pairs_per_image=1)
    moving, fixed = pairs[0].moving, pairs[0].fixed
    model = pretrained.load("aligner_homography")
    expected = np.asarray(model({"moving": moving[None], "fixed": fixed[None]})["homography"])

    def corners(homography):
        square = np.array([[0, 0, 1], [127, 0, 1], [127, 127, 1], [0, 127, 1]], "float64")
        mapped = square @ np.asarray(homography, "float64").reshape(3, 3).T
        return mapped[:, :2] / mapped[:, 2:]

    inputs = {"moving": tf.constant(moving[None]), "fixed": tf.constant(fixed[None])}
    loaded = pretrained.load("aligner_homography", "saved_model")
    results = {"saved_model": loaded.signatures["serving_default"](**inputs)["homography"]}
    path = str(pretrained.verify("aligner_homography", "saved_model"))
    # keras.layers.TFSMLayer passes one `inputs` structure to the endpoint, whose two
    # positional arguments Keras's ExportArchive names inputs_0/inputs_1 (sorted by name):
    # for this two-input model the signature (by name) is the way; see README limitations.
    hub = pytest.importorskip("tensorflow_hub")
    results["hub"] = hub.load(path).signatures["serving_default"](**inputs)["homography"]
    for variant in ("fp32", "fp16"):
        runner = pretrained.load("aligner_homography", "tflite", variant=variant)
        results[variant] = runner(moving=moving[None], fixed=fixed[None])["homography"]
    with pytest.raises(ValueError, match="model_int8.tflite"):  # not shipped: warps need floats
        pretrained.load("aligner_homography", "tflite", variant="int8")
    for key, homography in results.items():
        tolerance = 1.0 if key == "fp16" else 0.1
        difference = np.abs(corners(np.asarray(homography)[0]) - corners(expected[0])).max()
        assert difference < tolerance, (key, difference)


def test_no_lambda_layers_so_safe_mode_loading_works():
    """Every shipped .keras loads under keras.saving.load_model's default safe_mode=True (what
    pretrained.load uses) because no model contains a Lambda layer, nested models included."""
    for entry in pretrained.list_models():
        model = pretrained.load(entry["name"])
        layers = list(model._flatten_layers(include_self=False, recursive=True))
        assert layers and not [layer for layer in layers if isinstance(layer, keras.layers.Lambda)]


def test_shipped_flow_aligner_beats_its_homography_and_agrees_in_every_format():
    """aligner_flow on held-out DeTone pairs with depth (an 8 px non-planar residual, the
    card's protocol): its dense flow is closer to the true flow than the flow of its own
    homography, and SavedModel and LiteRT fp32/fp16 give the same flow as Keras (mean over the
    pixels: a near-tied match may move single pixels, see the card's parity)."""
    from keras_attn.models.aligner import homography_flow

    pairs = evaluation.held_out_alignment_pairs(pairs_per_image=1, deformation=8.0)
    model = pretrained.load("aligner_flow")
    dense = evaluation.evaluate_flow(model, pairs)

    def planar(moving, fixed):
        out = model.predict_on_batch({"moving": moving, "fixed": fixed})
        flows = [homography_flow(h, (128, 128)) for h in np.asarray(out["homography"], "float64")]
        return {"flow": np.stack(flows)}

    assert dense["mean_epe_px"] < evaluation.evaluate_flow(planar, pairs)["mean_epe_px"]
    moving, fixed = pairs[0].moving[None], pairs[0].fixed[None]
    expected = np.asarray(model({"moving": moving, "fixed": fixed})["flow"])
    loaded = pretrained.load("aligner_flow", "saved_model")
    signature = loaded.signatures["serving_default"]
    results = {"saved_model": signature(moving=tf.constant(moving), fixed=tf.constant(fixed))}
    for variant in ("fp32", "fp16"):
        runner = pretrained.load("aligner_flow", "tflite", variant=variant)
        results[variant] = runner(moving=moving, fixed=fixed)
    for key, outputs in results.items():
        difference = np.linalg.norm(np.asarray(outputs["flow"]) - expected, axis=-1).mean()
        assert difference < (0.5 if key == "fp16" else 0.1), (key, difference)


def test_a_second_aligner_interpreter_in_one_process_is_right():
    """With LiteRT's XNNPACK delegate, an aligner file with an open batch returned other pairs'
    homographies in an interpreter created after another one had run, once its batch grew
    from 1 to 8 (median corner error 24.6 px on the card's pairs instead of 0.77). The
    shipped aligner files have a fixed batch of 1: XNNPACK runs them, a pair at a time, and
    they are right in the same sequence."""
    pairs = evaluation.held_out_alignment_pairs(pairs_per_image=20)
    for name in ("aligner_flow", "aligner_homography"):
        model_card = pretrained.card(name)
        runner = pretrained.load(name, "tflite")
        assert runner.xnnpack is True and runner.batch_size == 1
        assert model_card["parity"]["tflite"]["model.tflite"]["batch_size"] == 1
        runner(moving=pairs[0].moving[None], fixed=pairs[0].fixed[None])
        scores = evaluation.evaluate_aligner(
            lambda moving, fixed, runner=runner: runner(moving=moving, fixed=fixed),
            pairs,
            batch_size=8,
        )
        # the card's own TFLite numbers, measured by scripts/ship_model.py on the same pairs
        expected = model_card["metrics"]["tflite"]["model.tflite"]["median_corner_error_px"]
        assert abs(scores.summary["median_corner_error_px"] - expected) < 0.01, (name, scores)
    assert pretrained.load("sr_x2", "tflite").xnnpack is True
