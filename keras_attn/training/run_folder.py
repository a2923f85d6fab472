"""The run folder: one owner for what a training run keeps on disk, and how it resumes.

```
OUTPUT/
  backup/latest.weights.h5        weights + optimizer state (Keras BackupAndRestore's layout)
  backup/training_metadata.json   {"epoch": completed epochs, "batch": steps into the next one}
  history.csv                     one row per epoch (CSVLogger's format), with wall time and
                                  training steps/s, so a long run's progress can be read off it
  model.keras                     the final model, written atomically
```

A backup is written at the end of every epoch and, inside an epoch, whenever
`checkpoint_minutes` have passed since the last one, so a run killed at any moment loses at most
that much work; `read_position` tells where the backup stands and `fit` resumes from there.
Every write goes through a temporary file and an atomic rename: a kill never leaves a
half-written backup or model.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import time

import keras

from keras_attn._io import atomic_path
from keras_attn.models.weights import float32_model

WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"


def backup_dir(output_dir: str | os.PathLike) -> pathlib.Path:
    return pathlib.Path(output_dir) / "backup"


def read_position(output_dir: str | os.PathLike) -> tuple[int, int]:
    """`(completed epochs, steps already run in the next epoch)` of the run in `output_dir`
    (`(0, 0)` without a backup)."""
    metadata = backup_dir(output_dir) / METADATA
    if not metadata.exists() or not (backup_dir(output_dir) / WEIGHTS).exists():
        return 0, 0
    state = json.loads(metadata.read_text())
    return int(state["epoch"]), max(0, int(state.get("batch", 0)))


def completed_epochs(output_dir: str | os.PathLike) -> int:
    """Epochs already completed by an interrupted or finished run in `output_dir` (0 if none)."""
    return read_position(output_dir)[0]


def save_backup(model: keras.Model, output_dir: str | os.PathLike, epoch: int, step: int) -> None:
    """Writes weights (with the optimizer's state), then the position: `epoch` completed epochs
    and `step` steps into the next. Each file is replaced atomically, the position last."""
    folder = backup_dir(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    with atomic_path(folder / METADATA) as tmp:
        tmp.write_text(json.dumps({"epoch": epoch, "batch": step}))


def restore_backup(model: keras.Model, output_dir: str | os.PathLike) -> tuple[int, int]:
    """Loads the backup's weights and optimizer state into a compiled `model`; its position."""
    position = read_position(output_dir)
    if position == (0, 0):
        return position
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(backup_dir(output_dir) / WEIGHTS)
    return position


def append_history(path: str | os.PathLike, epoch: int, logs: dict) -> None:
    """Appends one epoch like `keras.callbacks.CSVLogger(append=True)` (sorted keys)."""
    path = pathlib.Path(path)
    keys = sorted(logs)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", *keys])
        if new:
            writer.writeheader()
        writer.writerow({"epoch": epoch, **{k: logs[k] for k in keys}})


def save_model_atomic(model: keras.Model, path: str | os.PathLike) -> pathlib.Path:
    """`model.save(path)` through a temporary file in the same folder and an atomic rename."""
    if pathlib.Path(path).suffix != ".keras":
        raise ValueError(
            f"save_model_atomic writes the .keras format: the path must end in "
            f".keras. Received: {path}"
        )
    with atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the extension
        model.save(tmp)
    return pathlib.Path(path)


class RunBackup(keras.callbacks.Callback):
    """Backs the run up at every epoch end and every `checkpoint_minutes` inside an epoch, and
    adds `wall_time` (seconds since the epoch, for plotting progress across sessions) and
    `steps_per_s` (training steps of this epoch per second, validation excluded) to the logs
    that `CSVLogger` writes after it.

    Args:
        output_dir: the run folder.
        checkpoint_minutes: the longest time between two backups.
        first_step: steps of the first epoch already run before this call (a resumed run).
    """

    def __init__(self, output_dir, checkpoint_minutes: float = 10.0, first_step: int = 0):
        super().__init__()
        if not checkpoint_minutes > 0:
            raise ValueError(f"checkpoint_minutes must be > 0. Received: {checkpoint_minutes!r}")
        self.output_dir = pathlib.Path(output_dir)
        self.interval = 60.0 * checkpoint_minutes
        self.first_step = first_step
        self._epoch = 0
        self._step_base = 0
        self._steps = 0

    def on_train_begin(self, logs=None):
        self._last_save = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._step_base = self.first_step
        self.first_step = 0  # only the first epoch of a resumed call starts part-way
        self._epoch = epoch
        self._steps = 0
        self._epoch_start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1
        self._train_seconds = time.monotonic() - self._epoch_start
        if time.monotonic() - self._last_save >= self.interval:
            save_backup(self.model, self.output_dir, self._epoch, self._step_base + batch + 1)
            self._last_save = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["wall_time"] = round(time.time(), 1)
            seconds = getattr(self, "_train_seconds", 0.0)
            logs["steps_per_s"] = round(self._steps / seconds, 3) if seconds else 0.0
        save_backup(self.model, self.output_dir, epoch + 1, 0)
        self._last_save = time.monotonic()


def announce_position(output_dir: str | os.PathLike, config) -> tuple[int, int]:
    """Prints whether the run in `output_dir` resumes (and where) or is already finished for
    `config` (a `TrainConfig`); returns `read_position(output_dir)`."""
    done, partial = read_position(output_dir)
    if done >= config.epochs:
        print(
            f"{output_dir} already holds {done} completed epochs of {config.epochs}: nothing to do"
        )
    elif done or partial:
        where = f", step {partial + 1} of {config.steps_per_epoch}" if partial else ""
        print(f"Resuming from epoch {done + 1}{where} (restored from {output_dir}/backup)")
    return done, partial


def fit_resumable(
    model: keras.Model,
    stream,
    *,
    output_dir: str | os.PathLike,
    config,
    validation_data=None,
    callbacks=(),
) -> keras.callbacks.History:
    """`model.fit` for `config.epochs` x `config.steps_per_epoch` steps (`config`: a
    `TrainConfig`), resumed from the backup in `output_dir`, with `RunBackup` and `history.csv`;
    writes `output_dir/model.keras` at the end (computing in float32 after a mixed precision
    run: `keras_attn.models.weights.float32_model`). Keras alone: any backend.

    Args:
        model: a compiled model (its optimizer built from `config`).
        stream: `stream(step)` -> the training batches from global step `step` on (endless), so
            a resumed run sees the batches an uninterrupted one would.
        output_dir: the run folder.
        config: epochs, steps per epoch, checkpoint minutes and verbosity.
        validation_data: evaluated after every epoch when given.
        callbacks: extra Keras callbacks.

    Returns:
        The Keras `History` of this call (the epochs it ran).
    """
    output_dir = pathlib.Path(output_dir)
    done, partial = read_position(output_dir)
    restore_backup(model, output_dir)

    def run(first_epoch, last_epoch, steps, first_step):
        return model.fit(
            stream(first_epoch * config.steps_per_epoch + first_step),
            initial_epoch=first_epoch,
            epochs=last_epoch,
            steps_per_epoch=steps,
            shuffle=False,  # the input pipelines shuffle; Keras would warn it cannot
            validation_data=validation_data,
            verbose=config.verbose,
            callbacks=[
                RunBackup(output_dir, config.checkpoint_minutes, first_step=first_step),
                keras.callbacks.CSVLogger(str(output_dir / "history.csv"), append=True),
                *callbacks,
            ],
        )

    history = None
    if partial and done < config.epochs:
        # finish the interrupted epoch first (its remaining steps), then the rest as usual
        history = run(done, done + 1, config.steps_per_epoch - partial, partial)
        done += 1
    if done < config.epochs or history is None:
        rest = run(done, max(done, config.epochs), config.steps_per_epoch, 0)
        if history is not None:
            rest.epoch = history.epoch + rest.epoch
            for key, values in history.history.items():
                rest.history[key] = values + rest.history.get(key, [])
        history = rest
    save_model_atomic(float32_model(model), output_dir / "model.keras")
    return history
