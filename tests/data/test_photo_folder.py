"""The folder builder on a small folder of real photographs written in the test: tiles at
prepare time, the fixed validation subset, and the SR pipeline over a folder and a mix."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from keras_attn import data
from keras_attn.data import bundled_photos, photo_folder
from tests.helpers import load_script

NAMES = ("astronaut", "camera", "china", "coffee", "rocket", "brick")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Six real photographs as JPEG/PNG (one grayscale), a text file that is not an image."""
    root = tmp_path_factory.mktemp("my_photos")
    for index, name in enumerate(NAMES):
        image = bundled_photos.load_photo(name)
        if name == "camera":
            Image.fromarray(image[..., 0]).save(root / f"{index}_{name}.png")  # mode L
        else:
            Image.fromarray(image).save(root / f"{index}_{name}.jpg", quality=95)
    (root / "notes.txt").write_text("not an image")
    return root


def test_tile_bounds_cover_the_length_in_nearly_equal_tiles():
    assert photo_folder.tile_bounds(1600, 512) == [(0, 400), (400, 800), (800, 1200), (1200, 1600)]
    assert photo_folder.tile_bounds(300, 512) == [(0, 300)]
    bounds = photo_folder.tile_bounds(2561, 512)
    assert bounds[0][0] == 0 and bounds[-1][1] == 2561 and len(bounds) == 6
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1 and max(sizes) <= 512


def test_validation_is_every_fifth_file_or_the_listed_ones(folder, tmp_path):
    splits = photo_folder.split_files(folder)
    assert [p.name for p in splits["validation"]] == ["4_rocket.jpg"]
    assert len(splits["train"]) == 5 and "notes.txt" not in [p.name for p in splits["train"]]

    listed = tmp_path / "listed"
    listed.mkdir()
    for path in folder.iterdir():
        (listed / path.name).write_bytes(path.read_bytes())
    (listed / "validation.txt").write_text("0_astronaut.jpg\n2_china.jpg\n")
    splits = photo_folder.split_files(listed)
    assert [p.name for p in splits["validation"]] == ["0_astronaut.jpg", "2_china.jpg"]
    (listed / "validation.txt").write_text("lena.png\n")
    with pytest.raises(ValueError, match="lena.png"):
        photo_folder.split_files(listed)


def test_builder_tiles_every_photo_at_prepare_time(folder, tmp_path):
    builder = photo_folder.photo_folder_builder(folder, data_dir=str(tmp_path), tile_size=256)
    assert builder.info.config_name.startswith("my_photos")
    examples = list(builder.as_dataset(split="train").as_numpy_iterator())
    by_name = {}
    for example in examples:
        by_name.setdefault(example["name"].decode(), []).append(example["image"])
    assert sorted(by_name) == ["0_astronaut", "1_camera", "2_china", "3_coffee", "5_brick"]
    for name, tiles in by_name.items():
        original = bundled_photos.load_photo(name.split("_", 1)[1])
        height, width = original.shape[:2]
        rows, columns = (
            len(photo_folder.tile_bounds(height, 256)),
            len(photo_folder.tile_bounds(width, 256)),
        )
        assert len(tiles) == rows * columns, name
        assert sum(t.shape[0] * t.shape[1] for t in tiles) == height * width  # covered once
        assert all(t.shape[0] <= 256 and t.shape[1] <= 256 and t.shape[2] == 3 for t in tiles)
    camera = bundled_photos.load_photo("camera")
    (_, bottom), (_, right) = (photo_folder.tile_bounds(n, 256)[0] for n in camera.shape[:2])
    corner = camera[:bottom, :right]
    # the PNG is lossless: one tile is the photo's corner, pixel for pixel (grayscale as RGB)
    assert sum(np.array_equal(t, corner) for t in by_name["1_camera"]) == 1
    validation = list(builder.as_dataset(split="validation").as_numpy_iterator())
    assert {e["name"].decode() for e in validation} == {"4_rocket"}


def test_an_edited_validation_list_is_prepared_again(folder, tmp_path):
    """Moving a photo between the splits (same files, same sizes) must not reuse the copy
    prepared for the old split."""
    edited = tmp_path / "my_photos"
    edited.mkdir()
    for path in folder.iterdir():
        (edited / path.name).write_bytes(path.read_bytes())
    data_dir = str(tmp_path / "tfds")

    def validation_names():
        builder = photo_folder.photo_folder_builder(edited, data_dir=data_dir, tile_size=1024)
        split = builder.as_dataset(split="validation").as_numpy_iterator()
        return builder.info.config_name, {e["name"].decode() for e in split}

    first_name, first = validation_names()
    assert first == {"4_rocket"}
    (edited / "validation.txt").write_text("0_astronaut.jpg\n")
    second_name, second = validation_names()
    assert second == {"0_astronaut"} and second_name != first_name


