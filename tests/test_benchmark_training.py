"""benchmarks/training.py: a failing case becomes a table cell, and a tiny classifier run."""

import json
import math
import pathlib

import keras
import pytest

from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_benchmark():
    return load_script(ROOT / "benchmarks" / "training.py", "benchmark_training")


@pytest.fixture(scope="module")
def benchmark():
    return load_benchmark()


def test_a_failing_case_is_reported_with_its_first_line_and_the_policy_restored(benchmark):
    def trainee(data_dir):
        raise ValueError("the solver needs float32\nsecond line")

    family = benchmark.Family("fake", "fake_preset", "images", 4, "", None, trainee)
    case = benchmark.time_train_step(family, None, True, "mixed_float16", benchmark.Settings())
    assert case["error"] == "ValueError: the solver needs float32"
    assert case["jit_compile_requested"] and case["precision"] == "mixed_float16"
    assert keras.config.dtype_policy().name == "float32"


def timed(median_step_s, batch=8):
    return {"error": None, "median_step_s": median_step_s, "per_s": batch / median_step_s}


def test_default_is_the_fastest_case_that_ran(benchmark):
    cases = {
        "float32": timed(0.5),
        "float32 + XLA": timed(0.4),
        "mixed_float16": {"error": "ValueError: no"},
        "mixed_float16 + XLA": timed(0.44),
    }
    assert benchmark.fastest_case(cases) == "float32 + XLA"
    assert benchmark.fastest_case({"float32": {"error": "x"}}) is None
    cell = benchmark.default_cell({"default": "float32 + XLA", "cases": cases})
    assert cell == "float32 + XLA (next: mixed_float16 + XLA, +10% step time)"


def test_quick_classifier_run_writes_the_table_and_every_number(
    benchmark,
    digits_dir,
    tmp_path,
    capsys,
):
    path = tmp_path / "training.json"
    argv = ["--quick", "--xla", "off", "--data-dir", digits_dir, "--json", str(path)]
    assert benchmark.main(argv) == 0
    table = capsys.readouterr().out
    results = json.loads(path.read_text())

    assert list(results["families"]) == ["classifier"]
    classifier = results["families"]["classifier"]
    assert classifier["preset"] == "classifier_digits" and classifier["batch_size"] == 64
    assert classifier["params"] == 81_254  # the shipped SE classifier_digits
    assert list(classifier["cases"]) == ["float32", "mixed_bfloat16", "mixed_float16"]
    for case in classifier["cases"].values():
        assert case["error"] is None and case["jit_compile_used"] is False
        assert len(case["step_seconds"]) == 1 and case["first_step_s"] > 0
        assert case["per_s"] == pytest.approx(64 / case["median_step_s"])
        assert math.isfinite(case["final_loss"]) and case["final_loss"] > 0
    assert classifier["default"] in classifier["cases"]

    pipeline = classifier["pipeline"]
    assert len(pipeline["batch_seconds"]) == 3
    assert all(math.isfinite(s) and s > 0 for s in pipeline["batch_seconds"])
    default_step = classifier["cases"][classifier["default"]]["median_step_s"]
    assert pipeline["ratio_to_step"] == pytest.approx(pipeline["mean_batch_s"] / default_step)
    assert pipeline["could_bottleneck"] == (pipeline["ratio_to_step"] > 0.5)
    assert all(0 <= load for load in results["load_average_start"] + results["load_average_end"])

    lines = table.splitlines()
    throughput = next(line for line in lines if line.startswith("| classifier | classifier_d"))
    assert throughput.startswith("| classifier | classifier_digits | 64 | ")
    assert f"| {classifier['default']} (next: " in throughput
    details = [line for line in lines if line.startswith("| classifier | float32 |")]
    details += [line for line in lines if line.startswith("| classifier | mixed_bfloat16 |")]
    details += [line for line in lines if line.startswith("| classifier | mixed_float16 |")]
    assert len(details) == 3 and all("| no |" in line for line in details)
    ratio_row = next(line for line in lines if line.startswith("| classifier | 0."))
    verdict = "could be" if pipeline["could_bottleneck"] else "no"
    assert ratio_row.endswith(f"| {pipeline['ratio_to_step']:.2f} | {verdict} |")
    assert lines[-1].startswith("Load average (1/5/15 min) at start ")
