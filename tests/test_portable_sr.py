"""scripts/portable_sr.py: an SR preset trained with Keras alone (here on TensorFlow and, in a
subprocess, on JAX) from a pack of real photographs written in the test; resumed; its model
loaded and measured under TensorFlow."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_attn import data
from keras_attn.data import bundled_photos, photo_folder
from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "portable_sr.py"
NAMES = ("astronaut", "chelsea", "coffee", "rocket", "brick")


@pytest.fixture(scope="module")
def portable():
    return load_script(SCRIPT, "portable_sr_script")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Five real photographs as JPEG; the fifth (brick) is the validation photo."""
    root = tmp_path_factory.mktemp("portable_photos")
    for index, name in enumerate(NAMES):
        Image.fromarray(bundled_photos.load_photo(name)).save(root / f"{index}_{name}.jpg")
    return root


@pytest.fixture(scope="module")
def pack_dir(portable, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("packs") / "pack"
    portable.pack(f"folder:{folder}", out)
    return out


def test_pack_holds_the_split_files_unchanged_and_a_manifest(portable, folder, pack_dir):
    manifest = json.loads((pack_dir / "manifest.json").read_text())
    train = photo_folder.split_files(folder)["train"]
    assert manifest["split"] == "train" and len(manifest["datasets"]) == 1
    files = manifest["datasets"][0]["files"]
    assert [pathlib.Path(f).name for f in files] == [p.name for p in train]
    assert "4_brick.jpg" not in " ".join(files)  # the validation photo stays out
    for name, path in zip(files, train, strict=True):
        assert (pack_dir / name).read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="already exists"):
        portable.pack(f"folder:{folder}", pack_dir)


def test_pack_writes_a_tfds_dataset_as_png(portable, photos_dir, tmp_path):
    out = portable.pack("bundled_photos", tmp_path / "bundled", data_dir=photos_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    files = manifest["datasets"][0]["files"]
    expected = list(
        data.super_resolution.load_images("bundled_photos", "train", photos_dir).as_numpy_iterator()
    )
    assert len(files) == len(expected) == 14
    for name, image in zip(files, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), image)


def test_a_failed_pack_leaves_nothing(portable, tmp_path):
    with pytest.raises(ValueError, match="holds no image files"):
        portable.pack(f"folder:{tmp_path}", tmp_path / "pack")
    assert not (tmp_path / "pack").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_lr_is_the_tf_pipelines_bicubic_downscale(portable, rng):
    hr = rng.random((2, 24, 24, 3)).astype("float32")
    for scale in (2, 3, 4):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(portable.bicubic_downscale(hr, scale)),
            data.super_resolution.bicubic_downscale(hr, scale).numpy(),
        )


def test_sampler_batches_depend_on_seed_and_step_and_mix_as_asked(portable):
    colour = [np.full((120, 160, 3), (200, 40, 10), np.uint8) for _ in range(4)]
    gray = [np.full((60, 60, 3), 77, np.uint8)]  # 1/33 of the pixels, and smaller than a crop
    pixels = portable.CropSampler([colour, gray], scale=2, patch_size=64, batch_size=64)
    equal = portable.CropSampler([colour, gray], scale=2, patch_size=64, batch_size=64, mix="equal")
    assert equal.images[1][0].shape == (64, 64, 3)  # upsampled to one crop, as tf.data does

    def gray_share(sampler):
        crops = np.concatenate([sampler.hr_batch(step) for step in range(20)])
        return float(np.mean(crops[:, 0, 0, 0] == 77))

    assert gray_share(pixels) < 0.08 and 0.4 < gray_share(equal) < 0.6
    np.testing.assert_array_equal(pixels.hr_batch(5), pixels.hr_batch(5))
    assert not np.array_equal(pixels.hr_batch(5)[:, :1, :1], pixels.hr_batch(6)[:, :1, :1])
    lr, hr = pixels.batch(3)
    assert lr.shape == (64, 32, 32, 3) and hr.shape == (64, 64, 64, 3) and hr.dtype == np.float32
    with pytest.raises(ValueError, match="mix must be one of"):
        portable.CropSampler([colour], scale=2, mix="tiles")


