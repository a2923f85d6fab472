"""Offline Fashion-MNIST through tfds's own builder, random erasing, and CIFAR-10 (mock data).

The fixture is a tiny release in the real IDX format (20 train and 10 test 28x28 images), written
twice: as the official `.gz` files (file name and time stamp in the header) and as Debian ships
them (header normalised by dh_strip_nondeterminism, same compressed stream). tfds is told to
expect the fixture's official files and 20/10 examples, exactly as it expects the real ones.
"""

import collections
import gzip
import hashlib
import shutil
import struct
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_attn.data import classification, fashion_mnist
from keras_attn.data.classification import ClassificationConfig, classification_dataset
from keras_attn.data.fashion_mnist import prepare_fashion_mnist

NUM_EXAMPLES = {"train": 20, "test": 10}
SOURCE_DATE_EPOCH = 1591347949  # the time stamp Debian's build wrote into its headers
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

Release = collections.namedtuple("Release", "images labels idx official debian_dir")


def official_gzip(name, data):
    """`data` gzipped as the official files are: file name and time stamp stored, XFL 0, OS 3."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    stream = compressor.compress(data) + compressor.flush()
    header = b"\x1f\x8b\x08\x08" + struct.pack("<I", fashion_mnist.GZIP_MTIME[name]) + b"\0\3"
    trailer = struct.pack("<II", zlib.crc32(data), len(data))
    return header + name.removesuffix(".gz").encode() + b"\0" + stream + trailer


def debian_gzip(official):
    """What dh_strip_nondeterminism makes of an official file: no name, another time stamp."""
    stream_start = official.index(b"\0", 10) + 1
    return (
        b"\x1f\x8b\x08\0"
        + struct.pack("<I", SOURCE_DATE_EPOCH)
        + official[8:10]
        + official[stream_start:]
    )


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    rng = np.random.default_rng(7)
    images, labels, idx = {}, {}, {}
    for split, count in NUM_EXAMPLES.items():
        # Dark background with a bright random blob, like the real clothes.
        pixels = np.zeros((count, 28, 28), np.uint8)
        pixels[:, 6:22, 8:20] = rng.integers(1, 256, size=(count, 16, 12))
        images[split] = pixels
        labels[split] = rng.permutation(np.arange(count) % 10).astype(np.uint8)
        image_file, label_file = FILES[split]
        idx[image_file] = struct.pack(">IIII", 2051, count, 28, 28) + pixels.tobytes()
        idx[label_file] = struct.pack(">II", 2049, count) + labels[split].tobytes()
    official = {name: official_gzip(name, data) for name, data in idx.items()}
    debian_dir = tmp_path_factory.mktemp("debian") / "usr/share/datasets/fashion-mnist"
    debian_dir.mkdir(parents=True)
    for name, content in official.items():
        (debian_dir / name).write_bytes(debian_gzip(content))
    return Release(images, labels, idx, official, debian_dir)


@pytest.fixture
def idx_sha256(release):
    """The project's checksum table for the fixture release."""
    return {name: sha256(data) for name, data in release.idx.items()}


@pytest.fixture
def tfds_expects_release(release, monkeypatch):
    """tfds's `fashion_mnist` expects the fixture's official files and sizes; no network."""
    builder_cls = tfds.builder_cls("fashion_mnist")
    module = sys.modules[builder_cls.__module__]
    monkeypatch.setattr(module, "_TRAIN_EXAMPLES", NUM_EXAMPLES["train"])
    monkeypatch.setattr(module, "_TEST_EXAMPLES", NUM_EXAMPLES["test"])
    url_infos = {
        url: tfds.download.checksums.UrlInfo(
            size=len(release.official[info.filename]),
            checksum=sha256(release.official[info.filename]),
            filename=info.filename,
        )
        for url, info in builder_cls.url_infos.items()
    }
    monkeypatch.setattr(builder_cls, "url_infos", url_infos)
    monkeypatch.setattr(fashion_mnist, "download_reachable", lambda timeout=5.0: False)


@pytest.fixture
def no_local_files(monkeypatch, tmp_path):
    monkeypatch.setattr(fashion_mnist, "DEFAULT_SOURCE_DIRS", (str(tmp_path / "nowhere"),))
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.setattr(fashion_mnist, "download_reachable", lambda timeout=5.0: False)


