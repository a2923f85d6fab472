"""Training recipes: the whole run of each family, behind `keras-attn train` and examples/.

A recipe is a frozen dataclass of settings derived from `recipe_base.Recipe`
(`SuperResolutionRecipe`, `ClassifierRecipe`, `aligner_recipe.AlignerRecipe`) and a function that
runs it (`train_super_resolution`, `train_classifier`, `train_aligner`): data -> model -> `fit`
(resumes from the output folder) -> held-out evaluation -> `metrics.json` (with the command that
ran it). Each field carries its default and help text; `keras_attn.flags` turns the fields into
the command-line flags. `TRAINERS` maps a family to `(recipe class, train function)`, so a new
family is one more entry.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_attn import data
from keras_attn.data import classification
from keras_attn.layers.registry import get_attention
from keras_attn.models import registry
from keras_attn.models.weights import float32_model
from keras_attn.training import aligner_recipe, distribute
from keras_attn.training import fit as training
from keras_attn.training.losses import get_loss
from keras_attn.training.metrics import PSNRY, SSIMY, psnr_y
from keras_attn.training.recipe_base import (  # noqa: F401  (public here too)
    Recipe,
    recipe_from_args,
    run_recipe,
    setting,
    train_config,
)
from keras_attn.utils.model_io import load_keras_model


@dataclasses.dataclass(frozen=True, kw_only=True)
class SuperResolutionRecipe(Recipe):
    """Settings of `train_super_resolution` (`keras-attn train sr`)."""

    scale: int = setting(2, choices=(2, 3, 4), help="upscaling factor")
    model: str = setting(
        "sr_fast",
        help="preset: sr_tiny, sr_fast (the shipped x2), sr_small, sr_hq, sr_base; or a benchmark "
        "reference: espcn, espcn_skip, edsr_small, edsr_small_skip",
    )
    epochs: int = setting(40, help="epochs")
    batch_size: int = setting(16, help="HR crops per batch (global)")
    patch_size: int = setting(96, help="HR crop side (multiple of scale)")
    warmup_steps: int = setting(200, help="linear warm-up steps")
    loss: str = setting("charbonnier", help="charbonnier, l1 or mse")
    init_from: str | None = setting(
        None, help="a .keras SR model to start from (layers matched by name and shape)"
    )
    mix: str = setting(
        "pixels",
        choices=data.super_resolution.MIXES,
        help="how training draws crops from datasets joined by +: pixels (in proportion to "
        "their pixels) or equal (each dataset equally often)",
    )
    min_detail: float = setting(
        0.0,
        help="drop training crops with less than this much to restore (RMS of HR minus the "
        "bicubic upscale of its LR, in 8-bit levels), except one in ten; 0: every crop",
    )
    attention: str | None = setting(
        None,
        help="replace the preset's attention stage after the residual groups: nonlocal, self, "
        "se, cbam, spatial or none (the sr_* presets; the references have none)",
    )

    def architecture_overrides(self) -> dict:
        """The preset arguments that `--attention` replaces: `"none"` -> `None` (no stage)."""
        if self.attention is None:
            return {}
        name = self.attention.strip().lower()
        return {"attention": None if name == "none" else name}

    def __post_init__(self):
        if self.mix not in data.super_resolution.MIXES:
            raise ValueError(
                f"--mix must be one of {list(data.super_resolution.MIXES)}. Received: {self.mix!r}"
            )
        if not 0.0 <= self.min_detail < 255.0:
            raise ValueError(f"--min-detail must be in [0, 255). Received: {self.min_detail!r}")
        overrides = self.architecture_overrides()
        if overrides and not self.model.startswith("sr_"):
            raise ValueError(
                f"--attention applies to the sr_* presets; the reference {self.model!r} has no "
                "attention stage"
            )
        try:
            get_attention(overrides.get("attention"))
        except ValueError as error:
            raise ValueError(f"--attention: {error}") from None


def _classifier_presets() -> list[str]:
    return registry.list_models("classifier")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassifierRecipe(Recipe):
    """Settings of `train_classifier` (`keras-attn train classifier`)."""

    model: str = setting("classifier_digits", choices=_classifier_presets, help="preset")
    dataset: str = setting("bundled_digits", help="tfds dataset name")
    test_split: str = setting("test", help="held-out split to evaluate on")
    val_split: str | None = setting(
        None,
        help="split validated on after every epoch (default: --test-split); pass a slice of "
        "the training data, e.g. 'train[:5000]', to read the test split only once, at the end",
    )
    steps_per_epoch: int | None = setting(
        None, help="steps per epoch (None: one pass over the training split)"
    )
    batch_size: int = setting(64, help="images per batch (global)")
    image_size: int = setting(32, help="side of the model's input")
    learning_rate: float = setting(2e-3, help="peak learning rate")
    label_smoothing: float = setting(0.0, help="label smoothing in [0, 1)")
    random_erasing: float = setting(
        0.0, help="probability of random erasing per training image (Fashion-MNIST recipe: 0.5)"
    )
    weight_decay: float | None = setting(None, help="decoupled weight decay (AdamW); None: Adam")
    attention: str | None = setting(
        None,
        help="replace the preset's attention: se, cbam, spatial, nonlocal, self or none; or one "
        "per stage, e.g. none,none,self",
    )
    widths: str | None = setting(None, help="replace the preset's stage widths, e.g. 16,32,64")
    depths: str | None = setting(None, help="replace the preset's blocks per stage, e.g. 3,3,3")

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
                mix=recipe.mix,
                min_detail=recipe.min_detail,
            )

        train_data = load(recipe.train_split, True)
        val_data = load(recipe.val_split, False).cache()
        baseline = bicubic_psnr(val_data, recipe.scale)
        if math.isfinite(baseline):
            print(f"bicubic PSNR-Y on {recipe.val_split}: {baseline:.3f} dB")
        else:  # metrics.json records null: JSON has no infinity
            print(
                f"bicubic PSNR-Y on {recipe.val_split}: infinite (bicubic reproduces a flat "
                "validation tile exactly, so the mean over tiles is infinite; the full-image "
                "evaluation of keras-attn evaluate is the comparison to use)"
            )

        # Model
        with strategy.scope():
            model = registry.build_model(
                f"{recipe.model}_x{recipe.scale}", **recipe.architecture_overrides()
            )
        if recipe.init_from and training.completed_epochs(output) == 0:
            source = load_keras_model(recipe.init_from, argument="--init-from")
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

        # Evaluate model.keras's model (float32) on this process alone: the same on every worker
        model = float32_model(model)
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
            "precision": recipe.precision,
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

        # Evaluate model.keras's model (float32) on this process alone: the same on every worker
        model = float32_model(model)
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
            "precision": recipe.precision,
            "test_examples": test_size,
            "test_accuracy": results["accuracy"],
            "test_errors": round((1.0 - results["accuracy"]) * test_size),
            "test_loss": results["loss"],
            "epochs_run_this_call": len(history.epoch),
        }

    return run_recipe(recipe, command, body)


# --------------------------------------------------------------------------- registry


# family -> (recipe class, train(recipe, command=...) -> metrics dict). `keras-attn train FAMILY`
# is built from this table (its flags from the recipe's fields); a new family is one more entry.
TRAINERS: dict[str, tuple[type[Recipe], Callable[..., dict]]] = {
    "sr": (SuperResolutionRecipe, train_super_resolution),
    "classifier": (ClassifierRecipe, train_classifier),
    "aligner": (aligner_recipe.AlignerRecipe, aligner_recipe.train_aligner),
}
