"""Charbonnier loss against NumPy, its config, and choosing a loss by name."""

import keras
import numpy as np
import pytest

from keras_attn.training.losses import CharbonnierLoss, get_loss


def _charbonnier(y_true, y_pred, epsilon):
    y_true, y_pred = y_true.astype("float64"), y_pred.astype("float64")
    return np.mean(np.sqrt((y_true - y_pred) ** 2 + epsilon**2))


@pytest.mark.parametrize("epsilon", [1e-3, 0.1])
def test_charbonnier_matches_numpy(rng, epsilon):
    y_true = rng.uniform(size=(3, 6, 5, 3)).astype("float32")
    y_pred = rng.uniform(size=(3, 6, 5, 3)).astype("float32")
    loss = CharbonnierLoss(epsilon=epsilon)
    np.testing.assert_allclose(
        loss(y_true, y_pred), _charbonnier(y_true, y_pred, epsilon), rtol=1e-5
    )
    # Equal inputs leave only epsilon; large errors behave like L1.
    np.testing.assert_allclose(loss(y_true, y_true), epsilon, rtol=1e-4)
    if epsilon == 1e-3:
        l1 = np.mean(np.abs(y_true - y_pred))
        np.testing.assert_allclose(loss(y_true, y_pred), l1, rtol=2e-2)


def test_charbonnier_sample_weight_and_gradient(rng):
    y_true = rng.uniform(size=(2, 4, 4, 3)).astype("float32")
    y_pred = rng.uniform(size=(2, 4, 4, 3)).astype("float32")
    loss = CharbonnierLoss()
    # Like Keras's own losses, weights broadcast against the per-pixel values (B, H, W).
    weights = np.array([1.0, 0.0], "float32").reshape(2, 1, 1)
    weighted = loss(y_true, y_pred, sample_weight=weights)
    np.testing.assert_allclose(weighted, _charbonnier(y_true[:1], y_pred[:1], 1e-3) / 2, rtol=1e-5)

    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(3, 1)])
    model.compile(optimizer="adam", loss=CharbonnierLoss())
    before = [w.numpy() for w in model.trainable_weights]
    assert np.isfinite(model.train_on_batch(y_pred, y_true))
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.allclose(b, a) for b, a in zip(before, after, strict=True))


def test_charbonnier_config_round_trip():
    loss = CharbonnierLoss(epsilon=0.01, name="charb")
    config = loss.get_config()
    assert config["epsilon"] == 0.01
    assert config["name"] == "charb"
    assert config["reduction"] == "sum_over_batch_size"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is CharbonnierLoss
    assert restored.get_config() == config
    assert CharbonnierLoss.from_config(config).get_config() == config


@pytest.mark.parametrize("epsilon", [0, -1e-3, "1e-3", True, None])
def test_charbonnier_bad_epsilon_raises(epsilon):
    with pytest.raises(ValueError, match=f"Received: epsilon={epsilon!r}"):
        CharbonnierLoss(epsilon=epsilon)


def test_get_loss_names(rng):
    y_true = rng.uniform(size=(2, 4, 4, 3)).astype("float32")
    y_pred = rng.uniform(size=(2, 4, 4, 3)).astype("float32")
    expected = {
        "l1": (keras.losses.MeanAbsoluteError, np.mean(np.abs(y_true - y_pred))),
        "mse": (keras.losses.MeanSquaredError, np.mean((y_true - y_pred) ** 2)),
        "charbonnier": (CharbonnierLoss, _charbonnier(y_true, y_pred, 1e-3)),
    }
    for name, (loss_cls, value) in expected.items():
        loss = get_loss(name)
        assert type(loss) is loss_cls
        np.testing.assert_allclose(loss(y_true, y_pred), value, rtol=1e-5)
    assert get_loss("l1") is not get_loss("l1")  # a fresh instance each time
    assert get_loss("charbonnier").epsilon == 1e-3


@pytest.mark.parametrize("name", ["L1", "mae", "", None])
def test_get_loss_unknown_name_raises(name):
    with pytest.raises(ValueError) as error:
        get_loss(name)
    assert str(error.value) == (
        f"name must be one of ['charbonnier', 'l1', 'mse']. Received: name={name!r}"
    )
