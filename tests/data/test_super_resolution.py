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


def test_crop_detail_is_the_rms_error_of_the_bicubic_upscale(photos_dir):
    from skimage.metrics import peak_signal_noise_ratio

    dataset = data.super_resolution_dataset(
        "bundled_photos", "validation", 2, 96, 8, training=False, data_dir=photos_dir
    )
    lr, hr = next(iter(dataset))
    detail = data.super_resolution.crop_detail(lr, hr).numpy()
    up = np.clip(tf.image.resize(lr, (96, 96), method="bicubic").numpy(), 0.0, 1.0)
    for value, crop, upscaled in zip(detail, hr.numpy(), up, strict=True):
        psnr = peak_signal_noise_ratio(crop, upscaled, data_range=1.0)
        assert value == pytest.approx(255.0 * 10 ** (-psnr / 20), rel=1e-3)
    assert detail.max() > 2.0  # real photos have detail to restore
    flat = tf.fill((96, 96, 3), 0.4)
    single = data.super_resolution.crop_detail(data.bicubic_downscale(flat, 2), flat)
    assert single.shape == () and float(single) < 1e-3


def test_min_detail_drops_most_flat_crops(photos_dir):
    def details(min_detail):
        dataset = data.super_resolution_dataset(
            "bundled_photos", "train", 2, 48, 16, data_dir=photos_dir, min_detail=min_detail
        )
        pairs = list(dataset.take(12))
        values = np.concatenate([data.super_resolution.crop_detail(*p).numpy() for p in pairs])
        return values, pairs[0][1].numpy()

    every, _ = details(0.0)
    kept, first = details(5.0)
    assert np.mean(every < 5.0) > 0.35  # the bundled photos' crops: about half are flat
    # a tenth of the flat ones are kept: about 1 crop in 10 of what remains
    assert 0.0 < np.mean(kept < 5.0) < 0.25
    np.testing.assert_array_equal(first, details(5.0)[1])  # seeded: a resume skips into it
    validation = [
        np.concatenate(
            [
                hr.numpy()
                for _, hr in data.super_resolution_dataset(
                    "bundled_photos",
                    "validation",
                    2,
                    96,
                    8,
                    False,
                    data_dir=photos_dir,
                    min_detail=min_detail,
                )
            ]
        )
        for min_detail in (0.0, 5.0)
    ]
    np.testing.assert_array_equal(*validation)  # validation tiles every image, whatever it says


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
    for bad in (-1.0, 255.0, "2", True):
        with pytest.raises(ValueError, match=r"min_detail must be a number of 8-bit levels"):
            data.super_resolution_dataset("bundled_photos", "train", min_detail=bad)
    with pytest.raises(ValueError, match="Could not load tfds dataset 'no_such_dataset'"):
        data.super_resolution_dataset("no_such_dataset", "train")
