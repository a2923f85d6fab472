"""The run folder: backups and their position, the history log, the atomic model write."""

import csv
import json

import keras
import numpy as np
import pytest

from keras_attn.training import run_folder


def dense_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    return model


def batch(size: int = 4):
    """(inputs, targets) of `size` random examples for `dense_model`."""
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(size, 3)).astype("float32")
    return inputs, rng.normal(size=(size, 2)).astype("float32")


def test_no_backup_is_position_zero(tmp_path):
    assert run_folder.read_position(tmp_path) == (0, 0)
    assert run_folder.completed_epochs(tmp_path / "never_created") == 0
    # a position without the weights it belongs to is no backup either
    run_folder.backup_dir(tmp_path).mkdir()
    (run_folder.backup_dir(tmp_path) / run_folder.METADATA).write_text('{"epoch": 3, "batch": 1}')
    assert run_folder.read_position(tmp_path) == (0, 0)
    model = dense_model()
    before = [np.array(w) for w in model.get_weights()]
    assert run_folder.restore_backup(model, tmp_path) == (0, 0)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_backup_round_trip_restores_weights_optimizer_state_and_position(tmp_path):
    trained = dense_model(seed=0)
    x, y = batch()
    trained.train_on_batch(x, y)
    trained.train_on_batch(x, y)
    run_folder.save_backup(trained, tmp_path, epoch=2, step=5)
    folder = run_folder.backup_dir(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [run_folder.WEIGHTS, run_folder.METADATA]
    assert json.loads((folder / run_folder.METADATA).read_text()) == {"epoch": 2, "batch": 5}
    assert run_folder.read_position(tmp_path) == (2, 5)
    assert run_folder.completed_epochs(tmp_path) == 2

    fresh = dense_model(seed=1)  # other initial weights, optimizer not built yet
    assert run_folder.restore_backup(fresh, tmp_path) == (2, 5)
    for got, want in zip(fresh.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert int(fresh.optimizer.iterations) == 2
    for got, want in zip(fresh.optimizer.variables, trained.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # Adam's moments too
    # the next step is the one the uninterrupted model takes
    fresh.train_on_batch(x, y)
    trained.train_on_batch(x, y)
    np.testing.assert_allclose(fresh.get_weights()[0], trained.get_weights()[0], rtol=1e-6)


def test_a_negative_step_reads_as_the_epoch_start(tmp_path):
    run_folder.save_backup(dense_model(), tmp_path, epoch=1, step=-3)
    assert run_folder.read_position(tmp_path) == (1, 0)


def test_append_history_writes_the_header_once_with_sorted_keys(tmp_path):
    path = tmp_path / "history.csv"
    run_folder.append_history(path, 0, {"loss": 0.5, "accuracy": 0.25})
    run_folder.append_history(path, 1, {"accuracy": 0.75, "loss": 0.125})
    assert path.read_text().splitlines() == ["epoch,accuracy,loss", "0,0.25,0.5", "1,0.75,0.125"]
    with open(path) as handle:  # what keras.callbacks.CSVLogger would read back
        assert [row["loss"] for row in csv.DictReader(handle)] == ["0.5", "0.125"]


def test_save_model_atomic_writes_a_loadable_file_and_nothing_else(tmp_path):
    model = dense_model()
    path = run_folder.save_model_atomic(model, tmp_path / "model.keras")
    assert path == tmp_path / "model.keras"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary leftovers
    loaded = keras.saving.load_model(path, compile=False)
    x, _ = batch()
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    with pytest.raises(ValueError, match=r"must end in \.keras\. Received: .*model\.h5"):
        run_folder.save_model_atomic(model, tmp_path / "model.h5")
    assert not (tmp_path / "model.h5").exists()


class Positions(keras.callbacks.Callback):
    """Reads the run folder's position after every batch (runs after `RunBackup`)."""

    def __init__(self, output_dir):
        super().__init__()
        self.output_dir, self.seen = output_dir, []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(run_folder.read_position(self.output_dir))


@pytest.mark.parametrize("first_step", [0, 2])
def test_run_backup_backs_up_inside_the_epoch_and_logs_progress(tmp_path, first_step):
    model = dense_model()
    x, y = batch(12)
    positions = Positions(tmp_path)
    # an interval shorter than a step: a backup after every batch
    backup = run_folder.RunBackup(tmp_path, checkpoint_minutes=1e-9, first_step=first_step)
    history = model.fit(
        x, y, batch_size=4, epochs=2, verbose=0, shuffle=False, callbacks=[backup, positions]
    )
    # epoch 1 of a resumed call starts `first_step` steps in; epoch 2 starts at its beginning
    in_epoch_1 = [(0, first_step + 1), (0, first_step + 2), (0, first_step + 3)]
    assert positions.seen == [*in_epoch_1, (1, 1), (1, 2), (1, 3)]
    assert run_folder.read_position(tmp_path) == (2, 0)  # epoch end: completed, step 0
    assert len(history.history["wall_time"]) == 2
    assert all(rate > 0 for rate in history.history["steps_per_s"])


def test_run_backup_waits_for_its_interval(tmp_path):
    model = dense_model()
    x, y = batch(12)
    positions = Positions(tmp_path)
    backup = run_folder.RunBackup(tmp_path, checkpoint_minutes=60.0)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[backup, positions])
    assert positions.seen == [(0, 0)] * 3  # no backup inside the epoch
    assert run_folder.read_position(tmp_path) == (1, 0)


@pytest.mark.parametrize("minutes", [0, -1.0])
def test_run_backup_needs_a_positive_interval(tmp_path, minutes):
    with pytest.raises(ValueError, match=f"checkpoint_minutes must be > 0. Received: {minutes}"):
        run_folder.RunBackup(tmp_path, checkpoint_minutes=minutes)
