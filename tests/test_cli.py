import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import keras_attn_cli as cli
from keras_attn import data, pretrained
from keras_attn.data import digits


def test_demo_runs_every_shipped_model_and_writes_readable_files(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        assert cli.main(["demo", "--output", str(tmp_path / "out")]) == 0
    finally:
        os.umask(old)
    out = tmp_path / "out"
    html = (out / "index.html").read_text()
    expected = ["layers_on_astronaut.png"]
    for model in pretrained.list_models():
        if model["family"] == "classifier":
            expected += [f"{model['name']}.png", f"{model['name']}_attention.png"]
        elif model["family"] == "aligner":  # a dense-flow one on a real stereo pair
            dense = pretrained.card(model["name"])["architecture"] == "aligner_flow"
            expected.append("stereo_flow.png" if dense else "alignment.png")
        else:
            expected.append(f"{model['name']}.png")
    assert len(expected) > 3  # the shipped SR and classifier models are in the demo
    for name in expected:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, name
        assert name in html
        assert stat.S_IMODE(png.stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "index.html").stat().st_mode) == 0o644
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_unwritable_output_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "keras_attn", "demo", "--output", str(blocker / "sub")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    # TensorFlow 2.21 itself prints two absl/oneDNN notices to stderr on import, whatever
    # TF_CPP_MIN_LOG_LEVEL says; the CLI's own report is the one line after them.
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("keras-attn demo: error:") and "Not a directory" in last_line
    assert "Traceback" not in result.stderr


