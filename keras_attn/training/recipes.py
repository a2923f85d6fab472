"""Training recipes: the whole run of each family, behind `keras-attn train` and examples/.

A recipe is a frozen dataclass of settings (`SuperResolutionRecipe`, `ClassifierRecipe`) and a
function that runs it (`train_super_resolution`, `train_classifier`): data -> model -> `fit`
(resumes from the output folder) -> held-out evaluation -> `metrics.json` (with the command that
ran it). `add_*_arguments(parser)` turn a recipe's fields into argparse flags whose defaults are
the dataclass defaults, and `TRAINERS` maps a family to `(add_arguments, run)`, so a new family
(`train aligner`) is one more entry.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_attn import data
from keras_attn.data import classification
from keras_attn.models import registry
from keras_attn.training import aligner_recipe, distribute
from keras_attn.training import fit as training
from keras_attn.training.losses import get_loss
from keras_attn.training.metrics import PSNRY, SSIMY, psnr_y
from keras_attn.training.recipe_base import (  # noqa: F401  (public here too)
    add_common_arguments,
    recipe_from_args,
    run_recipe,
    train_config,
    verbosity,
)


@dataclasses.dataclass(frozen=True)
class SuperResolutionRecipe:
    """Settings of `train_super_resolution`; the flags of `add_super_resolution_arguments`."""

    output: str
    scale: int = 2
    model: str = "sr_fast"
    dataset: str = "bundled_photos"
    train_split: str = "train"
    val_split: str = "validation"
    data_dir: str | None = None
    epochs: int = 40
    steps_per_epoch: int = 100
    batch_size: int = 16
    patch_size: int = 96
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    loss: str = "charbonnier"
    jit: bool = False
    mixed_precision: bool = False
    init_from: str | None = None
    strategy: str = "default"
    logical_cpus: int | None = None
    seed: int = 0
    verbose: int | str = "auto"
    checkpoint_minutes: float = 10.0


@dataclasses.dataclass(frozen=True)
class ClassifierRecipe:
    """Settings of `train_classifier`; the flags of `add_classifier_arguments`."""

    output: str
    model: str = "classifier_digits"
    dataset: str = "bundled_digits"
    train_split: str = "train"
    test_split: str = "test"
    val_split: str | None = None
    data_dir: str | None = None
    epochs: int = 30
    steps_per_epoch: int | None = None
    batch_size: int = 64
    image_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 0
    label_smoothing: float = 0.0
    random_erasing: float = 0.0
    weight_decay: float | None = None
    attention: str | None = None
    widths: str | None = None
    depths: str | None = None
    jit: bool = False
    mixed_precision: bool = False
    strategy: str = "default"
    logical_cpus: int | None = None
    seed: int = 0
    verbose: int | str = "auto"
    checkpoint_minutes: float = 10.0

    def architecture_overrides(self) -> dict:
        """The preset arguments that `--attention`, `--widths` and `--depths` replace:
        attention `"none"` -> `None` (plain), `"none,none,self"` -> one entry per stage;
        widths/depths `"16,32,64"` -> `(16, 32, 64)`."""
        overrides = {}
        if self.attention is not None:
            stages = [None if a.strip() == "none" else a.strip() for a in self.attention.split(",")]
            overrides["attention"] = stages[0] if len(stages) == 1 else tuple(stages)
        for name in ("widths", "depths"):
            value = getattr(self, name)
            if value is not None:
                try:
                    overrides[name] = tuple(int(v) for v in value.split(","))
                except ValueError:
                    raise ValueError(
                        f"--{name} must be comma-separated integers, e.g. 16,32,64. "
                        f"Received: {value!r}"
                    ) from None
        return overrides

    def __post_init__(self):
        self.architecture_overrides()  # checks the spelling of --widths / --depths
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                f"--label-smoothing must be in [0, 1). Received: {self.label_smoothing}"
            )
        if not 0.0 <= self.random_erasing <= 1.0:
            raise ValueError(
                f"--random-erasing must be a probability in [0, 1]. Received: {self.random_erasing}"
            )
        if self.weight_decay is not None and not self.weight_decay >= 0.0:
            raise ValueError(f"--weight-decay must be >= 0. Received: {self.weight_decay}")


def add_super_resolution_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `SuperResolutionRecipe` (examples/train_super_resolution.py, `train sr`)."""
    defaults = SuperResolutionRecipe(output="")
    parser.add_argument(
        "--scale", type=int, default=defaults.scale, choices=[2, 3, 4], help="upscaling factor"
    )
    parser.add_argument(
        "--model",
        default=defaults.model,
        help="preset: sr_tiny, sr_fast (the shipped x2), sr_small (the shipped x3/x4), sr_base; "
        "or a benchmark reference: espcn, espcn_skip, edsr_small, edsr_small_skip",
    )
    parser.add_argument("--val-split", default=defaults.val_split, help="split to validate on")
    parser.add_argument(
        "--steps-per-epoch", type=int, default=defaults.steps_per_epoch, help="steps per epoch"
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="crops/batch")
    parser.add_argument(
        "--patch-size",
        type=int,
        default=defaults.patch_size,
        help="HR crop side (multiple of scale)",
    )
    parser.add_argument("--loss", default=defaults.loss, help="charbonnier, l1 or mse")
    parser.add_argument("--init-from", help="a .keras SR model to start from (matching layers)")
    add_common_arguments(parser, defaults, learning_rate_help="peak learning rate")


