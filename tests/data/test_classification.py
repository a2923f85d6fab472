import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_attn.data import classification
from keras_attn.data.classification import ClassificationConfig, classification_dataset

# --------------------------------------------------------------------------- pipeline


def test_training_batches_from_bundled_digits(digits_dir):
    dataset = classification_dataset("bundled_digits", "train", 32, 32, data_dir=digits_dir)
    images, labels = next(iter(dataset))
    assert images.shape == (32, 32, 32, 1) and images.dtype == tf.float32
    assert labels.shape == (32,) and labels.dtype == tf.int32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert set(labels.numpy()) <= set(range(10)) and len(set(labels.numpy())) > 3
    assert float(tf.math.reduce_std(images)) > 0.2  # strokes on a dark background


def test_evaluation_is_every_example_resized_bilinearly(digits_dir):
    dataset = classification_dataset(
        "bundled_digits", "test", 100, 24, training=False, data_dir=digits_dir
    )
    images = np.concatenate([batch.numpy() for batch, _ in dataset])
    labels = np.concatenate([batch.numpy() for _, batch in dataset])
    raw = tfds.load("bundled_digits", split="test", data_dir=digits_dir, as_supervised=True)
    raw_images, raw_labels = zip(*raw.as_numpy_iterator(), strict=True)
    expected = tf.image.resize(np.stack(raw_images) / 255.0, (24, 24), "bilinear").numpy()
    assert images.shape == (359, 24, 24, 1)
    np.testing.assert_array_equal(labels, raw_labels)
    np.testing.assert_allclose(images, expected, atol=0.5 / 255 + 1e-6)  # uint8 cache rounding


def test_training_stream_is_seeded(digits_dir):
    def first(seed):
        dataset = classification_dataset(
            "bundled_digits", "train", 8, data_dir=digits_dir, seed=seed
        )
        return next(iter(dataset))[0].numpy()

    np.testing.assert_array_equal(first(1), first(1))
    assert not np.array_equal(first(1), first(2))


def test_flip_rule_is_per_dataset():
    for name in ("bundled_digits", "mnist", "mnist:3.0.1", "emnist/letters", "kmnist"):
        assert not classification.allows_horizontal_flip(name), name
    for name in ("svhn_cropped", "omniglot", "some_new_dataset"):  # unlisted: never flipped
        assert not classification.allows_horizontal_flip(name), name
    for name in ("cifar10", "CIFAR100", "imagenette/320px:1.0.0", "tf_flowers"):
        assert classification.allows_horizontal_flip(name), name


def shifts_of(image, max_shift):
    """Every translation of `image` by up to `max_shift` pixels, zero-filled."""
    height, width = image.shape[:2]
    padded = np.pad(image, [(max_shift, max_shift), (max_shift, max_shift), (0, 0)])
    return [
        padded[top : top + height, left : left + width]
        for top in range(2 * max_shift + 1)
        for left in range(2 * max_shift + 1)
    ]


def test_augmentation_translates_and_mirrors_only_where_allowed(rng):
    image = rng.integers(1, 256, size=(32, 32, 1)).astype("uint8")  # not mirror-symmetric
    translations = shifts_of(image, 4)
    mirrored = shifts_of(image[:, ::-1], 4)

    def outputs(name):
        config = ClassificationConfig(horizontal_flip=classification.allows_horizontal_flip(name))
        seeds = tf.random.stateless_uniform((64, 2), (0, 1), maxval=2**31 - 1, dtype=tf.int64)
        return [classification.augment(image, seed, config).numpy() for seed in seeds]

    def count(candidates, found):
        return sum(any(np.array_equal(f, c) for c in candidates) for f in found)

    for name in ("bundled_digits", "mnist"):
        found = outputs(name)
        assert count(translations, found) == len(found)  # every output is a plain translation
        assert count(mirrored, found) == 0
        assert len({f.tobytes() for f in found}) > 10  # and they do move
    found = outputs("cifar10")
    assert count(translations, found) + count(mirrored, found) == len(found)
    assert 10 < count(mirrored, found) < 54  # about half mirrored


def test_pipeline_applies_the_flip_rule(digits_dir, monkeypatch):
    seen = {}
    augment = classification.augment

    def recording_augment(image, seed, config):
        seen[name] = config.horizontal_flip
        return augment(image, seed, config)

    monkeypatch.setattr(classification, "augment", recording_augment)
    name = "bundled_digits"
    next(iter(classification_dataset(name, "train", 4, 16, data_dir=digits_dir)))
    with tfds.testing.mock_data(num_examples=4):
        for name in ("mnist", "cifar10"):
            next(iter(classification_dataset(name, "train", 4, 16)))
    assert seen == {"bundled_digits": False, "mnist": False, "cifar10": True}


@pytest.mark.parametrize(
    "name, channels, expected_channels", [("cifar10", None, 3), ("mnist", None, 1), ("mnist", 3, 3)]
)
def test_named_tfds_datasets_with_mock_data(name, channels, expected_channels):
    # Mock images: cifar10 32x32x3, mnist 28x28x1, random pixels and labels.
    with tfds.testing.mock_data(num_examples=6):
        train = classification_dataset(name, "train", 4, 20, channels=channels)
        images, labels = next(iter(train))
        test = classification_dataset(name, "test", 4, 20, training=False, channels=channels)
        test_images = np.concatenate([batch.numpy() for batch, _ in test])
        assert classification.num_classes(name) == 10
        assert classification.num_examples(name, "train") is None  # mock data has no split sizes
    assert images.shape == (4, 20, 20, expected_channels) and labels.dtype == tf.int32
    assert set(labels.numpy()) <= set(range(10))
    assert test_images.shape == (6, 20, 20, expected_channels)
    assert 0.0 <= test_images.min() and test_images.max() <= 1.0 and test_images.std() > 0.1
    if channels == 3:
        np.testing.assert_array_equal(test_images[..., 0], test_images[..., 2])  # gray as RGB


def test_sizes_and_classes_of_the_digits(digits_dir):
    assert classification.num_classes("bundled_digits", digits_dir) == 10
    assert classification.num_examples("bundled_digits", "train", digits_dir) == 1438
    assert classification.num_examples("bundled_digits", "test[:50%]", digits_dir) == 180


def test_bad_names_and_settings():
    with pytest.raises(ValueError, match="Could not load tfds dataset 'no_such_dataset'") as error:
        classification_dataset("no_such_dataset", "train")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="Unknown tfds dataset 'no_such_dataset'"):
        classification.num_classes("no_such_dataset")
    with pytest.raises(ValueError, match="batch_size=0"):
        classification_dataset("bundled_digits", "train", batch_size=0)
    with pytest.raises(ValueError, match="image_size=-3"):
        classification_dataset("bundled_digits", "train", image_size=-3)
    with pytest.raises(ValueError, match="channels=2"):
        classification_dataset("bundled_digits", "train", channels=2)
    with pytest.raises(ValueError, match="max_shift=32"):
        ClassificationConfig(image_size=32, max_shift=32)


def test_split_size_is_known_before_the_dataset_was_ever_loaded(tmp_path):
    from keras_attn.data import classification

    assert classification.num_examples("bundled_digits", "train", str(tmp_path)) == 1438
    assert classification.num_examples("bundled_digits", "test", str(tmp_path)) == 359
