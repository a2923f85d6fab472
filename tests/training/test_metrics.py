"""PSNR / SSIM on the Y channel, cross-checked against scikit-image on real photographs."""

import keras
import numpy as np
import pytest
import skimage.data
import skimage.filters
import skimage.metrics
import skimage.transform
import tensorflow as tf

from keras_attn.training.metrics import PSNRY, SSIMY, psnr_y, rgb_to_y, ssim_y


def _photos(size=(72, 88)):
    """Two real photographs in [0, 1], resized to `size`."""
    photos = [skimage.data.astronaut(), skimage.data.coffee()]
    resized = [skimage.transform.resize(p, size, anti_aliasing=True) for p in photos]
    return np.stack(resized).astype("float32")


def _degrade(images, rng):
    """Blur, add noise and clip: a plausible SR output."""
    blurred = np.stack([skimage.filters.gaussian(i, sigma=1.0, channel_axis=-1) for i in images])
    noisy = blurred + rng.normal(scale=0.03, size=images.shape)
    return np.clip(noisy, 0.0, 1.0).astype("float32")


def _reference_y(image, border):
    """BT.601 luma (MATLAB rgb2ycbcr, [0, 1] scale) in float64, after the border crop."""
    image = image.astype("float64")
    if border:
        image = image[border:-border, border:-border]
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    return (16.0 + 65.481 * red + 128.553 * green + 24.966 * blue) / 255.0


