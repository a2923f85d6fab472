"""benchmarks/classifier_variants.py: equal-parameter widths, one resumable run per variant and
seed through `keras-attn train classifier`, and the table (on the bundled digits, 2 steps)."""

import json
import pathlib

import pytest

from tests.data.test_classification import digits_dir  # noqa: F401  (session fixture)
from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def benchmark():
    return load_script(ROOT / "benchmarks" / "classifier_variants.py", "classifier_variants")


def test_every_variant_is_matched_to_the_plain_budget(benchmark):
    budget = benchmark.params("plain", benchmark.BASE_WIDTHS)
    for variant in ("se", "self"):
        widths, count = benchmark.match_widths(variant, budget)
        assert abs(count / budget - 1) <= 0.05, (variant, widths, count, budget)
        assert all(w % 4 == 0 and w >= 16 for w in widths)
    # self-attention has fewer weights than the convolution it replaces: wider stages
    assert benchmark.match_widths("self", budget)[0] != benchmark.BASE_WIDTHS


def test_runs_resume_and_the_table_reports_each_variant(benchmark, digits_dir, tmp_path, capsys):  # noqa: F811
    argv = [
        *("--runs", str(tmp_path / "runs"), "--variants", "plain,self", "--seeds", "0"),
        *("--epochs", "1", "--steps-per-epoch", "2", "--dataset", "bundled_digits"),
        *("--image-size", "16", "--train-split", "train", "--val-split", "train[:32]"),
        *("--data-dir", digits_dir, "--recipe", "--batch-size 16 --learning-rate 1e-3"),
        *("--json", str(tmp_path / "results.json"), "--record", str(tmp_path / "record")),
    ]
    # Before anything has run, --no-train reports both variants as not finished.
    assert benchmark.main([*argv, "--no-train"]) == 0
    assert capsys.readouterr().out.count("not finished | not finished") == 2
    assert benchmark.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("| variant | widths | params |") and "| plain | 16,32,64 |" in out
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {row["variant"]: row for row in results["rows"]}
    assert set(rows) == {"plain", "self"} and rows["plain"]["params"] == results["budget_params"]
    for row in rows.values():
        assert len(row["test_accuracy"]) == 1 and 0 <= row["test_accuracy"][0] <= 1
        assert row["train_images_per_s"] > 0 and row["within_tolerance"]
    command = (tmp_path / "runs" / "self_seed0" / "command.txt").read_text()
    assert "--attention none,none,self" in command and "--val-split 'train[:32]'" in command
    metrics = json.loads((tmp_path / "runs" / "self_seed0" / "metrics.json").read_text())
    assert metrics["val_split"] == "train[:32]" and metrics["test_examples"] == 359

    # The same command again reads the finished runs instead of training them again.
    log = (tmp_path / "runs" / "plain_seed0" / "train.log").read_text()
    assert benchmark.main(argv) == 0
    assert (tmp_path / "runs" / "plain_seed0" / "train.log").read_text() == log

    # The record alone carries the benchmark to a machine without the run folders.
    record = json.loads((tmp_path / "record" / "self_seed0.json").read_text())
    assert record["command"] == command.strip() and record["metrics"] == metrics
    assert len(record["history"]) == 1 and "val_accuracy" in record["history"][0]
    capsys.readouterr()
    moved = [*argv[:1], str(tmp_path / "elsewhere"), *argv[2:], "--no-train"]
    assert benchmark.main(moved) == 0
    assert capsys.readouterr().out == out
    assert not (tmp_path / "elsewhere").exists()
