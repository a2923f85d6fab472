"""
Title: Where a model's TFLite time goes: Keras vs TFLite, and a per-layer TFLite profile
Description: times a `.keras` model whole in Keras (`predict_on_batch`) and in TFLite (a
builtin-ops fp32 conversion run by LiteRT, with or without its default XNNPACK delegate, at a
chosen thread count), then every layer call of the model on its own: each call becomes a
one-layer model fed the real intermediate tensors of the whole model at that size, is converted
the same way and timed. The table lists each layer with the TFLite ops it became, its ms and its
share of the per-layer sum. Everything is timed in interleaved rounds (round r: the whole model
in Keras, in TFLite, then every layer, `--repeats` invokes each, median per round), so that a
background load hits every row alike; the median over rounds is printed. The per-layer sum is
not the whole model's time: the whole model fuses ops (a convolution and its activation, an
add) and keeps tensors in cache that the one-layer models pass through memory.

LiteRT's Python interpreter has no per-op profiler (the C++ `benchmark_model` tool has one,
`--enable_op_profiling`), and a one-layer model is the closest thing a pip install can time.

Run:
    python benchmarks/tflite_profile.py --model saved_models/sr_x2/model.keras --size 256
    python benchmarks/tflite_profile.py --model saved_models/aligner_homography/model.keras \
        --fixed-batch
"""

from __future__ import annotations

import argparse
import collections
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
from keras.src.ops.function import make_node_key  # noqa: E402

from keras_attn.export import available_cores, export_tflite  # noqa: E402


def sample_inputs(model: keras.Model, size: int, seed: int = 0) -> list[np.ndarray]:
    """One batch-1 input per model input: uniform noise in [0, 1] (the work does not depend on
    the content), `None` spatial dimensions set to `size`."""
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [1] + [size if dim is None else dim for dim in tensor.shape[1:]]
        arrays.append(rng.uniform(size=shape).astype("float32"))
    return arrays


def layer_calls(model: keras.Model) -> list[tuple[str, keras.layers.Layer, object]]:
    """(label, layer, node) for every call of every non-input layer of a functional model, in
    the model's order; a layer called twice (a shared encoder) is listed once per call."""
    calls = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        nodes = [
            node
            for index, node in enumerate(layer._inbound_nodes)
            if make_node_key(layer, index) in model._nodes
        ]
        for index, node in enumerate(nodes):
            label = layer.name if len(nodes) == 1 else f"{layer.name}[{index}]"
            calls.append((label, layer, node))
    return calls


def one_layer_models(model: keras.Model, inputs: list[np.ndarray]) -> list[dict]:
    """For every layer call: a Keras model of that call alone on static shapes, and the real
    tensors the whole model feeds it for `inputs`."""
    calls = layer_calls(model)
    tensors = []
    for _, _, node in calls:
        tensors.extend(node.arguments.keras_tensors)
    unique = list({id(t): t for t in tensors}.values())
    probe = keras.Model(model.inputs, unique)
    values = probe.predict_on_batch(inputs)
    if len(unique) == 1:
        values = [values]
    value_of = {id(t): np.asarray(v) for t, v in zip(unique, values, strict=True)}
    result = []
    for label, layer, node in calls:
        fresh, feed = {}, []
        for tensor in node.arguments.keras_tensors:
            if id(tensor) not in fresh:
                value = value_of[id(tensor)]
                fresh[id(tensor)] = keras.Input(
                    batch_shape=value.shape, dtype=tensor.dtype, name=f"in{len(feed)}"
                )
                feed.append(value)

        def swap(item, fresh=fresh):
            return fresh[id(item)] if id(item) in fresh else item

        args = keras.tree.map_structure(swap, node.arguments.args)
        kwargs = keras.tree.map_structure(swap, node.arguments.kwargs)
        outputs = layer(*args, **kwargs)
        sub = keras.Model(list(fresh.values()), outputs, name=f"profile_{len(result)}")
        result.append({"label": label, "class": type(layer).__name__, "model": sub, "feed": feed})
    return result


