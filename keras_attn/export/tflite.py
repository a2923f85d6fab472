"""TFLite export with builtin ops only, reloaded in LiteRT and checked against Keras."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_attn._io import atomic_path
from keras_attn.export.saved_model import export_saved_model, input_specs

QUANTIZATIONS = (None, "float16", "dynamic", "int8")


@dataclasses.dataclass(frozen=True)
class TFLiteReport:
    """What `export_tflite` wrote and how close it is to Keras."""

    path: pathlib.Path
    quantization: str | None
    size_bytes: int
    ops: tuple[str, ...]
    max_abs_diff: dict[str, float]

    def __str__(self) -> str:
        diffs = ", ".join(f"{name} {value:.2e}" for name, value in self.max_abs_diff.items())
        return (
            f"{self.path} ({self.quantization or 'float32'}, {self.size_bytes / 1e6:.2f} MB, "
            f"{len(self.ops)} op types): max |TFLite - Keras| {diffs}"
        )


def sample_inputs(model: keras.Model, spatial: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Uniform [0, 1) inputs of batch 1 for every model input, unknown sizes set to `spatial`."""
    rng = np.random.default_rng(seed)
    return {
        spec.name: rng.uniform(size=[1] + [d or spatial for d in spec.shape[1:]]).astype("float32")
        for spec in input_specs(model)
    }


def check_value_range(inputs: dict, value_range: tuple[float, float] = (0.0, 1.0)) -> None:
    """Raises a `ValueError` naming the input when an array is not float images in `value_range`:
    integer arrays (e.g. uint8 0-255 photos, which a [0, 1] model turns white), values more
    than half the range outside it, or NaN/inf. Symbolic tensors are skipped."""
    low, high = value_range
    margin = 0.5 * (high - low)
    for name, value in inputs.items():
        try:
            array = np.asarray(value)
        except Exception:  # a symbolic tensor (inside a traced function): nothing to check
            continue
        if array.dtype == object:
            continue
        hint = (
            f"The model takes float32 images in [{low:g}, {high:g}]"
            + (": divide 0-255 images by 255 first" if high == 1.0 else "")
            + " (keras_attn.upscale, align and the CLI convert for you)."
        )
        if array.dtype.kind in "iub":
            raise ValueError(f"Input '{name}' has integer dtype {array.dtype}. {hint}")
        if array.size == 0:
            continue
        if not np.isfinite(array).all():
            raise ValueError(
                f"Input '{name}' contains NaN or infinite values: the model takes finite "
                f"float32 images in [{low:g}, {high:g}]."
            )
        if array.max() > high + margin or array.min() < low - margin:
            raise ValueError(
                f"Input '{name}' has values in [{array.min():g}, {array.max():g}]. {hint}"
            )


def available_cores() -> int:
    """The number of CPU cores this process may run on (its affinity mask where the OS has one,
    else `os.cpu_count()`)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class TFLiteModel:
    """A TFLite model in LiteRT, called through its `serving_default` signature.

    `TFLiteModel(path)(image=x)` returns the named outputs as a dict of numpy arrays; a model
    with one input may be called positionally, `TFLiteModel(path)(x)`. Inputs whose shape
    differs from the stored one (another batch or image size) are resized by the signature
    runner, so one instance serves any size the model allows.

    Args:
        content_or_path: a `.tflite` path, or the flatbuffer as bytes.
        num_threads: LiteRT CPU threads. `None` (the default): every core this process may run
            on (`available_cores()`). LiteRT's own default is 1 thread, which made the shipped
            `sr_x2` about twice as slow in TFLite as in Keras on 2 cores (docs/benchmarks.md,
            "TFLite speed").
        value_range: `(low, high)` of the images the model takes (`(0, 1)` for the shipped
            models, which `keras_attn.pretrained.load` sets): calls with integer arrays, NaN or
            values far outside it raise a `ValueError` (see `check_value_range`). `None`: any.
        xnnpack: run with LiteRT's default XNNPACK delegate (True) or its builtin kernels
            only. `keras_attn.pretrained.load` turns it off for aligners: with it on, an
            aligner interpreter created after another one in the same process (LiteRT 2.3)
            returned the homographies of other pairs after its batch grew from 1 to 8
            (median corner error 24.6 px instead of 0.77 on the card's pairs;
            `tests/test_pretrained.py`); the builtin kernels are right. It is not the resize
            alone: with a fresh XNNPACK interpreter for each input shape, the third
            interpreter of one aligner in a process still failed the same way, and so did
            `aligner_flow` at batch 3 in a fresh interpreter after the earlier tests of
            `tests/test_pretrained.py` (24.9 px). A repeatable trigger, and the builtin kernels'
            cost (speed, and memory on the first call at a new batch size), are in
            docs/benchmarks.md, "TFLite speed".
    """

    def __init__(
        self,
        content_or_path,
        *,
        num_threads: int | None = None,
        value_range: tuple[float, float] | None = None,
        xnnpack: bool = True,
    ):
        self._source = content_or_path
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer. Received: {num_threads!r}")
        self.num_threads = num_threads or available_cores()
        self.value_range = value_range
        self.xnnpack = xnnpack
        self.interpreter = self._interpreter()
        runner = self.interpreter.get_signature_runner("serving_default")
        self.input_names = tuple(runner.get_input_details())
        self.output_names = tuple(runner.get_output_details())
        self._runner = runner

    def _interpreter(self, **options):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        options["num_threads"] = self.num_threads
        if not self.xnnpack:
            options["experimental_op_resolver_type"] = (
                OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        if isinstance(self._source, (bytes, bytearray)):
            return Interpreter(model_content=bytes(self._source), **options)
        return Interpreter(model_path=str(self._source), **options)

    def __call__(self, *args: np.ndarray, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        if args:
            if len(args) != 1 or inputs or len(self.input_names) != 1:
                raise ValueError(
                    f"Pass the inputs by name: {list(self.input_names)}. Received "
                    f"{len(args)} positional and {sorted(inputs)} named inputs."
                )
            inputs = {self.input_names[0]: args[0]}
        if sorted(inputs) != sorted(self.input_names):
            raise ValueError(
                f"The model takes inputs {sorted(self.input_names)}. Received: {sorted(inputs)}"
            )
        if self.value_range is not None:
            check_value_range(inputs, self.value_range)
        inputs = {name: np.asarray(value, "float32") for name, value in inputs.items()}
        try:
            return self._runner(**inputs)
        except RuntimeError as error:
            # Seen once here, not reproducible: XNNPACK failing to prepare a node after a
            # resize. The builtin kernels without the default delegate compute the same
            # function.
            if "XNNPACK" not in str(error):
                raise
            from ai_edge_litert.interpreter import OpResolverType

            self.interpreter = self._interpreter(
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
            self._runner = self.interpreter.get_signature_runner("serving_default")
            return self._runner(**inputs)


def run_tflite(content_or_path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs the `serving_default` signature of a TFLite model in LiteRT on named inputs."""
    return TFLiteModel(content_or_path)(**inputs)


