"""benchmarks/zoo_latency.py on the shipped classifier (the smallest model), one timed run."""

import importlib.util
import json
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "zoo_latency", REPO / "benchmarks" / "zoo_latency.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_latency_times_keras_and_every_tflite_variant(tmp_path, capsys):
    benchmark = load_benchmark()
    out = tmp_path / "latency.json"
    argv = ["--models", "classifier_digits", "--warmup", "0", "--repeats", "1", "--json", str(out)]
    assert benchmark.main(argv) == 0
    table = capsys.readouterr().out
    assert "| `classifier_digits` | 32x32x1 |" in table
    row = json.loads(out.read_text())["results"]["classifier_digits"]
    for key in ("keras_ms", "model.tflite_ms", "model_fp16.tflite_ms", "model_int8.tflite_ms"):
        assert 0 < row[key] < 60_000, key