def tflite_runner(
    model: keras.Model,
    feed: list[np.ndarray],
    threads: int,
    xnnpack: bool,
    fixed_batch: bool = False,
):
    """(invoke, ops): a LiteRT interpreter of the model's fp32 TFLite conversion (builtin ops,
    `keras_attn.export.export_tflite`) with `feed` set, and the TFLite op names it runs. With
    `fixed_batch`, the file's batch is fixed to the feed's (as the shipped aligners' are) where
    every input has the same batch."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    names = [tensor.name for tensor in model.inputs]
    # a layer inside the aligner may take tensors of two batches (4 hypotheses beside 1 pair):
    # its one-layer file keeps an open batch
    batches = {len(array) for array in feed}
    with tempfile.TemporaryDirectory() as workdir:
        path = pathlib.Path(workdir) / "model.tflite"
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints every variable
            # as the shipped files are made (through a SavedModel), checked on the real tensors
            export_tflite(
                model,
                path,
                inputs=dict(zip(names, feed, strict=True)),
                batch_size=batches.pop() if fixed_batch and len(batches) == 1 else None,
            )
        content = path.read_bytes()
    options = {"num_threads": threads}
    if not xnnpack:
        options["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_content=content, **options)
    details = interpreter.get_input_details()
    # the converter orders the inputs by name, not as Keras does: match them by name
    order = [names.index(_input_name(detail["name"])) for detail in details]
    for detail, index in zip(details, order, strict=True):
        interpreter.resize_tensor_input(detail["index"], feed[index].shape)
    interpreter.allocate_tensors()
    for detail, index in zip(details, order, strict=True):
        interpreter.set_tensor(detail["index"], feed[index])
    interpreter.invoke()
    # with XNNPACK, the nodes it took stay listed and one DELEGATE node per partition is added
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    return interpreter.invoke, ops


def _input_name(tflite_name: str) -> str:
    """'moving' from the converter's 'serving_default_moving:0'."""
    return tflite_name.removeprefix("serving_default_").rsplit(":", 1)[0]


def median_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def compact_ops(ops: list[str]) -> str:
    """'CONV_2D, MEAN, 2x FULLY_CONNECTED' from a list of op names, in first-seen order, and
    ' (XNNPACK: 1 partition)' where the delegate took some of them."""
    delegated = ops.count("DELEGATE")
    ops = [op for op in ops if op != "DELEGATE"]
    counts = collections.Counter(ops)
    if delegated:
        plural = "s" if delegated > 1 else ""
        return compact_ops(ops) + f" (XNNPACK: {delegated} partition{plural})"
    return ", ".join(op if counts[op] == 1 else f"{counts[op]}x {op}" for op in dict.fromkeys(ops))


def profile(model, size, threads, xnnpack, rounds, repeats, fixed_batch=False) -> dict:
    inputs = sample_inputs(model, size)
    keras_input = keras.tree.pack_sequence_as(model._inputs_struct, inputs)
    model.predict_on_batch(keras_input)  # trace once
    whole_invoke, whole_ops = tflite_runner(model, inputs, threads, xnnpack, fixed_batch)
    rows = []
    for part in one_layer_models(model, inputs):
        invoke, ops = tflite_runner(part["model"], part["feed"], threads, xnnpack, fixed_batch)
        rows.append({**part, "invoke": invoke, "ops": ops, "ms": []})
    keras_ms, tflite_ms = [], []
    for _ in range(rounds):
        keras_ms.append(median_ms(lambda: model.predict_on_batch(keras_input), repeats))
        tflite_ms.append(median_ms(whole_invoke, repeats))
        for row in rows:
            row["ms"].append(median_ms(row["invoke"], repeats))
    return {
        "input_shapes": [list(x.shape) for x in inputs],
        "threads": threads,
        "xnnpack": xnnpack,
        "fixed_batch": fixed_batch,
        "rounds": rounds,
        "repeats": repeats,
        "keras_ms": statistics.median(keras_ms),
        "tflite_ms": statistics.median(tflite_ms),
        "tflite_ops": len(whole_ops) - whole_ops.count("DELEGATE"),
        "xnnpack_partitions": whole_ops.count("DELEGATE"),
        "layers": [
            {
                "layer": row["label"],
                "class": row["class"],
                "ops": row["ops"],
                "ms": statistics.median(row["ms"]),
            }
            for row in rows
        ],
    }


