"""Bad input, everywhere a user can give it: one clear line, nothing half-written.

The library matrix calls layers, builders, pipelines, task helpers, writers and
`pretrained.load` with one bad thing each and expects a one-line `ValueError` whose message names
the problem. The CLI matrix runs `keras-attn` in-process and expects exit status 2 and one line
on stderr, `keras-attn <command>: error: ...`, without a traceback. In both, no file may appear
on disk because of the failed call. Cases that once exposed a library bug stay as regression tests.
"""

import pathlib
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

import keras_attn_cli as cli
from keras_attn import data, export, layers, models, pretrained
from keras_attn.models.aligner import align, warp_image
from keras_attn.models.super_resolution import upscale
from keras_attn.training import fit
from keras_attn.utils.images import read_image, write_png


class Context:
    """What the cases need, made on first use: small models, data folders, bad files."""

    def __init__(self, request, root: pathlib.Path):
        self._request = request
        self.inputs = root / "in"  # files the cases read
        self.out = root / "out"  # where the cases are asked to write
        self.inputs.mkdir()

    @property
    def photos_dir(self) -> str:
        return self._request.getfixturevalue("photos_dir")

    @property
    def digits_dir(self) -> str:
        return self._request.getfixturevalue("digits_dir")

    @property
    def sr(self) -> keras.Model:
        return self._request.getfixturevalue("sr_model")

    @property
    def aligner(self) -> keras.Model:
        return self._request.getfixturevalue("aligner_model")

    def tampered_catalogue(self, relative: str) -> pathlib.Path:
        """A copy of the shipped sr_x2 folder with one byte of `relative` flipped."""
        root = self.inputs / "catalogue"
        shutil.copytree(pretrained.saved_models_root() / "sr_x2", root / "sr_x2")
        target = root / "sr_x2" / relative
        content = bytearray(target.read_bytes())
        content[len(content) // 2] ^= 0x01
        target.write_bytes(bytes(content))
        return root


@pytest.fixture(scope="module")
def sr_model():
    return models.build_model("sr_tiny_x2")


@pytest.fixture(scope="module")
def aligner_model():
    return models.build_model("aligner_tiny")


@pytest.fixture
def ctx(request, tmp_path):
    return Context(request, tmp_path)


def files_under(path: pathlib.Path) -> set:
    return {p for p in path.rglob("*") if p.is_file()} if path.exists() else set()


def zeros(*shape, dtype="float32"):
    return np.zeros(shape, dtype)


def photo(dtype="float32"):
    """A 16x16 RGB crop of a real photo, float in [0, 1] or uint8."""
    crop = data.load_photo("astronaut")[100:116, 200:216]
    return crop if dtype == "uint8" else crop.astype(dtype) / 255.0


def with_nan(image, value=np.nan):
    image = image.copy()
    image[3, 5] = value
    return image


def gray64(seed=0):
    return np.random.default_rng(seed).uniform(size=(64, 64)).astype("float32")


# --------------------------------------------------------------------------- library matrix

TFDS_NOT_FOUND = ()  # was a strict xfail: fixed in the library

LIBRARY_CASES = [
    # layers: wrong rank, unknown channels, bad arguments
    ("squeeze-excite-rank-3", lambda c: layers.SqueezeExcite()(zeros(4, 4, 8)), r"rank 4"),
    ("cbam-rank-5", lambda c: layers.CBAM()(zeros(1, 2, 4, 4, 8)), r"rank 4"),
    ("self-attention-rank-3", lambda c: layers.SelfAttention2D(2, 4)(zeros(4, 4, 8)), r"rank 4"),
    (
        "non-local-unknown-channels",
        lambda c: layers.NonLocal2D()(keras.Input((None, None, None))),
        r"known channel count",
    ),
    ("pixel-shuffle-channels", lambda c: layers.PixelShuffle(2)(zeros(1, 4, 4, 6)), r"divisible"),
    ("pixel-shuffle-float-scale", lambda c: layers.PixelShuffle(2.0), r"scale=2\.0"),
    ("self-attention-zero-heads", lambda c: layers.SelfAttention2D(0, 4), r"num_heads=0"),
    (
        "self-attention-key-block-alone",
        lambda c: layers.SelfAttention2D(2, 4, key_block_size=8),
        r"key_block_size needs block_size",
    ),
    ("squeeze-excite-ratio-0", lambda c: layers.SqueezeExcite(ratio=0), r"ratio=0"),
    ("cbam-even-kernel", lambda c: layers.CBAM(kernel_size=4), r"odd.*kernel_size=4"),
    ("non-local-mode", lambda c: layers.NonLocal2D(mode="cosine"), r"mode='cosine'"),
    ("warp-not-a-list", lambda c: layers.Warp()(zeros(1, 4, 4, 3)), r"list \[moving, flow\]"),
    (
        "warp-flow-3-channels",
        lambda c: layers.Warp()([zeros(1, 4, 4, 3), zeros(1, 4, 4, 3)]),
        r"flow of shape",
    ),
    (
        "warp-size-mismatch",
        lambda c: layers.Warp()([zeros(1, 4, 4, 3), zeros(1, 5, 4, 2)]),
        r"same height",
    ),
    (
        "correlation-grid-mismatch",
        lambda c: layers.CorrelationMatch2D()(zeros(1, 4, 4, 8), zeros(1, 4, 5, 8)),
        r"same grid",
    ),
    ("correlation-temperature", lambda c: layers.CorrelationMatch2D(temperature=0), r"temperat"),
    ("unknown-attention-name", lambda c: layers.get_attention("swin"), r"Unknown attention 'swin'"),
    # builders
    ("unknown-model-name", lambda c: models.build_model("resnet9000"), r"Unknown model"),
    ("sr-scale-5", lambda c: models.build_model("sr_tiny_x2", scale=5), r"scale=5"),
    (
        "classifier-unknown-attention",
        lambda c: models.build_model("attention_cnn_tiny", attention="swin"),
        r"Unknown attention 'swin'",
    ),
    (
        "classifier-one-class",
        lambda c: models.build_model("attention_cnn_tiny", num_classes=1),
        r"num_classes",
    ),
    (
        "aligner-size-not-multiple-of-8",
        lambda c: models.build_model("aligner_tiny", input_shape=(60, 64, 1)),
        r"multiples of 8",
    ),
    (
        "aligner-2-channels",
        lambda c: models.build_model("aligner_tiny", input_shape=(64, 64, 2)),
        r"1 or 3 channels",
    ),
    (
        "aligner-unknown-size",
        lambda c: models.build_model("aligner_tiny", input_shape=(None, None, 1)),
        r"fixed sizes",
    ),
    ("aligner-head", lambda c: models.build_model("aligner_tiny", head="affine"), r"head="),
    # pipelines
    pytest.param(
        "sr-unknown-dataset",
        lambda c: data.super_resolution_dataset("no_such_dataset", "train", 2, 48, 4),
        r"no_such_dataset",
        marks=TFDS_NOT_FOUND,
    ),
    pytest.param(
        "alignment-unknown-dataset",
        lambda c: data.alignment_dataset("no_such_dataset"),
        r"no_such_dataset",
        marks=TFDS_NOT_FOUND,
    ),
    (
        "classification-unknown-dataset",
        lambda c: data.classification_dataset("no_such_dataset"),
        r"no_such_dataset",
    ),
    (
        "sr-bad-split",
        lambda c: data.super_resolution_dataset(
            "bundled_photos", "test", 2, 48, 4, data_dir=c.photos_dir
        ),
        r"Unknown split 'test'",
    ),
    (
        "classification-bad-split",
        lambda c: data.classification_dataset("bundled_digits", "valid", data_dir=c.digits_dir),
        r"Unknown split 'valid'",
    ),
    (
        "sr-patch-not-multiple-of-scale",
        lambda c: data.super_resolution_dataset("bundled_photos", "train", 3, 50, 4),
        r"multiple of scale",
    ),
    (
        "classification-image-size-0",
        lambda c: data.classification_dataset("bundled_digits", image_size=0),
        r"image_size=0",
    ),
    ("sr-config-scale-5", lambda c: data.SuperResolutionConfig(scale=5), r"scale=5"),
    # upscale
    ("upscale-nan", lambda c: upscale(c.sr, with_nan(photo())), r"NaN"),
    ("upscale-inf", lambda c: upscale(c.sr, with_nan(photo(), np.inf)), r"Inf"),
    ("upscale-empty", lambda c: upscale(c.sr, zeros(0, 0, 3)), r"empty"),
    ("upscale-rank-5", lambda c: upscale(c.sr, photo()[None, None]), r"rank 2 .* or 3"),
    ("upscale-rank-1", lambda c: upscale(c.sr, photo().ravel()), r"rank 2 .* or 3"),
    ("upscale-2-channels", lambda c: upscale(c.sr, photo()[..., :2]), r"1 or 3 channels"),
    ("upscale-float-above-1", lambda c: upscale(c.sr, photo() * 255), r"in \[0, 1\]"),
    ("upscale-float-below-0", lambda c: upscale(c.sr, photo() - 0.5), r"in \[0, 1\]"),
    ("upscale-bool", lambda c: upscale(c.sr, photo() > 0.5), r"dtype=bool"),
    ("upscale-int64", lambda c: upscale(c.sr, photo("uint8").astype("int64")), r"dtype=int64"),
    ("upscale-tile-4", lambda c: upscale(c.sr, photo(), tile=4), r"tile=4"),
    ("upscale-overlap-too-big", lambda c: upscale(c.sr, photo(), tile=8, overlap=4), r"overlap"),
    # align and warp_image
    (
        "align-too-small",
        lambda c: align(c.aligner, gray64(), gray64()[:8]),
        r"fixed is too small to align: at least 16 pixels a side",
    ),
    ("align-nan", lambda c: align(c.aligner, gray64(), with_nan(gray64())), r"fixed .*NaN"),
    ("align-not-an-aligner", lambda c: align(c.sr, gray64(), gray64()), r"not look like an"),
    ("warp-image-2x2", lambda c: warp_image(gray64(), np.eye(2)), r"3x3 homography"),
    ("warp-image-singular", lambda c: warp_image(gray64(), np.ones((3, 3))), r"invertible"),
    (
        "warp-image-nan-flow",
        lambda c: warp_image(gray64(), with_nan(zeros(64, 64, 2))),
        r"flow contains NaN",
    ),
    # pretrained.load
    ("pretrained-unknown-name", lambda c: pretrained.load("sr_x9"), r"Unknown shipped model"),
    ("pretrained-bad-format", lambda c: pretrained.load("sr_x2", "onnx"), r"format='onnx'"),
    (
        "pretrained-bad-variant",
        lambda c: pretrained.load("sr_x2", "tflite", variant="int4"),
        r"variant='int4'",
    ),
    (
        "pretrained-tampered-keras",
        lambda c: pretrained.load("sr_x2", root=c.tampered_catalogue("model.keras")),
        r"model\.keras .*sha256",
    ),
    (
        "pretrained-tampered-tflite",
        lambda c: pretrained.load(
            "sr_x2", "tflite", variant="fp16", root=c.tampered_catalogue("model_fp16.tflite")
        ),
        r"model_fp16\.tflite .*sha256",
    ),
    (
        "pretrained-tampered-saved-model",
        lambda c: pretrained.load(
            "sr_x2", "saved_model", root=c.tampered_catalogue("saved_model/saved_model.pb")
        ),
        r"saved_model\.pb .*sha256",
    ),
    # writers: nothing may appear at the output path
    (
        "export-tflite-bad-quantization",
        lambda c: export.export_tflite(c.sr, c.out / "m.tflite", "int4"),
        r"quantization='int4'",
    ),
    (
        "export-saved-model-output-names",
        lambda c: export.export_saved_model(c.sr, c.out / "sm", output_names=["a", "b"]),
        r"output_names needs 1 names",
    ),
    (
        "package-card-without-metrics",
        lambda c: pretrained.package_model(c.sr, "m", c.out, card={"family": "sr"}),
        r"card needs",
    ),
    ("write-png-float", lambda c: write_png(c.out / "x.png", photo()), r"uint8"),
    pytest.param(
        "write-png-rank-4",
        lambda c: write_png(c.out / "x.png", photo("uint8")[None]),
        r"shape",
    ),
    pytest.param(
        "save-model-atomic-h5",
        lambda c: fit.save_model_atomic(c.sr, c.out / "model.h5"),
        r"\.keras",
    ),
    ("read-image-text-file", lambda c: read_image(pathlib.Path(__file__)), r"not an image file"),
    ("train-config-zero-epochs", lambda c: fit.TrainConfig(epochs=0), r"epochs=0"),
]


def _case_id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize(
    "label, call, match", LIBRARY_CASES, ids=[_case_id(case) for case in LIBRARY_CASES]
)
def test_library_rejects_bad_input_with_one_clear_line(label, call, match, ctx):
    with pytest.raises(ValueError, match=match) as error:
        call(ctx)
    message = str(error.value)
    assert len(message.strip().splitlines()) == 1, f"{label}: {len(message.splitlines())} lines"
    assert not files_under(ctx.out), f"{label} left {sorted(files_under(ctx.out))}"


def test_library_matrix_is_large_and_ids_are_unique():
    ids = [_case_id(case) for case in LIBRARY_CASES]
    assert len(ids) == len(set(ids)) >= 30


def test_valid_edge_cases_are_not_rejected(sr_model):
    """The other side of the matrix: a 1x1 image has no minimum size to violate, float16/64
    images keep their dtype, and a tile larger than the image is the untiled path."""
    one_pixel = upscale(sr_model, np.full((1, 1, 3), 128, "uint8"))
    assert one_pixel.shape == (2, 2, 3) and one_pixel.dtype == np.uint8
    np.testing.assert_allclose(one_pixel, 128, atol=1)  # a new model is bilinear upsampling
    for dtype in ("float16", "float64"):
        out = upscale(sr_model, photo(dtype))
        assert out.dtype == dtype and out.shape == (32, 32, 3)
    np.testing.assert_array_equal(
        upscale(sr_model, photo(), tile=64, overlap=8), upscale(sr_model, photo())
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's divide-by-zero: the symptom
def test_warp_image_with_horizon_in_view_gives_finite_pixels():
    image = gray64()
    # Invertible and finite; its inverse maps column 32 of the output to infinity.
    homography = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1 / 32, 0.0, 1.0]])
    warped = warp_image(image, homography)
    assert np.isfinite(warped).all()
    # Columns 32+ come from behind the camera (w <= 0): outside the image, so zero.
    np.testing.assert_array_equal(warped[:, 32:], 0.0)