def examples(dataset):
    return collections.Counter(
        (image.tobytes(), int(label)) for image, label in dataset.as_numpy_iterator()
    )


def left_behind(data_dir):
    return sorted(str(path.relative_to(data_dir)) for path in data_dir.rglob("*"))


# --------------------------------------------------------------------------- preparation


def test_debian_files_become_the_official_files_byte_for_byte(release, idx_sha256, tmp_path):
    for name, official in release.official.items():
        restored = fashion_mnist.official_gzip(release.debian_dir / name, idx_sha256)
        assert restored == official
        (tmp_path / name).write_bytes(official)  # e.g. Keras's download cache: already official
        assert fashion_mnist.official_gzip(tmp_path / name, idx_sha256) == official
        assert gzip.decompress(restored) == release.idx[name]


def test_prepared_tfds_fashion_mnist_is_the_fixture(
    release, idx_sha256, tfds_expects_release, tmp_path
):
    data_dir = tmp_path / "tfds"
    builder = prepare_fashion_mnist(data_dir, release.debian_dir, idx_sha256)
    assert builder.is_prepared() and builder.name == "fashion_mnist"
    assert left_behind(data_dir)[0] == "fashion_mnist"
    assert not any("download" in path or "incomplete" in path for path in left_behind(data_dir))
    assert builder.info.download_size == sum(map(len, release.official.values()))
    for split, count in NUM_EXAMPLES.items():
        dataset = tfds.load("fashion_mnist", split=split, data_dir=data_dir, as_supervised=True)
        assert dataset.element_spec[0].shape == (28, 28, 1)
        assert dataset.element_spec[0].dtype == tf.uint8
        expected = collections.Counter(
            (image[..., None].tobytes(), int(label))
            for image, label in zip(release.images[split], release.labels[split], strict=True)
        )
        assert examples(dataset) == expected
        assert builder.info.splits[split].num_examples == count
    # Prepared once: no files needed any more.
    assert prepare_fashion_mnist(data_dir, tmp_path / "empty", idx_sha256).is_prepared()