def test_help_states_defaults():
    result = subprocess.run(
        [sys.executable, "-m", "keras_attn", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "(default: demo_output)" in result.stdout


# --------------------------------------------------------------------------- full CLI


def run(capsys, *argv):
    """Runs the CLI in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, photos_dir, digits_dir):
    """Tiny SR and classifier runs trained through the CLI (1 epoch x 2 steps each)."""
    root = tmp_path_factory.mktemp("cli_runs")
    sr_argv = [
        *("train", "sr", "--model", "sr_tiny", "--epochs", "1", "--steps-per-epoch", "2"),
        *("--batch-size", "4", "--patch-size", "48", "--val-split", "validation[:1]"),
        *("--data-dir", photos_dir, "--verbose", "0", "--output", str(root / "sr")),
    ]
    classifier_argv = [
        *("train", "classifier", "--epochs", "1", "--steps-per-epoch", "2"),
        *("--batch-size", "16", "--image-size", "16", "--data-dir", digits_dir),
        *("--verbose", "0", "--output", str(root / "classifier")),
    ]
    assert cli.main(sr_argv) == 0
    assert cli.main(classifier_argv) == 0
    return {"root": root, "sr": sr_argv, "classifier": classifier_argv}


def test_train_writes_metrics_with_the_command_and_resumes(trained, capsys):
    root = trained["root"]
    sr_metrics = json.loads((root / "sr" / "metrics.json").read_text())
    assert sr_metrics["command"].startswith("keras-attn train sr --model sr_tiny")
    assert sr_metrics["model"] == "sr_tiny_x2" and sr_metrics["steps"] == 2
    assert sr_metrics["params"] == 16404 and np.isfinite(sr_metrics["val_psnr_y"])
    classifier_metrics = json.loads((root / "classifier" / "metrics.json").read_text())
    assert classifier_metrics["test_examples"] == 359 and classifier_metrics["steps"] == 2

    # The same command again: the finished run is restored, not trained again.
    code, out, _ = run(capsys, *trained["classifier"])
    assert code == 0 and "nothing to do" in out
    assert json.loads(out[out.index("{") :])["epochs_run_this_call"] == 0
    # One more epoch asked for: training resumes after the completed one.
    argv = list(trained["sr"])
    argv[argv.index("--epochs") + 1] = "2"
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "Resuming from epoch 2" in out
    assert json.loads((root / "sr" / "metrics.json").read_text())["epochs_run_this_call"] == 1


def test_train_sr_attention_replaces_the_presets_stage(trained, capsys, tmp_path):
    argv = list(trained["sr"])
    argv[argv.index("--steps-per-epoch") + 1] = "1"
    argv[argv.index("--output") + 1] = str(tmp_path / "sr_se")
    code, _, _ = run(capsys, *argv, "--attention", "se")
    assert code == 0
    model = keras.saving.load_model(tmp_path / "sr_se" / "model.keras")
    assert "sr_tiny_x2_attention_se" in [layer.name for layer in model.layers]
    metrics = json.loads((tmp_path / "sr_se" / "metrics.json").read_text())
    assert metrics["params"] > 16404 and metrics["command"].endswith("--attention se")


def test_list_shows_architectures_and_shipped_models(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "sr_small_x2" in out and "attention_cnn_tiny" in out
    assert out.index("Shipped models") < out.index("Architectures")  # what users want first
    shipped = out[out.index("Shipped models") : out.index("Architectures")]
    assert "sr_x2" in shipped and "classifier_digits" in shipped and "psnr_y_db" in shipped
    from keras_attn import pretrained

    value = pretrained.card("sr_x2")["metrics"]["psnr_y_db"]
    assert f"psnr_y_db {value:.2f} " in shipped  # fixed decimals, the card's number
    code, out, _ = run(capsys, "list", "--json")
    listing = json.loads(out)
    assert {m["name"] for m in listing["shipped"]} >= {"sr_x2", "classifier_digits"}


def test_info_prints_the_card(capsys):
    from keras_attn import pretrained

    code, out, _ = run(capsys, "info", "classifier_digits")
    card = pretrained.card("classifier_digits")
    assert code == 0 and out.startswith("classifier_digits: ")
    assert f"accuracy {card['metrics']['accuracy']:.4f}" in out
    assert card["training"]["command"] in out and "bundled_digits train" in out
    code, out, _ = run(capsys, "info", "sr_x2", "--json")
    assert json.loads(out) == pretrained.card("sr_x2")
    # the latency each format had when it was shipped, on its own line, not among held-out scores
    code, out, _ = run(capsys, "info", "sr_x2")
    metrics = pretrained.card("sr_x2")["metrics"]
    fp32, int8 = (
        metrics["tflite"][f]["ms_per_256x256_image"] for f in ("model.tflite", "model_int8.tflite")
    )
    latency = next(line for line in out.splitlines() if line.startswith("  latency "))
    assert latency.startswith("  latency       ms per 256x256 image, batch 1: Keras ")
    assert f"TFLite fp32 {fp32:.1f}, fp16 " in latency and latency.endswith(f"int8 {int8:.1f}")
    held_out = next(line for line in out.splitlines() if line.startswith("  held-out "))
    assert f"psnr_y_db {metrics['psnr_y_db']:.2f}" in held_out and "ms_per" not in held_out
    code, _, err = run(capsys, "info", "sr_fast_x2")
    assert code == 2 and "Did you mean 'sr_x2'?" in err


def test_evaluate_sr_path_and_shipped_classifier(trained, digits_dir, capsys):
    code, out, _ = run(capsys, "evaluate", trained["root"] / "sr" / "model.keras", "--json")
    result = json.loads(out)
    assert code == 0 and result["scale"] == 2 and result["images"] == 5
    assert set(result["per_image"]) == set(data.photo_names("validation"))
    assert 20 < result["psnr_y_db"] < 45 and 0 < result["ssim_y"] <= 1

    card = pretrained.card("classifier_digits")
    code, out, _ = run(capsys, "evaluate", "classifier_digits", "--data-dir", digits_dir)
    assert code == 0 and f"accuracy {card['metrics']['accuracy']:.4f}" in out
    code, out, _ = run(
        capsys,
        *("evaluate", "classifier_digits", "--format", "tflite", "--variant", "int8"),
        *("--data-dir", digits_dir, "--json"),
    )
    expected = card["metrics"]["tflite"]["model_int8.tflite"]["accuracy"]
    assert json.loads(out)["accuracy"] == pytest.approx(expected)


def test_export_tflite_and_saved_model(trained, tmp_path, capsys):
    from keras_attn.export import TFLiteModel

    sr_path = trained["root"] / "sr" / "model.keras"
    code, out, _ = run(
        capsys,
        "export",
        sr_path,
        "--format",
        "tflite",
        "--quantization",
        "dynamic",
        "--output",
        tmp_path / "sr.tflite",
    )
    assert code == 0 and "dynamic" in out
    upscaled = TFLiteModel(tmp_path / "sr.tflite")(image=np.zeros((1, 9, 7, 3), "float32"))
    assert upscaled["upscaled"].shape == (1, 18, 14, 3)

    classifier_path = trained["root"] / "classifier" / "model.keras"
    code, out, _ = run(
        capsys, "export", classifier_path, "--format", "saved_model", "--output", tmp_path / "sm"
    )
    assert code == 0
    import tensorflow as tf

    signature = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    probabilities = signature(image=tf.zeros((2, 16, 16, 1)))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow  # about 30 s: the aligner's unrolled solves make a large graph to convert
def test_export_tflite_gives_an_aligner_a_fixed_batch_of_one(tmp_path, capsys):
    from keras_attn import models
    from keras_attn.export import TFLiteModel

    models.build_model("aligner_tiny").save(tmp_path / "aligner.keras")
    code, out, _ = run(
        capsys,
        "export",
        tmp_path / "aligner.keras",
        "--format",
        "tflite",
        "--output",
        tmp_path / "aligner.tflite",
    )
    assert code == 0 and "batch 1" in out
    runner = TFLiteModel(tmp_path / "aligner.tflite")
    assert runner.batch_size == 1 and runner.xnnpack is True
    pairs = np.random.default_rng(0).uniform(size=(3, 64, 64, 1)).astype("float32")
    assert runner(moving=pairs, fixed=pairs[::-1])["homography"].shape == (3, 3, 3)


def test_predict_sr_writes_upscaled_pngs(trained, tmp_path, capsys):
    photo = data.load_photo("chelsea")[100:140, 150:200]
    Image.fromarray(photo).save(tmp_path / "cat.png")
    Image.fromarray(photo[..., 0]).save(tmp_path / "gray.png")
    code, out, _ = run(
        capsys,
        "predict",
        trained["root"] / "sr" / "model.keras",
        tmp_path / "cat.png",
        tmp_path / "gray.png",
        "--tile",
        "24",
        "--overlap",
        "4",
        "--output",
        tmp_path / "out",
    )
    assert code == 0 and out.count("wrote") == 2
    upscaled = np.asarray(Image.open(tmp_path / "out" / "cat_x2.png"))
    assert upscaled.shape == (80, 100, 3) and upscaled.dtype == np.uint8
    assert np.asarray(Image.open(tmp_path / "out" / "gray_x2.png")).shape == (80, 100)
    # A 2-step model is still close to bilinear upsampling of the input.
    reference = np.asarray(Image.fromarray(photo).resize((100, 80), Image.BILINEAR), "float32")
    assert np.abs(upscaled.astype("float32") - reference).mean() < 12


def test_predict_sr_without_output_writes_next_to_the_input(tmp_path, capsys):
    photo = data.load_photo("chelsea")[100:140, 150:200]
    Image.fromarray(photo).save(tmp_path / "cat.png")
    code, out, _ = run(capsys, "predict", "sr_x2", tmp_path / "cat.png")
    assert code == 0
    written = tmp_path / "cat_x2.png"
    assert (
        out.strip()
        == f"{tmp_path / 'cat.png'}: 50x40 -> 100x80 (x2, sr_x2 (keras)); wrote {written}"
    )
    assert np.asarray(Image.open(tmp_path / "cat_x2.png")).shape == (80, 100, 3)


def test_predict_sr_self_ensemble_writes_the_averaged_upscale(tmp_path, capsys):
    from keras_attn import pretrained
    from keras_attn.models.super_resolution import upscale

    photo = data.load_photo("chelsea")[100:140, 150:200]
    Image.fromarray(photo).save(tmp_path / "cat.png")
    code, _, _ = run(
        capsys, "predict", "sr_x2", tmp_path / "cat.png", "--self-ensemble", "--output", tmp_path
    )
    assert code == 0
    written = np.asarray(Image.open(tmp_path / "cat_x2.png"))
    model = pretrained.load("sr_x2")
    ensemble = upscale(model, photo, self_ensemble=True)
    np.testing.assert_array_equal(written, ensemble)
    assert not np.array_equal(written, upscale(model, photo))


def test_predict_aligner_prints_the_homography_and_writes_next_to_moving(tmp_path, capsys):
    from keras_attn import pretrained

    size = pretrained.load_predictor("aligner_homography").input_shape[0]
    photo = data.load_photo("coffee")[:, :, 0]
    fixed = photo[100 : 100 + size, 200 : 200 + size]
    moving = photo[103 : 103 + size, 205 : 205 + size]  # the same scene shifted by (5, 3) px
    Image.fromarray(fixed).save(tmp_path / "fixed.png")
    Image.fromarray(moving).save(tmp_path / "moving.png")
    code, out, _ = run(
        capsys, "predict", "aligner_homography", tmp_path / "moving.png", tmp_path / "fixed.png"
    )
    assert code == 0, out
    assert out.startswith(f"{tmp_path / 'moving.png'} -> {tmp_path / 'fixed.png'}: homography [[")
    shift = float(out.split("corners move ")[1].split(" px")[0])
    assert abs(shift - np.hypot(5, 3)) < 1.0, out  # the shift it was given
    assert (tmp_path / "moving_warped.png").exists() and (
        tmp_path / "moving_homography.json"
    ).exists()


def test_predict_classifier_prints_top_classes(tmp_path, capsys):
    images, labels = digits.load_split("test")
    paths = []
    for index in range(4):
        paths.append(tmp_path / f"digit{index}.png")
        Image.fromarray(images[index, ..., 0]).save(paths[-1])
    code, out, _ = run(
        capsys, "predict", "classifier_digits", *paths, "--top-k", "2", "--output", tmp_path
    )
    assert code == 0
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    for path, label in zip(paths, labels[:4], strict=True):
        top = predictions[str(path)]
        assert len(top) == 2 and top[0]["class"] == str(label) and top[0]["probability"] > 0.5
        assert f"{path}: {label} (" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "sr_x9"], "keras-attn evaluate: error: Unknown shipped model 'sr_x9'"),
        (["predict", "sr_x2", "{text}", "--output", "{tmp}"], "is not an image file"),
        (["predict", "sr_x2", "{tmp}/nope.png", "--output", "{tmp}"], "nope.png does not exist"),
        (["predict", "sr_x2", "{nan}", "--output", "{tmp}"], "contains NaN"),
        (["predict", "sr_x2", "{png}", "--output", "{text}/sub"], "Not a directory"),
        (["evaluate", "{tmp}/missing.keras"], "missing.keras does not exist"),
        (["evaluate", "{text}"], "is not a .keras file"),
        (["train", "sr", "--scale", "5", "--output", "{tmp}"], "argument --scale: invalid choice"),
        (["train", "classifier", "--label-smoothing", "2", "--output", "{tmp}"], "[0, 1)"),
        (
            ["train", "sr", "--model", "espcn", "--attention", "nonlocal", "--output", "{tmp}"],
            "the reference 'espcn' has no attention stage",
        ),
        (
            [
                "export",
                "sr_x2",
                "--format",
                "saved_model",
                "--quantization",
                "int8",
                "--output",
                "x",
            ],
            "--quantization applies to --format tflite only",
        ),
        (["evaluate", "sr_x2", "--format", "onnx"], "argument --format: invalid choice"),
    ],
)
def test_bad_input_is_one_line_on_stderr(argv, message, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((8, 8), "uint8")).save(tmp_path / "ok.png")
    Image.fromarray(np.full((8, 8), np.nan, "float32")).save(tmp_path / "nan.tiff")
    values = {
        "tmp": tmp_path,
        "text": tmp_path / "notes.txt",
        "nan": tmp_path / "nan.tiff",
        "png": tmp_path / "ok.png",
    }
    code, out, err = run(capsys, *(arg.format(**values) for arg in argv))
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"keras-attn {argv[0]}") and ": error: " in err and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["train", "sr"],
        ["train", "classifier"],
        ["evaluate"],
        ["export"],
        ["predict"],
        ["demo"],
    ],
)
def test_every_help_states_its_defaults(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    # One entry per option: its flag line and the indented help lines below it.
    entries = re.split(r"\n  (?=-)", out[out.index("options:") :])[1:]
    options = [entry for entry in entries if not entry.startswith("-h, --help")]
    assert options
    for entry in options:
        assert "(default:" in entry, entry


def test_help_needs_no_tensorflow_and_commands_keep_its_log_lines_quiet(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys, keras_attn_cli\n"
        "try:\n    keras_attn_cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('tensorflow imported:', 'tensorflow' in sys.modules)"
    )
    help_run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert "usage: keras-attn" in help_run.stdout and "info" in help_run.stdout
    assert "tensorflow imported: False" in help_run.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "keras_attn_cli", "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
    )
    assert listed.returncode == 0 and "Shipped models" in listed.stdout
    assert "oneDNN" not in listed.stderr and "I0000" not in listed.stderr, listed.stderr[-500:]


def test_evaluate_shows_progress_on_a_terminal_only(capsys, monkeypatch, digits_dir):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    code, out, _ = run(capsys, "evaluate", "classifier_digits", "--data-dir", digits_dir)
    assert code == 0 and "batch" in out  # Keras's progress bar, counted in batches
    assert out.strip().splitlines()[-1].startswith("classifier_digits (keras): accuracy")
    code, out, _ = run(capsys, "evaluate", "classifier_digits", "--data-dir", digits_dir, "--json")
    assert code == 0 and json.loads(out)["examples"] == 359  # JSON stays parseable
