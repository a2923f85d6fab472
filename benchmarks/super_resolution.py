"""Super-resolution benchmark: PSNR-Y / SSIM-Y on held-out photos, params, MACs, latency.

Evaluates, on the bundled photos held out from every training run (`validation` split: chelsea,
coffee, flower, coins, gravel) and on any other dataset's validation split given with
`--dataset` (e.g. `photo_collection`: EveningGlow, OneStandsOut, Grey, LadyBird, Storm), full
images (or overlapping tiles with `--tile`) (HR cropped to a multiple of the scale, LR made by
antialiased bicubic downscaling as in training), with the standard protocol: Y channel (BT.601)
and a `scale`-pixel border crop:

- classical upsampling: nearest, bicubic, Lanczos-3 (`tf.image.resize`),
- every `.keras` SR model given with `--model LABEL=PATH` (ours and the references trained with
  the same steps and data by examples/train_super_resolution.py),

plus parameters, MACs (TF profiler float ops / 2) and latency for a 256x256 input in Keras
(`tf.function`) and TFLite (fp32, builtin ops, LiteRT), median of `--repeats` runs.

Run:
    python benchmarks/super_resolution.py --scale 2 \
        --model ours=runs/sr_x2/model.keras \
        --model edsr_skip=runs/sr_refs/edsr_small_skip_x2/model.keras \
        --figure runs/sr_x2_comparison.png
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_attn  # noqa: E402,F401  (registers the layers before loading .keras files)
from keras_attn.models.super_resolution import upscale  # noqa: E402
from keras_attn.training.evaluation import held_out_pairs  # noqa: E402
from keras_attn.training.evaluation import score_upscaled as score  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from complexity import count_macs  # noqa: E402  (benchmarks/complexity.py)

CLASSICAL = {"nearest": "nearest", "bicubic": "bicubic", "lanczos3": "lanczos3"}


def keras_latency(model: keras.Model, size: int, repeats: int) -> float:
    x = tf.constant(np.random.default_rng(0).uniform(size=(1, size, size, 3)), tf.float32)
    forward = tf.function(lambda inputs: model(inputs, training=False))
    forward(x).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(x).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tflite_interpreter(model: keras.Model, size: int, threads: int = 2):
    """(LiteRT interpreter of a builtin-ops fp32 conversion, its `(1, size, size, 3)` input),
    the input already set and run once."""
    from ai_edge_litert.interpreter import Interpreter

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert(), num_threads=threads)
    x = np.random.default_rng(0).uniform(size=(1, size, size, 3)).astype("float32")
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter, x


def tflite_latency(model: keras.Model, size: int, repeats: int) -> tuple[float, float]:
    """(median seconds, max |TFLite - Keras|) for a builtin-ops fp32 conversion."""
    interpreter, x = tflite_interpreter(model, size)
    output_index = interpreter.get_output_details()[0]["index"]
    difference = float(np.abs(interpreter.get_tensor(output_index) - np.asarray(model(x))).max())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times), difference


def comparison_figure(path, pairs, scale, model, label) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, lr, hr = pairs[0]
    ours = np.clip(np.asarray(model(lr[None]))[0], 0, 1)
    bicubic = np.clip(tf.image.resize(lr, hr.shape[:2], "bicubic").numpy(), 0, 1)
    top, left, crop = hr.shape[0] // 3, hr.shape[1] // 3, 96
    panels = [("bicubic", bicubic), (label, ours), ("HR (ground truth)", hr)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (title, image) in zip(axes, panels, strict=True):
        ax.imshow(image[top : top + crop, left : left + crop], interpolation="nearest")
        psnr = "" if image is hr else f", photo PSNR-Y {score(image, hr, scale)[0]:.2f} dB"
        ax.set_title(f"{title}{psnr}")
        ax.axis("off")
    fig.suptitle(f"x{scale} on held-out photo '{name}' ({crop}x{crop} HR crop)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="SR benchmark on held-out photos.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--scale", type=int, default=2, choices=[2, 3, 4], help="scale")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="a .keras SR model to evaluate (repeatable)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        help="held-out photos: the validation split of this tfds dataset, one PSNR/SSIM column "
        "each (repeatable; default: bundled_photos)",
    )
    parser.add_argument(
        "--tile",
        type=int,
        help="upscale in overlapping tiles of this many LR pixels (overlap 16; needed for a "
        "global attention stage on multi-megapixel photos); default: whole images",
    )
    parser.add_argument(
        "--self-ensemble",
        action="store_true",
        help="add a row per model averaged over the 8 flips and turns of each input "
        "(upscale(..., self_ensemble=True); 8x the compute, quality only)",
    )
    parser.add_argument(
        "--no-speed", action="store_true", help="skip MACs and Keras/TFLite latency"
    )
    parser.add_argument("--size", type=int, default=256, help="input side for MACs and latency")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per latency")
    parser.add_argument("--figure", help="write a bicubic / first model / HR crop figure here")
    args = parser.parse_args(argv)

    datasets = args.dataset or ["bundled_photos"]
    pairs = {dataset: held_out_pairs(args.scale, dataset) for dataset in datasets}
    for dataset, held_out in pairs.items():
        print(f"x{args.scale}, {dataset} validation: {', '.join(name for name, _, _ in held_out)}")
    if args.tile:
        print(f"upscaled in tiles of {args.tile} LR pixels, overlap 16")
    quality = " | ".join(f"PSNR-Y / SSIM-Y {dataset}" for dataset in datasets)
    speed = " | MACs @256 | Keras ms @256 | TFLite ms @256" if not args.no_speed else ""
    print(f"| method | {quality} | params{speed} |")
    print("|---" * (2 + len(datasets) + (0 if args.no_speed else 3)) + "|")

    def scores(upscaled_by) -> str:
        columns = []
        for held_out in pairs.values():
            values = [score(upscaled_by(lr, hr), hr, args.scale) for _, lr, hr in held_out]
            psnr, ssim = np.mean(values, axis=0)
            columns.append(f"{psnr:.2f} / {ssim:.4f}")
        return " | ".join(columns)

    blank = " | -" * (0 if args.no_speed else 3)
    for label, method in CLASSICAL.items():
        row = scores(lambda lr, hr, m=method: tf.image.resize(lr, hr.shape[:2], m).numpy())
        print(f"| {label} | {row} | 0{blank} |", flush=True)

    models = []
    for entry in args.model:
        label, _, path = entry.partition("=")
        model = keras.saving.load_model(path)
        models.append((label, model))
        row = scores(lambda lr, hr, m=model: upscale(m, lr, args.tile))
        columns = f"| {label} | {row} | {model.count_params():,}"
        if not args.no_speed:
            macs = count_macs(model, args.size)
            keras_ms = keras_latency(model, args.size, args.repeats) * 1e3
            tflite_s, difference = tflite_latency(model, args.size, args.repeats)
            columns += (
                f" | {macs / 1e9:.2f} G | {keras_ms:.0f} | {tflite_s * 1e3:.0f} "
                f"(max diff {difference:.1e})"
            )
        print(columns + " |", flush=True)
        if args.self_ensemble:
            row = scores(lambda lr, hr, m=model: upscale(m, lr, args.tile, self_ensemble=True))
            print(f"| {label} x8 self-ensemble | {row} | {model.count_params():,}{blank} |")
    if args.figure and models:
        first = pairs[datasets[0]]
        comparison_figure(args.figure, first, args.scale, models[0][1], models[0][0])
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
