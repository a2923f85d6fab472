import keras
import numpy as np
import pytest
from scipy import ndimage

from keras_attn.training.losses import CornerLoss, FlowSmoothness, NCCLoss, local_ncc
from keras_attn.training.metrics import MeanCornerError

CORNERS = np.array([[0.0, 0.0], [63.0, 0.0], [63.0, 63.0], [0.0, 63.0]], "float32")


def corners(batch=2, offset=(0.0, 0.0)):
    return np.tile(CORNERS[None], (batch, 1, 1)) + np.asarray(offset, "float32")


# --------------------------------------------------------------------------- corner loss


def test_corner_loss_is_zero_for_exact_corners():
    assert float(CornerLoss()(corners(), corners())) < 1e-3  # sqrt(1e-8) guard: 1e-4


def test_corner_loss_is_the_mean_euclidean_distance():
    assert float(CornerLoss()(corners(), corners(offset=(3.0, 4.0)))) == pytest.approx(5.0, 1e-5)
    predicted = corners(batch=1)
    predicted[0] += [[3.0, 4.0], [0.0, 0.0], [-5.0, 12.0], [1.0, 0.0]]  # 5, 0, 13, 1 pixels
    assert float(CornerLoss()(corners(batch=1), predicted)) == pytest.approx(19 / 4, 1e-4)


def test_corner_loss_is_per_pair_and_takes_sample_weights():
    predicted = corners(offset=(3.0, 4.0))
    predicted[1] += 10.0
    loss = CornerLoss(reduction=None)(corners(), predicted)
    assert tuple(loss.shape) == (2,)
    assert float(loss[0]) == pytest.approx(5.0, 1e-5) and float(loss[1]) > 10.0
    weighted = CornerLoss()(corners(), predicted, sample_weight=np.array([1.0, 0.0]))
    assert float(weighted) == pytest.approx(2.5, 1e-5)  # sum over batch size 2


@pytest.mark.parametrize("final_weight, expected", [(2.0, (1 + 2 + 2 * 4) / 4), (1.0, 7 / 3)])
def test_corner_loss_weights_the_iterations(final_weight, expected):
    truth = corners()
    # iterations 1, 2, 3 put every corner 1, 2 and 4 pixels off (along x)
    predicted = np.stack([truth + [d, 0.0] for d in (1.0, 2.0, 4.0)], axis=1)
    assert predicted.shape == (2, 3, 4, 2)
    loss = CornerLoss(final_weight=final_weight)(truth, predicted)
    assert float(loss) == pytest.approx(expected, 1e-5)


@pytest.mark.parametrize("final_weight", [0, -1.0, True, "2"])
def test_corner_loss_bad_final_weight(final_weight):
    with pytest.raises(ValueError, match="final_weight must be a positive number"):
        CornerLoss(final_weight=final_weight)


def test_corner_loss_config_round_trip():
    loss = CornerLoss(final_weight=3.0, name="corners_loss")
    config = loss.get_config()
    assert config["final_weight"] == 3.0 and config["name"] == "corners_loss"
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, CornerLoss) and clone.get_config() == config
    predicted = np.stack([corners(offset=(1.0, 0.0)), corners(offset=(2.0, 0.0))], axis=1)
    assert float(clone(corners(), predicted)) == pytest.approx((1 + 3 * 2) / 4, 1e-5)


# --------------------------------------------------------------------------- MACE


def test_mean_corner_error_uses_the_last_iteration():
    truth = corners()
    predicted = np.stack([corners(offset=(30.0, 40.0)), corners(offset=(3.0, 4.0))], axis=1)
    metric = MeanCornerError()
    metric.update_state(truth, predicted)
    assert float(metric.result()) == pytest.approx(5.0, 1e-5)
    # a running mean over pairs, also for (B, 4, 2) predictions
    metric.update_state(truth, corners(offset=(0.0, 11.0)))
    assert float(metric.result()) == pytest.approx(8.0, 1e-5)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_mean_corner_error_config_round_trip():
    metric = MeanCornerError(name="val_mace")
    clone = MeanCornerError.from_config(metric.get_config())
    assert clone.name == "val_mace"
    deserialized = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(deserialized, MeanCornerError)


