"""tf.distribute for every family: strategies by name, and the custom loop where `fit` fails.

`make_strategy(name)` turns `--strategy default|mirrored|multiworker|tpu` into a
`tf.distribute.Strategy`; build the model under `strategy.scope()` and hand both to
`keras_attn.training.fit.fit`, which picks the loop (`needs_custom_loop`):

- `model.fit` for the default strategy (XLA or not) and `TPUStrategy`.
- `custom_fit`, a `strategy.run` loop, for every other multi-replica strategy: `fit` fails under
  `MultiWorkerMirroredStrategy` (keras-team/keras#20585: "Attempt to convert a value
  (PerReplica...)") and under `MirroredStrategy` with `jit_compile=True`; without XLA it runs but
  reads the dataset twice (see `needs_custom_loop`). `fit(loop="fit")` forces `model.fit`. The
  custom loop writes the same files as `fit` (`backup/latest.weights.h5` +
  `training_metadata.json`, `history.csv`, `model.keras`), so a run resumes under either loop.

Global batch semantics: the dataset yields *global* batches (`--batch-size` is the sum over all
replicas of all workers); each step splits every batch into `num_replicas_in_sync` equal
per-replica batches (`per_replica_batch_size` refuses a batch that does not divide). Every worker
builds the same seeded pipeline and keeps its own share of each batch (auto-shard policy DATA),
so N workers with global batch B take the same optimisation steps as one worker with batch B:
per-replica losses are averaged over their share and divided by the replica count, and the
optimizer sums the gradients over replicas (Keras's own `scale_loss_for_distribution`).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_attn.models.weights import float32_model
from keras_attn.training import run_folder

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


# --------------------------------------------------------------------------- strategies


def configure_logical_cpus(count: int) -> None:
    """Splits the first CPU into `count` logical devices (for `mirrored` without accelerators).

    Must run before TensorFlow initialises its devices (before any tensor is created).
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"logical_cpus must be a positive integer. Received: {count!r}")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != count:
            raise ValueError(
                f"Cannot split the CPU into {count} logical devices: TensorFlow is already "
                f"initialised with {existing}. Configure devices before creating any tensor."
            ) from None


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error.msg}): {raw[:200]}") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ValueError(
            'TF_CONFIG must be a JSON object with "cluster" and "task", e.g. '
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}. '
            f"Received: {raw[:200]}"
        )
    return config


