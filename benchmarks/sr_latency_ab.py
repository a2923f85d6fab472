"""
Title: A/B TFLite latency of SR models, interleaved
Description: converts each `.keras` SR model to a builtin-ops fp32 TFLite model once, then times
them in alternating rounds (round r: every model, `--repeats` invokes each, median per round) so
that a background load or CPU clock change hits every model alike; prints a table of the median
over rounds and the spread (min-max of the per-round medians). On this 2-core machine single
runs of `benchmarks/super_resolution.py` moved by +-30 % between runs, which is too much to rank
models that are within 20 % of each other.

Run:
    python benchmarks/sr_latency_ab.py --model sr_x2=saved_models/sr_x2/model.keras \
        --model edsr_small_skip=runs/sr_refs/edsr_small_skip_x2/model.keras
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
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--size", type=int, default=256, help="input side")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--repeats", type=int, default=20, help="invokes per model per round")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    args = parser.parse_args(argv)
    tflite_interpreter = _sr_benchmark().tflite_interpreter
    interpreters = {}
    for item in args.model:
        label, sep, path = item.partition("=")
        if not sep:
            parser.error(f"--model takes LABEL=PATH. Received: {item!r}")
        if not os.path.isfile(path):
            parser.error(f"--model {label}: {path!r} does not exist")
        model = keras.saving.load_model(path, compile=False)
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints every variable
            interpreters[label], _ = tflite_interpreter(model, args.size, args.threads)
    rounds = {label: [] for label in interpreters}
    for _ in range(args.rounds):
        for label, interpreter in interpreters.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                interpreter.invoke()
                times.append(time.perf_counter() - start)
            rounds[label].append(1000 * statistics.median(times))
    print(f"TFLite fp32, {args.size}x{args.size}, {args.threads} threads, {args.rounds} rounds")
    print("| model | median ms | per-round medians (min-max) |")
    print("|---|---|---|")
    for label, values in rounds.items():
        print(
            f"| {label} | {statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
