"""benchmarks/bilinear_upsampling.py: the convolution formulation of the bilinear skip against
the blend per phase it replaced, alone and inside a small SR model, in Keras and TFLite."""

import json
import pathlib

import keras
import numpy as np
import pytest

from keras_attn import models
from tests.helpers import load_script

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def benchmark():
    return load_script(REPO / "benchmarks" / "bilinear_upsampling.py", "bilinear_upsampling")


def test_both_formulations_give_the_same_values_and_are_timed(benchmark, rng, tmp_path, capsys):
    keras.utils.set_random_seed(0)
    models.build_model("sr_tiny_x3").save(tmp_path / "sr.keras")
    argv = ["--size", "24", "--scales", "2,3", "--model", f"tiny={tmp_path / 'sr.keras'}"]
    argv += ["--rounds", "1", "--repeats", "1", "--json", str(tmp_path / "b.json")]
    assert benchmark.main(argv) == 0
    out = capsys.readouterr().out
    assert "| layer alone, x3 | blend per phase |" in out and "| tiny | convolution |" in out
    result = json.loads((tmp_path / "b.json").read_text())
    assert [(row["what"], row["formulation"]) for row in result["rows"]] == [
        (what, formulation)
        for what in ("layer alone, x2", "layer alone, x3", "tiny")
        for formulation in ("convolution", "blend per phase")
    ]
    assert all(row["keras_ms"] > 0 and row["tflite_ms"] > 0 for row in result["rows"])
    new_ops = {row["what"]: row["tflite_ops"] for row in result["rows"][::2]}
    old_ops = {row["what"]: row["tflite_ops"] for row in result["rows"][1::2]}
    assert "CONV_2D" in new_ops["layer alone, x2"] and "CONV_2D" not in old_ops["layer alone, x2"]
    for check in result["checks"]:
        assert check["new_vs_old"] < 1e-5
    assert all(c["new_vs_tf_image_resize"] < 1e-5 for c in result["checks"][:2])


def test_the_old_formulation_is_bilinear_too(benchmark, rng):
    # the swapped-in layer is the previous formulation, not a copy of the new one
    image = rng.uniform(size=(1, 5, 4, 3)).astype("float32")
    old = benchmark.BlendPerPhase(2)
    assert old.build.__qualname__ == "BlendPerPhase.build"
    expected = keras.layers.Resizing(10, 8, interpolation="bilinear")(image)
    np.testing.assert_allclose(old(image), expected, atol=1e-6)


def test_a_model_without_the_skip_or_a_missing_file_is_a_one_line_error(
    benchmark, tmp_path, capsys
):
    with pytest.raises(SystemExit):
        benchmark.main(["--model", f"x={tmp_path / 'missing.keras'}"])
    assert "is not a file" in capsys.readouterr().err
    keras.utils.set_random_seed(0)
    models.build_model("espcn_x2").save(tmp_path / "espcn.keras")
    with pytest.raises(SystemExit):
        benchmark.main(["--model", f"espcn={tmp_path / 'espcn.keras'}"])
    assert "has no BilinearUpsampling2D layer" in capsys.readouterr().err