def test_sr_pipeline_over_a_folder_and_a_mix(folder, photos_dir):
    # bundled_photos is prepared in photos_dir; the folder's dataset is prepared there too
    name = f"folder:{folder}"
    lr, hr = next(iter(data.super_resolution_dataset(name, "train", 2, 48, 4, data_dir=photos_dir)))
    assert lr.shape == (4, 24, 24, 3) and hr.shape == (4, 48, 48, 3)
    assert float(np.asarray(hr).std()) > 0.02  # real content
    mixed = data.super_resolution_dataset(
        f"bundled_photos+{name}", "validation", 2, 96, 8, training=False, data_dir=photos_dir
    )
    alone = data.super_resolution_dataset(
        "bundled_photos", "validation", 2, 96, 8, training=False, data_dir=photos_dir
    )
    count = lambda dataset: sum(int(x.shape[0]) for x, _ in dataset)  # noqa: E731
    rocket = bundled_photos.load_photo("rocket")
    rocket_tiles = sum(
        (b - a) // 96 * ((d - c) // 96)
        for a, b in photo_folder.tile_bounds(rocket.shape[0], 512)
        for c, d in photo_folder.tile_bounds(rocket.shape[1], 512)
    )
    assert count(mixed) == count(alone) + rocket_tiles


def test_bad_folders_are_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        photo_folder.split_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        data.super_resolution_dataset(f"folder:{tmp_path / 'empty'}", "train")
    with pytest.raises(ValueError, match="Empty dataset name"):
        data.super_resolution_dataset("bundled_photos+", "train")


def test_the_collection_without_its_files_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_ATTN_PHOTO_COLLECTION", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="keras-attn data fetch-photos"):
        data.super_resolution_dataset("photo_collection", "train", data_dir=str(tmp_path))
    assert tfds.builder("photo_folder/photo_collection", data_dir=str(tmp_path))


def test_evaluation_reads_whole_photos_of_a_folder_not_tiles(folder, photos_dir):
    from keras_attn.training import evaluation

    images = evaluation.full_images(f"bundled_photos+folder:{folder}", "validation")
    names = [name for name, _ in images]
    assert names == [*bundled_photos.VALIDATION_PHOTOS, "4_rocket"]
    rocket = dict(images)["4_rocket"]
    assert rocket.shape == bundled_photos.load_photo("rocket").shape  # whole, not a tile
    pairs = evaluation.held_out_pairs(3, f"folder:{folder}", "train")
    assert [name for name, _, _ in pairs] == [
        "0_astronaut",
        "1_camera",
        "2_china",
        "3_coffee",
        "5_brick",
    ]
    for _, lr, hr in pairs:
        assert hr.shape[0] % 3 == 0 and lr.shape[0] * 3 == hr.shape[0]
    with pytest.raises(ValueError, match="splits 'train' and 'validation'"):
        evaluation.full_images(f"folder:{folder}", "test")


def test_aligner_benchmark_scores_the_validation_tiles_of_a_folder(folder, tmp_path, capsys):
    root = pathlib.Path(__file__).resolve().parents[2]
    bench = load_script(root / "benchmarks" / "aligner.py", "bench_aligner_folder")
    out = tmp_path / "results.json"
    argv = ["--no-classical", "--conditions", "rho16", "--pairs-per-image", "2"]
    argv += ["--dataset", f"folder:{folder}", "--data-dir", str(tmp_path), "--json", str(out)]
    assert bench.main(argv) == 0
    rocket = bundled_photos.load_photo("rocket")
    tiles = len(photo_folder.tile_bounds(rocket.shape[0], 512)) * len(
        photo_folder.tile_bounds(rocket.shape[1], 512)
    )
    printed = capsys.readouterr().out
    assert f"pairs per condition: {2 * tiles} (folder:{folder} validation" in printed
    identity = json.loads(out.read_text())["rho16/identity"]
    assert identity["median_corner_error_px"] > 1.0  # the identity is no alignment


def test_mix_equal_draws_each_dataset_equally_often(tmp_path):
    # 4 colour photographs for training (6 tiles) against 1 grayscale one (1 tile): crops of the
    # grayscale photo are the only ones with R == G == B everywhere
    colour, gray = tmp_path / "colour", tmp_path / "gray"
    colour.mkdir(), gray.mkdir()
    for index, name in enumerate(("astronaut", "coffee", "chelsea", "china", "rocket")):
        Image.fromarray(bundled_photos.load_photo(name)).save(colour / f"{index}_{name}.jpg")
    Image.fromarray(bundled_photos.load_photo("camera")[..., 0]).save(gray / "camera.png")
    name = f"folder:{colour}+folder:{gray}"

    def gray_share(mix):
        dataset = data.super_resolution_dataset(
            name, "train", 2, 48, 20, data_dir=str(tmp_path / "tfds"), mix=mix
        )
        hr = np.concatenate([hr.numpy() for _, hr in dataset.take(10)])
        is_gray = np.all(hr[..., :1] == hr, axis=(1, 2, 3))
        return float(is_gray.mean()), hr

    by_pixels, _ = gray_share("pixels")
    equal, first = gray_share("equal")
    assert by_pixels < 0.3  # about 1 tile in 7
    assert 0.4 <= equal <= 0.6
    np.testing.assert_array_equal(first, gray_share("equal")[1])  # seeded: a resume skips into it
    with pytest.raises(ValueError, match="mix must be one of"):
        data.super_resolution_dataset(name, "train", mix="tiles")