# --------------------------------------------------------------------------- NCC


def numpy_local_ncc(a, b, window, epsilon=1e-5):
    """Mean local NCC with scipy box filters that, like `average_pool(padding="same")`,
    average over the pixels inside the image only."""

    def box(x):
        return ndimage.uniform_filter(x, window, mode="constant") / ndimage.uniform_filter(
            np.ones_like(x), window, mode="constant"
        )

    mean_a, mean_b = box(a), box(b)
    cov = box(a * b) - mean_a * mean_b
    var_a = box(a * a) - mean_a**2
    var_b = box(b * b) - mean_b**2
    return np.mean(cov / np.sqrt(np.maximum(var_a, 0) * np.maximum(var_b, 0) + epsilon))


@pytest.mark.parametrize("window", [3, 5, 9])
def test_local_ncc_matches_numpy(window, rng):
    fixed = rng.uniform(size=(2, 13, 17, 1))
    warped = 0.7 * fixed + 0.3 * rng.uniform(size=fixed.shape)
    expected = [numpy_local_ncc(fixed[i, ..., 0], warped[i, ..., 0], window) for i in range(2)]
    assert 0.3 < min(expected) and max(expected) < 0.97  # neither 0 nor 1: a real test
    ncc = local_ncc(fixed.astype("float32"), warped.astype("float32"), window)
    assert tuple(ncc.shape) == (2,)
    np.testing.assert_allclose(ncc, expected, atol=1e-4)


def test_local_ncc_ignores_gain_and_bias_but_not_shifts(rng):
    fixed = rng.uniform(size=(2, 24, 24, 1)).astype("float32")
    np.testing.assert_allclose(local_ncc(fixed, fixed), 1.0, atol=2e-3)
    np.testing.assert_allclose(local_ncc(fixed, 0.5 * fixed + 0.2), 1.0, atol=5e-3)
    np.testing.assert_allclose(local_ncc(fixed, 1.0 - fixed), -1.0, atol=2e-3)
    shifted = np.roll(fixed, 2, axis=2)
    assert np.all(np.abs(np.asarray(local_ncc(fixed, shifted))) < 0.2)


def test_local_ncc_averages_channels(rng):
    rgb = rng.uniform(size=(1, 16, 16, 3)).astype("float32")
    gray = rgb.mean(axis=-1, keepdims=True)
    other = rng.uniform(size=(1, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(local_ncc(rgb, other), local_ncc(gray, other), atol=1e-5)


@pytest.mark.parametrize("window", [0, 4, -3, 2.5])
def test_local_ncc_bad_window(window):
    with pytest.raises(ValueError, match="window must be an odd positive integer"):
        local_ncc(np.zeros((1, 8, 8, 1)), np.zeros((1, 8, 8, 1)), window)
    with pytest.raises(ValueError, match="window must be an odd positive integer"):
        NCCLoss(window=window)


def test_ncc_loss(rng):
    fixed = rng.uniform(size=(2, 16, 16, 1)).astype("float32")
    assert float(NCCLoss()(fixed, fixed)) < 2e-3
    assert float(NCCLoss()(fixed, 0.8 * fixed + 0.1)) < 5e-3
    shifted = np.roll(fixed, 3, axis=1)
    assert 0.8 < float(NCCLoss()(fixed, shifted)) < 1.2
    expected = 1.0 - np.asarray(local_ncc(fixed, shifted, 5))
    np.testing.assert_allclose(
        NCCLoss(window=5, reduction=None)(fixed, shifted), expected, atol=1e-6
    )


def test_ncc_loss_config_round_trip(rng):
    loss = NCCLoss(window=5, name="photometric")
    config = loss.get_config()
    assert config["window"] == 5 and config["name"] == "photometric"
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, NCCLoss) and clone.get_config() == config
    fixed = rng.uniform(size=(1, 12, 12, 1)).astype("float32")
    warped = rng.uniform(size=(1, 12, 12, 1)).astype("float32")
    assert float(clone(fixed, warped)) == pytest.approx(float(loss(fixed, warped)), abs=1e-7)
    assert float(clone(fixed, warped)) != pytest.approx(float(NCCLoss()(fixed, warped)), abs=1e-4)


# --------------------------------------------------------------------------- smoothness


def test_flow_smoothness_values(rng):
    loss = FlowSmoothness()
    ignored = rng.normal(size=(2, 6, 7, 2))
    assert float(loss(ignored, np.zeros((2, 6, 7, 2), "float32"))) == 0.0
    assert float(loss(ignored, np.full((2, 6, 7, 2), 3.0, "float32"))) == 0.0
    ys, xs = np.mgrid[0:6, 0:7].astype("float32")
    linear = np.stack([2.0 * xs, 1.0 * ys], axis=-1)[None]  # u = 2 x, v = y
    # d/dx: u changes by 2, v by 0 -> mean 2; d/dy: u by 0, v by 1 -> mean 0.5
    assert float(loss(ignored[:1], linear)) == pytest.approx(2.5, 1e-6)
    noisy = linear + rng.normal(scale=0.5, size=linear.shape).astype("float32")
    assert float(loss(ignored[:1], noisy)) > 2.5


def test_flow_smoothness_config_round_trip():
    loss = FlowSmoothness(name="smooth")
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, FlowSmoothness) and clone.get_config() == loss.get_config()
    assert clone.name == "smooth"


