"""What every training recipe shares: the argparse helpers, the run wrapper and the schedule.

A recipe (`recipes.SuperResolutionRecipe`, `recipes.ClassifierRecipe`,
`aligner_recipe.AlignerRecipe`) is a frozen dataclass of settings whose fields are the flags of
`keras-attn train FAMILY` (`recipe_from_args`), and a function `train_*(recipe, command=...)`
that runs it inside `run_recipe`: strategy first, seed, precision policy (restored afterwards),
then the family's body, then `metrics.json` with the command and wall time (the chief only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time
from collections.abc import Callable

import keras

from keras_attn._io import atomic_path
from keras_attn.training import distribute
from keras_attn.training import fit as training


def verbosity(value: str) -> int | str:
    """argparse type of `--verbose`: `"auto"` or an integer."""
    return value if value == "auto" else int(value)


def recipe_from_args(recipe_class, args: argparse.Namespace):
    """The recipe whose fields are the parsed flags of the same names."""
    return recipe_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(recipe_class)})


def add_common_arguments(
    parser: argparse.ArgumentParser,
    defaults,
    *,
    learning_rate_help: str = "peak learning rate",
    jit_help: str = "compile the train step with XLA",
) -> None:
    """The flags every recipe has (data, schedule, XLA, precision, strategy, seed, output,
    backups, verbosity), their defaults taken from the recipe `defaults`."""
    parser.add_argument("--dataset", default=defaults.dataset, help="tfds dataset name")
    parser.add_argument("--train-split", default=defaults.train_split, help="split to train on")
    parser.add_argument("--data-dir", help="tfds data directory (None: tfds's own)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs")
    parser.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help=learning_rate_help
    )
    parser.add_argument(
        "--warmup-steps", type=int, default=defaults.warmup_steps, help="linear warm-up steps"
    )
    parser.add_argument(
        "--jit",
        action=argparse.BooleanOptionalAction,
        default=defaults.jit,
        help=jit_help,
    )
    parser.add_argument(
        "--mixed-precision", action="store_true", help="train with the mixed_float16 policy"
    )
    distribute.add_arguments(parser)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument("--output", required=True, help="output folder (resumes if it has a run)")
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=10.0,
        help="back the run up at least this often inside an epoch (and at every epoch end); "
        "a multi-worker run backs up at epoch ends only",
    )
    parser.add_argument(
        "--verbose", type=verbosity, default="auto", help="Keras verbosity: auto, 0, 1, 2"
    )


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
    if recipe.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
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
            tmp.write_text(json.dumps(summary, indent=1))
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
