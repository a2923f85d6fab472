"""benchmarks/classifier.py: variant parsing, width matching, the table, and a tiny full run."""

import pathlib

import pytest

from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUDGET = 78_426  # plain classifier_digits layout at widths (16, 32, 64)


def load_benchmark():
    return load_script(ROOT / "benchmarks" / "classifier.py", "benchmark_classifier")


@pytest.fixture(scope="module")
def benchmark():
    return load_benchmark()


def test_parse_variant(benchmark):
    assert benchmark.parse_variant("plain", 3) is None
    assert benchmark.parse_variant("SE", 3) == ("se", "se", "se")
    assert benchmark.parse_variant("self", 3) == (None, None, "self")
    assert benchmark.parse_variant("nonlocal", 3) == (None, "nonlocal", "nonlocal")
    assert benchmark.parse_variant("self@23", 3) == (None, "self", "self")
    for bad in ("transformer", "se@4", "se@x", "plain@1"):
        with pytest.raises(ValueError, match="Stages|Unknown attention"):
            benchmark.parse_variant(bad, 3)


def test_scaled_widths_round_to_multiples_of_4_and_never_below_16(benchmark):
    assert benchmark.scaled_widths(1.0) == (16, 32, 64)
    assert benchmark.scaled_widths(1.13) == (20, 36, 72)
    assert benchmark.scaled_widths(0.5) == (16, 16, 32)


def test_match_widths_brings_self_attention_within_ten_percent(benchmark):
    attention = (None, None, "self")
    assert benchmark.build(None, (16, 32, 64)).count_params() == BUDGET
    at_preset = benchmark.build(attention, (16, 32, 64)).count_params()
    assert at_preset < 0.8 * BUDGET  # attention replaces a 3x3 conv: far below the budget
    widths, params = benchmark.match_widths(attention, BUDGET)
    assert widths != (16, 32, 64) and all(w % 4 == 0 and w >= 16 for w in widths)
    assert abs(params / BUDGET - 1) <= 0.10
    assert params == benchmark.build(attention, widths).count_params()


def fake_variant(attention, params, matched, accuracies, at_least_plain):
    timing = {"images_per_s": 100.0, "jit_compile_used": True}
    return {
        "attention": attention,
        "widths": (16, 32, 64),
        "params": params,
        "params_vs_budget": params / BUDGET - 1,
        "matched": matched,
        "runs": [{"errors": round((1 - a) * 359)} for a in accuracies],
        "accuracy_mean": sum(accuracies) / len(accuracies),
        "accuracy_std": 0.001,
        "accuracy_min": min(accuracies),
        "accuracy_max": max(accuracies),
        "mean_at_least_plain": at_least_plain,
        "throughput": {"no_xla": timing, "xla": {**timing, "images_per_s": 50.0}},
        "xla_speedup": 0.5,
    }


def test_table_flags_variants_outside_the_parameter_tolerance(benchmark):
    results = {
        "settings": {"tolerance": 0.1},
        "variants": {
            "plain": fake_variant(None, BUDGET, True, [359 / 359, 357 / 359], True),
            "nonlocal": fake_variant((None, "nonlocal", "nonlocal"), 90_000, False, [1.0], True),
        },
    }
    plain_row, nonlocal_row = benchmark.markdown_table(results).splitlines()[2:]
    assert plain_row.startswith("| plain | 16/32/64 | 78,426 (+0.0%) | 99.72% ± 0.10 |")
    assert "| 0 / 2 | yes | 100 | 50 | 0.50x |" in plain_row
    assert nonlocal_row.startswith("| nonlocal (stages 2,3) |")
    assert "90,000 (+14.8%) **not within ±10%**" in nonlocal_row
    assert "n/a (not matched)" in nonlocal_row


def tiny_settings(benchmark, digits_dir, **overrides):
    return benchmark.Settings(
        **{
            "variants": ("plain",),
            "epochs": 1,
            "seeds": (3,),
            "batch_size": 8,
            "image_size": 16,
            "steps_per_epoch": 2,
            "throughput_steps": 0,
            "data_dir": digits_dir,
            **overrides,
        }
    )


def test_tiny_run_trains_and_evaluates_on_the_whole_test_split(benchmark, digits_dir):
    results = benchmark.run_benchmark(tiny_settings(benchmark, digits_dir))
    plain = results["variants"]["plain"]
    assert results["budget"]["params"] == BUDGET and results["steps_per_epoch"] == 2
    assert plain["widths"] == (16, 32, 64) and plain["params"] == BUDGET and plain["matched"]
    (run,) = plain["runs"]
    assert run["seed"] == 3 and run["test_examples"] == 359 and 0 <= run["errors"] <= 359
    assert run["accuracy"] == pytest.approx(1 - run["errors"] / 359)
    assert plain["accuracy_mean"] == plain["accuracy_min"] == plain["accuracy_max"]
    assert plain["accuracy_std"] == 0.0 and plain["mean_at_least_plain"] is True
    assert plain["throughput"] == {} and plain["xla_speedup"] is None  # throughput_steps=0
    row = benchmark.markdown_table(results).splitlines()[2]
    assert row.startswith("| plain | 16/32/64 | 78,426 (+0.0%) |")
    assert row.endswith(f"| {run['errors']} | yes | - | - | - |")


@pytest.mark.slow
def test_throughput_compiles_the_train_step_with_xla_when_asked(benchmark, digits_dir):
    settings = tiny_settings(benchmark, digits_dir, throughput_steps=2, throughput_warmup=1)
    timing = benchmark.training_throughput(None, (16, 32, 64), 0, settings, jit=True)
    assert timing["jit_compile_requested"] and timing["jit_compile_used"]
    assert len(timing["step_seconds"]) == 2 and timing["warmup_seconds"] > 0
    assert timing["images_per_s"] == pytest.approx(8 * 2 / sum(timing["step_seconds"]))