def _converter(saved_model_dir, quantization, representative_data):
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=["serving_default"]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [np.asarray(x, "float32") for x in sample] for sample in representative_data()
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def export_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    quantization: str | None = None,
    representative_data=None,
    *,
    inputs: dict[str, np.ndarray] | None = None,
    output_names: list[str] | None = None,
    saved_model_dir: str | os.PathLike | None = None,
) -> TFLiteReport:
    """Converts `model` to TFLite with builtin ops only, atomically, and checks it in LiteRT.

    The conversion goes through the exported SavedModel (`TFLiteConverter.from_concrete_functions`
    on a Keras 3 model leaves variables unfrozen and gives NaN), so the TFLite
    `serving_default` signature has the same named inputs and outputs.

    Args:
        model: a Keras model.
        path: the `.tflite` file to write.
        quantization: `None` (float32), `"float16"`, `"dynamic"` (int8 weights) or `"int8"`
            (full integer; needs `representative_data`). Float inputs/outputs in every case.
        representative_data: for `"int8"`: a callable returning an iterable of input lists
            (in the model's input order) that look like real data.
        inputs: named arrays for the parity check; default `sample_inputs(model)`.
        output_names: names of the outputs (see `export_saved_model`).
        saved_model_dir: an existing `export_saved_model(model, ..., output_names=...)` of the
            same model to convert, instead of exporting a temporary one (saves the export when
            several quantisations are made).

    Returns:
        A `TFLiteReport` with the ops used, the size and the max |TFLite - Keras| per output.

    Raises:
        ValueError: unknown quantization, missing representative data, or a model that needs
            ops outside the TFLite builtins (the Python LiteRT runtime has no Flex delegate).
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"quantization must be one of {list(QUANTIZATIONS)}. "
            f"Received: quantization={quantization!r}"
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError("quantization='int8' needs representative_data (a callable).")
    inputs = sample_inputs(model) if inputs is None else inputs

    with tempfile.TemporaryDirectory() as workdir:
        if saved_model_dir is None:
            saved_model_dir = export_saved_model(
                model, pathlib.Path(workdir) / "saved_model", output_names=output_names
            )
        try:
            content = _converter(saved_model_dir, quantization, representative_data).convert()
        except Exception as error:  # ConverterError and friends: one clear line
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise ValueError(
                "The model does not convert to TFLite with builtin ops only (the Python LiteRT "
                f"runtime has no Flex delegate): {first}"
            ) from None
        signature = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
        reference = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        reference = {name: value.numpy() for name, value in reference.items()}

    outputs = run_tflite(content, inputs)
    differences = {
        name: float(np.abs(outputs[name].astype("float32") - reference[name]).max())
        for name in reference
    }
    from ai_edge_litert.interpreter import Interpreter

    ops = sorted({op["op_name"] for op in Interpreter(model_content=content)._get_ops_details()})
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
    return TFLiteReport(pathlib.Path(path), quantization, len(content), tuple(ops), differences)