def _reference_metrics(y_true, y_pred, border):
    psnr, ssim = [], []
    for true, pred in zip(y_true, y_pred, strict=True):
        true_y, pred_y = _reference_y(true, border), _reference_y(pred, border)
        psnr.append(skimage.metrics.peak_signal_noise_ratio(true_y, pred_y, data_range=1.0))
        ssim.append(
            skimage.metrics.structural_similarity(
                true_y,
                pred_y,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
        )
    return np.array(psnr), np.array(ssim)


def test_rgb_to_y_matches_bt601(rng):
    images = rng.uniform(size=(2, 5, 6, 3)).astype("float32")
    expected = _reference_y(images, 0)[..., None]
    np.testing.assert_allclose(rgb_to_y(images), expected, atol=1e-6)
    corners = np.array([[[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]]], dtype="float32")
    np.testing.assert_allclose(
        np.asarray(rgb_to_y(corners))[0, 0, :, 0], [16 / 255, 235 / 255], atol=1e-6
    )


@pytest.mark.parametrize("border", [0, 3])
def test_psnr_and_ssim_match_skimage(rng, border):
    y_true = _photos()
    y_pred = _degrade(y_true, rng)
    expected_psnr, expected_ssim = _reference_metrics(y_true, y_pred, border)

    psnr = np.asarray(psnr_y(y_true, y_pred, border))
    ssim = np.asarray(ssim_y(y_true, y_pred, border))
    assert psnr.shape == ssim.shape == (2,)
    # A real degradation: far from both perfect and useless.
    assert np.all((expected_psnr > 20) & (expected_psnr < 40)), expected_psnr
    assert np.all((expected_ssim > 0.5) & (expected_ssim < 0.99)), expected_ssim
    np.testing.assert_allclose(psnr, expected_psnr, atol=1e-4, rtol=0)  # measured ~2e-6 dB
    np.testing.assert_allclose(ssim, expected_ssim, atol=1e-4, rtol=0)  # measured ~4e-7


def test_border_changes_the_result(rng):
    y_true = _photos()
    y_pred = y_true.copy()
    y_pred[:, :2] = 1.0 - y_pred[:, :2]  # damage only the top two rows
    assert np.all(np.asarray(psnr_y(y_true, y_pred, 0)) < 40)
    assert np.all(np.isinf(np.asarray(psnr_y(y_true, y_pred, 2))))
    np.testing.assert_allclose(ssim_y(y_true, y_pred, 2), 1.0, atol=1e-5)


def test_identical_images_give_inf_psnr_and_unit_ssim():
    images = _photos()
    psnr = np.asarray(psnr_y(images, images, 2))
    assert np.all(np.isposinf(psnr)), psnr  # like skimage: inf, no cap
    np.testing.assert_allclose(ssim_y(images, images, 2), 1.0, atol=1e-5)
    metric = PSNRY(border=2)
    metric.update_state(images, images)
    assert np.isposinf(float(metric.result()))


def test_metrics_work_in_a_graph_with_unknown_sizes(rng):
    y_true = _photos()
    y_pred = _degrade(y_true, rng)
    spec = tf.TensorSpec((None, None, None, 3), "float32")
    graph_psnr = tf.function(lambda t, p: psnr_y(t, p, 2), input_signature=[spec, spec])
    graph_ssim = tf.function(lambda t, p: ssim_y(t, p, 2), input_signature=[spec, spec])
    np.testing.assert_allclose(graph_psnr(y_true, y_pred), psnr_y(y_true, y_pred, 2), atol=1e-5)
    np.testing.assert_allclose(graph_ssim(y_true, y_pred), ssim_y(y_true, y_pred, 2), atol=1e-6)


@pytest.mark.parametrize("metric_cls, fn", [(PSNRY, psnr_y), (SSIMY, ssim_y)])
def test_metric_classes_average_images_over_batches(rng, metric_cls, fn):
    y_true = np.concatenate([_photos(), _photos()[::-1]])
    y_pred = _degrade(y_true, rng)
    y_pred[1] = np.clip(y_true[1] + 0.2, 0, 1)
    expected = np.asarray(fn(y_true, y_pred, 3))

    metric = metric_cls(border=3)
    metric.update_state(y_true[:1], y_pred[:1])  # batches of unequal size: a per-image mean
    metric.update_state(y_true[1:], y_pred[1:])
    np.testing.assert_allclose(metric.result(), expected.mean(), rtol=1e-6)

    weights = np.array([1.0, 0.0, 2.0, 1.0], dtype="float32")
    metric.reset_state()
    metric.update_state(y_true, y_pred, sample_weight=weights)
    np.testing.assert_allclose(metric.result(), np.average(expected, weights=weights), rtol=1e-6)


@pytest.mark.parametrize("metric_cls, fn", [(PSNRY, psnr_y), (SSIMY, ssim_y)])
def test_metric_classes_clip_predictions(rng, metric_cls, fn):
    y_true = _photos()
    y_pred = _degrade(y_true, rng) * 1.4 - 0.2  # out of [0, 1]
    metric = metric_cls(border=2)
    metric.update_state(y_true, y_pred)
    expected = np.asarray(fn(y_true, np.clip(y_pred, 0, 1), 2)).mean()
    np.testing.assert_allclose(metric.result(), expected, rtol=1e-6)
    assert abs(float(metric.result()) - np.asarray(fn(y_true, y_pred, 2)).mean()) > 1e-3


@pytest.mark.parametrize("metric_cls, name", [(PSNRY, "psnr_y"), (SSIMY, "ssim_y")])
def test_metric_config_round_trip(metric_cls, name):
    metric = metric_cls(border=4)
    assert metric.name == name
    assert metric.get_config() == {"border": 4, "name": name, "dtype": "float32"}
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is metric_cls
    assert restored.get_config() == metric.get_config()


def test_metrics_in_compiled_evaluate(rng):
    y_true = _photos()
    y_pred = _degrade(y_true, rng)
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Identity()])
    model.compile(loss="mae", metrics=[PSNRY(2), SSIMY(2)])
    results = model.evaluate(y_pred, y_true, batch_size=1, verbose=0, return_dict=True)
    np.testing.assert_allclose(results["psnr_y"], np.mean(psnr_y(y_true, y_pred, 2)), rtol=1e-5)
    np.testing.assert_allclose(results["ssim_y"], np.mean(ssim_y(y_true, y_pred, 2)), rtol=1e-5)


@pytest.mark.parametrize("border", [-1, 1.5, True, "2", None])
def test_bad_border_raises(border):
    images = np.zeros((1, 16, 16, 3), "float32")
    message = f"border must be a non-negative integer. Received: border={border!r}"
    for call in (
        lambda: psnr_y(images, images, border),
        lambda: ssim_y(images, images, border),
        lambda: PSNRY(border),
        lambda: SSIMY(border),
    ):
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == message


def test_bad_shapes_raise():
    a = np.zeros((2, 16, 16, 3), "float32")
    b = np.zeros((2, 16, 18, 3), "float32")
    for fn in (psnr_y, ssim_y):
        with pytest.raises(ValueError, match=r"\(2, 16, 16, 3\).*\(2, 16, 18, 3\)"):
            fn(a, b, 1)
        with pytest.raises(ValueError, match="rank|batch, height, width"):
            fn(a[0], a[0], 1)
    ssim_y(a, a, 2)  # 16 - 2 * 2 = 12 >= 11 is fine; border 3 leaves 10
    with pytest.raises(ValueError, match="at least 17 pixels"):
        ssim_y(a, a, 3)
    with pytest.raises(ValueError, match="at least 17 pixels"):
        psnr_y(a, a, 8)
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_y(np.zeros((1, 4, 4, 4), "float32"))
