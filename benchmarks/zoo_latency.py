"""Latency of every shipped model, Keras and TFLite (fp32, fp16, int8), for the model zoo table.

Batch 1, each model's input shape from its card: a 256x256 RGB image for SR (which takes any
size; the output is 512/768/1024 px), a 32x32 or 28x28 grayscale item for the classifiers, a
pair of 128x128 grayscale patches for the aligners. Keras runs `predict_on_batch` (traced
once), TFLite the shipped file as `keras_attn.pretrained.load(name, "tflite")` runs it (LiteRT's
signature runner on every available core, XNNPACK; the aligners' files take one pair per
call). Median over `--repeats` runs after `--warmup` runs; the input content does not change
the work, so it is uniform noise. CPU timings move with the machine's load: compare rows of
one run.

Run:
    python benchmarks/zoo_latency.py --json runs/zoo_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_attn import pretrained  # noqa: E402

# the side of the images given to models that take any size (the SR models)
ANY_SIZE = 256


def input_shapes(card: dict) -> dict[str, tuple[int, ...]]:
    """Batch-1 shapes of a model's inputs from its card, any-size sides set to `ANY_SIZE`."""
    return {
        entry["name"]: (1, *(ANY_SIZE if dim is None else dim for dim in entry["shape"][1:]))
        for entry in card["inputs"]
    }


VARIANTS = {"model.tflite": None, "model_fp16.tflite": "fp16", "model_int8.tflite": "int8"}


def median_ms(call, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(name: str, warmup: int, repeats: int) -> dict:
    card = pretrained.card(name)
    rng = np.random.default_rng(0)
    shapes = input_shapes(card)
    inputs = {key: rng.uniform(size=shape).astype("float32") for key, shape in shapes.items()}
    model = pretrained.load(name)
    keras_inputs = inputs["image"] if len(inputs) == 1 else inputs
    row = {"keras_ms": median_ms(lambda: model.predict_on_batch(keras_inputs), warmup, repeats)}
    for file, variant in VARIANTS.items():
        if file not in card["files"]:
            continue
        runner = pretrained.load(name, "tflite", variant=variant)
        row[f"{file}_ms"] = median_ms(lambda runner=runner: runner(**inputs), warmup, repeats)
    row["input"] = {key: list(shape) for key, shape in shapes.items()}
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--models", help="comma-separated shipped names (default: all)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (median)")
    parser.add_argument("--json", help="write every number to this JSON file")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else [m["name"] for m in pretrained.list_models()]
    load_start = os.getloadavg()
    results = {}
    for name in names:
        print(f"{name} ...", file=sys.stderr)
        results[name] = measure(name, args.warmup, args.repeats)

    print("| model | input (batch 1) | Keras ms | TFLite fp32 ms | fp16 ms | int8 ms |")
    print("|---|---|---|---|---|---|")
    for name, row in results.items():
        shape = " + ".join("x".join(map(str, s[1:])) for s in row["input"].values())
        cells = [row.get(f"{file}_ms") for file in VARIANTS]
        shown = " | ".join("-" if v is None else f"{v:.1f}" for v in cells)
        print(f"| `{name}` | {shape} | {row['keras_ms']:.1f} | {shown} |")
    load_end = os.getloadavg()
    print(
        f"\nmedian of {args.repeats} runs after {args.warmup}; load average (1 min) "
        f"{load_start[0]:.2f} at start, {load_end[0]:.2f} at end"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"results": results, "load": [load_start, load_end]}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
