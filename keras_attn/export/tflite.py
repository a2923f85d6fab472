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
# the inputs of an aligner, which `TFLiteModel` runs without XNNPACK when its batch is open
ALIGNER_INPUTS = {"moving", "fixed"}


@dataclasses.dataclass(frozen=True)
class TFLiteReport:
    """What `export_tflite` wrote and how close it is to Keras."""

    path: pathlib.Path
    quantization: str | None
    size_bytes: int
    ops: tuple[str, ...]
    max_abs_diff: dict[str, float]
    batch_size: int | None = None  # the file's fixed batch; None: open

    def __str__(self) -> str:
        diffs = ", ".join(f"{name} {value:.2e}" for name, value in self.max_abs_diff.items())
        batch = "" if self.batch_size is None else f", batch {self.batch_size}"
        return (
            f"{self.path} ({self.quantization or 'float32'}, {self.size_bytes / 1e6:.2f} MB, "
            f"{len(self.ops)} op types{batch}): max |TFLite - Keras| {diffs}"
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
            only (False). `None` (the default): XNNPACK, except for an aligner file (inputs
            `moving` and `fixed`) with an open batch dimension. With XNNPACK, such a file
            (as keras_attn exported aligners before they got a fixed batch of 1) returned the
            homographies of other pairs in a second interpreter of the same process once its
            batch grew from 1 to 8; the builtin kernels are right, but their first call at a
            new batch size is slow and takes gigabytes. docs/benchmarks.md, "Aligners in
            TFLite", has the trigger and the measurements.

    A model exported with a fixed batch (`export_tflite(..., batch_size=1)`, as keras_attn
    exports aligners) still takes any batch here: the inputs are run in chunks of that size
    (the last one padded with copies of its last item) and the outputs concatenated.
    """

    def __init__(
        self,
        content_or_path,
        *,
        num_threads: int | None = None,
        value_range: tuple[float, float] | None = None,
        xnnpack: bool | None = None,
    ):
        self._source = content_or_path
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer. Received: {num_threads!r}")
        self.num_threads = num_threads or available_cores()
        self.value_range = value_range
        self.xnnpack = True if xnnpack is None else xnnpack
        self.interpreter = self._interpreter()
        runner = self.interpreter.get_signature_runner("serving_default")
        details = runner.get_input_details()
        self.input_names = tuple(details)
        self.output_names = tuple(runner.get_output_details())
        batches = {int(detail["shape_signature"][0]) for detail in details.values()}
        # the batch every call of the interpreter gets; None: open (any batch, resized)
        self.batch_size = None if -1 in batches or len(batches) != 1 else batches.pop()
        self._runner = runner
        if xnnpack is None and self.batch_size is None and set(self.input_names) == ALIGNER_INPUTS:
            self.xnnpack = False
            self.interpreter = self._interpreter()
            self._runner = self.interpreter.get_signature_runner("serving_default")

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
        if self.batch_size is not None:
            return run_in_batches(self._invoke, inputs, self.batch_size)
        return self._invoke(**inputs)

    def _invoke(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
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


def run_in_batches(call, inputs: dict[str, np.ndarray], batch_size: int) -> dict:
    """`call(**chunk)` on `inputs` in chunks of exactly `batch_size` items along axis 0 (the
    last chunk padded with copies of its last item), the named outputs concatenated and cut to
    the inputs' batch. For a model with a fixed batch; every input must have the same batch."""
    sizes = {name: np.shape(value)[0] if np.ndim(value) else 0 for name, value in inputs.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise ValueError(
            "Every input needs the same batch size of at least 1 (axis 0). Received: "
            + ", ".join(f"{name} {np.shape(value)}" for name, value in inputs.items())
        )
    total = next(iter(sizes.values()))
    if total == batch_size:
        return {name: np.asarray(value) for name, value in call(**inputs).items()}
    chunks = []
    for start in range(0, total, batch_size):
        chunk = {}
        for name, value in inputs.items():
            part = value[start : start + batch_size]
            if len(part) < batch_size:
                part = np.concatenate([part, np.repeat(part[-1:], batch_size - len(part), 0)])
            chunk[name] = part
        chunks.append(call(**chunk))
    return {name: np.concatenate([c[name] for c in chunks])[:total] for name in chunks[0]}


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
    batch_size: int | None = None,
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
        saved_model_dir: an existing `export_saved_model(model, ..., output_names=...,
            batch_size=batch_size)` of the same model to convert, instead of exporting a
            temporary one (saves the export when several quantisations are made).
        batch_size: fix the batch of the TFLite file (default: open, any batch). With a fixed
            batch every tensor's shape is known at conversion, so LiteRT plans all memory
            once instead of allocating tensors while it runs: for the aligners, whose graphs
            compute shapes at run time, the first call at a new batch size on the builtin
            kernels took gigabytes and far longer than the next ones with an open batch
            (docs/benchmarks.md, "Aligners in TFLite").
            `TFLiteModel` runs a fixed-batch file on any batch, in chunks.

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
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer. Received: {batch_size!r}")
    inputs = sample_inputs(model) if inputs is None else inputs

    with tempfile.TemporaryDirectory() as workdir:
        if saved_model_dir is None:
            saved_model_dir = export_saved_model(
                model,
                pathlib.Path(workdir) / "saved_model",
                output_names=output_names,
                batch_size=batch_size,
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

        def reference_call(**arrays):
            outputs = signature(**{name: tf.constant(value) for name, value in arrays.items()})
            return {name: value.numpy() for name, value in outputs.items()}

        if batch_size is None:
            reference = reference_call(**inputs)
        else:
            reference = run_in_batches(reference_call, inputs, batch_size)

    outputs = run_tflite(content, inputs)
    differences = {
        name: float(np.abs(outputs[name].astype("float32") - reference[name]).max())
        for name in reference
    }
    from ai_edge_litert.interpreter import Interpreter

    ops = sorted({op["op_name"] for op in Interpreter(model_content=content)._get_ops_details()})
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)
    return TFLiteReport(
        pathlib.Path(path), quantization, len(content), tuple(ops), differences, batch_size
    )
