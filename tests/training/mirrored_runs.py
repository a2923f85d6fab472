"""Runs the SR recipe's training under several strategies in one process; prints JSON.

Run by tests/training/test_distribute.py in a subprocess: the CPU must be split into logical
devices before TensorFlow starts, which the test process has long done. Every run trains
`sr_tiny_x2` for 2 epochs x 2 steps on the same seeded crops with global batch 8 and reports the
per-epoch losses of its `history.csv` plus where the weights went. The `mirrored` run is
interrupted after its first epoch and resumed.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_attn.training import distribute  # noqa: E402

mirrored = distribute.make_strategy("mirrored", logical_cpus=2)
default = distribute.make_strategy("default")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attn import data  # noqa: E402
from keras_attn.models import registry  # noqa: E402
from keras_attn.training import fit as training  # noqa: E402
from keras_attn.training.metrics import PSNRY  # noqa: E402


def run(strategy, *, loop="auto", jit=False, mixed=False, epochs=2, output=None):
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    train = data.super_resolution_dataset("bundled_photos", "train", 2, 32, 8, training=True)
    val = data.super_resolution_dataset("bundled_photos", "validation", 2, 32, 8, training=False)
    with strategy.scope():
        model = registry.build_model("sr_tiny_x2")
    output = output or tempfile.mkdtemp()
    config = training.TrainConfig(
        epochs=epochs, steps_per_epoch=2, learning_rate=1e-3, jit_compile=jit, verbose=0
    )
    history = training.fit(
        model,
        train,
        output_dir=output,
        config=config,
        loss="mae",
        metrics=[PSNRY(border=2)],
        validation_data=val.take(2),
        strategy=strategy,
        loop=loop,
    )
    keras.config.set_dtype_policy("float32")
    rows = [line.split(",") for line in open(f"{output}/history.csv").read().split()]
    columns = {name: [float(row[i]) for row in rows[1:]] for i, name in enumerate(rows[0])}
    return {
        "custom_loop": distribute.needs_custom_loop(strategy, jit) if loop == "auto" else None,
        "history": columns,
        "epochs_this_call": len(history.epoch),
        "weights_sum": float(sum(np.abs(w).sum() for w in model.get_weights())),
        "files": sorted(os.listdir(output)),
    }


class StopAfterEpochError(Exception):
    pass


def interrupt_after_first_backup():
    """Makes the custom loop stop (like a crash) right after it writes epoch 1's backup."""
    save = distribute._save_backup

    def save_then_stop(model, backup, epoch, chief):
        save(model, backup, epoch, chief)
        distribute._save_backup = save
        raise StopAfterEpochError

    distribute._save_backup = save_then_stop


results = {"replicas": mirrored.num_replicas_in_sync, "default": run(default)}
# the mirrored run is interrupted after epoch 1 and resumed by the same call
output = tempfile.mkdtemp()
interrupt_after_first_backup()
try:
    run(mirrored, output=output)
    raise AssertionError("the interruption did not happen")
except StopAfterEpochError:
    pass
results["mirrored"] = run(mirrored, output=output)
results["mirrored_jit"] = run(mirrored, jit=True)
results["mirrored_mixed"] = run(mirrored, mixed=True)
json.dump(results, sys.stdout)