# --------------------------------------------------------------------------- dense flow


def flow_target(flow, visible):
    return np.concatenate([flow, visible], axis=-1).astype("float32")


def test_flow_end_point_loss_and_metric_average_over_visible_pixels_only():
    from keras_attn.training.losses import FlowEndPointLoss
    from keras_attn.training.metrics import EndPointError

    truth = np.zeros((2, 4, 4, 2), "float32")
    visible = np.ones((2, 4, 4, 1), "float32")
    visible[1, :2] = 0.0  # the top half of pair 1 has no true match
    predicted = np.zeros_like(truth)
    predicted[..., 0] = 3.0
    predicted[..., 1] = 4.0  # 5 px everywhere ...
    predicted[1, :2] = 100.0  # ... except where pair 1 is not visible: ignored
    target = flow_target(truth, visible)
    assert float(FlowEndPointLoss(epsilon=0.0)(target, predicted)) == pytest.approx(5.0, 1e-5)
    metric = EndPointError()
    metric.update_state(target, predicted)
    assert float(metric.result()) == pytest.approx(5.0, 1e-5)


def test_flow_end_point_loss_caps_each_pixel():
    from keras_attn.training.losses import FlowEndPointLoss

    truth = flow_target(np.zeros((1, 2, 2, 2)), np.ones((1, 2, 2, 1)))
    predicted = np.array([[[[30.0, 40.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]]], "float32")
    capped = FlowEndPointLoss(epsilon=0.0, max_error=20.0)(truth, predicted)
    assert float(capped) == pytest.approx((20 + 5) / 4, 1e-5)
    plain = FlowEndPointLoss(epsilon=0.0, max_error=None)(truth, predicted)
    assert float(plain) == pytest.approx((50 + 5) / 4, 1e-5)
    restored = FlowEndPointLoss.from_config(FlowEndPointLoss(max_error=7.0).get_config())
    assert restored.max_error == 7.0


def test_photometric_flow_loss_is_ncc_plus_smoothness(rng):
    from keras_attn.training.losses import PhotometricFlowLoss

    fixed = rng.uniform(size=(2, 16, 16, 1)).astype("float32")
    still = np.zeros((2, 16, 16, 2), "float32")
    rough = rng.normal(size=(2, 16, 16, 2)).astype("float32")
    loss = PhotometricFlowLoss(window=5, smoothness=0.5)
    same = float(loss(fixed, np.concatenate([fixed, still], -1)))
    assert same == pytest.approx(0.0, abs=1e-3)
    other = rng.uniform(size=fixed.shape).astype("float32")
    unlike = float(loss(fixed, np.concatenate([other, still], -1)))
    assert unlike > 0.5
    expected = 0.5 * float(FlowSmoothness()(rough, rough))
    assert float(loss(fixed, np.concatenate([fixed, rough], -1))) == pytest.approx(
        expected, rel=1e-3, abs=1e-3
    )