def train_args(pack_dir, output, epochs):
    return [
        "train", "--pack", str(pack_dir), "--model", "sr_tiny", "--scale", "2",
        "--epochs", str(epochs), "--steps-per-epoch", "2", "--batch-size", "2",
        "--patch-size", "24", "--warmup-steps", "1", "--verbose", "0", "--output", str(output),
    ]  # fmt: skip


def test_train_resumes_as_if_never_stopped_and_finish_measures(
    portable, folder, pack_dir, tmp_path, monkeypatch
):
    draw = portable.CropSampler.batch

    def killed_in_epoch_3(sampler, step):  # epoch 2's backup stands, epoch 3 is under way
        if step == 5:
            raise RuntimeError("killed")
        return draw(sampler, step)

    monkeypatch.setattr(portable.CropSampler, "batch", killed_in_epoch_3)
    with pytest.raises(Exception, match="killed"):
        portable.main(train_args(pack_dir, tmp_path / "a", 3))
    assert not (tmp_path / "a" / "model.keras").exists()
    monkeypatch.undo()
    assert portable.main(train_args(pack_dir, tmp_path / "a", 3)) == 0  # the same command
    assert portable.main(train_args(pack_dir, tmp_path / "b", 3)) == 0  # never stopped
    resumed = keras.saving.load_model(tmp_path / "a" / "model.keras")
    straight = keras.saving.load_model(tmp_path / "b" / "model.keras")
    assert int(resumed.optimizer.iterations) == int(straight.optimizer.iterations) == 6
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # measured: bitwise
    assert len((tmp_path / "a" / "history.csv").read_text().splitlines()) == 1 + 3
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["epochs_run_this_call"] == 1
    assert metrics["dataset"] == f"folder:{folder}" and metrics["backend"] == "tensorflow"
    assert "train --pack" in (tmp_path / "a" / "command.txt").read_text()

    finished = portable.finish(tmp_path / "a", data_dir=str(tmp_path / "tfds"))
    assert np.isfinite(finished["val_psnr_y"]) and finished["bicubic_psnr_y"] > 20
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == finished


def test_bad_input_is_one_line(portable, tmp_path, capsys):
    assert portable.main(["train", "--pack", str(tmp_path), "--output", str(tmp_path / "r")]) == 2
    assert "is not a pack" in capsys.readouterr().err
    assert portable.main(["finish", "--run", str(tmp_path)]) == 2
    assert "holds no finished run" in capsys.readouterr().err


def test_jax_trains_without_tensorflow_and_tensorflow_loads_the_model(pack_dir, tmp_path):
    """The run on the JAX backend: keras_attn imports without TensorFlow there, and the saved
    model gives TensorFlow the outputs it gave JAX."""
    pytest.importorskip("jax")  # in the test extras (setup.py)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    run = tmp_path / "jax_run"
    subprocess.run(
        [sys.executable, str(SCRIPT), *train_args(pack_dir, run, 1)],
        check=True, env=env, cwd=tmp_path, capture_output=True, timeout=600,
    )  # fmt: skip
    x = np.random.default_rng(0).random((1, 20, 28, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    probe = (
        "import sys, numpy as np, keras, keras_attn\n"
        "from keras_attn.training import run_folder, schedule\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
        f"m = keras.saving.load_model({str(run / 'model.keras')!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, np.asarray(m.predict(np.load("
        f"{str(tmp_path / 'x.npy')!r}), verbose=0)))\n"
    )
    subprocess.run(
        [sys.executable, "-c", probe], check=True, env={**env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path, capture_output=True, timeout=300,
    )  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backend"] == "jax" and metrics["device"].startswith("jax")
    model = keras.saving.load_model(run / "model.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(tmp_path / "y.npy"), atol=1e-5)
