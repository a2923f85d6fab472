"""A tfds builder over real photographs that ship inside installed packages (no download).

scikit-image bundles a set of natural photographs (`skimage.data`) and scikit-learn two more
(`sklearn.datasets.load_sample_images`). `BundledPhotos` turns them into an ordinary tfds dataset,
`tfds.load("bundled_photos", split="train")`, with a fixed held-out `validation` split that the
SR and alignment models never see in training. Grayscale photos are stored as 3 equal channels.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from keras_attn.data.offline import OfflineBuilder


def _skimage(name: str):
    def load():
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle(view: int):
    def load():
        import skimage.data

        return skimage.data.stereo_motorcycle()[view]

    return load


def _sklearn(filename: str):
    def load():
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


_LOADERS = {
    # colour photographs
    "astronaut": _skimage("astronaut"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "retina": _skimage("retina"),
    "motorcycle_left": _motorcycle(0),
    "motorcycle_right": _motorcycle(1),
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
    # grayscale photographs
    "camera": _skimage("camera"),
    "brick": _skimage("brick"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "moon": _skimage("moon"),
    "coins": _skimage("coins"),
    "clock": _skimage("clock"),
    "cell": _skimage("cell"),
}

# Held out from every training run: three colour and two grayscale photographs.
VALIDATION_PHOTOS = ("chelsea", "coffee", "flower", "coins", "gravel")
TRAIN_PHOTOS = tuple(name for name in _LOADERS if name not in VALIDATION_PHOTOS)


def photo_names(split: str | None = None) -> list[str]:
    """Names of the bundled photos: all, or those of `"train"` / `"validation"`."""
    if split is None:
        return list(_LOADERS)
    splits = {"train": TRAIN_PHOTOS, "validation": VALIDATION_PHOTOS}
    if split not in splits:
        raise ValueError(f"split must be 'train' or 'validation'. Received: split={split!r}")
    return list(splits[split])


def load_photo(name: str) -> np.ndarray:
    """One bundled photo as a `(H, W, 3)` uint8 RGB array."""
    if name not in _LOADERS:
        raise ValueError(f"Unknown photo {name!r}. Bundled photos: {sorted(_LOADERS)}")
    image = np.asarray(_LOADERS[name]())
    if image.dtype == bool:
        image = image.astype("uint8") * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype("uint8"))


class BundledPhotos(OfflineBuilder):
    """Natural photographs bundled with scikit-image and scikit-learn, as a tfds dataset."""

    SOURCE = "the photos inside scikit-image and scikit-learn"

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "19 photos: 14 train, 5 validation."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(None, None, 3)), "name": tfds.features.Text()}
            ),
            homepage="https://scikit-image.org/docs/stable/api/skimage.data.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: the photos are inside installed packages
        return {
            "train": self._generate_examples(TRAIN_PHOTOS),
            "validation": self._generate_examples(VALIDATION_PHOTOS),
        }

    def _generate_examples(self, names):
        for name in names:
            yield name, {"image": load_photo(name), "name": name}
