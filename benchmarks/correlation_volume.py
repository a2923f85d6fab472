"""
Title: Two TFLite formulations of the local cost volume of `CorrelationMatch2D`
Description: a local cost volume of radius r is either one slice, multiply and sum per offset
((2r + 1)^2 of each), or, for each of the 2r + 1 row offsets, every cell of a row against the
whole shifted row in one batched matmul, with the 2r + 1 column offsets read out of the band of
that matrix (flattened, M[x, x + k] sits at x * (L + 1) + k). The layer has both and uses the
second from radius 3 on (`_ROW_MATMUL_MIN_RADIUS`); this script forces each in turn, checks that
they give the same logits, converts a one-layer model of each to TFLite (builtin ops, a fixed
batch, as the shipped aligners are converted) and times them with and without XNNPACK in
interleaved rounds, at the shapes the shipped aligner uses.

Run:
    python benchmarks/correlation_volume.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attn.export import available_cores  # noqa: E402
from keras_attn.layers import CorrelationMatch2D  # noqa: E402
from keras_attn.layers.correlation_match_2d import _ROW_MATMUL_MIN_RADIUS  # noqa: E402

# (radius, feature shape) of the local levels of the shipped aligner_homography (4 hypotheses)
CASES = [(6, (4, 32, 32, 32)), (3, (4, 32, 32, 32)), (2, (4, 64, 64, 16))]


def _profile_tools():
    path = pathlib.Path(__file__).resolve().parent / "tflite_profile.py"
    spec = importlib.util.spec_from_file_location("tflite_profile", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PerOffset(CorrelationMatch2D):
    """`CorrelationMatch2D` with one slice, multiply and sum per offset at every radius."""

    def _local_logits_by_rows(self, fixed, padded):
        return self._local_logits_by_offsets(fixed, padded)


class PerRow(CorrelationMatch2D):
    """`CorrelationMatch2D` with one batched matmul per row offset at every radius."""

    def _local_logits_by_offsets(self, fixed, padded):
        return self._local_logits_by_rows(fixed, padded)


FORMULATIONS = {"slice per offset": PerOffset, "matmul per row offset": PerRow}


def one_layer(cls, radius: int, shape: tuple[int, ...]) -> keras.Model:
    fixed = keras.Input(batch_shape=shape, name="in0")
    moving = keras.Input(batch_shape=shape, name="in1")
    return keras.Model([fixed, moving], cls(radius=radius)(fixed, moving))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--threads", type=int, default=available_cores(), help="LiteRT threads")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--repeats", type=int, default=5, help="calls per row per round")
    parser.add_argument(
        "--case", action="append", metavar="R:B,H,W,C", help="radius and feature shape"
    )
    args = parser.parse_args(argv)
    cases = CASES
    if args.case:
        cases = []
        for text in args.case:
            radius, _, dims = text.partition(":")
            cases.append((int(radius), tuple(int(d) for d in dims.split(","))))
    tools = _profile_tools()
    rng = np.random.default_rng(0)
    rows = {}
    for radius, shape in cases:
        feed = [rng.normal(size=shape).astype("float32") for _ in range(2)]
        reference = None
        for label, cls in FORMULATIONS.items():
            model = one_layer(cls, radius, shape)
            displacement = np.asarray(model.predict_on_batch(feed)[0])
            reference = displacement if reference is None else reference
            difference = float(np.abs(displacement - reference).max())
            for xnnpack in (False, True):
                invoke, op_names = tools.tflite_runner(
                    model, feed, args.threads, xnnpack, fixed_batch=True
                )
                ops_count = len(op_names) - op_names.count("DELEGATE")
                rows[(radius, shape, label, xnnpack)] = [invoke, ops_count, difference, []]
    for _ in range(args.rounds):
        for row in rows.values():
            row[3].append(tools.median_ms(row[0], args.repeats))
    print(
        f"One-layer TFLite fp32 models, {args.threads} threads, median of {args.rounds} "
        f"interleaved rounds of {args.repeats} calls\n"
    )
    print(
        "| radius | features | formulation | TFLite ops | max displacement diff | builtin ms "
        "| XNNPACK ms | the layer's |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (radius, shape, label, xnnpack), row in rows.items():
        if xnnpack:
            continue
        builtin = statistics.median(row[3])
        delegated = statistics.median(rows[(radius, shape, label, True)][3])
        by_rows = radius >= _ROW_MATMUL_MIN_RADIUS
        chosen = "yes" if (FORMULATIONS[label] is PerRow) == by_rows else ""
        print(
            f"| {radius} | {'x'.join(map(str, shape))} | {label} | {row[1]} | {row[2]:.1e} | "
            f"{builtin:.2f} | {delegated:.2f} | {chosen} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
