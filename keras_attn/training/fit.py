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

import dataclasses
import os
import pathlib

import keras
import tensorflow as tf

from keras_attn.models.weights import transfer_weights  # noqa: F401  (public here too)
from keras_attn.training import distribute
from keras_attn.training.run_folder import (  # noqa: F401  (public here too)
    RunBackup,
    completed_epochs,
    read_position,
    restore_backup,
    save_model_atomic,
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train: epochs x steps, the optimiser schedule, XLA, logging."""

    epochs: int = 10
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    final_learning_rate_fraction: float = 0.01
    weight_decay: float | None = None
    clipnorm: float | None = None
    jit_compile: bool = False
    verbose: int | str = "auto"
    checkpoint_minutes: float = 10.0

    def __post_init__(self):
        for name in ("epochs", "steps_per_epoch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0. Received: {self.learning_rate!r}")
        if not self.checkpoint_minutes > 0:
            raise ValueError(
                f"checkpoint_minutes must be > 0. Received: {self.checkpoint_minutes!r}"
            )

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def learning_rate_schedule(config: TrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up to `learning_rate`, then cosine decay to a fraction of it."""
    warmup = min(config.warmup_steps, config.total_steps - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=max(1, config.total_steps - warmup),
        alpha=config.final_learning_rate_fraction,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    schedule = learning_rate_schedule(config)
    if config.weight_decay:
        return keras.optimizers.AdamW(
            schedule, weight_decay=config.weight_decay, clipnorm=config.clipnorm
        )
    return keras.optimizers.Adam(schedule, clipnorm=config.clipnorm)


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
    done, partial = read_position(output_dir)
    if done >= config.epochs:
        print(
            f"{output_dir} already holds {done} completed epochs of {config.epochs}: nothing to do"
        )
    elif done or partial:
        where = f", step {partial + 1} of {config.steps_per_epoch}" if partial else ""
        print(f"Resuming from epoch {done + 1}{where} (restored from {output_dir}/backup)")

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
    restore_backup(model, output_dir)
    validation_data = with_known_cardinality(validation_data)

    def run(first_epoch, last_epoch, steps, first_step):
        return model.fit(
            stream(first_epoch * config.steps_per_epoch + first_step),
            initial_epoch=first_epoch,
            epochs=last_epoch,
            steps_per_epoch=steps,
            shuffle=False,  # the tf.data pipelines shuffle; Keras would warn it cannot
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
    save_model_atomic(model, output_dir / "model.keras")
    return history
