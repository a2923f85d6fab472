"""`bundled_digits`: scikit-learn's 8x8 scans as a tfds dataset with fixed, stratified splits."""

import collections

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from keras_attn.data import digits


def sklearn_examples():
    """(pixels scaled to 0..255, label) of every sklearn scan, as hashable keys."""
    bunch = load_digits()
    scaled = np.round(bunch.images * 255 / 16).astype("uint8")
    return [
        (image.tobytes(), int(label)) for image, label in zip(scaled, bunch.target, strict=True)
    ]


def test_digits_splits_are_fixed_stratified_and_disjoint():
    train, test = digits.split_indices("train"), digits.split_indices("test")
    assert (len(train), len(test)) == (1438, 359) == tuple(digits.NUM_EXAMPLES.values())
    assert not set(train) & set(test)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    labels = load_digits().target
    per_class = np.bincount(labels, minlength=10)
    np.testing.assert_array_equal(
        np.bincount(labels[test], minlength=10), np.round(0.2 * per_class)
    )
    np.testing.assert_array_equal(digits.split_indices("test"), test)  # no hidden randomness
    with pytest.raises(ValueError, match="split='validation'"):
        digits.split_indices("validation")


def test_tfds_digits_are_the_real_sklearn_scans(digits_dir):
    expected = sklearn_examples()
    for split, size in digits.NUM_EXAMPLES.items():
        dataset = tfds.load("bundled_digits", split=split, data_dir=digits_dir, as_supervised=True)
        found = [
            (image[..., 0].tobytes(), int(label)) for image, label in dataset.as_numpy_iterator()
        ]
        assert len(found) == size
        wanted = [expected[i] for i in digits.split_indices(split)]
        assert collections.Counter(found) == collections.Counter(wanted)
        assert sorted({label for _, label in found}) == list(range(10))
    info = tfds.builder("bundled_digits", data_dir=digits_dir).info
    assert info.supervised_keys == ("image", "label")
    assert info.features["image"].shape == (8, 8, 1)
    assert info.features["label"].num_classes == 10
    images, labels = digits.load_split("train")
    assert images.shape == (1438, 8, 8, 1) and images.dtype == np.uint8
    assert images.max() == 255 and labels.dtype == np.int64
