import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attn.models.super_resolution import super_resolution
from keras_attn.training import fit as training


def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(8, 6, 6, 3)).astype("float32")
    y = keras.layers.UpSampling2D(2)(x).numpy()
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()


def test_fit_writes_model_history_and_resumes(tmp_path, capsys):
    config = training.TrainConfig(epochs=2, steps_per_epoch=2, learning_rate=1e-2, verbose=0)
    model = super_resolution(2, channels=4, num_groups=1, blocks_per_group=1)
    training.fit(model, tiny_data(), output_dir=tmp_path, config=config, loss="mae")
    assert (tmp_path / "model.keras").exists()
    assert len((tmp_path / "history.csv").read_text().strip().splitlines()) == 3
    assert training.completed_epochs(tmp_path) == 2
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 2

    # Asking for more epochs continues from epoch 3 with the optimizer state restored.
    more = training.TrainConfig(epochs=3, steps_per_epoch=2, learning_rate=1e-2, verbose=0)
    fresh = super_resolution(2, channels=4, num_groups=1, blocks_per_group=1)
    history = training.fit(fresh, tiny_data(), output_dir=tmp_path, config=more, loss="mae")
    assert "Resuming from epoch 3" in capsys.readouterr().out
    assert history.epoch == [2]
    assert int(fresh.optimizer.iterations) == 6


def test_fit_does_not_warn_about_validation_length_or_shuffling(tmp_path):
    x, y = next(iter(tiny_data().unbatch().batch(8)))
    # filter hides the length from tf.data (as the recipes' cached validation tiles do)
    validation = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(3)
    assert int(validation.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    assert int(training.with_known_cardinality(validation).cardinality()) == 3
    config = training.TrainConfig(epochs=2, steps_per_epoch=2, learning_rate=1e-2, verbose=0)
    model = super_resolution(2, channels=4, num_groups=1, blocks_per_group=1)
    with warnings.catch_warnings():
        # Keras's warnings about a finite input and about shuffling a tf.data input fail it
        warnings.filterwarnings("error", message=".*(ran out of data|shuffle=True)")
        history = training.fit(
            model,
            tiny_data(),
            output_dir=tmp_path,
            config=config,
            loss="mae",
            validation_data=validation,
        )
    assert len(history.history["val_loss"]) == 2
    # other inputs pass through untouched
    assert (
        training.with_known_cardinality(tiny_data()).cardinality() == tf.data.INFINITE_CARDINALITY
    )
    assert training.with_known_cardinality(None) is None


def test_schedule_warms_up_then_decays():
    config = training.TrainConfig(
        epochs=1, steps_per_epoch=100, learning_rate=1e-3, warmup_steps=10
    )
    schedule = training.learning_rate_schedule(config)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 99)]
    assert values[0] < values[1] < values[2] == pytest.approx(1e-3)
    assert values[2] > values[3] > values[4] >= 1e-5 * 0.99


@pytest.mark.parametrize("field, value", [("epochs", 0), ("steps_per_epoch", -1)])
def test_bad_config(field, value):
    with pytest.raises(ValueError, match=f"{field}="):
        training.TrainConfig(**{field: value})


def test_trained_model_loads_after_plain_import(tmp_path):
    """A compiled .keras (Charbonnier loss, PSNR/SSIM-Y metrics) needs only `import keras_attn`."""
    import subprocess
    import sys

    from keras_attn.training.losses import CharbonnierLoss
    from keras_attn.training.metrics import PSNRY

    model = super_resolution(2, channels=4, num_groups=1, blocks_per_group=1)
    config = training.TrainConfig(epochs=1, steps_per_epoch=1, verbose=0)
    training.fit(
        model,
        tiny_data(),
        output_dir=tmp_path,
        config=config,
        loss=CharbonnierLoss(),
        metrics=[PSNRY(border=2)],
    )
    code = (
        "import keras, keras_attn\n"
        f"model = keras.saving.load_model({str(tmp_path / 'model.keras')!r})\n"
        "print(type(model.loss).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip().endswith("CharbonnierLoss")
