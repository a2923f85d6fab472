"""The training entry point shared by every family, the CLI and the examples.

`fit(model, train_data, ...)` compiles with Adam and a warm-up + cosine learning-rate schedule,
trains with backups in `output_dir/backup/` at every epoch end and every
`TrainConfig.checkpoint_minutes` inside an epoch (so the same call after a crash resumes where
the last backup stands, optimizer state and schedule included; see `run_folder`), logs every
epoch to `output_dir/history.csv`, and writes the final model to `output_dir/model.keras`
atomically.

Under a `tf.distribute` strategy (`keras_attn.training.distribute.make_strategy`; build the model
in `strategy.scope()`) it runs `model.fit` where that works and the `strategy.run` loop of
`distribute.custom_fit` where it does not (multi-worker, or XLA with several replicas); both write
the same files, and only the chief writes them.
"""

from __future__ import annotations

import os
import pathlib

import keras
import tensorflow as tf

from keras_attn.models.weights import transfer_weights  # noqa: F401  (public here too)
from keras_attn.training import distribute
from keras_attn.training.run_folder import (  # noqa: F401  (public here too)
    RunBackup,
    announce_position,
    completed_epochs,
    fit_resumable,
    read_position,
    restore_backup,
    save_model_atomic,
)
from keras_attn.training.schedule import (  # noqa: F401  (public here too)
    TrainConfig,
    learning_rate_schedule,
    make_optimizer,
)


def with_known_cardinality(dataset):
    """A finite `tf.data.Dataset` whose length tf.data cannot tell (after `filter`, a
    `from_generator`, ...), counted once and asserted, so Keras does not warn "Your input ran out
    of data" at the end of the first validation pass. Anything else is returned as it is."""
    if not isinstance(dataset, tf.data.Dataset):
        return dataset
    if int(dataset.cardinality()) != int(tf.data.UNKNOWN_CARDINALITY):
        return dataset
    count = int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))
    return dataset.apply(tf.data.experimental.assert_cardinality(count))


def fit(
    model: keras.Model,
    train_data,
    *,
    output_dir: str | os.PathLike,
    config: TrainConfig,
    loss,
    metrics=(),
    validation_data=None,
    callbacks=(),
    strategy=None,
    loop: str = "auto",
) -> keras.callbacks.History:
    """Compiles and trains `model`, resuming from `output_dir` when it holds a backup.

    Args:
        model: a Keras model.
        train_data: an endless `tf.data.Dataset` (or anything `model.fit` takes).
        output_dir: folder for `backup/`, `history.csv` and the final `model.keras`.
        config: a `TrainConfig`.
        loss: a loss name or instance.
        metrics: metrics to compile with.
        validation_data: evaluated after every epoch when given.
        callbacks: extra Keras callbacks (`model.fit` loop only).
        strategy: the `tf.distribute.Strategy` the model was built under (None: the current
            one). `train_data` yields global batches (see `distribute`).
        loop: `"auto"` (`model.fit` unless `distribute.needs_custom_loop`), `"fit"` or
            `"custom"` (the `strategy.run` loop).

    Returns:
        The Keras `History` of this call (the epochs it ran).
    """
    if loop not in ("auto", "fit", "custom"):
        raise ValueError(f"loop must be 'auto', 'fit' or 'custom'. Received: {loop!r}")
    strategy = strategy or tf.distribute.get_strategy()
    custom = loop == "custom" or (
        loop == "auto" and distribute.needs_custom_loop(strategy, config.jit_compile)
    )
    if custom and callbacks:
        raise ValueError("callbacks only run in the model.fit loop (loop='fit')")
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    done, partial = announce_position(output_dir, config)

    def stream(skip_steps):
        # A backup restores weights, optimiser and position, not the position in the input
        # stream: skip the batches already consumed, so a resumed run sees the same batches as
        # an uninterrupted one (bitwise equal here).
        if skip_steps and isinstance(train_data, tf.data.Dataset):
            return train_data.skip(skip_steps)
        return train_data

    if custom:
        with strategy.scope():
            optimizer = make_optimizer(config)
        return distribute.custom_fit(
            model,
            stream(done * config.steps_per_epoch + partial),
            output_dir=output_dir,
            config=config,
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            validation_data=validation_data,
            strategy=strategy,
        )
    with strategy.scope():
        model.compile(
            optimizer=make_optimizer(config),
            loss=loss,
            metrics=list(metrics),
            jit_compile=config.jit_compile,
        )
    return fit_resumable(
        model,
        stream,
        output_dir=output_dir,
        config=config,
        validation_data=with_known_cardinality(validation_data),
        callbacks=callbacks,
    )
