"""
Title: A/B TFLite latency of SR models, interleaved
Description: converts each `.keras` SR model to a builtin-ops fp32 TFLite model once, then times
them in alternating rounds (round r: every model, `--repeats` invokes each, median per round) so
that a background load or CPU clock change hits every model alike; prints a table of the median
over rounds and the spread (min-max of the per-round medians). On this 2-core machine single
runs of `benchmarks/super_resolution.py` moved by +-30 % between runs, which is too much to rank
models that are within 20 % of each other. A model is a `.keras` file or a model name of the
registry (`edsr_small_skip_x2`), built untrained with seed 0: the time does not depend on the
weights, so the references need no training run to be timed. `--keras` also times every model
in Keras (`predict_on_batch` on the same input) in the same rounds, with the TFLite / Keras ratio.

Run:
    python benchmarks/sr_latency_ab.py --keras --model sr_x2=saved_models/sr_x2/model.keras \
        --model edsr_small_skip=edsr_small_skip_x2 --model espcn_skip=espcn_skip_x2
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_attn import models  # noqa: E402


def _sr_benchmark():
    """benchmarks/super_resolution.py, whose TFLite conversion and timing input this reuses."""
    path = pathlib.Path(__file__).resolve().parent / "super_resolution.py"
    spec = importlib.util.spec_from_file_location("sr_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="LABEL=PATH",
        help="a .keras file, or a registry model name (built untrained, seed 0)",
    )
    parser.add_argument("--size", type=int, default=256, help="input side")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--repeats", type=int, default=20, help="invokes per model per round")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    parser.add_argument(
        "--keras", action="store_true", help="also time each model in Keras, same rounds"
    )
    args = parser.parse_args(argv)
    tflite_interpreter = _sr_benchmark().tflite_interpreter
    calls = {}  # (label, runtime) -> a call to time
    for item in args.model:
        label, sep, path = item.partition("=")
        if not sep:
            parser.error(f"--model takes LABEL=PATH. Received: {item!r}")
        if os.path.isfile(path):
            model = keras.saving.load_model(path, compile=False)
        elif path in models.list_models():
            keras.utils.set_random_seed(0)
            model = models.build_model(path)
        else:
            parser.error(f"--model {label}: {path!r} is neither a file nor a registry model name")
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints every variable
            interpreter, x = tflite_interpreter(model, args.size, args.threads)
        calls[label, "tflite"] = interpreter.invoke
        if args.keras:
            model.predict_on_batch(x)  # traced once before the rounds
            calls[label, "keras"] = lambda model=model, x=x: model.predict_on_batch(x)
    rounds = {key: [] for key in calls}
    for _ in range(args.rounds):
        for key, call in calls.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            rounds[key].append(1000 * statistics.median(times))
    print(f"TFLite fp32, {args.size}x{args.size}, {args.threads} threads, {args.rounds} rounds")
    header = "| model | median ms | per-round medians (min-max) |"
    header += " Keras median ms | Keras min-max | TFLite / Keras |" if args.keras else ""
    print(header)
    print("|---" * header.count(" |") + "|")
    for label in dict.fromkeys(label for label, _ in calls):
        cells = _cells(rounds[label, "tflite"])
        if args.keras:
            keras_cells = _cells(rounds[label, "keras"])
            ratio = statistics.median(rounds[label, "tflite"]) / statistics.median(
                rounds[label, "keras"]
            )
            cells += [*keras_cells, f"{ratio:.2f}x"]
        print("| " + " | ".join([label, *cells]) + " |")
    return 0


def _cells(values: list[float]) -> list[str]:
    """The median of the per-round medians and their min-max, in whole ms."""
    return [f"{statistics.median(values):.0f}", f"{min(values):.0f}-{max(values):.0f}"]


if __name__ == "__main__":
    raise SystemExit(main())
