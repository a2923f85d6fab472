"""
Title: The bilinear skip of the SR models: one convolution against a blend per phase
Description: `keras_attn.layers.BilinearUpsampling2D` computes the `scale**2` output phases of
a bilinear upsampling with one constant 3x3 convolution of the edge-padded input and
interleaves them as a pixel shuffle does. Before, it blended each phase from shifted copies,
stacked the phases and reshaped them (`BlendPerPhase` below keeps that formulation). Both give
`tf.image.resize(..., "bilinear")`'s values; this script checks that and times them, the layer
alone on a 3-channel image and inside each SR model given (the model's skip layer swapped for
the old one, weights unchanged), in Keras (`predict_on_batch`) and TFLite (fp32, builtin ops,
XNNPACK, every core), in interleaved rounds (round r: every row once, `--repeats` calls each,
median per round); the table gives the median over rounds.

Run:
    python benchmarks/bilinear_upsampling.py --size 256 \
        --model sr_x2=saved_models/sr_x2/model.keras \
        --model sr_x4=saved_models/sr_x4/model.keras
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from keras_attn.export import TFLiteModel, export_tflite  # noqa: E402
from keras_attn.layers import BilinearUpsampling2D  # noqa: E402


class BlendPerPhase(BilinearUpsampling2D):
    """`BilinearUpsampling2D` as keras_attn wrote it before: along each axis, every output
    phase blends the input with its previous or next pixel (edges repeated), and the phases
    are stacked and reshaped into the longer axis."""

    def build(self, input_shape):
        keras.layers.Layer.build(self, input_shape)

    def call(self, inputs):
        return self._upsample_axis(self._upsample_axis(inputs, axis=1), axis=2)

    def _upsample_axis(self, x, axis: int):
        scale = self.scale
        if axis == 1:
            previous = ops.concatenate([x[:, :1], x[:, :-1]], axis=1)
            following = ops.concatenate([x[:, 1:], x[:, -1:]], axis=1)
        else:
            previous = ops.concatenate([x[:, :, :1], x[:, :, :-1]], axis=2)
            following = ops.concatenate([x[:, :, 1:], x[:, :, -1:]], axis=2)
        phases = []
        for k in range(scale):
            offset = (2 * k + 1 - scale) / (2 * scale)
            if offset < 0:
                phases.append(x + (-offset) * (previous - x))
            elif offset > 0:
                phases.append(x + offset * (following - x))
            else:
                phases.append(x)
        stacked = ops.stack(phases, axis=axis + 1)
        shape = ops.shape(x)
        new_shape = [shape[0], shape[1], shape[2], x.shape[-1]]
        new_shape[axis] = shape[axis] * scale
        return ops.reshape(stacked, new_shape)


def with_old_skip(model: keras.Model) -> keras.Model:
    """`model` with every `BilinearUpsampling2D` replaced by `BlendPerPhase` (same weights)."""

    def clone(layer):
        if type(layer) is BilinearUpsampling2D:
            return BlendPerPhase.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    old = keras.models.clone_model(model, clone_function=clone)
    old.set_weights(model.get_weights())
    return old


def layer_model(layer_class, scale: int) -> keras.Model:
    inputs = keras.Input((None, None, 3), name="image")
    return keras.Model(inputs, layer_class(scale, name="skip")(inputs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("Run:")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=256, help="side of the input image")
    parser.add_argument("--scales", default="2,3,4", help="scales of the layer-alone rows")
    parser.add_argument(
        "--model", action="append", default=[], help="NAME=PATH of an SR .keras model"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--repeats", type=int, default=10, help="calls per row per round")
    parser.add_argument("--json", help="write every number to this JSON file")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    image = rng.uniform(size=(1, args.size, args.size, 3)).astype("float32")
    pairs = []  # (label, new model, old model)
    for scale in (int(s) for s in args.scales.split(",") if s):
        label = f"layer alone, x{scale}"
        pairs.append(
            (label, layer_model(BilinearUpsampling2D, scale), layer_model(BlendPerPhase, scale))
        )
    for spec in args.model:
        name, _, path = spec.partition("=")
        if not path:
            parser.error(f"--model takes NAME=PATH. Received: {spec!r}")
        if not pathlib.Path(path).is_file():
            parser.error(f"--model {name}: {path} is not a file")
        model = keras.saving.load_model(path, compile=False)
        if not any(type(layer) is BilinearUpsampling2D for layer in model.layers):
            parser.error(f"{path} has no BilinearUpsampling2D layer to compare")
        pairs.append((name, model, with_old_skip(model)))

    rows = []  # (label, formulation, keras callable, tflite callable)
    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (label, new, old) in enumerate(pairs):
            input_name = new.inputs[0].name
            expected = np.asarray(new.predict_on_batch(image))
            before = np.asarray(old.predict_on_batch(image))
            for formulation, model in (("convolution", new), ("blend per phase", old)):
                path = pathlib.Path(tmp) / f"{index}_{formulation.replace(' ', '_')}.tflite"
                with contextlib.redirect_stdout(io.StringIO()):
                    report = export_tflite(model, path, inputs={input_name: image})
                tflite = TFLiteModel(path)
                rows.append((label, formulation, model.predict_on_batch, tflite, report.ops))
            if label.startswith("layer alone"):
                scale = new.layers[-1].scale
                size = (args.size * scale, args.size * scale)
                resized = tf.image.resize(image, size, method="bilinear").numpy()
                reference = float(np.abs(expected - resized).max())
            else:
                reference = None
            checks.append((label, float(np.abs(expected - before).max()), reference))

        times = {
            (label, formulation): {"keras": [], "tflite": []} for label, formulation, *_ in rows
        }
        for _ in range(args.rounds):
            for label, formulation, keras_call, tflite, _ in rows:
                for kind, call in (("keras", keras_call), ("tflite", tflite)):
                    call(image)  # warm
                    start = time.perf_counter()
                    for _ in range(args.repeats):
                        call(image)
                    elapsed = (time.perf_counter() - start) / args.repeats * 1000
                    times[(label, formulation)][kind].append(elapsed)

    print(
        f"Input {args.size}x{args.size}x3, batch 1; TFLite fp32, XNNPACK; median of "
        f"{args.rounds} interleaved rounds of {args.repeats} calls\n"
    )
    print("| what | skip formulation | Keras ms | TFLite ms | TFLite / Keras |")
    print("|---|---|---|---|---|")
    result = {"size": args.size, "rounds": args.rounds, "repeats": args.repeats, "rows": []}
    for label, formulation, *_, tflite_ops in rows:
        keras_ms = statistics.median(times[(label, formulation)]["keras"])
        tflite_ms = statistics.median(times[(label, formulation)]["tflite"])
        print(
            f"| {label} | {formulation} | {keras_ms:.2f} | {tflite_ms:.2f} | "
            f"{tflite_ms / keras_ms:.2f}x |"
        )
        result["rows"].append(
            {
                "what": label,
                "formulation": formulation,
                "keras_ms": keras_ms,
                "tflite_ms": tflite_ms,
                "tflite_ops": list(tflite_ops),
            }
        )
    print("\n| what | max abs difference, new vs old | new vs tf.image.resize |")
    print("|---|---|---|")
    for label, difference, reference in checks:
        shown = "" if reference is None else f"{reference:.1e}"
        print(f"| {label} | {difference:.1e} | {shown} |")
    result["checks"] = [
        {"what": label, "new_vs_old": difference, "new_vs_tf_image_resize": reference}
        for label, difference, reference in checks
    ]
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