# --------------------------------------------------------------------------- CLI matrix


@pytest.fixture
def cli_files(tmp_path, photos_dir):
    """Input files for the CLI cases, and the `{name}` placeholders of their arguments."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(photo("uint8")).save(inputs / "ok.png")
    (inputs / "notes.txt").write_text("not an image")
    (inputs / "x.png").write_text("a text file named like an image")
    png = (inputs / "ok.png").read_bytes()
    (inputs / "truncated.png").write_bytes(png[: len(png) // 2])
    Image.fromarray(np.full((8, 8), 2.0, "float32")).save(inputs / "bright.tiff")
    (inputs / "bad.keras").write_bytes(b"PK\x03\x04 not really a zip archive")
    (inputs / "empty_dir").mkdir()
    values = {path.name.replace(".", "_"): str(path) for path in inputs.iterdir()}
    values["out"] = str(tmp_path / "out")
    values["photos"] = photos_dir
    return tmp_path, values


USAGE_PREFIX = ()  # was a strict xfail: fixed in the library
LONG_TFDS_LINE = ()  # was a strict xfail: fixed in the library
PARTIAL_PREDICT = ()  # was a strict xfail: fixed in the library
EXPORT_BAD_KERAS = ()  # was a strict xfail: fixed in the library

CLI_CASES = [
    ("predict-unknown-model", "predict sr_x9 {ok_png} --output {out}", "Unknown shipped model"),
    ("predict-missing-input", "predict sr_x2 {out}/nope.png --output {out}", "does not exist"),
    ("predict-text-named-png", "predict sr_x2 {x_png} --output {out}", "not an image file"),
    ("predict-truncated-png", "predict sr_x2 {truncated_png} --output {out}", "truncated.png"),
    ("predict-text-file", "predict sr_x2 {notes_txt} --output {out}", "not an image file"),
    ("predict-directory-input", "predict sr_x2 {empty_dir} --output {out}", "is not a file"),
    (
        "predict-output-under-a-file",
        "predict sr_x2 {ok_png} --output {notes_txt}/sub",
        "notes.txt",
    ),
    ("predict-top-k-0", "predict classifier_digits {ok_png} --top-k 0", "--top-k"),
    ("predict-tile-4", "predict sr_x2 {ok_png} --tile 4 --output {out}", "tile=4"),
    ("predict-tile-not-int", "predict sr_x2 {ok_png} --tile abc --output {out}", "invalid int"),
    ("predict-corrupt-keras", "predict {bad_keras} {ok_png} --output {out}", "not a loadable"),
    pytest.param(
        "predict-unknown-option",
        "predict sr_x2 {ok_png} --output {out} --bogus",
        "unrecognized arguments: --bogus",
        marks=USAGE_PREFIX,
    ),
    pytest.param(
        "predict-second-image-rejected",
        "predict sr_x2 {ok_png} {bright_tiff} --output {out}",
        "in [0, 1]",
        marks=PARTIAL_PREDICT,
    ),
    ("evaluate-unknown-model", "evaluate sr_x9", "Unknown shipped model"),
    ("evaluate-corrupt-keras", "evaluate {bad_keras}", "not a loadable"),
    ("evaluate-variant-without-tflite", "evaluate sr_x2 --variant fp16", "variant"),
    ("evaluate-bad-split", "evaluate sr_x2 --split test", "split='test'"),
    ("export-unknown-model", "export sr_x9 --format saved_model --output {out}/sm", "sr_x9"),
    (
        "export-missing-keras",
        "export {out}/m.keras --format tflite --output {out}/m.tflite",
        "m.keras",
    ),
    pytest.param(
        "export-corrupt-keras",
        "export {bad_keras} --format saved_model --output {out}/sm",
        "not a loadable",
        marks=EXPORT_BAD_KERAS,
    ),
    (
        "export-output-under-a-file",
        "export sr_x2 --format saved_model --output {notes_txt}/sm",
        "notes.txt",
    ),
    ("export-bad-format", "export sr_x2 --format onnx --output {out}/m", "invalid choice"),
    ("train-unknown-family", "train gan --output {out}", "invalid choice: 'gan'"),
    ("train-bad-scale", "train sr --scale 5 --output {out}", "invalid choice: 5"),
    (
        "train-zero-epochs",
        "train sr --epochs 0 --data-dir {photos} --val-split validation[:1] --output {out}",
        "epochs=0",
    ),
    (
        "train-patch-not-multiple",
        "train sr --scale 3 --patch-size 50 --epochs 1 --output {out}",
        "multiple of scale",
    ),
    (
        "train-classifier-unknown-dataset",
        "train classifier --dataset no_such_dataset --output {out}",
        "no_such_dataset",
    ),
    pytest.param(
        "train-sr-unknown-dataset",
        "train sr --dataset no_such_dataset --output {out}",
        "no_such_dataset",
        marks=LONG_TFDS_LINE,
    ),
    ("train-unknown-strategy", "train sr --strategy horovod --output {out}", "'horovod'"),
    ("train-logical-cpus-0", "train sr --logical-cpus 0 --output {out}", "logical_cpus"),
    (
        "train-aligner-logical-cpus-after-start",  # TF already runs with 1 CPU in this process
        "train aligner --strategy mirrored --logical-cpus 2 --output {out}",
        "already initialised with 1",
    ),
    (
        "train-aligner-init-from-missing",
        "train aligner --init-from {out}/nope.keras --output {out}",
        "nope.keras' does not exist",
    ),
    (
        "train-aligner-init-from-corrupt",
        "train aligner --init-from {bad_keras} --output {out}",
        "is not a loadable .keras model",
    ),
    ("unknown-command", "frobnicate --output {out}", "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize(
    "label, argv, message", CLI_CASES, ids=[_case_id(case) for case in CLI_CASES]
)
def test_cli_bad_input_is_one_line_and_writes_nothing(label, argv, message, cli_files, capsys):
    root, values = cli_files
    argv = [arg.format(**values) for arg in argv.split()]
    before = files_under(root)
    capsys.readouterr()
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    command = argv[0] if argv[0] in ("list", "train", "evaluate", "export", "predict") else None
    prefix = f"keras-attn {command}" if command else "keras-attn"
    assert lines[0].startswith(prefix) and ": error: " in lines[0], lines[0]
    assert message in lines[0] and "Traceback" not in err
    assert len(lines[0]) < 1000, f"{len(lines[0])} characters"
    assert files_under(root) == before, sorted(files_under(root) - before)


def test_cli_matrix_is_large_and_ids_are_unique():
    ids = [_case_id(case) for case in CLI_CASES]
    assert len(ids) == len(set(ids)) >= 20


def test_cli_usage_errors_do_not_name_internal_classes(capsys):
    assert cli.main(["predict", "sr_x2", "x.png", "--tile", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-attn predict: error: argument --tile: invalid int value")


def test_failed_predict_does_not_create_the_output_folder(cli_files, capsys):
    root, values = cli_files
    out = pathlib.Path(values["out"])
    assert cli.main(["predict", "sr_x9", values["ok_png"], "--output", str(out)]) == 2
    assert "Unknown shipped model" in capsys.readouterr().err
    assert not out.exists()


def test_a_valid_run_next_to_the_bad_ones_still_works(cli_files, capsys):
    """Control for the CLI matrix: the same files and placeholders give a good run."""
    root, values = cli_files
    argv = ["predict", "sr_x2", values["ok_png"], "--output", values["out"]]
    assert cli.main(argv) == 0
    written = pathlib.Path(values["out"]) / "ok_x2.png"
    assert np.asarray(Image.open(written)).shape == (32, 32, 3)
    assert capsys.readouterr().err == ""
