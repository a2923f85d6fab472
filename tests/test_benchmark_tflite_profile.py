"""benchmarks/tflite_profile.py on small untrained models: one row per layer call, the TFLite
ops each became, and the Keras/TFLite comparison of the whole model."""

import json
import pathlib

import keras
import pytest

from keras_attn import models
from tests.helpers import load_script

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def benchmark():
    return load_script(REPO / "benchmarks" / "tflite_profile.py", "tflite_profile")


def test_sr_profile_lists_every_layer_with_its_ops(benchmark, tmp_path, capsys):
    keras.utils.set_random_seed(0)
    model = models.build_model("sr_tiny_x2")
    model.save(tmp_path / "sr.keras")
    argv = [
        "--model",
        str(tmp_path / "sr.keras"),
        "--size",
        "16",
        "--json",
        str(tmp_path / "p.json"),
    ]
    assert benchmark.main([*argv, "--rounds", "1", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "Input 16x16x3, batch 1; TFLite fp32, XNNPACK, 1 threads" in out
    assert "| Keras `predict_on_batch` |" in out and "| TFLite / Keras |" in out
    result = json.loads((tmp_path / "p.json").read_text())
    expected = [layer.name for layer in model.layers[1:]]
    assert [row["layer"] for row in result["layers"]] == expected
    by_name = {row["layer"]: row for row in result["layers"]}
    assert {"DEPTH_TO_SPACE", "TRANSPOSE"} & set(by_name["sr_tiny_x2_pixel_shuffle"]["ops"])
    assert by_name["sr_tiny_x2_shallow"]["ops"][0] == "CONV_2D"
    assert all(row["ms"] > 0 for row in result["layers"])
    assert result["keras_ms"] > 0 and result["tflite_ms"] > 0


def test_two_named_inputs_and_a_shared_layer(benchmark, tmp_path, capsys):
    # a dict-input model whose convolution is called on both inputs (as the aligners' encoder)
    moving = keras.Input((8, 8, 1), name="moving")
    fixed = keras.Input((8, 8, 1), name="fixed")
    conv = keras.layers.Conv2D(4, 3, padding="same", name="shared")
    difference = keras.layers.Subtract(name="difference")([conv(moving), conv(fixed)])
    model = keras.Model({"moving": moving, "fixed": fixed}, difference)
    model.save(tmp_path / "pair.keras")
    argv = [
        "--model",
        str(tmp_path / "pair.keras"),
        "--no-xnnpack",
        "--json",
        str(tmp_path / "p.json"),
    ]
    assert benchmark.main([*argv, "--rounds", "1", "--repeats", "1"]) == 0
    assert "builtin kernels (no XNNPACK)" in capsys.readouterr().out
    result = json.loads((tmp_path / "p.json").read_text())
    assert [row["layer"] for row in result["layers"]] == ["shared[0]", "shared[1]", "difference"]
    assert result["input_shapes"] == [[1, 8, 8, 1], [1, 8, 8, 1]]
    assert result["xnnpack_partitions"] == 0
    assert "SUB" in result["layers"][2]["ops"]


def test_bad_arguments_are_one_line_errors(benchmark, tmp_path, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(["--model", str(tmp_path / "missing.keras")])
    assert "does not exist" in capsys.readouterr().err
