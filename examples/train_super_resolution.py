"""
Title: Train the keras_attn super-resolution network (RCAN-style, SE channel attention)
Description: random HR crops from real photos, LR by bicubic downscaling, Charbonnier loss,
PSNR-Y / SSIM-Y on held-out photos after every epoch, resumable from its output folder.

Run (defaults: the bundled photos, offline):
    python examples/train_super_resolution.py --scale 2 --output runs/sr_x2
    python examples/train_super_resolution.py --scale 3 --init-from runs/sr_x2/model.keras \
        --output runs/sr_x3
Run the same command again after an interruption: it resumes from the last completed epoch.
With a network, any tfds image dataset works: `--dataset div2k/bicubic_x2` (HR images only).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from keras_attn import data, models
from keras_attn.training import fit as training
from keras_attn.training.losses import get_loss
from keras_attn.training.metrics import PSNRY, SSIMY, psnr_y


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--scale", type=int, default=2, choices=[2, 3, 4], help="upscaling factor")
    parser.add_argument("--model", default="sr_small", help="preset: sr_tiny, sr_small, sr_base")
    parser.add_argument("--dataset", default="bundled_photos", help="tfds dataset name")
    parser.add_argument("--train-split", default="train", help="tfds split to train on")
    parser.add_argument("--val-split", default="validation", help="tfds split to validate on")
    parser.add_argument("--epochs", type=int, default=40, help="epochs")
    parser.add_argument("--steps-per-epoch", type=int, default=100, help="steps per epoch")
    parser.add_argument("--batch-size", type=int, default=16, help="crops per batch")
    parser.add_argument(
        "--patch-size", type=int, default=96, help="HR crop side (multiple of scale)"
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=200, help="linear warm-up steps")
    parser.add_argument("--loss", default="charbonnier", help="charbonnier, l1 or mse")
    parser.add_argument(
        "--jit",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="compile the train step with XLA",
    )
    parser.add_argument("--init-from", help="a .keras SR model to start from (matching layers)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--output", required=True, help="output folder (resumes if it has a run)")
    parser.add_argument("--verbose", default="auto", help="Keras verbosity: auto, 0, 1, 2")
    args = parser.parse_args(argv)
    if args.verbose != "auto":
        args.verbose = int(args.verbose)
    return args


def bicubic_psnr(dataset, scale: int) -> float:
    """Mean PSNR-Y of bicubic upsampling on a validation dataset (the number to beat)."""
    values = []
    for lr, hr in dataset:
        up = tf.image.resize(lr, tf.shape(hr)[1:3], method="bicubic")
        values.append(psnr_y(hr, tf.clip_by_value(up, 0.0, 1.0), border=scale))
    return float(np.mean(np.concatenate(values)))


def main(argv=None) -> int:
    ## Setup
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.time()

    ## Data
    train_data = data.super_resolution_dataset(
        args.dataset,
        args.train_split,
        args.scale,
        args.patch_size,
        args.batch_size,
        training=True,
        seed=args.seed,
    )
    val_data = data.super_resolution_dataset(
        args.dataset,
        args.val_split,
        args.scale,
        args.patch_size,
        args.batch_size,
        training=False,
    ).cache()
    baseline = bicubic_psnr(val_data, args.scale)
    print(f"bicubic PSNR-Y on {args.val_split}: {baseline:.3f} dB")

    ## Model
    model = models.build_model(f"{args.model}_x{args.scale}")
    if args.init_from and training.completed_epochs(output) == 0:
        source = keras.saving.load_model(args.init_from)
        skipped = training.transfer_weights(source, model)
        print(f"initialised from {args.init_from}; not transferred: {skipped}")

    ## Train
    config = training.TrainConfig(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
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
        loss=get_loss(args.loss),
        metrics=[PSNRY(border=args.scale), SSIMY(border=args.scale)],
        validation_data=val_data,
    )

    ## Evaluate
    results = model.evaluate(val_data, verbose=0, return_dict=True)
    summary = {
        "model": f"{args.model}_x{args.scale}",
        "command": " ".join([pathlib.Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "params": model.count_params(),
        "epochs": args.epochs,
        "steps": config.total_steps,
        "batch_size": args.batch_size,
        "patch_size": args.patch_size,
        "val_psnr_y": results["psnr_y"],
        "val_ssim_y": results["ssim_y"],
        "bicubic_psnr_y": baseline,
        "gain_over_bicubic_db": results["psnr_y"] - baseline,
        "wall_time_s_this_call": round(time.time() - started, 1),
        "epochs_run_this_call": len(history.epoch),
    }
    (output / "metrics.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
