"""Attention benchmark: time and peak memory of 2D self-attention at growing map sizes.

Compares, on a `(B, H, W, 64)` map with 4 heads of 16 dims:

- `SelfAttention2D` computing the full `(B, 4, HW, HW)` score tensor (`block_size=None`),
- `SelfAttention2D` with `block_size` tiles of queries x keys (exact, running softmax),
- `SelfAttention2D` with `block_size` query blocks and one key tile over all keys
  (`key_block_size=H*W`: one fused softmax per query block),
- `keras.layers.MultiHeadAttention` on the flattened `(B, HW, 64)` tokens.

Each case runs in a fresh subprocess so its peak resident memory (ru_maxrss) is its own. Time is
the median of several forward passes inside one `tf.function` (no XLA), after a warm-up call.
"Extra RSS" is the peak minus the RSS measured right before the first forward pass (TensorFlow
and the built layer already loaded), i.e. the memory the forward pass itself needed.

Run:
    python benchmarks/attention.py                      # the README table (about 5 minutes)
    python benchmarks/attention.py --sizes 32 --batches 1 --repeats 3   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

METHODS = (
    "SelfAttention2D",
    "SelfAttention2D(block)",
    "SelfAttention2D(block+all-keys)",
    "MultiHeadAttention",
)
CHANNELS, HEADS, KEY_DIM = 64, 4, 16
# Skip a full-score case whose score tensor alone would exceed this (24 GiB machine).
SCORE_LIMIT_GIB = 6.0


def run_case(method: str, size: int, batch: int, block_size: int, repeats: int) -> dict:
    """Runs in the child process: builds the layer, times it, reports peak RSS."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import resource

    import keras
    import numpy as np
    import psutil
    import tensorflow as tf

    from keras_attn.layers import SelfAttention2D

    x = np.random.default_rng(0).normal(size=(batch, size, size, CHANNELS)).astype("float32")
    if method == "MultiHeadAttention":
        layer = keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=KEY_DIM)
        tokens = x.reshape(batch, size * size, CHANNELS)
        layer(tokens[:1, :4], tokens[:1, :4])  # build on a tiny input

        @tf.function
        def forward(inputs):
            flat = tf.reshape(inputs, (batch, size * size, CHANNELS))
            return layer(flat, flat)
    else:
        block = block_size if "(block" in method else None
        key_block = size * size if method.endswith("all-keys)") else None
        layer = SelfAttention2D(
            HEADS, KEY_DIM, position=None, block_size=block, key_block_size=key_block
        )
        layer(x[:1, :2, :2])

        @tf.function
        def forward(inputs):
            return layer(inputs)

    inputs = tf.constant(x)
    baseline = psutil.Process().memory_info().rss
    forward(inputs).numpy()  # trace + warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(inputs).numpy()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "method": method,
        "size": size,
        "batch": batch,
        "median_s": statistics.median(times),
        "peak_rss_mib": peak / 2**20,
        "extra_rss_mib": (peak - baseline) / 2**20,
    }


def score_gib(size: int, batch: int) -> float:
    return batch * HEADS * (size * size) ** 2 * 4 / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[32, 64, 96],
        help="map sides H = W (default: 32 64 96)",
    )
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)"
    )
    parser.add_argument(
        "--block-size",
        type=int,
        default=256,
        help="keys per block for the blockwise layer (default: 256)",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed forward passes per case (default: 5)"
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # child mode: METHOD,SIZE,BATCH
    args = parser.parse_args()

    if args.case:
        method, size, batch = args.case.split(",")
        print(json.dumps(run_case(method, int(size), int(batch), args.block_size, args.repeats)))
        return

    rows = []
    header = (
        "| map | batch | method | median time (ms) | peak RSS (MiB) | extra RSS (MiB) |\n"
        "|---|---|---|---|---|---|"
    )
    print(
        f"block_size={args.block_size}, {CHANNELS} channels, {HEADS} heads x {KEY_DIM} dims, "
        f"median of {args.repeats}"
    )
    print(header, flush=True)
    for size in args.sizes:
        for batch in args.batches:
            for method in METHODS:
                label = method.replace("(block)", f" block_size={args.block_size}").replace(
                    "(block+all-keys)", f" block_size={args.block_size}, key_block_size=H*W"
                )
                if "(block" not in method and score_gib(size, batch) > SCORE_LIMIT_GIB:
                    print(
                        f"| {size}x{size} | {batch} | {label} | skipped: scores alone need "
                        f"{score_gib(size, batch):.1f} GiB | | |",
                        flush=True,
                    )
                    continue
                command = [
                    sys.executable,
                    __file__,
                    "--case",
                    f"{method},{size},{batch}",
                    "--block-size",
                    str(args.block_size),
                    "--repeats",
                    str(args.repeats),
                ]
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                if result.returncode != 0:
                    tail = (result.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"| {size}x{size} | {batch} | {label} | failed: {tail} | | |")
                    continue
                row = json.loads(result.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(
                    f"| {size}x{size} | {batch} | {label} | {row['median_s'] * 1e3:.1f} | "
                    f"{row['peak_rss_mib']:.0f} | {row['extra_rss_mib']:.0f} |",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