def print_tables(result: dict, top: int) -> None:
    shapes = " + ".join("x".join(map(str, s[1:])) for s in result["input_shapes"])
    delegate = "XNNPACK" if result["xnnpack"] else "builtin kernels (no XNNPACK)"
    if result.get("fixed_batch"):
        delegate += ", fixed batch"
    print(
        f"Input {shapes}, batch 1; TFLite fp32, {delegate}, {result['threads']} threads; median "
        f"of {result['rounds']} interleaved rounds of {result['repeats']} calls\n"
    )
    print("| whole model | ms |")
    print("|---|---|")
    print(f"| Keras `predict_on_batch` | {result['keras_ms']:.1f} |")
    partitions = result["xnnpack_partitions"]
    taken = f", {partitions} XNNPACK partitions" if partitions else ""
    print(f"| TFLite ({result['tflite_ops']} ops{taken}) | {result['tflite_ms']:.1f} |")
    print(f"| TFLite / Keras | {result['tflite_ms'] / result['keras_ms']:.2f}x |")
    layers = result["layers"]
    total = sum(row["ms"] for row in layers)
    by_class = collections.defaultdict(lambda: [0, 0.0])
    for row in layers:
        by_class[row["class"]][0] += 1
        by_class[row["class"]][1] += row["ms"]
    print(f"\nPer layer class (sum of the one-layer models: {total:.1f} ms)\n")
    print("| layer class | calls | ms | share |")
    print("|---|---|---|---|")
    for name, (count, ms) in sorted(by_class.items(), key=lambda item: -item[1][1]):
        print(f"| {name} | {count} | {ms:.2f} | {100 * ms / total:.1f} % |")
    shown = sorted(layers, key=lambda row: -row["ms"])[:top]
    print(f"\nThe {len(shown)} slowest layer calls of {len(layers)}\n")
    print("| layer | class | TFLite ops | ms | share |")
    print("|---|---|---|---|---|")
    for row in shown:
        print(
            f"| {row['layer']} | {row['class']} | {compact_ops(row['ops'])} | {row['ms']:.2f} | "
            f"{100 * row['ms'] / total:.1f} % |"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a .keras file")
    parser.add_argument("--size", type=int, default=256, help="side of `None` spatial inputs")
    parser.add_argument("--threads", type=int, default=available_cores(), help="LiteRT threads")
    parser.add_argument(
        "--no-xnnpack", dest="xnnpack", action="store_false", help="builtin kernels only"
    )
    parser.add_argument(
        "--fixed-batch",
        action="store_true",
        help="convert with a fixed batch of 1, as the shipped aligners' files are",
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--repeats", type=int, default=10, help="calls per row per round")
    parser.add_argument("--top", type=int, default=15, help="slowest layer calls to list")
    parser.add_argument("--json", help="write every number to this JSON file")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.model):
        parser.error(f"--model {args.model!r} does not exist")
    if args.threads < 1 or args.rounds < 1 or args.repeats < 1:
        parser.error("--threads, --rounds and --repeats take positive integers")
    model = keras.saving.load_model(args.model, compile=False)
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes"):
        parser.error(f"--model {args.model!r} is not a functional Keras model")
    result = profile(
        model, args.size, args.threads, args.xnnpack, args.rounds, args.repeats, args.fixed_batch
    )
    result["model"] = args.model
    print_tables(result, args.top)
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
