"""benchmarks/classifier_variants.py: equal-parameter widths, one resumable run per variant and
seed through `keras-attn train classifier`, and the table (on the bundled digits, 2 steps)."""

import json
import pathlib

import keras
import numpy as np
import pytest

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


def test_runs_resume_and_the_table_reports_each_variant(benchmark, digits_dir, tmp_path, capsys):
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
    kept = keras.saving.load_model(tmp_path / "record" / "self_seed0.keras")
    assert getattr(kept, "optimizer", None) is None and kept.count_params() == metrics["params"]
    capsys.readouterr()
    moved = [*argv[:1], str(tmp_path / "elsewhere"), *argv[2:], "--no-train"]
    assert benchmark.main(moved) == 0
    assert capsys.readouterr().out == out
    assert not (tmp_path / "elsewhere").exists()


@pytest.fixture(scope="module")
def variant_maps():
    return load_script(ROOT / "benchmarks" / "variant_maps.py", "variant_maps")


def test_items_are_three_right_classes_and_the_most_missed(variant_maps):
    labels = np.array([0, 0, 1, 2, 3, 1])
    predictions = {
        "plain": np.array([0, 0, 1, 2, 0, 0]),
        "se": np.array([0, 0, 1, 2, 3, 0]),
    }
    # items 0, 2, 3 are right everywhere (classes 0, 1, 2); item 5 is missed by both.
    assert variant_maps.choose_items(predictions, labels) == [0, 2, 3, 5]


def test_variant_maps_figure_from_kept_models(variant_maps, tmp_path, capsys):
    from keras_attn.models import registry

    record = tmp_path / "record"
    record.mkdir()
    attention = {"plain": None, "cbam": "cbam", "nonlocal": (None, "nonlocal", "nonlocal")}
    for variant, spec in attention.items():
        model = registry.build_model(
            "classifier_fashion", attention=spec, widths=(16, 16, 16), depths=(1, 1, 1)
        )
        model.save(record / f"{variant}_seed0.keras")
    argv = ["--record", str(record), "--variants", "plain,cbam,nonlocal"]
    output = tmp_path / "maps.png"
    assert variant_maps.main([*argv, "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "cbam: " in out and "errors on the 256 bundled test items" in out
    from PIL import Image

    assert Image.open(output).size[0] > 400
    heat = variant_maps.variant_map(
        "nonlocal",
        keras.saving.load_model(record / "nonlocal_seed0.keras"),
        np.random.default_rng(0).random((28, 28, 1), np.float32),
        3,
    )
    assert heat.shape == (28, 28) and heat.min() == 0.0 and heat.max() == 1.0
    with pytest.raises(SystemExit):
        variant_maps.main([*argv[:2], "--variants", "self", "--output", str(tmp_path / "x.png")])
    assert "finish those runs first" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
