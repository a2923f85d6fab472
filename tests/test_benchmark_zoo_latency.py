"""benchmarks/zoo_latency.py on the shipped classifier (the smallest model), one timed run."""

import json
import pathlib

from tests.helpers import load_script

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_benchmark():
    return load_script(REPO / "benchmarks" / "zoo_latency.py", "zoo_latency")


def test_zoo_latency_times_keras_and_every_tflite_variant(tmp_path, capsys):
    benchmark = load_benchmark()
    out = tmp_path / "latency.json"
    models = "classifier_digits,classifier_fashion"
    argv = ["--models", models, "--warmup", "0", "--repeats", "1", "--json", str(out)]
    assert benchmark.main(argv) == 0
    table = capsys.readouterr().out
    assert "| `classifier_digits` | 32x32x1 |" in table
    assert "| `classifier_fashion` | 28x28x1 |" in table  # each model's own input shape
    row = json.loads(out.read_text())["results"]["classifier_digits"]
    for key in ("keras_ms", "model.tflite_ms", "model_fp16.tflite_ms", "model_int8.tflite_ms"):
        assert 0 < row[key] < 60_000, key
