import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_attn import data
from keras_attn.data import bundled_photos


def test_splits_are_disjoint_and_cover_every_photo():
    train, validation = data.photo_names("train"), data.photo_names("validation")
    assert not set(train) & set(validation)
    assert sorted(train + validation) == sorted(data.photo_names())
    assert len(validation) == 5 and len(train) >= 14


def test_photos_are_real_rgb_uint8():
    for name in ("astronaut", "camera", "china"):
        image = data.load_photo(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
        assert image.shape[0] >= 300 and image.std() > 20  # a photograph, not a flat image
    camera = data.load_photo("camera")
    np.testing.assert_array_equal(camera[..., 0], camera[..., 2])  # grayscale as 3 channels


def test_tfds_load_gives_the_same_pixels(photos_dir):
    dataset = tfds.load("bundled_photos", split="validation", data_dir=photos_dir)
    examples = list(dataset.as_numpy_iterator())
    assert [e["name"].decode() for e in examples] and len(examples) == 5
    for example in examples:
        name = example["name"].decode()
        np.testing.assert_array_equal(example["image"], data.load_photo(name))


def test_unknown_photo_and_split():
    with pytest.raises(ValueError, match="Unknown photo 'lena'"):
        data.load_photo("lena")
    with pytest.raises(ValueError, match="split="):
        data.photo_names("test")
    assert "chelsea" in bundled_photos.VALIDATION_PHOTOS