def make_strategy(name: str = "default", *, logical_cpus: int | None = None):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`).

    Args:
        name: `"default"` (one device, no distribution), `"mirrored"` (every GPU of this machine,
            or its logical CPUs), `"multiworker"` (`MultiWorkerMirroredStrategy`: one process
            per machine, the cluster read from `TF_CONFIG`; without it, a cluster of one),
            `"tpu"` (`TPUStrategy`, the TPU named by `$TPU_NAME` or the local one).
        logical_cpus: split the CPU into this many logical devices first (call before
            TensorFlow creates any tensor), e.g. to try `mirrored` on a machine without GPUs.

    Create the strategy before anything else touches TensorFlow: `multiworker` configures
    collective ops, which TensorFlow only allows at program start.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    if logical_cpus is not None:
        configure_logical_cpus(logical_cpus)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    if name == "multiworker":
        _tf_config()  # a clear error for a malformed TF_CONFIG
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as error:
            raise ValueError(
                f"Cannot start MultiWorkerMirroredStrategy: {str(error).splitlines()[0]}. "
                "Create it first, before any other TensorFlow call."
            ) from None
    try:  # tpu
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=os.environ.get("TPU_NAME", "")
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"--strategy tpu: no TPU found ({message})") from None


def is_chief(strategy=None) -> bool:
    """Whether this process writes checkpoints, logs and the model (the chief worker).

    The task of type `chief`, or worker 0 when the cluster has no `chief`; always True
    outside multi-worker training.
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    cluster = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def per_replica_batch_size(global_batch_size: int, strategy=None) -> int:
    """The batch each replica gets; the global batch must divide evenly over the replicas."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"The global batch size ({global_batch_size}) must be a multiple of the number of "
            f"replicas ({replicas}): each replica takes an equal share of every batch."
        )
    return global_batch_size // replicas


def needs_custom_loop(strategy, jit_compile: bool) -> bool:
    """Whether `fit` runs the `strategy.run` loop rather than `model.fit` under `strategy`.

    `model.fit` fails under `MultiWorkerMirroredStrategy` and, with XLA, under any strategy with
    several replicas. Under `MirroredStrategy` without XLA it runs, but it first reads a batch
    from its own iterator of the dataset, then trains from a second one: a pipeline that
    reshuffles on every iteration (`shuffle(reshuffle_each_iteration=True)`, the classifier's
    per-epoch shuffle) then trains on a different stream than on one device. The custom loop
    iterates once and reproduces the one-device run (tests/training/test_distribute.py), so
    every multi-replica strategy but TPU takes it.
    """
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    return strategy.num_replicas_in_sync > 1 or isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    )


def describe(strategy) -> str:
    """One line: the strategy, its replica count and the workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    workers = ""
    if resolver is not None and resolver.task_type:
        count = len(resolver.cluster_spec().as_dict().get("worker", []))
        workers = f", {resolver.task_type} {resolver.task_id} of {count} workers"
    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    elif name == "_DefaultDistributionStrategy":
        name = "default strategy"
    return f"{name}: {strategy.num_replicas_in_sync} replica(s){workers}"


def start(name: str, logical_cpus: int | None, global_batch_size: int):
    """The strategy of the `train` flags, after checking the global batch divides over its
    replicas; prints one line saying what runs where."""
    strategy = make_strategy(name, logical_cpus=logical_cpus)
    per_replica_batch_size(global_batch_size, strategy)
    print(describe(strategy))
    return strategy


# --------------------------------------------------------------------------- evaluation


def evaluate(model: keras.Model, dataset, loss, metrics=()) -> dict[str, float]:
    """Loss and metrics of `model` over a finite `dataset`, on this process alone.

    No collective ops, so every worker can evaluate on its own (each gets the same numbers from
    the same data) and the result does not depend on the strategy. The loss is averaged over
    examples (per-batch means weighted by batch size), as `model.evaluate` does. Call it outside
    `strategy.scope()`: its metric variables are plain, not mirrored.
    """
    loss_fn = as_loss(loss)
    trackers = [_fresh_metric(m) for m in metrics]
    loss_mean = keras.metrics.Mean()

    @tf.function
    def step(x, y):
        predictions = _float32(model(x, training=False))
        loss_mean.update_state(loss_fn(y, predictions), sample_weight=tf.shape(predictions)[0])
        for metric in trackers:
            metric.update_state(y, predictions)

    for x, y in dataset:
        step(x, y)
    results = {"loss": float(loss_mean.result())}
    results.update({m.name: float(m.result()) for m in trackers})
    return results


def as_loss(loss) -> keras.losses.Loss:
    """A Keras `Loss` (batch-mean reduction) from a name, a function or a `Loss`."""
    loss = keras.losses.get(loss)
    return loss if isinstance(loss, keras.losses.Loss) else _FunctionLoss(loss)


class _FunctionLoss(keras.losses.Loss):
    """A per-example loss function as a `Loss` (reduction: mean over the batch)."""

    def __init__(self, function):
        super().__init__(name=getattr(function, "__name__", "loss"))
        self.function = function

    def call(self, y_true, y_pred):
        return self.function(y_true, y_pred)


def _fresh_metric(metric):
    """A new, empty copy of a Keras metric (created in the current strategy scope)."""
    metric = keras.metrics.get(metric)
    return metric.__class__.from_config(metric.get_config())


def _float32(tensor):
    return tf.cast(tensor, tf.float32) if tensor.dtype.is_floating else tensor


# --------------------------------------------------------------------------- custom loop


def _writable(path: pathlib.Path, chief: bool) -> pathlib.Path:
    """Where this process writes `path`: the path itself on the chief, a scratch copy elsewhere.

    Non-chief workers still run every save (saving reads variables, which may need the same
    collective ops on all workers) but into a temporary folder that is removed afterwards.
    """
    if chief:
        return path
    return pathlib.Path(tempfile.mkdtemp(prefix="keras_attn_worker_")) / path.name


def _discard(path: pathlib.Path, chief: bool) -> None:
    if not chief:
        shutil.rmtree(path.parent, ignore_errors=True)


def _save_backup(model, output_dir: pathlib.Path, epoch: int, chief: bool) -> None:
    """The run folder's backup (`run_folder.save_backup`), written by the chief only; the other
    workers save into a scratch folder that is removed (saving may need every worker)."""
    target = _writable(output_dir / "backup", chief).parent
    run_folder.save_backup(model, target, epoch, 0)
    _discard(target / "backup", chief)


def _check_same_position(strategy, position: tuple[int, int], output_dir) -> None:
    """Every worker must resume from the same backup (one collective, run by all workers).

    A worker whose `--output` holds another backup than the chief's (per-machine folders after
    a restart: only the chief writes) would train from other weights and step count, and the
    workers' collectives would fall out of step; this stops all of them with one clear line.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    # ReduceOp has SUM and MEAN only: the positions agree iff their variance over replicas is 0
    # (the same verdict on every worker).
    local = tf.constant([*position, *(p * p for p in position)], tf.float64)
    mean = strategy.reduce(
        tf.distribute.ReduceOp.MEAN, strategy.run(lambda: tf.identity(local)), axis=None
    ).numpy()
    if any(mean[2 + i] - mean[i] ** 2 > 1e-9 for i in range(2)):
        raise ValueError(
            f"The workers resume from different backups (this one: {position[0]} completed "
            f"epochs, the mean over workers: {mean[0]:g}): every worker's --output must hold the "
            f"chief's backup/ (use shared storage, or copy the chief's backup/ to each worker's "
            f"--output before restarting)"
        )


def custom_fit(
    model: keras.Model,
    train_data: tf.data.Dataset,
    *,
    output_dir: pathlib.Path,
    config,
    optimizer: keras.optimizers.Optimizer,
    loss,
    metrics=(),
    validation_data=None,
    strategy,
) -> keras.callbacks.History:
    """Trains with `strategy.run`; the contract of `keras_attn.training.fit.fit`.

    `model` and `optimizer` must have been created under `strategy.scope()`. Resumes from
    `output_dir/backup/` (weights, optimizer state, completed epochs); the chief writes the
    backup, `history.csv` and `model.keras`; every worker evaluates `validation_data` locally.
    """
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    loss_fn = as_loss(loss)

    with strategy.scope():
        # compile: `model.optimizer` for saving, the loss in the .keras config; the Keras
        # trackers it creates are not used here.
        model.compile(optimizer=optimizer, loss=loss, jit_compile=False)
        optimizer = model.optimizer  # a LossScaleOptimizer under the mixed_float16 policy
        optimizer.build(model.trainable_variables)
        loss_tracker = keras.metrics.Mean(name="loss")
        trackers = [_fresh_metric(m) for m in metrics]

    done, first_step = run_folder.restore_backup(model, output_dir)
    _check_same_position(strategy, (done, first_step), output_dir)

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_data = train_data.with_options(options)
    iterator = iter(strategy.experimental_distribute_dataset(train_data))

    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            predictions = _float32(model(x, training=True))
            # A Keras `Loss` called in a replica context already divides its batch mean by the
            # replica count (keras.src.losses.loss.scale_loss_for_distribution), so the
            # optimizer's sum over replicas is the mean over the global batch.
            scaled = loss_fn(y, predictions)
            if model.losses:
                scaled = scaled + tf.add_n([_float32(v) for v in model.losses]) / replicas
            minimised = optimizer.scale_loss(scaled)  # x the loss scale under mixed_float16
        gradients = tape.gradient(minimised, model.trainable_variables)
        return scaled * replicas, predictions, gradients

    if config.jit_compile:
        # XLA compiles each replica's forward and backward pass; the gradient all-reduce and
        # the update (a cross-replica merge) stay outside it.
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_step(x, y):
        per_replica, predictions, gradients = forward_backward(x, y)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        loss_tracker.update_state(per_replica, sample_weight=tf.shape(predictions)[0])
        for metric in trackers:
            metric.update_state(y, predictions)

    @tf.function
    def train_step(iterator):
        x, y = next(iterator)
        strategy.run(replica_step, args=(x, y))

    history = keras.callbacks.History()
    history.set_model(model)
    history.on_train_begin()
    show_progress = config.verbose in (1, "auto")
    for epoch in range(done, config.epochs):
        progress = keras.utils.Progbar(config.steps_per_epoch, verbose=1 if chief else 0)
        if chief and config.verbose not in (0, "0"):
            print(f"Epoch {epoch + 1}/{config.epochs}")
        started, steps = time.monotonic(), config.steps_per_epoch - first_step
        for step in range(first_step, config.steps_per_epoch):
            train_step(iterator)
            if show_progress:
                # result() of an on-read metric is a cross-worker reduction: every worker reads
                # it at the same step (never only the chief, never on a timer), so the workers'
                # collective ops stay in step; only the chief prints.
                value = float(loss_tracker.result())
                if chief:
                    progress.update(step + 1, [("loss", value)])
        first_step = 0
        seconds = time.monotonic() - started
        # result() of on-read metric variables sums over replicas (and workers) on every worker
        logs = {"loss": float(loss_tracker.result())}
        logs.update({m.name: float(m.result()) for m in trackers})
        for metric in [loss_tracker, *trackers]:
            metric.reset_state()
        if validation_data is not None:
            val = evaluate(model, validation_data, loss_fn, metrics)
            logs.update({f"val_{k}": v for k, v in val.items()})
        # the columns run_folder.RunBackup adds in the model.fit loop
        logs["wall_time"] = round(time.time(), 1)
        logs["steps_per_s"] = round(steps / seconds, 3) if seconds else 0.0
        if not np.isfinite(logs["loss"]):
            raise FloatingPointError(
                f"The training loss became {logs['loss']} in epoch {epoch + 1}"
            )
        if chief:
            run_folder.append_history(output_dir / "history.csv", epoch, logs)
            if config.verbose == 2:
                print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        _save_backup(model, output_dir, epoch + 1, chief)
        history.on_epoch_end(epoch, logs)

    target = _writable(output_dir / "model.keras", chief)
    run_folder.save_model_atomic(float32_model(model), target)
    _discard(target, chief)
    return history
