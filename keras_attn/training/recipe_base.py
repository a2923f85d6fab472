"""What every training recipe shares: its common settings, the run wrapper and the schedule.

A recipe (`recipes.SuperResolutionRecipe`, `recipes.ClassifierRecipe`,
`aligner_recipe.AlignerRecipe`) is a frozen dataclass derived from `Recipe`: every field is a
setting with its default and its help text (`setting(...)`), and the fields are the flags of
`keras-attn train FAMILY` and of the example scripts (`keras_attn.flags` generates them: the
defaults are written once, here). A function `train_*(recipe, command=...)` runs it inside
`run_recipe`: strategy first, seed, precision policy (restored afterwards), then the family's
body, then `metrics.json` with the command and wall time (the chief only).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from collections.abc import Callable

import keras

from keras_attn._io import atomic_path
from keras_attn.training import distribute
from keras_attn.training import fit as training

# `--precision`: the Keras dtype policies a recipe trains under.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def verbosity(value: str) -> int | str:
    """Parses `--verbose`: `"auto"` or an integer."""
    return value if value == "auto" else int(value)


def setting(default=dataclasses.MISSING, help: str = "", **flag):  # noqa: A002 - argparse's name
    """A recipe field: its default, its `--flag` help text, and any other flag property
    (`choices`, which may be a function returning them; `type`, a parser for the text)."""
    if not help:
        raise ValueError("every recipe setting needs a help text")
    return dataclasses.field(default=default, metadata={"help": help, **flag})


def recipe_from_args(recipe_class, args):
    """The recipe whose fields are the parsed flags of the same names."""
    return recipe_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(recipe_class)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """The settings every family has: data, schedule, XLA, precision, strategy, seed, output,
    backups, verbosity. A family's recipe derives from it, adds its own fields and may redeclare
    one of these with another default."""

    output: str = setting(help="output folder (resumes if it holds a run)")
    model: str = setting("", help="model preset")
    dataset: str = setting("bundled_photos", help="tfds dataset name")
    train_split: str = setting("train", help="split to train on")
    val_split: str | None = setting("validation", help="split to validate on")
    data_dir: str | None = setting(None, help="tfds data directory (None: tfds's own)")
    epochs: int = setting(30, help="epochs")
    steps_per_epoch: int | None = setting(100, help="steps per epoch")
    batch_size: int = setting(16, help="global batch size (split over the replicas)")
    learning_rate: float = setting(1e-3, help="peak learning rate")
    warmup_steps: int = setting(0, help="linear warm-up steps")
    jit: bool = setting(False, help="compile the train step with XLA")
    precision: str = setting(
        "float32",
        choices=PRECISIONS,
        help="Keras dtype policy of the model: float32; mixed_bfloat16 (weights in float32, "
        "compute in bfloat16: 2.4x faster SR training on a CPU with AMX, as oneDNN uses it); "
        "mixed_float16 (GPUs; loss scaling is automatic)",
    )
    strategy: str = setting(
        "default",
        choices=distribute.STRATEGIES,
        help="tf.distribute strategy: default (one device), mirrored (all GPUs of this "
        "machine), multiworker (one process per machine, cluster from TF_CONFIG), tpu. "
        "--batch-size is the global batch, split evenly over all replicas",
    )
    logical_cpus: int | None = setting(
        None,
        help="split the CPU into this many logical devices (try --strategy mirrored without GPUs)",
    )
    seed: int = setting(0, help="random seed")
    verbose: int | str = setting("auto", type=verbosity, help="Keras verbosity: auto, 0, 1, 2")
    checkpoint_minutes: float = setting(
        10.0,
        help="back the run up at least this often inside an epoch (and at every epoch end); "
        "a multi-worker run backs up at epoch ends only",
    )


def json_ready(value):
    """`value` with every infinite or NaN float replaced by `None`, so that `metrics.json` is
    strict JSON: e.g. the bicubic baseline's mean PSNR is infinite when bicubic reproduces a
    flat validation tile exactly, and JSON has no infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def run_recipe(recipe, command: str, body: Callable[[pathlib.Path, object], dict]) -> dict:
    """Creates the strategy (first: multi-worker collectives must be set up before anything
    else touches TensorFlow), seeds, applies the precision policy (restored afterwards), runs
    `body(output, strategy)`, and writes `metrics.json` with the command and the wall time of
    this call (the chief only)."""
    strategy = distribute.start(recipe.strategy, recipe.logical_cpus, recipe.batch_size)
    keras.utils.set_random_seed(recipe.seed)
    output = pathlib.Path(recipe.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.time()
    previous_policy = keras.config.dtype_policy()
    if recipe.precision != "float32":
        keras.config.set_dtype_policy(recipe.precision)
    try:
        results = body(output, strategy)
        summary = {"model": results.pop("model"), "command": command, **results}
        summary["strategy"] = recipe.strategy
        summary["replicas"] = strategy.num_replicas_in_sync
    finally:
        keras.config.set_dtype_policy(previous_policy)
    summary["wall_time_s_this_call"] = round(time.time() - started, 1)
    if distribute.is_chief(strategy):
        with atomic_path(output / "metrics.json") as tmp:
            tmp.write_text(json.dumps(json_ready(summary), indent=1, allow_nan=False))
    return summary


def train_config(
    recipe, steps_per_epoch: int, *, weight_decay: float | None = None
) -> training.TrainConfig:
    return training.TrainConfig(
        epochs=recipe.epochs,
        steps_per_epoch=steps_per_epoch,
        learning_rate=recipe.learning_rate,
        warmup_steps=recipe.warmup_steps,
        weight_decay=weight_decay,
        jit_compile=recipe.jit,
        verbose=recipe.verbose,
        checkpoint_minutes=recipe.checkpoint_minutes,
    )
