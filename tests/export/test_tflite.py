"""TFLite export: every quantisation within its tolerance of Keras, builtin ops only, and clear
errors for what cannot be converted."""

import keras
import numpy as np
import pytest

from keras_attn import export, models


@pytest.mark.parametrize(
    "quantization, tolerance", [(None, 1e-4), ("float16", 5e-3), ("dynamic", 0.1)]
)
def test_tflite_quantizations(sr_model, tmp_path, quantization, tolerance, rng):
    report = export.export_tflite(
        sr_model, tmp_path / "m.tflite", quantization, output_names=["upscaled"]
    )
    assert report.max_abs_diff["upscaled"] < tolerance
    assert report.size_bytes == (tmp_path / "m.tflite").stat().st_size
    assert "DEPTH_TO_SPACE" in report.ops or "TRANSPOSE" in report.ops
    assert not any(op.startswith("Flex") for op in report.ops)
    # The file runs on another size through its named signature.
    x = rng.uniform(size=(1, 20, 24, 3)).astype("float32")
    out = export.run_tflite(tmp_path / "m.tflite", {"image": x})["upscaled"]
    np.testing.assert_allclose(out, sr_model(x), atol=max(tolerance, 1e-4))


def test_int8_needs_representative_data_and_then_works(sr_model, tmp_path, rng):
    with pytest.raises(ValueError, match="representative_data"):
        export.export_tflite(sr_model, tmp_path / "m.tflite", "int8")
    samples = [rng.uniform(size=(1, 32, 32, 3)).astype("float32") for _ in range(8)]
    report = export.export_tflite(
        sr_model,
        tmp_path / "m.tflite",
        "int8",
        lambda: ([s] for s in samples),
        output_names=["upscaled"],
    )
    assert report.max_abs_diff["upscaled"] < 0.25
    assert report.size_bytes < (tmp_path / "m.tflite").stat().st_size + 1


def test_bad_quantization_and_flex_models_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="quantization="):
        export.export_tflite(models.build_model("sr_tiny_x2"), tmp_path / "m.tflite", "int4")
    inputs = keras.Input((8, 8, 3), name="image")
    resized = keras.layers.Resizing(16, 16, interpolation="bicubic")(inputs)  # not builtin
    with pytest.raises(ValueError, match="builtin ops only"):
        export.export_tflite(keras.Model(inputs, resized), tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()


def test_tflite_model_runs_on_every_available_core_by_default(sr_model, tmp_path, monkeypatch):
    # LiteRT's own default is one thread, which made TFLite half as fast as Keras on 2 cores.
    from ai_edge_litert import interpreter as litert

    export.export_tflite(sr_model, tmp_path / "m.tflite", output_names=["upscaled"])
    created = []

    class Recording(litert.Interpreter):
        def __init__(self, *args, **kwargs):
            created.append(kwargs["num_threads"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(litert, "Interpreter", Recording)
    monkeypatch.setattr(export.tflite.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert export.available_cores() == 3
    assert export.TFLiteModel(tmp_path / "m.tflite").num_threads == 3
    assert export.TFLiteModel(tmp_path / "m.tflite", num_threads=1).num_threads == 1
    assert created == [3, 1]
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        export.TFLiteModel(tmp_path / "m.tflite", num_threads=0)
