"""A tfds builder over scikit-learn's bundled handwritten digits (real scans, no download).

`sklearn.datasets.load_digits()` ships 1,797 8x8 scans of handwritten digits (the test part of
the UCI "Optical Recognition of Handwritten Digits" data) with pixel values 0..16.
`BundledDigits` turns them into an ordinary tfds dataset, `tfds.load("bundled_digits")`, with
pixels scaled to 0..255 (`round(v * 255 / 16)`) and two FIXED splits made by a stratified 80/20
split with a fixed seed: every class puts `round(0.2 * n)` of its `n` scans, drawn by a
`numpy.random.RandomState(0)` permutation, into `test`: 1,438 `train` and 359 `test` examples.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow_datasets as tfds

from keras_attn.data.offline import OfflineBuilder

SPLITS = ("train", "test")
TEST_FRACTION = 0.2
SPLIT_SEED = 0
NUM_EXAMPLES = {"train": 1438, "test": 359}


@functools.cache
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype("uint8")[..., None]
    return images, digits.target.astype("int64")


def split_indices(split: str) -> np.ndarray:
    """Sorted indices into `sklearn.datasets.load_digits()` of the scans in `split`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}. Received: split={split!r}")
    _, labels = _load()
    random = np.random.RandomState(SPLIT_SEED)  # legacy generator: its stream never changes
    test = []
    for digit in range(10):
        members = random.permutation(np.flatnonzero(labels == digit))
        test.extend(members[: round(TEST_FRACTION * len(members))])
    in_test = np.zeros(len(labels), bool)
    in_test[test] = True
    return np.flatnonzero(in_test if split == "test" else ~in_test)


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)` of a split as numpy: `(N, 8, 8, 1)` uint8 in 0..255 and `(N,)` int64."""
    images, labels = _load()
    indices = split_indices(split)
    return images[indices], labels[indices]


class BundledDigits(OfflineBuilder):
    """scikit-learn's 1,797 handwritten 8x8 digit scans as a tfds dataset (train 1,438/test 359)."""

    SOURCE = "scikit-learn's bundled digits"

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Stratified 80/20 split, seed 0: 1,438 train, 359 test."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/modules/generated/"
            "sklearn.datasets.load_digits.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: the scans are inside scikit-learn
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split):
        images, labels = _load()
        for index in split_indices(split):
            yield int(index), {"image": images[index], "label": int(labels[index])}
