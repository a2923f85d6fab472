"""benchmarks/sr_latency_ab.py on two small untrained SR models: one table row per model."""

import pathlib

import keras
import pytest

from keras_attn import models
from tests.helpers import load_script

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_interleaved_latency_table_has_a_row_per_model(tmp_path, capsys):
    benchmark = load_script(REPO / "benchmarks" / "sr_latency_ab.py", "sr_latency_ab")
    paths = {}
    for name in ("sr_tiny_x2", "espcn_x2"):
        keras.utils.set_random_seed(0)
        paths[name] = tmp_path / f"{name}.keras"
        models.build_model(name).save(paths[name])
    argv = [f"--model=tiny={paths['sr_tiny_x2']}", f"--model=ref={paths['espcn_x2']}"]
    assert benchmark.main([*argv, "--size", "32", "--rounds", "2", "--repeats", "2"]) == 0
    table = capsys.readouterr().out
    assert "TFLite fp32, 32x32, 2 threads, 2 rounds" in table
    rows = [line for line in table.splitlines() if line.startswith(("| tiny |", "| ref |"))]
    assert len(rows) == 2
    for row in rows:
        median, spread = row.split("|")[2:4]
        low, high = map(float, spread.split("-"))
        assert low <= float(median) <= high


def test_bad_model_arguments_are_one_line_errors(tmp_path, capsys):
    benchmark = load_script(REPO / "benchmarks" / "sr_latency_ab.py", "sr_latency_ab")
    with pytest.raises(SystemExit):
        benchmark.main(["--model", "no-equals-sign"])
    assert "--model takes LABEL=PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.main(["--model", f"x={tmp_path / 'missing.keras'}"])
    assert "is neither a file nor a registry model name" in capsys.readouterr().err


def test_registry_names_and_the_keras_column(capsys):
    """A registry name is built untrained; --keras adds Keras's time and the ratio per row."""
    benchmark = load_script(REPO / "benchmarks" / "sr_latency_ab.py", "sr_latency_ab")
    argv = ["--model=tiny=sr_tiny_x2", "--keras", "--size", "32", "--rounds", "2", "--repeats", "2"]
    assert benchmark.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines.index(
        "| model | median ms | per-round medians (min-max) | Keras median ms | Keras min-max "
        "| TFLite / Keras |"
    )
    assert lines[header + 1] == "|---|---|---|---|---|---|"
    cells = lines[header + 2].strip("| ").split(" | ")
    assert cells[0] == "tiny" and len(cells) == 6
    for median, spread in ((cells[1], cells[2]), (cells[3], cells[4])):
        low, high = map(float, spread.split("-"))
        assert low <= float(median) <= high
    assert cells[5].endswith("x") and float(cells[5][:-1]) > 0
