import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_attn import data


def test_training_batches(photos_dir):
    dataset = data.super_resolution_dataset(
        "bundled_photos", "train", scale=3, patch_size=48, batch_size=4, data_dir=photos_dir
    )
    lr, hr = next(iter(dataset))
    assert lr.shape == (4, 16, 16, 3) and hr.shape == (4, 48, 48, 3)
    assert (
        lr.dtype == tf.float32 and 0.0 <= float(tf.reduce_min(hr)) <= float(tf.reduce_max(hr)) <= 1
    )
    # LR is exactly the antialiased bicubic downscale of HR.
    expected = tf.clip_by_value(
        tf.image.resize(hr, (16, 16), method="bicubic", antialias=True), 0.0, 1.0
    )
    np.testing.assert_allclose(lr, expected, atol=1e-6)
    assert float(tf.math.reduce_std(hr)) > 0.05  # real content, not padding


def test_training_stream_is_seeded(photos_dir):
    def first(seed):
        ds = data.super_resolution_dataset(
            "bundled_photos", "train", 2, 32, 2, data_dir=photos_dir, seed=seed
        )
        return next(iter(ds))[1].numpy()

    np.testing.assert_array_equal(first(1), first(1))
    assert not np.array_equal(first(1), first(2))


def test_validation_tiles_are_deterministic_and_finite(photos_dir):
    def tiles():
        ds = data.super_resolution_dataset(
            "bundled_photos", "validation", 2, 96, 8, training=False, data_dir=photos_dir
        )
        return np.concatenate([hr.numpy() for _, hr in ds])

    first, second = tiles(), tiles()
    np.testing.assert_array_equal(first, second)
    assert first.shape[1:] == (96, 96, 3) and first.shape[0] > 50


def test_named_tfds_dataset_code_path_with_mock_data():
    # div2k's HR images are used; mock images are random sizes in [5, 50), smaller than the patch.
    with tfds.testing.mock_data(num_examples=3):
        dataset = data.super_resolution_dataset("div2k/bicubic_x2", "train", 2, 32, 2)
        lr, hr = next(iter(dataset))
    assert lr.shape == (2, 16, 16, 3) and hr.shape == (2, 32, 32, 3)


def test_bad_settings_name_the_value():
    with pytest.raises(ValueError, match="scale="):
        data.super_resolution_dataset("bundled_photos", "train", scale=5)
    with pytest.raises(ValueError, match="multiple of scale"):
        data.super_resolution_dataset("bundled_photos", "train", scale=3, patch_size=64)
    with pytest.raises(ValueError, match="batch_size"):
        data.super_resolution_dataset("bundled_photos", "train", batch_size=0)
    with pytest.raises(ValueError, match="Could not load tfds dataset 'no_such_dataset'"):
        data.super_resolution_dataset("no_such_dataset", "train")