@pytest.mark.parametrize("damage", ["other data", "truncated", "not gzip"])
def test_a_corrupt_file_is_named_and_nothing_is_left(
    release, idx_sha256, tfds_expects_release, tmp_path, damage
):
    source = tmp_path / "source"
    shutil.copytree(release.debian_dir, source)
    name = "train-labels-idx1-ubyte.gz"
    content = (source / name).read_bytes()
    if damage == "other data":
        labels = bytearray(release.idx[name])
        labels[-1] = (labels[-1] + 1) % 10
        (source / name).write_bytes(gzip.compress(bytes(labels)))
        message = "sha256 of its decompressed data"
    elif damage == "truncated":
        (source / name).write_bytes(content[: len(content) // 2])
        message = "no valid gzip file"
    else:
        (source / name).write_bytes(release.idx[name])
        message = "no valid gzip file"
    data_dir = tmp_path / "tfds"
    with pytest.raises(ValueError, match=message) as error:
        prepare_fashion_mnist(data_dir, source, idx_sha256)
    assert repr(str(source / name)) in str(error.value)
    assert "\n" not in str(error.value)
    assert not data_dir.exists() or left_behind(data_dir) == []


def test_recompressed_official_data_is_refused_with_the_reason(
    release, idx_sha256, tfds_expects_release, tmp_path
):
    source = tmp_path / "source"
    shutil.copytree(release.debian_dir, source)
    name = "t10k-images-idx3-ubyte.gz"
    data = release.idx[name]
    (source / name).write_bytes(gzip.compress(data[:100]) + gzip.compress(data[100:]))
    with pytest.raises(ValueError, match="recompressed") as error:
        prepare_fashion_mnist(tmp_path / "tfds", source, idx_sha256)
    assert repr(str(source / name)) in str(error.value)
    assert fashion_mnist.DEBIAN_PACKAGE in str(error.value)
    assert not (tmp_path / "tfds").exists() or left_behind(tmp_path / "tfds") == []


def test_missing_files_give_one_line_naming_the_package(no_local_files, tmp_path):
    with pytest.raises(ValueError) as error:
        prepare_fashion_mnist(tmp_path / "tfds")
    message = str(error.value)
    assert "\n" not in message
    assert "dataset-fashion-mnist" in message
    assert "apt-get download dataset-fashion-mnist && dpkg-deb -x" in message
    assert "KERAS_ATTN_FASHION_MNIST=DIR/usr/share/datasets/fashion-mnist" in message
    assert str(tmp_path / "empty") in message and str(tmp_path / "nowhere") in message
    assert "unreachable" in message
    with pytest.raises(ValueError, match="dataset-fashion-mnist") as error:
        classification_dataset("fashion_mnist", "train", 4, data_dir=str(tmp_path / "tfds"))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="dataset-fashion-mnist") as error:
        prepare_fashion_mnist(tmp_path / "tfds", source_dir=tmp_path / "given")
    assert str(tmp_path / "given") in str(error.value)
    assert "unreachable" not in str(error.value)


def test_without_files_tfds_downloads_as_usual(no_local_files, monkeypatch, tmp_path):
    downloads = []
    monkeypatch.setattr(fashion_mnist, "download_reachable", lambda timeout=5.0: True)
    monkeypatch.setattr(
        tfds.core.DatasetBuilder,
        "download_and_prepare",
        lambda self, **kwargs: downloads.append((self.name, kwargs)),
    )
    builder = prepare_fashion_mnist(tmp_path / "tfds")
    assert builder.name == "fashion_mnist" and downloads == [("fashion_mnist", {})]


def test_the_pipeline_keeps_the_normal_tfds_path_first(monkeypatch):
    def no_offline_preparation(*args, **kwargs):
        raise AssertionError("prepared offline although tfds could download")

    monkeypatch.setattr(fashion_mnist, "prepare_fashion_mnist", no_offline_preparation)
    monkeypatch.setattr(fashion_mnist, "download_reachable", lambda timeout=5.0: True)
    with tfds.testing.mock_data(num_examples=4):
        images, labels = next(iter(classification_dataset("fashion_mnist", "train", 4, 28)))
    assert images.shape == (4, 28, 28, 1) and labels.dtype == tf.int32


# --------------------------------------------------------------------------- pipeline


def erased_regions(erased, plain):
    """Per image: the bounding box (top, left, height, width) of the changed pixels, or None."""
    boxes = []
    for changed in np.any(erased != plain, axis=-1):
        rows, columns = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        boxes.append(
            None
            if rows.size == 0
            else (rows[0], columns[0], rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1)
        )
    return boxes


def check_erasing(name, size, **kwargs):
    def batch(seed, random_erasing):
        dataset = classification_dataset(
            name, "train", 16, size, seed=seed, random_erasing=random_erasing, **kwargs
        )
        images, labels = next(iter(dataset))
        return images.numpy(), labels.numpy()

    erased, labels = batch(3, 0.5)
    again, labels_again = batch(3, 0.5)
    plain, plain_labels = batch(3, 0.0)
    np.testing.assert_array_equal(erased, again)  # same seed, same batch
    np.testing.assert_array_equal(labels, labels_again)
    np.testing.assert_array_equal(labels, plain_labels)  # erasing changes nothing else
    boxes = erased_regions(erased, plain)
    assert 2 <= sum(box is not None for box in boxes) <= 14  # about half of the 16 images
    for box in boxes:
        if box is not None:
            assert box[2] * box[3] <= 0.4 * size * size + 2 * size  # one rectangle (rounding)
    assert not np.array_equal(batch(4, 0.5)[0], erased)
    return erased, labels


def test_fashion_mnist_pipeline_prepares_offline_with_random_erasing(
    release, idx_sha256, tfds_expects_release, monkeypatch, tmp_path
):
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(release.debian_dir))
    monkeypatch.setattr(fashion_mnist, "IDX_SHA256", idx_sha256)
    data_dir = str(tmp_path / "tfds")
    images, labels = check_erasing("fashion_mnist", 28, data_dir=data_dir)
    assert tfds.builder("fashion_mnist", data_dir=data_dir).is_prepared()
    assert images.shape == (16, 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (16,) and labels.dtype == np.int32 and set(labels) <= set(range(10))
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert classification.num_examples("fashion_mnist", "train", data_dir) == 20
    test = classification_dataset("fashion_mnist", "test", 4, 28, False, data_dir=data_dir)
    assert sum(batch.shape[0] for batch, _ in test) == 10


def test_cifar10_through_the_same_pipeline_with_mock_data():
    with tfds.testing.mock_data(num_examples=8):
        images, labels = check_erasing("cifar10", 32)
        test = classification_dataset("cifar10", "test", 3, 32, training=False)
        test_images = np.concatenate([batch.numpy() for batch, _ in test])
    assert images.shape == (16, 32, 32, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32 and set(labels) <= set(range(10))
    assert test_images.shape == (8, 32, 32, 3) and test_images.std() > 0.1


def test_random_erase_draws_one_rectangle_of_the_recipe():
    image = tf.fill([40, 40, 3], tf.constant(7, tf.uint8))
    config = ClassificationConfig(image_size=40, random_erasing=1.0, erasing_fill="zero")
    areas, aspects = [], []
    for seed in range(100):
        erased = classification.random_erase(image, tf.constant([seed, 1]), config).numpy()
        (box,) = erased_regions(erased[None], image.numpy()[None])
        top, left, height, width = box
        assert (erased[top : top + height, left : left + width] == 0).all()  # a full rectangle
        assert (erased == 0).sum() == height * width * 3
        areas.append(height * width / 1600)
        aspects.append(height / width)
    assert 0.015 < min(areas) and max(areas) < 0.43 and 0.15 < np.mean(areas) < 0.27
    assert 0.25 < min(aspects) and max(aspects) < 3.7
    half = ClassificationConfig(image_size=40, random_erasing=0.5)
    changed = [
        not np.array_equal(classification.random_erase(image, tf.constant([s, 2]), half), image)
        for s in range(200)
    ]
    assert 70 < sum(changed) < 130


def test_erasing_settings_are_checked():
    for bad in (1.5, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match=f"random_erasing={bad!r}"):
            ClassificationConfig(random_erasing=bad)
    with pytest.raises(ValueError, match="erasing_fill='mean'"):
        ClassificationConfig(erasing_fill="mean")
    with pytest.raises(ValueError, match=r"erasing_area=\(0.4, 0.02\)"):
        ClassificationConfig(erasing_area=(0.4, 0.02))
    with pytest.raises(ValueError, match=r"erasing_aspect=\(0, 3.3\)"):
        ClassificationConfig(erasing_aspect=(0, 3.3))


# --------------------------------------------------------------------------- bundled test sample


def test_write_test_sample_takes_the_first_test_items(release, tmp_path):
    expected = {name: sha256(data) for name, data in release.idx.items()}
    path = fashion_mnist.write_test_sample(
        release.debian_dir, tmp_path / "sample.npz", count=4, expected_sha256=expected
    )
    with np.load(path) as sample:
        np.testing.assert_array_equal(sample["images"], release.images["test"][:4, :, :, None])
        np.testing.assert_array_equal(sample["labels"], release.labels["test"][:4])
    # Data that are not the recorded release are refused, naming the file.
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*sha256"):
        fashion_mnist.write_test_sample(release.debian_dir, tmp_path / "other.npz", count=4)
    assert not (tmp_path / "other.npz").exists()


def test_bundled_test_sample_is_real_fashion_mnist():
    images, labels = fashion_mnist.load_test_sample()
    assert images.shape == (fashion_mnist.TEST_SAMPLE_SIZE, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (fashion_mnist.TEST_SAMPLE_SIZE,) and set(labels) == set(range(10))
    # The first items of the official test file, as every Fashion-MNIST user knows them.
    assert [fashion_mnist.CLASS_NAMES[i] for i in labels[:4]] == [
        "Ankle boot",
        "Pullover",
        "Trouser",
        "Trouser",
    ]
    # Garments are bright on a dark background, and no two images are the same.
    assert images[:, 0, 0].mean() < 10 and images.mean() > 50
    assert len({image.tobytes() for image in images}) == len(images)
    # tfds's own label names are the same, in the same order.
    assert tuple(tfds.builder("fashion_mnist").info.features["label"].names) == (
        fashion_mnist.CLASS_NAMES
    )
