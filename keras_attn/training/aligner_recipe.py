"""Training recipe of the aligner family, shared by `examples/train_aligner.py` and the CLI.

DeTone pairs from the training photos (endless, random rescale, photometric change), the corner
loss on every refinement iteration, the mean corner error (MACE) on held-out photos after every
epoch, checkpoints every epoch (resumes from its output folder), and `metrics.json` at the end.

A dense-flow aligner (`head="flow"`, e.g. `aligner_flow`) trains on pairs with a random
non-planar residual (`--deformation`) against their true flow (end-point error), or without
ground truth (`--flow-loss photometric`: local NCC + smoothness). Started `--init-from` a
trained homography aligner, only its flow head trains unless `--train-homography`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from keras_attn import data, models
from keras_attn.models.aligner_tasks import has_dense_flow
from keras_attn.models.weights import float32_model, transfer_aligner_weights
from keras_attn.training import distribute
from keras_attn.training import fit as training
from keras_attn.training.evaluation import map_corners
from keras_attn.training.losses import CornerLoss, FlowEndPointLoss, PhotometricFlowLoss
from keras_attn.training.metrics import EndPointError, MeanCornerError
from keras_attn.training.recipe_base import Recipe, run_recipe, setting
from keras_attn.utils.model_io import load_keras_model


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlignerRecipe(Recipe):
    """Settings of `train_aligner` (`keras-attn train aligner`); the defaults are the shipped
    model's recipe."""

    model: str = setting("aligner_homography", help="aligner preset name")
    batch_size: int = setting(8, help="pairs per batch (global)")
    warmup_steps: int = setting(100, help="linear warm-up steps")
    jit: bool = setting(
        True,
        help="compile the train step with XLA (faster for this model on CPU: "
        "benchmarks/training.py)",
    )
    max_shift: float = setting(32.0, help="corner shift rho (px)")
    photometric: float = setting(0.5, help="strength of random lighting changes")
    val_pairs_per_image: int = setting(16, help="held-out pairs per validation image")
    init_from: str | None = setting(
        None,
        help="a trained .keras aligner to start from (each iteration from the one at its stride)",
    )
    deformation: float = setting(
        0.0,
        help="size in px of a random non-planar residual added to each pair (smooth depth "
        "plus an object moved on its own); for dense-flow aligners",
    )
    flow_loss: str = setting(
        "supervised",
        help="dense-flow aligners: 'supervised' (end-point error against the true flow) or "
        "'photometric' (1 - local NCC + smoothness, needs no ground truth)",
        choices=("supervised", "photometric"),
    )
    train_homography: bool = setting(
        False,
        help="dense-flow aligner started --init-from: fine-tune the homography stage too "
        "(default: only the flow head trains)",
    )

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
        if self.flow_loss not in ("supervised", "photometric"):
            raise ValueError(
                f"--flow-loss must be 'supervised' or 'photometric'. Received: {self.flow_loss!r}"
            )
        if not 0 <= self.deformation <= max(self.max_shift, 1.0):
            raise ValueError(
                f"--deformation must be in [0, max(--max-shift, 1)]. Received: {self.deformation}"
            )


def load_aligner(path, flag: str = "--init-from") -> keras.Model:
    """The trained aligner at `path` (given by command-line `flag`), or one clear error."""
    return load_keras_model(path, argument=flag)


def train_aligner(recipe: AlignerRecipe, *, command: str = "") -> dict:
    """Trains (or resumes) an aligner as `recipe` says; writes `model.keras` and `metrics.json`
    into `recipe.output`; returns the metrics."""

    def body(output: pathlib.Path, strategy) -> dict:
        with strategy.scope():
            # one hypothesis: the loss sees only hypothesis 0's corners, so the others would
            # cost refinement passes for nothing; the saved model gets the preset's hypotheses
            model = models.build_model(recipe.model, return_corners=True, hypotheses=1)
        if recipe.init_from and training.completed_epochs(output) == 0:
            skipped = transfer_aligner_weights(load_aligner(recipe.init_from), model)
            print(f"initialised from {recipe.init_from}; not transferred: {skipped}")
        if has_dense_flow(model) and recipe.init_from and not recipe.train_homography:
            head = (f"{model.name}_flow_", f"{model.name}_flow")
            for layer in model.layers:
                if not layer.name.startswith(head):
                    layer.trainable = False
        return _train(recipe, strategy, model, output)

    metrics = run_recipe(recipe, command, body)
    print(json.dumps({k: metrics[k] for k in ("val_mace_px", "val_median_corner_error_px")}))
    return metrics


