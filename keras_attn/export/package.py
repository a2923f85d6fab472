"""The folder format of `saved_models/` and `package_model`, which writes one atomically.

`keras_attn.pretrained` reads these folders (and re-exports `package_model`); see there and
`saved_models/README.md` for the format.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import tempfile
from collections.abc import Callable

import keras
import numpy as np

from keras_attn._io import atomic_path, sha256_of  # noqa: F401  (sha256_of public here too)
from keras_attn.export.saved_model import call_model, export_saved_model
from keras_attn.export.tflite import export_tflite
from keras_attn.export.tflite import sample_inputs as default_sample_inputs
from keras_attn.version import __version__

CARD = "card.json"
KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
# TFLite variant -> file; `variant=None` is the float32 file.
TFLITE_FILES = {"fp32": "model.tflite", "fp16": "model_fp16.tflite", "int8": "model_int8.tflite"}
# package_model quantization -> variant; "dynamic" and "int8" both make the int8 file.
QUANTIZATION_VARIANTS = {"float16": "fp16", "dynamic": "int8", "int8": "int8"}
# The names of the serving outputs of each family's shipped models.
OUTPUT_NAMES = {
    "sr": ["upscaled"],
    "classifier": ["probabilities"],
    "aligner": ["homography", "flow", "warped"],
}
# Families that ship float TFLite files only, and why (other families take every quantisation).
FLOAT_ONLY = {
    "aligner": "the warp samples the moving image at coordinates computed in the graph, and "
    "quantised coordinates (and the matches they come from) break it",
}


# Families whose TFLite files have a fixed batch (the others take any batch): an aligner's graph
# computes shapes at run time, so with an open batch LiteRT allocated its tensors during each
# first call at a new batch size, and XNNPACK returned other pairs' homographies after a resize
# (docs/benchmarks.md, "Aligners in TFLite"). `TFLiteModel` runs a fixed-batch file on any batch.
TFLITE_BATCH_SIZE = {"aligner": 1}


def tflite_batch_size(family: str) -> int | None:
    """The fixed batch of `family`'s TFLite files (`TFLITE_BATCH_SIZE`), or `None` (open)."""
    return TFLITE_BATCH_SIZE.get(family)


def check_quantization(family: str, quantization: str | None) -> None:
    """Raises a one-line `ValueError` for a quantisation that `family` does not ship:
    aligners are float32 or float16 only (no `"dynamic"` or `"int8"`)."""
    if family in FLOAT_ONLY and quantization not in (None, "float16"):
        raise ValueError(
            f"{family} models are exported as float32 or float16 only, not "
            f"quantization={quantization!r}: {FLOAT_ONLY[family]}"
        )


def _output_tensors(model: keras.Model, names: list[str] | None) -> tuple[list, list[str]]:
    """The output tensors and their serving names: a dict-output model by key (`names` picks
    and orders the keys), any other in `model.outputs` order."""
    if isinstance(model.output, dict):
        names = list(model.output) if names is None else list(names)
        return [model.output[name] for name in names], names
    return list(model.outputs), list(names or model.output_names)


def _io_entries(tensors, names: list[str], extras: dict) -> list[dict]:
    entries = []
    for tensor, name in zip(tensors, names, strict=True):
        entry = {"name": name, "shape": list(tensor.shape), "dtype": str(tensor.dtype)}
        entry.update(extras.get(name, {}))
        entries.append(entry)
    return entries


