"""Shared test helpers (plain functions; shared fixtures are in conftest.py): `run_layer_test`
(after keras's), a builtin-only TFLite round trip, `load_script` for benchmarks/ and scripts/,
`free_ports` for multi-worker runs and `small_classifier` for the viz tests."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import tempfile

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter


def tflite_outputs(model: keras.Model, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], set]:
    """Converts `model` with builtin ops only, runs it in LiteRT, returns (outputs, op names)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    interpreter = Interpreter(model_content=flatbuffer)
    details = sorted(interpreter.get_input_details(), key=lambda d: d["index"])
    names = [tensor.name for tensor in model.inputs]
    by_name = dict(zip(names, inputs, strict=True))
    for detail in details:
        # Input names in the converted model look like "serving_default_<name>:0".
        match = [n for n in names if n in detail["name"]]
        value = by_name[match[0]] if len(match) == 1 else inputs[details.index(detail)]
        interpreter.resize_tensor_input(detail["index"], value.shape)
    interpreter.allocate_tensors()
    for detail in details:
        match = [n for n in names if n in detail["name"]]
        value = by_name[match[0]] if len(match) == 1 else inputs[details.index(detail)]
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    return outputs, ops


def _symbolic_inputs(arrays, dynamic_spatial: bool):
    def spec(array, index):
        shape = list(array.shape[1:])
        if dynamic_spatial and len(shape) == 3:
            shape[0] = shape[1] = None
        return keras.Input(shape=tuple(shape), name=f"input_{index}")

    return [spec(array, i) for i, array in enumerate(arrays)]


def _apply(layer, tensors, input_kind: str):
    if input_kind == "single":
        return layer(tensors[0])
    if input_kind == "list":
        return layer(list(tensors))
    return layer(*tensors)


def _functional(layer, arrays, input_kind, dynamic_spatial=False):
    symbolic = _symbolic_inputs(arrays, dynamic_spatial)
    return keras.Model(symbolic, _apply(layer, symbolic, input_kind))


def _changed(before, after) -> bool:
    return any(not np.allclose(b, a) for b, a in zip(before, after, strict=True))


def run_layer_test(
    layer_cls,
    init_kwargs: dict,
    inputs,
    expected_output_shape: tuple,
    expected_num_trainable_weights: int,
    *,
    input_kind: str = "single",
    expected_num_non_trainable_weights: int = 0,
    supports_dynamic_spatial: bool = True,
    mixed_precision_dtype: str = "float16",
    tflite_tolerance: float = 1e-4,
    run_tflite: bool = True,
):
    """Runs one layer configuration through every path a user relies on.

    `inputs` is one array (`input_kind="single"`), or a list of arrays passed as one list
    argument (`"list"`, e.g. Warp) or as separate positional arguments (`"args"`).
    """
    arrays = [inputs] if input_kind == "single" else list(inputs)
    arrays = [np.asarray(a, dtype="float32") for a in arrays]

    # Eager call: output shape, weight counts, finite values.
    layer = layer_cls(**init_kwargs)
    output = _apply(layer, arrays, input_kind)
    assert tuple(output.shape) == tuple(expected_output_shape)
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    output = np.asarray(output)
    assert np.isfinite(output).all()

    # Symbolic call, with H and W left as None where the layer supports it.
    dynamic_model = _functional(layer_cls(**init_kwargs), arrays, input_kind, dynamic_spatial=True)
    if supports_dynamic_spatial:
        assert tuple(dynamic_model.output.shape[1:3]) == (None, None)
        dynamic_model.set_weights(layer.get_weights())
        np.testing.assert_allclose(dynamic_model(arrays), output, atol=1e-5, rtol=1e-5)
    fixed_model = _functional(layer_cls(**init_kwargs), arrays, input_kind)
    assert tuple(fixed_model.output.shape) == (None,) + tuple(expected_output_shape[1:])
    fixed_model.set_weights(layer.get_weights())
    np.testing.assert_allclose(fixed_model(arrays), output, atol=1e-5, rtol=1e-5)

    # Config round trip gives back the constructor arguments and the same function.
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert config[key] == value, (key, config[key], value)
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    _apply(clone, arrays, input_kind)  # builds the clone's weights
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_apply(clone, arrays, input_kind), output, atol=1e-6)

    # .keras save / load (safe_mode=True, the default) gives equal outputs.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        fixed_model.save(path)
        reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded(arrays), output, atol=1e-6)

    # One training step changes the weights and gives a finite loss; then once more under XLA.
    target = np.random.default_rng(2024).normal(size=output.shape).astype("float32")
    for jit_compile in (False, True):
        model = _functional(layer_cls(**init_kwargs), arrays, input_kind)
        model.set_weights(layer.get_weights())
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=jit_compile)
        if jit_compile:
            np.testing.assert_allclose(model.predict(arrays, verbose=0), output, atol=1e-4)
        before = [np.array(w) for w in model.trainable_weights]
        loss = model.train_on_batch(arrays, target)
        assert np.isfinite(loss)
        if expected_num_trainable_weights:
            assert _changed(before, [np.array(w) for w in model.trainable_weights])

    # Mixed precision: same weights, half-precision compute, close to float32.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = layer_cls(**init_kwargs)
        _apply(mixed, arrays, input_kind)
        mixed.set_weights(layer.get_weights())
        mixed_output = _apply(mixed, arrays, input_kind)
    finally:
        keras.config.set_dtype_policy(previous)
    assert mixed_output.dtype == mixed_precision_dtype
    mixed_output = np.asarray(mixed_output, dtype="float32")
    assert np.isfinite(mixed_output).all()
    scale = max(1.0, float(np.abs(output).max()))
    np.testing.assert_allclose(mixed_output, output, atol=2e-2 * scale)

    # TFLite with builtin ops only (no Flex), checked in LiteRT against Keras.
    if run_tflite:
        (tflite_output, *_), ops = tflite_outputs(fixed_model, arrays)
        assert not any(op.startswith("Flex") for op in ops), ops
        np.testing.assert_allclose(tflite_output, output, atol=tflite_tolerance, rtol=0)