def add_classifier_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `ClassifierRecipe` (examples/train_classifier.py, `train classifier`)."""
    defaults = ClassifierRecipe(output="")
    presets = registry.list_models("classifier")
    parser.add_argument("--model", default=defaults.model, choices=presets, help="preset")
    parser.add_argument(
        "--test-split", default=defaults.test_split, help="held-out split to evaluate on"
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="steps per epoch (None: one pass over the training split)",
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images/batch")
    parser.add_argument(
        "--image-size", type=int, default=defaults.image_size, help="side of the model's input"
    )
    parser.add_argument(
        "--val-split",
        default=None,
        help="split validated on after every epoch (default: --test-split); pass a slice of "
        "the training data, e.g. 'train[:5000]', to read the test split only once, at the end",
    )
    parser.add_argument(
        "--label-smoothing", type=float, default=0.0, help="label smoothing in [0, 1)"
    )
    parser.add_argument(
        "--random-erasing",
        type=float,
        default=defaults.random_erasing,
        help="probability of random erasing per training image (0.5 in the Fashion-MNIST recipe)",
    )
    parser.add_argument(
        "--attention",
        help="replace the preset's attention: se, cbam, spatial, nonlocal, self or none; or one "
        "per stage, e.g. none,none,self",
    )
    parser.add_argument("--widths", help="replace the preset's stage widths, e.g. 16,32,64")
    parser.add_argument("--depths", help="replace the preset's blocks per stage, e.g. 3,3,3")
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=defaults.weight_decay,
        help="decoupled weight decay (AdamW); none: Adam",
    )
    add_common_arguments(parser, defaults, learning_rate_help="peak learning rate")


# --------------------------------------------------------------------------- shared run logic


# --------------------------------------------------------------------------- super-resolution


def bicubic_psnr(dataset, scale: int) -> float:
    """Mean PSNR-Y of bicubic upsampling on a validation dataset (the number to beat)."""
    values = []
    for lr, hr in dataset:
        up = tf.image.resize(lr, tf.shape(hr)[1:3], method="bicubic")
        values.append(psnr_y(hr, tf.clip_by_value(up, 0.0, 1.0), border=scale))
    return float(np.mean(np.concatenate(values)))


def train_super_resolution(recipe: SuperResolutionRecipe, *, command: str = "") -> dict:
    """Trains an SR preset on random HR crops (LR by bicubic downscaling), Charbonnier loss by
    default, PSNR-Y / SSIM-Y on the validation tiles after every epoch; resumable. Writes
    `model.keras`, `history.csv` and `metrics.json` into `recipe.output`; returns the metrics."""

    def body(output: pathlib.Path, strategy) -> dict:
        # Data
        def load(split, training_mode):
            return data.super_resolution_dataset(
                recipe.dataset,
                split,
                recipe.scale,
                recipe.patch_size,
                recipe.batch_size,
                training=training_mode,
                data_dir=recipe.data_dir,
                seed=recipe.seed,
            )

        train_data = load(recipe.train_split, True)
        val_data = load(recipe.val_split, False).cache()
        baseline = bicubic_psnr(val_data, recipe.scale)
        print(f"bicubic PSNR-Y on {recipe.val_split}: {baseline:.3f} dB")

        # Model
        with strategy.scope():
            model = registry.build_model(f"{recipe.model}_x{recipe.scale}")
        if recipe.init_from and training.completed_epochs(output) == 0:
            source = keras.saving.load_model(recipe.init_from)
            skipped = training.transfer_weights(source, model)
            print(f"initialised from {recipe.init_from}; not transferred: {skipped}")

        # Train
        config = train_config(recipe, recipe.steps_per_epoch)
        history = training.fit(
            model,
            train_data,
            output_dir=output,
            config=config,
            loss=get_loss(recipe.loss),
            metrics=[PSNRY(border=recipe.scale), SSIMY(border=recipe.scale)],
            validation_data=val_data,
            strategy=strategy,
        )

        # Evaluate (on this process alone: the same numbers on every worker)
        results = distribute.evaluate(
            model,
            val_data,
            get_loss(recipe.loss),
            [PSNRY(border=recipe.scale), SSIMY(border=recipe.scale)],
        )
        return {
            "model": f"{recipe.model}_x{recipe.scale}",
            "dataset": recipe.dataset,
            "train_split": recipe.train_split,
            "val_split": recipe.val_split,
            "scale": recipe.scale,
            "params": model.count_params(),
            "epochs": recipe.epochs,
            "steps": config.total_steps,
            "batch_size": recipe.batch_size,
            "patch_size": recipe.patch_size,
            "mixed_precision": recipe.mixed_precision,
            "val_psnr_y": results["psnr_y"],
            "val_ssim_y": results["ssim_y"],
            "bicubic_psnr_y": baseline,
            "gain_over_bicubic_db": results["psnr_y"] - baseline,
            "epochs_run_this_call": len(history.epoch),
        }

    return run_recipe(recipe, command, body)


# --------------------------------------------------------------------------- classifier


def loss_and_metric(label_smoothing: float, num_classes: int):
    """The loss, the accuracy metric and the label map for the datasets.

    The model outputs probabilities. Without smoothing: sparse cross-entropy on the integer
    labels. With smoothing: the sparse loss has none, so labels become one-hot vectors for
    `CategoricalCrossentropy(label_smoothing=...)`.
    """
    if label_smoothing > 0:

        def one_hot(images, labels):
            return images, tf.one_hot(labels, num_classes)

        return (
            keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            one_hot,
        )

    def unchanged(images, labels):
        return images, labels

    return (
        keras.losses.SparseCategoricalCrossentropy(),
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        unchanged,
    )


def train_classifier(recipe: ClassifierRecipe, *, command: str = "") -> dict:
    """Trains a classifier preset with random translations (horizontal flips only where the
    dataset allows them), accuracy on the held-out split after every epoch; resumable. Writes
    `model.keras`, `history.csv` and `metrics.json` into `recipe.output`; returns the metrics."""

    def body(output: pathlib.Path, strategy) -> dict:
        # Data: the model's channel count comes from the preset; the pipeline converts.
        channels = registry.get_spec(recipe.model).defaults.get("input_shape", (None, None, 3))[-1]
        num_classes = classification.num_classes(recipe.dataset, recipe.data_dir)
        steps_per_epoch = recipe.steps_per_epoch
        if steps_per_epoch is None:
            train_size = classification.num_examples(
                recipe.dataset, recipe.train_split, recipe.data_dir
            )
            if train_size is None:
                raise ValueError(
                    f"Size of {recipe.dataset} {recipe.train_split} unknown: pass --steps-per-epoch"
                )
            steps_per_epoch = max(1, math.ceil(train_size / recipe.batch_size))

        def load(split, training_mode):
            return classification.classification_dataset(
                recipe.dataset,
                split,
                recipe.batch_size,
                recipe.image_size,
                training_mode,
                data_dir=recipe.data_dir,
                seed=recipe.seed,
                channels=channels,
                random_erasing=recipe.random_erasing if training_mode else 0.0,
            )

        loss, accuracy, targets = loss_and_metric(recipe.label_smoothing, num_classes)
        train_data = load(recipe.train_split, True).map(targets)
        test_data = load(recipe.test_split, False).map(targets)
        val_split = recipe.val_split or recipe.test_split
        if val_split == recipe.test_split:
            val_data = test_data
        else:
            val_data = load(val_split, False).map(targets)

        # Model: float32 softmax probabilities (the losses take probabilities).
        with strategy.scope():
            model = registry.build_model(
                recipe.model,
                input_shape=(recipe.image_size, recipe.image_size, channels),
                num_classes=num_classes,
                **recipe.architecture_overrides(),
            )

        # Train
        config = train_config(recipe, steps_per_epoch, weight_decay=recipe.weight_decay)
        history = training.fit(
            model,
            train_data,
            output_dir=output,
            config=config,
            loss=loss,
            metrics=[accuracy],
            validation_data=val_data,
            strategy=strategy,
        )

        # Evaluate (on this process alone: the same numbers on every worker)
        results = distribute.evaluate(model, test_data, loss, [accuracy])
        test_size = sum(int(tf.shape(labels)[0]) for _, labels in test_data)
        return {
            "model": recipe.model,
            "dataset": recipe.dataset,
            "train_split": recipe.train_split,
            "val_split": val_split,
            "test_split": recipe.test_split,
            "params": model.count_params(),
            "input_shape": [recipe.image_size, recipe.image_size, channels],
            "num_classes": num_classes,
            "epochs": recipe.epochs,
            "steps": config.total_steps,
            "batch_size": recipe.batch_size,
            "label_smoothing": recipe.label_smoothing,
            "random_erasing": recipe.random_erasing,
            "architecture_overrides": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in recipe.architecture_overrides().items()
            },
            "weight_decay": recipe.weight_decay,
            "mixed_precision": recipe.mixed_precision,
            "test_examples": test_size,
            "test_accuracy": results["accuracy"],
            "test_errors": round((1.0 - results["accuracy"]) * test_size),
            "test_loss": results["loss"],
            "epochs_run_this_call": len(history.epoch),
        }

    return run_recipe(recipe, command, body)


# --------------------------------------------------------------------------- registry


def _runner(recipe_class, train):
    def run(args: argparse.Namespace, command: str = "") -> dict:
        return train(recipe_from_args(recipe_class, args), command=command)

    return run


# family -> (add_arguments(parser), run(args, command) -> metrics dict). `keras-attn train
# FAMILY` is built from this table; a new family is one more entry.
TRAINERS: dict[str, tuple[Callable, Callable]] = {
    "sr": (add_super_resolution_arguments, _runner(SuperResolutionRecipe, train_super_resolution)),
    "classifier": (add_classifier_arguments, _runner(ClassifierRecipe, train_classifier)),
    "aligner": (
        aligner_recipe.add_arguments,
        _runner(aligner_recipe.AlignerRecipe, aligner_recipe.train_aligner),
    ),
}