def _versions() -> dict:
    import tensorflow as tf

    return {
        "keras_attn": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "ai_edge_litert": importlib.metadata.version("ai-edge-litert"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _uncompiled_copy(model: keras.Model) -> keras.Model:
    """The same architecture and weights without optimizer state (a much smaller file)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _export_tflite_files(
    model, folder, family, quantizations, representative_data, inputs, output_names
) -> dict:
    """Writes the float32 file and one per quantisation into `folder`, converted from
    `folder/saved_model` or, for a family with a fixed TFLite batch, from a temporary SavedModel
    with that batch; returns the card's `parity.tflite` entries."""
    tflite = {}
    batch_size = tflite_batch_size(family)
    with tempfile.TemporaryDirectory() as workdir:
        converted = folder / SAVED_MODEL_DIR
        if batch_size is not None:  # the TFLite files' own SavedModel, with that batch
            converted = export_saved_model(
                model,
                pathlib.Path(workdir) / SAVED_MODEL_DIR,
                output_names=output_names,
                batch_size=batch_size,
            )
        for quantization in (None, *quantizations):
            variant = QUANTIZATION_VARIANTS.get(quantization, "fp32")
            report = export_tflite(
                model,
                folder / TFLITE_FILES[variant],
                quantization,
                representative_data if quantization == "int8" else None,
                inputs=inputs,
                output_names=output_names,
                saved_model_dir=converted,
                batch_size=batch_size,
            )
            tflite[TFLITE_FILES[variant]] = {
                "quantization": quantization or "float32",
                "batch_size": batch_size,
                "max_abs_diff_vs_keras": report.max_abs_diff,
                "ops": list(report.ops),
                "bytes": report.size_bytes,
            }
    return tflite


def package_model(
    model: keras.Model,
    name: str,
    root: str | os.PathLike,
    *,
    card: dict,
    representative_data=None,
    quantizations: tuple[str, ...] = ("float16", "dynamic"),
    sample_inputs: dict[str, np.ndarray] | None = None,
    output_names: list[str] | None = None,
    evaluate: Callable[[pathlib.Path], dict] | None = None,
    extra_endpoints: dict | None = None,
) -> pathlib.Path:
    """Writes `<root>/<name>/` in the catalogue format, atomically.

    Everything is written into a temporary folder beside the target and renamed into place only
    when complete; a failure at any point leaves an existing folder of that name untouched and
    no temporary folder behind.

    Files: `model.keras` (uncompiled), `saved_model/` (`export_saved_model`), `model.tflite`
    (float32, builtin ops), `model_fp16.tflite` for `"float16"`, `model_int8.tflite` for
    `"dynamic"` (int8 weights) or `"int8"` (full integer, needs `representative_data`), and
    `card.json`. Aligners ship float files only (`"float16"`; see `check_quantization`), with a
    batch of 1 (`TFLITE_BATCH_SIZE`; `TFLiteModel` runs them on any batch, a pair at a time).

    Args:
        model: the trained Keras model.
        name: folder name, `<family>_<variant>` (e.g. `"sr_x2"`).
        root: catalogue folder.
        card: what only the caller knows: `family`, `task`, `metrics` (measured, with the
            command that measured them), `key_metric` (a key of `metrics`), training data and
            command, ... `inputs` / `outputs` may map a tensor name to extra fields (e.g.
            `{"image": {"range": [0, 1]}}`), merged into the computed entries.
        representative_data: for `"int8"`: a callable returning an iterable of input lists.
        quantizations: subset of `"float16"`, `"dynamic"`, `"int8"` (not both of the last two).
        sample_inputs: named inputs of the TFLite parity checks (default: uniform noise).
        output_names: serving output names (default: the family's, see `OUTPUT_NAMES`).
        evaluate: optional; called with the complete temporary folder before `card.json` is
            written; the dict it returns is merged into `card["metrics"]`, so measurements of
            the exported files (e.g. TFLite accuracy) land in the same card.

    Returns:
        The folder written.
    """
    for quantization in quantizations:
        if quantization not in QUANTIZATION_VARIANTS:
            raise ValueError(
                f"quantizations must be among {list(QUANTIZATION_VARIANTS)}. "
                f"Received: quantizations={quantizations!r}"
            )
    if {"dynamic", "int8"} <= set(quantizations):
        raise ValueError("'dynamic' and 'int8' both write model_int8.tflite: choose one")
    if "int8" in quantizations and representative_data is None:
        raise ValueError("quantization 'int8' needs representative_data (a callable)")
    if "family" not in card or "metrics" not in card:
        raise ValueError("card needs at least 'family' and 'metrics'")
    for quantization in quantizations:
        check_quantization(card["family"], quantization)
    if output_names is None:
        output_names = OUTPUT_NAMES.get(card["family"])
    inputs = default_sample_inputs(model) if sample_inputs is None else sample_inputs
    folder = pathlib.Path(root) / name

    with atomic_path(folder, directory=True) as tmp:
        _uncompiled_copy(model).save(tmp / KERAS_FILE)
        reloaded = keras.saving.load_model(tmp / KERAS_FILE, compile=False)
        ordered = [inputs[t.name] for t in model.inputs]
        keras_diff = max(
            float(np.max(np.abs(np.asarray(new) - np.asarray(old))))
            for new, old in zip(
                keras.tree.flatten(call_model(reloaded, ordered)),
                keras.tree.flatten(call_model(model, ordered)),
                strict=True,
            )
        )
        if keras_diff > 1e-5:
            raise ValueError(f"{KERAS_FILE} reloads with outputs {keras_diff:.2e} off the model")

        export_saved_model(
            model, tmp / SAVED_MODEL_DIR, output_names=output_names, extra_endpoints=extra_endpoints
        )
        tflite = _export_tflite_files(
            model, tmp, card["family"], quantizations, representative_data, inputs, output_names
        )

        metrics = dict(card["metrics"])
        if evaluate is not None:
            metrics.update(evaluate(tmp))
        # Exactly what version control keeps: no empty folders (the SavedModel's assets/).
        for directory in sorted(tmp.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        files = {
            p.relative_to(tmp).as_posix(): {"sha256": sha256_of(p), "bytes": p.stat().st_size}
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
        full_card = {
            "name": name,
            **{k: v for k, v in card.items() if k not in ("inputs", "outputs", "metrics")},
            "inputs": _io_entries(
                model.inputs, [t.name for t in model.inputs], card.get("inputs", {})
            ),
            "outputs": _io_entries(*_output_tensors(model, output_names), card.get("outputs", {})),
            "params": model.count_params(),
            "signatures": ["serving_default", *sorted(extra_endpoints or {})],
            "metrics": metrics,
            "parity": {
                "inputs": {k: list(v.shape) for k, v in inputs.items()},
                "keras_reload_max_abs_diff": keras_diff,
                "tflite": tflite,
            },
            "files": files,
            "total_bytes": sum(entry["bytes"] for entry in files.values()),
            "versions": _versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        # strict JSON (no NaN or Infinity), as every JSON reader expects
        (tmp / CARD).write_text(json.dumps(full_card, indent=1, allow_nan=False) + "\n")
    return folder