def load_script(path, name: str):
    """Imports a script (e.g. `benchmarks/training.py`) as module `name`; registered in
    `sys.modules` because dataclasses resolve annotations through it."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def free_ports(count: int) -> list[int]:
    """`count` localhost ports free right now (for multi-worker tests)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def small_classifier(attention, size=16, widths=(8, 16)):
    """A two-stage classifier (stage 2 at half resolution) with `attention` in every stage."""
    from keras_attn import models

    return models.attention_classifier(
        (size, size, 3), 3, attention=attention, widths=widths, depths=(1, 1)
    )


def softmax(logits):
    """NumPy softmax over the last axis (the references of the attention layer tests)."""
    logits = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_spatial(layer, x):
    """NumPy reference of `SpatialAttention` (and CBAM's spatial gate): channel mean/max,
    'same' zero-padded correlation with the layer's kernel, sigmoid."""
    from scipy import ndimage

    pooled = np.stack([x.mean(-1), x.max(-1)], axis=-1)
    kernel = np.array(layer.conv.kernel)[..., 0]  # (k, k, 2)
    logits = np.zeros(x.shape[:3])
    for b in range(x.shape[0]):
        for c in range(2):
            logits[b] += ndimage.correlate(pooled[b, ..., c], kernel[..., c], mode="constant")
    return sigmoid(logits + float(np.array(layer.conv.bias)[0]))[..., None]


def build_deb(root: pathlib.Path, package: str, files: dict[str, bytes], copyright: str):
    """A Debian package PACKAGE (version 1:1.0-1) holding `files` (path: bytes) and a copyright
    file, built with `dpkg-deb --build` in `root` and named as `apt-get download` names it."""
    stage = root / f"stage_{package}"
    (stage / "DEBIAN").mkdir(parents=True)
    (stage / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1:1.0-1\nArchitecture: all\n"
        "Maintainer: test <test@example.org>\nDescription: test\n"
    )
    for relative, content in files.items():
        path = stage / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    doc = stage / "usr" / "share" / "doc" / package
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(copyright)
    deb = root / f"{package}_1%3a1.0-1_all.deb"  # apt-get download's name for epoch 1
    subprocess.run(["dpkg-deb", "--build", str(stage), str(deb)], check=True, capture_output=True)
    return deb
