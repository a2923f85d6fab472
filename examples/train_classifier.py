"""
Title: Train a keras_attn attention classifier (ResNet-style, attention in every block)
Description: any registered classifier preset on any supervised tfds image dataset, Adam with a
cosine schedule, random translations (and horizontal flips only where the dataset allows them),
accuracy on the held-out split after every epoch and at the end, resumable from its output folder.

Run (defaults: the SE classifier_digits preset on scikit-learn's bundled digits, offline):
    python examples/train_classifier.py --output runs/classifier_digits
    python examples/train_classifier.py --model cbam_resnet --dataset cifar10 --epochs 30 \
        --output runs/cbam_resnet_cifar10
Run the same command again after an interruption: it resumes from the last completed epoch.
Writes model.keras, history.csv and metrics.json (test accuracy, params, command, wall time).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

import keras
import tensorflow as tf

from keras_attn.data import classification
from keras_attn.models import (
    classifier,  # noqa: F401  (registers the classifier presets)
    registry,
)
from keras_attn.training import fit as training


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    presets = registry.list_models("classifier")
    parser.add_argument("--model", default="classifier_digits", choices=presets, help="preset")
    parser.add_argument("--dataset", default="bundled_digits", help="tfds dataset name")
    parser.add_argument("--train-split", default="train", help="tfds split to train on")
    parser.add_argument("--test-split", default="test", help="held-out tfds split to evaluate on")
    parser.add_argument("--data-dir", help="tfds data directory (None: tfds's own)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs")
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="steps per epoch (None: one pass over the training split)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    parser.add_argument("--image-size", type=int, default=32, help="side of the model's input")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps")
    parser.add_argument(
        "--label-smoothing", type=float, default=0.0, help="label smoothing in [0, 1)"
    )
    parser.add_argument(
        "--jit",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="compile the train step with XLA",
    )
    parser.add_argument(
        "--mixed-precision", action="store_true", help="train with the mixed_float16 policy"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--output", required=True, help="output folder (resumes if it has a run)")
    parser.add_argument("--verbose", default="auto", help="Keras verbosity: auto, 0, 1, 2")
    args = parser.parse_args(argv)
    if not 0.0 <= args.label_smoothing < 1.0:
        parser.error(f"--label-smoothing must be in [0, 1). Received: {args.label_smoothing}")
    if args.verbose != "auto":
        args.verbose = int(args.verbose)
    return args


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


def main(argv=None) -> int:
    ## Setup
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.time()
    previous_policy = keras.config.dtype_policy()
    if args.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        summary = _train_and_evaluate(args, output, argv)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    summary["wall_time_s_this_call"] = round(time.time() - started, 1)
    (output / "metrics.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


def _train_and_evaluate(args: argparse.Namespace, output: pathlib.Path, argv) -> dict:
    ## Data
    # The model's channel count comes from the preset; the pipeline converts gray <-> RGB.
    channels = registry.get_spec(args.model).defaults.get("input_shape", (None, None, 3))[-1]
    num_classes = classification.num_classes(args.dataset, args.data_dir)
    steps_per_epoch = args.steps_per_epoch
    if steps_per_epoch is None:
        train_size = classification.num_examples(args.dataset, args.train_split, args.data_dir)
        if train_size is None:
            raise ValueError(
                f"Size of {args.dataset} {args.train_split} unknown: pass --steps-per-epoch"
            )
        steps_per_epoch = max(1, math.ceil(train_size / args.batch_size))

    def load(split, training):
        return classification.classification_dataset(
            args.dataset,
            split,
            args.batch_size,
            args.image_size,
            training,
            data_dir=args.data_dir,
            seed=args.seed,
            channels=channels,
        )

    train_data = load(args.train_split, training=True)
    test_data = load(args.test_split, training=False)
    loss, accuracy, targets = loss_and_metric(args.label_smoothing, num_classes)
    train_data, test_data = train_data.map(targets), test_data.map(targets)

    ## Model
    # The classifier outputs float32 softmax probabilities: the losses take probabilities.
    model = registry.build_model(
        args.model,
        input_shape=(args.image_size, args.image_size, channels),
        num_classes=num_classes,
    )

    ## Train
    config = training.TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=steps_per_epoch,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        jit_compile=args.jit,
        verbose=args.verbose,
    )
    history = training.fit(
        model,
        train_data,
        output_dir=output,
        config=config,
        loss=loss,
        metrics=[accuracy],
        validation_data=test_data,
    )

    ## Evaluate
    results = model.evaluate(test_data, verbose=0, return_dict=True)
    test_size = sum(int(tf.shape(labels)[0]) for _, labels in test_data)
    return {
        "model": args.model,
        "dataset": args.dataset,
        "train_split": args.train_split,
        "test_split": args.test_split,
        "command": " ".join([pathlib.Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "params": model.count_params(),
        "input_shape": [args.image_size, args.image_size, channels],
        "num_classes": num_classes,
        "epochs": args.epochs,
        "steps": config.total_steps,
        "batch_size": args.batch_size,
        "label_smoothing": args.label_smoothing,
        "mixed_precision": args.mixed_precision,
        "test_examples": test_size,
        "test_accuracy": results["accuracy"],
        "test_errors": round((1.0 - results["accuracy"]) * test_size),
        "test_loss": results["loss"],
        "epochs_run_this_call": len(history.epoch),
    }


if __name__ == "__main__":
    sys.exit(main())
