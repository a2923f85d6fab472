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


def test_a_fixed_batch_file_runs_any_batch_in_chunks(sr_model, tmp_path, rng):
    report = export.export_tflite(
        sr_model, tmp_path / "m.tflite", output_names=["upscaled"], batch_size=2
    )
    assert report.batch_size == 2 and "batch 2" in str(report)
    runner = export.TFLiteModel(report.path)
    assert runner.batch_size == 2
    details = runner.interpreter.get_signature_runner("serving_default").get_input_details()
    assert list(details["image"]["shape_signature"][:1]) == [2]
    for batch in (1, 2, 5):  # padded, exact, two chunks and a padded one
        x = rng.uniform(size=(batch, 16, 16, 3)).astype("float32")
        out = runner(image=x)["upscaled"]
        assert out.shape == (batch, 32, 32, 3)
        np.testing.assert_allclose(out, sr_model(x), atol=1e-4)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        export.export_tflite(sr_model, tmp_path / "n.tflite", batch_size=0)
    assert not (tmp_path / "n.tflite").exists()


def test_run_in_batches_needs_one_batch_size_for_every_input():
    with pytest.raises(ValueError, match="the same batch size"):
        export.tflite.run_in_batches(
            dict, {"moving": np.zeros((2, 4)), "fixed": np.zeros((3, 4))}, 1
        )


@pytest.mark.parametrize("batch_size, xnnpack", [(None, False), (1, True)])
def test_xnnpack_is_off_by_default_only_for_an_aligner_with_an_open_batch(
    tmp_path, batch_size, xnnpack
):
    # An aligner's open-batch file mixed up pairs with XNNPACK (see TFLiteModel); a model with
    # the aligner's inputs is enough to check the rule.
    moving, fixed = keras.Input((8, 8, 1), name="moving"), keras.Input((8, 8, 1), name="fixed")
    model = keras.Model({"moving": moving, "fixed": fixed}, {"difference": moving - fixed})
    report = export.export_tflite(model, tmp_path / "m.tflite", batch_size=batch_size)
    runner = export.TFLiteModel(report.path)
    assert runner.xnnpack is xnnpack and runner.batch_size == batch_size
    assert export.TFLiteModel(report.path, xnnpack=True).xnnpack is True
    x = np.ones((3, 8, 8, 1), "float32")
    np.testing.assert_allclose(runner(moving=x, fixed=x / 2)["difference"], x / 2)
