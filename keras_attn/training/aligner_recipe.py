"""Training recipe of the aligner family, shared by `examples/train_aligner.py` and the CLI.

DeTone pairs from the training photos (endless, random rescale, photometric change), the corner
loss on every refinement iteration, the mean corner error (MACE) on held-out photos after every
epoch, checkpoints every epoch (resumes from its output folder), and `metrics.json` at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

import keras
import numpy as np

from keras_attn import data, models
from keras_attn.models.weights import transfer_aligner_weights
from keras_attn.training import distribute
from keras_attn.training import fit as training
from keras_attn.training.losses import CornerLoss
from keras_attn.training.metrics import MeanCornerError
from keras_attn.training.recipe_base import add_common_arguments, run_recipe


@dataclasses.dataclass(frozen=True)
class AlignerRecipe:
    """Settings of `train_aligner` (defaults: the shipped model's recipe); the flags of
    `add_arguments`."""

    output: str
    model: str = "aligner_homography"
    dataset: str = "bundled_photos"
    train_split: str = "train"
    val_split: str = "validation"
    data_dir: str | None = None
    epochs: int = 30
    steps_per_epoch: int = 100
    batch_size: int = 8
    max_shift: float = 32.0
    photometric: float = 0.5
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    val_pairs_per_image: int = 16
    jit: bool = True
    mixed_precision: bool = False
    init_from: str | None = None
    strategy: str = "default"
    logical_cpus: int | None = None
    seed: int = 0
    verbose: int | str = "auto"
    checkpoint_minutes: float = 10.0

    def __post_init__(self):
        if models.registry.get_spec(self.model).family != "aligner":
            raise ValueError(
                f"--model must be an aligner ({models.list_models('aligner')}). "
                f"Received: {self.model!r}"
            )
        for name in ("epochs", "steps_per_epoch", "batch_size", "val_pairs_per_image"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be at least 1. Received: {getattr(self, name)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `AlignerRecipe` (`train aligner`, examples/train_aligner.py)."""
    defaults = AlignerRecipe(output="")
    parser.add_argument("--model", default=defaults.model, help="aligner preset name")
    parser.add_argument("--val-split", default=defaults.val_split, help="split to validate on")
    parser.add_argument(
        "--steps-per-epoch", type=int, default=defaults.steps_per_epoch, help="steps per epoch"
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="pairs/batch")
    parser.add_argument(
        "--max-shift", type=float, default=defaults.max_shift, help="corner shift rho (px)"
    )
    parser.add_argument(
        "--photometric",
        type=float,
        default=defaults.photometric,
        help="strength of random lighting changes",
    )
    parser.add_argument(
        "--val-pairs-per-image",
        type=int,
        default=defaults.val_pairs_per_image,
        help="held-out pairs",
    )
    parser.add_argument(
        "--init-from",
        help="a trained .keras aligner to start from (each iteration from the one at its stride)",
    )
    add_common_arguments(
        parser,
        defaults,
        jit_help="compile the train step with XLA (1.5x faster for this model on a 2-core CPU: "
        "benchmarks/training.py)",
    )


def load_aligner(path, flag: str = "--init-from") -> keras.Model:
    """The trained aligner at `path` (given by command-line `flag`), or one clear error."""
    path = pathlib.Path(path)
    if path.suffix != ".keras" or not path.is_file():
        raise ValueError(f"{flag} must be an existing .keras file. Received: {str(path)!r}")
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # a truncated or foreign file: one line, not Keras's traceback
        raise ValueError(
            f"{flag} {str(path)!r} is not a readable Keras model "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from None


def train_aligner(recipe: AlignerRecipe, *, command: str = "") -> dict:
    """Trains (or resumes) an aligner as `recipe` says; writes `model.keras` and `metrics.json`
    into `recipe.output`; returns the metrics."""

    def body(output: pathlib.Path, strategy) -> dict:
        with strategy.scope():
            model = models.build_model(recipe.model, return_corners=True)
        if recipe.init_from and training.completed_epochs(output) == 0:
            skipped = transfer_aligner_weights(load_aligner(recipe.init_from), model)
            print(f"initialised from {recipe.init_from}; not transferred: {skipped}")
        return _train(recipe, strategy, model, output)

    metrics = run_recipe(recipe, command, body)
    print(json.dumps({k: metrics[k] for k in ("val_mace_px", "val_median_corner_error_px")}))
    return metrics


def _train(recipe: AlignerRecipe, strategy, model, output: pathlib.Path) -> dict:
    chief = distribute.is_chief(strategy)
    patch, _, channels = model.inputs[0].shape[1:]

    ## Data: DeTone pairs made on the fly from real photos
    def pairs(split, training, photometric, pairs_per_image):
        dataset = data.alignment_dataset(
            recipe.dataset,
            split,
            patch_size=patch,
            max_shift=recipe.max_shift,
            batch_size=recipe.batch_size,
            training=training,
            channels=channels,
            photometric=photometric,
            pairs_per_image=pairs_per_image,
            seed=recipe.seed,
            data_dir=recipe.data_dir,
        )
        return dataset.map(lambda x, y: (x, {"corners": y["corners"]}))

    train = pairs(recipe.train_split, True, recipe.photometric, 8)
    val = pairs(recipe.val_split, False, 0.0, recipe.val_pairs_per_image).cache()

    ## Train: corner loss on every iteration, MACE on the last
    config = training.TrainConfig(
        epochs=recipe.epochs,
        steps_per_epoch=recipe.steps_per_epoch,
        learning_rate=recipe.learning_rate,
        warmup_steps=recipe.warmup_steps,
        clipnorm=1.0,
        jit_compile=recipe.jit,
        verbose=recipe.verbose,
        checkpoint_minutes=recipe.checkpoint_minutes,
    )
    start = time.time()
    done_before = training.completed_epochs(output)
    trainee = keras.Model(
        model.inputs, model.get_layer(f"{model.name}_corners").output, name=f"{model.name}_train"
    )
    history = training.fit(
        trainee,
        train.map(lambda x, y: (x, y["corners"])),
        output_dir=output,
        config=config,
        loss=CornerLoss(),
        metrics=[MeanCornerError()],
        validation_data=val.map(lambda x, y: (x, y["corners"])),
        strategy=strategy,
    )
    wall = time.time() - start
    # the trained weights are shared: save the exportable model (without `corners`) instead
    if chief:
        training.save_model_atomic(models.aligner_inference_model(model), output / "model.keras")

    ## Evaluate on the held-out photos and record what was run
    errors = []
    for inputs, targets in val:
        corners = np.asarray(model(inputs, training=False)["corners"], np.float32)[:, -1]
        errors.append(np.linalg.norm(corners - targets["corners"].numpy(), axis=-1).mean(-1))
    errors = np.concatenate(errors)
    metrics = {
        "model": recipe.model,
        "params": int(models.aligner_inference_model(model).count_params()),
        "epochs": recipe.epochs,
        "steps": recipe.epochs * recipe.steps_per_epoch,
        "batch_size": recipe.batch_size,
        "max_shift": recipe.max_shift,
        "photometric": recipe.photometric,
        "init_from": recipe.init_from,
        "mixed_precision": recipe.mixed_precision,
        "val_pairs": int(errors.size),
        "val_mace_px": float(errors.mean()),
        "val_median_corner_error_px": float(np.median(errors)),
        "val_failure_rate_10px": float((errors > 10).mean()),
        "training_wall_time_s_this_call": round(wall, 1),
        "epochs_run_this_call": recipe.epochs - done_before,
        "history_last": {k: float(v[-1]) for k, v in history.history.items() if v},
    }
    return metrics