def _train(recipe: AlignerRecipe, strategy, model, output: pathlib.Path) -> dict:
    chief = distribute.is_chief(strategy)
    patch, _, channels = model.inputs[0].shape[1:]

    dense = has_dense_flow(model)

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
            deformation=recipe.deformation,
            seed=recipe.seed,
            data_dir=recipe.data_dir,
        )
        return dataset.map(
            lambda x, y: (
                x,
                {"corners": y["corners"], "flow": tf.concat([y["flow"], y["visible"]], -1)},
            )
        )

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
    trainee, loss, metrics, target = _trainee(recipe, model, dense)
    history = training.fit(
        trainee,
        train.map(lambda x, y: (x, target(x, y))),
        output_dir=output,
        config=config,
        loss=loss,
        metrics=metrics,
        validation_data=val.map(lambda x, y: (x, target(x, y))),
        strategy=strategy,
    )
    wall = time.time() - start
    # save the exportable model: the preset (with its global hypotheses, no `corners`) holding
    # the trained weights (the hypotheses layers have none, so the weight lists line up)
    with strategy.scope():
        exportable = models.build_model(recipe.model)
    exportable.set_weights(models.aligner_inference_model(model).get_weights())
    exportable = float32_model(exportable)  # computing in float32 after a mixed precision run
    if chief:
        training.save_model_atomic(exportable, output / "model.keras")

    ## Evaluate on the held-out photos (the saved model's homography) and record what was run
    errors, end_point = [], EndPointError()
    for inputs, targets in val:
        outputs = exportable(inputs, training=False)
        homographies = np.asarray(outputs["homography"], np.float64)
        corners = [map_corners(h, patch) for h in homographies]
        errors.append(np.linalg.norm(corners - targets["corners"].numpy(), axis=-1).mean(-1))
        end_point.update_state(targets["flow"], outputs["flow"])
    errors = np.concatenate(errors)
    metrics = {
        "model": recipe.model,
        "dataset": recipe.dataset,
        "train_split": recipe.train_split,
        "params": int(exportable.count_params()),
        "epochs": recipe.epochs,
        "steps": recipe.epochs * recipe.steps_per_epoch,
        "batch_size": recipe.batch_size,
        "max_shift": recipe.max_shift,
        "photometric": recipe.photometric,
        "init_from": recipe.init_from,
        "flow_loss": recipe.flow_loss if dense else None,
        "train_homography": recipe.train_homography if dense else None,
        "precision": recipe.precision,
        "val_pairs": int(errors.size),
        "val_mace_px": float(errors.mean()),
        "val_median_corner_error_px": float(np.median(errors)),
        "val_failure_rate_10px": float((errors > 10).mean()),
        "deformation": recipe.deformation,
        "val_flow_epe_px": float(end_point.result()),
        "training_wall_time_s_this_call": round(wall, 1),
        "epochs_run_this_call": recipe.epochs - done_before,
        "history_last": {k: float(v[-1]) for k, v in history.history.items() if v},
    }
    return metrics


def _trainee(recipe: AlignerRecipe, model: keras.Model, dense: bool):
    """What trains: `(model, loss, metrics, target(inputs, targets))`.

    A homography aligner: the corners of every iteration against the true corners. A dense-flow
    aligner: its flow against the true flow (`supervised`), or its warped image and flow
    against the fixed image (`photometric`).
    """
    name = model.name
    if not dense:
        trainee = keras.Model(model.inputs, model.get_layer(f"{name}_corners").output)
        return trainee, CornerLoss(), [MeanCornerError()], lambda x, y: y["corners"]
    flow = model.get_layer(f"{name}_flow_out").output
    if recipe.flow_loss == "supervised":
        trainee = keras.Model(model.inputs, flow, name=f"{name}_train")
        return trainee, FlowEndPointLoss(), [EndPointError()], lambda x, y: y["flow"]
    warped = model.get_layer(f"{name}_warped").output
    both = keras.layers.Concatenate(name=f"{name}_warped_and_flow")([warped, flow])
    trainee = keras.Model(model.inputs, both, name=f"{name}_train")
    return trainee, PhotometricFlowLoss(), [], lambda x, y: x["fixed"]
