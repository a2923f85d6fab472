"""Training recipe of the aligner family, shared by `examples/train_aligner.py` and the CLI.

DeTone pairs from the training photos (endless, random rescale, photometric change), the corner
loss on every refinement iteration, the mean corner error (MACE) on held-out photos after every
epoch, checkpoints every epoch (resumes from its output folder), and `metrics.json` at the end.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys
import time

import keras
import numpy as np

from keras_attn import data, models
from keras_attn._io import atomic_path
from keras_attn.models.weights import transfer_aligner_weights
from keras_attn.training import distribute
from keras_attn.training import fit as training
from keras_attn.training.alignment import CornerLoss, MeanCornerError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `train aligner` (defaults: the shipped model's recipe)."""
    parser.add_argument("--model", default="aligner_homography", help="aligner preset name")
    parser.add_argument("--dataset", default="bundled_photos", help="tfds image dataset name")
    parser.add_argument("--train-split", default="train", help="tfds split to train on")
    parser.add_argument("--val-split", default="validation", help="tfds split to validate on")
    parser.add_argument("--data-dir", help="tfds data directory (None: tfds's own)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs")
    parser.add_argument("--steps-per-epoch", type=int, default=100, help="steps per epoch")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per batch")
    parser.add_argument("--max-shift", type=float, default=32.0, help="corner shift rho (px)")
    parser.add_argument(
        "--photometric", type=float, default=0.5, help="strength of random lighting changes"
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=100, help="linear warm-up steps")
    parser.add_argument("--val-pairs-per-image", type=int, default=16, help="held-out pairs")
    parser.add_argument(
        "--jit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compile the train step with XLA (1.5x faster for this model on a 2-core CPU: "
        "benchmarks/training.py)",
    )
    parser.add_argument(
        "--mixed-precision", action="store_true", help="train with the mixed_float16 policy"
    )
    distribute.add_arguments(parser)
    parser.add_argument(
        "--init-from",
        help="a trained .keras aligner to start from (each iteration from the one at its stride)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--output", required=True, help="output folder (resumes if it has a run)")
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=10.0,
        help="back the run up at least this often inside an epoch (and at every epoch end)",
    )
    parser.add_argument("--verbose", default="auto", help="Keras verbosity: auto, 0, 1, 2")


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


def train_aligner(args: argparse.Namespace, command: str | None = None) -> dict:
    """Trains (or resumes) an aligner as `args` says; writes `model.keras` and `metrics.json`."""
    # the strategy first: multi-worker collectives must be set up before TensorFlow starts
    strategy = distribute.start(
        getattr(args, "strategy", "default"), getattr(args, "logical_cpus", None), args.batch_size
    )
    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    keras.utils.set_random_seed(args.seed)
    output = pathlib.Path(args.output)
    spec = models.registry.get_spec(args.model)
    if spec.family != "aligner":
        raise ValueError(
            f"--model must be an aligner ({models.list_models('aligner')}). "
            f"Received: {args.model!r}"
        )
    mixed = getattr(args, "mixed_precision", False)
    previous_policy = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        with strategy.scope():
            model = models.build_model(args.model, return_corners=True)
        init_from = getattr(args, "init_from", None)
        if init_from and training.completed_epochs(output) == 0:
            skipped = transfer_aligner_weights(load_aligner(init_from), model)
            print(f"initialised from {init_from}; not transferred: {skipped}")
        return _train(args, command, strategy, model, output, verbose, mixed)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _train(args, command, strategy, model, output, verbose, mixed) -> dict:
    chief = distribute.is_chief(strategy)
    patch, _, channels = model.inputs[0].shape[1:]

    ## Data: DeTone pairs made on the fly from real photos
    def pairs(split, training, photometric, pairs_per_image):
        dataset = data.alignment_dataset(
            args.dataset,
            split,
            patch_size=patch,
            max_shift=args.max_shift,
            batch_size=args.batch_size,
            training=training,
            channels=channels,
            photometric=photometric,
            pairs_per_image=pairs_per_image,
            seed=args.seed,
            data_dir=getattr(args, "data_dir", None),
        )
        return dataset.map(lambda x, y: (x, {"corners": y["corners"]}))

    train = pairs(args.train_split, True, args.photometric, 8)
    val = pairs(args.val_split, False, 0.0, args.val_pairs_per_image).cache()

    ## Train: corner loss on every iteration, MACE on the last
    config = training.TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        clipnorm=1.0,
        jit_compile=args.jit,
        verbose=verbose,
        checkpoint_minutes=getattr(args, "checkpoint_minutes", 10.0),
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
        "model": args.model,
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "params": int(models.aligner_inference_model(model).count_params()),
        "epochs": args.epochs,
        "steps": args.epochs * args.steps_per_epoch,
        "batch_size": args.batch_size,
        "max_shift": args.max_shift,
        "photometric": args.photometric,
        "init_from": getattr(args, "init_from", None),
        "mixed_precision": mixed,
        "strategy": getattr(args, "strategy", "default"),
        "replicas": strategy.num_replicas_in_sync,
        "val_pairs": int(errors.size),
        "val_mace_px": float(errors.mean()),
        "val_median_corner_error_px": float(np.median(errors)),
        "val_failure_rate_10px": float((errors > 10).mean()),
        "wall_time_s_this_call": round(wall, 1),
        "epochs_run_this_call": args.epochs - done_before,
        "history_last": {k: float(v[-1]) for k, v in history.history.items() if v},
    }
    if chief:
        with atomic_path(output / "metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=1))
    print(json.dumps({k: metrics[k] for k in ("val_mace_px", "val_median_corner_error_px")}))
    return metrics
