"""SavedModel export: the serving signature by input name, the reusable-SavedModel API, and the
atomic write (a killed export leaves the previous folder)."""

import signal
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_attn import export
from keras_attn.layers import Warp


def two_input_model():
    moving = keras.Input((16, 16, 1), name="moving")
    fixed = keras.Input((16, 16, 1), name="fixed")
    both = keras.layers.Concatenate()([moving, fixed])
    flow = keras.layers.Conv2D(2, 3, padding="same", name="flow_conv")(both)
    warped = Warp(name="warp")([moving, flow])
    return keras.Model([moving, fixed], {"flow": flow, "warped": warped})


def test_saved_model_signature_and_reusable_api(sr_model, tmp_path, rng):
    path = export.export_saved_model(sr_model, tmp_path / "sm", output_names=["upscaled"])
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["image"]
    x = rng.uniform(size=(2, 9, 13, 3)).astype("float32")
    expected = np.asarray(sr_model(x))
    np.testing.assert_allclose(signature(image=tf.constant(x))["upscaled"], expected, atol=1e-5)
    np.testing.assert_allclose(loaded(tf.constant(x)), expected, atol=1e-5)
    assert len(loaded.variables) == len(sr_model.weights)
    assert len(loaded.trainable_variables) == len(sr_model.trainable_weights)
    assert list(loaded.regularization_losses) == []
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    np.testing.assert_allclose(layer(x)["upscaled"], expected, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_named_inputs_and_dict_outputs(tmp_path, rng):
    model = two_input_model()
    path = export.export_saved_model(model, tmp_path / "sm")
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert sorted(signature.structured_input_signature[1]) == ["fixed", "moving"]
    moving, fixed = (rng.uniform(size=(1, 16, 16, 1)).astype("float32") for _ in range(2))
    outputs = signature(moving=tf.constant(moving), fixed=tf.constant(fixed))
    expected = model([moving, fixed])
    np.testing.assert_allclose(outputs["warped"], expected["warped"], atol=1e-5)
    report = export.export_tflite(model, tmp_path / "m.tflite")
    assert set(report.max_abs_diff) == {"flow", "warped"}
    assert max(report.max_abs_diff.values()) < 1e-4


def test_killed_export_leaves_previous_artefact_intact(sr_model, tmp_path):
    path = tmp_path / "sm"
    export.export_saved_model(sr_model, path, output_names=["upscaled"])
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    # The child dies at the worst moment: the new export is fully written to its temporary
    # folder and the rename into place is about to happen.
    code = (
        "import os, signal\n"
        "from keras_attn import export, models\n"
        "from keras_attn import _io\n"
        "def dying_replace(*args):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "_io.os.replace = dying_replace\n"
        "_io._exchange = dying_replace  # the atomic folder swap (renameat2)\n"
        f"export.export_saved_model(models.build_model('sr_tiny_x2'), {str(path)!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False)
    assert result.returncode == -signal.SIGKILL
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
    loaded = tf.saved_model.load(str(path))
    assert "serving_default" in loaded.signatures
