"""SavedModel export with a named `serving_default` signature and the reusable-SavedModel API."""

from __future__ import annotations

import os
import pathlib

import keras
import tensorflow as tf

from keras_attn._io import atomic_path


def input_specs(model: keras.Model, batch_size: int | None = None) -> list[tf.TensorSpec]:
    """One named `tf.TensorSpec` per model input, batch left open (`None`) or fixed."""
    return [
        tf.TensorSpec((batch_size, *tensor.shape[1:]), tensor.dtype, name=tensor.name)
        for tensor in model.inputs
    ]


def call_model(model: keras.Model, inputs: list, training: bool = False):
    """Calls `model` on `inputs` given in the order of `model.inputs`, packed into the
    structure the model was built with (one tensor, a list, or a dict such as the aligner's
    `{"moving", "fixed"}`, which Keras refuses to take as a list)."""
    packed = keras.tree.pack_sequence_as(model.input, list(inputs))
    return model(packed, training=training)


def resolve_output_names(model: keras.Model, names: list[str] | None = None) -> list[str]:
    count = len(model.outputs)
    names = list(names) if names is not None else list(model.output_names)
    if len(names) != count:
        raise ValueError(f"output_names needs {count} names. Received: output_names={names}")
    return names


def export_saved_model(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    output_names: list[str] | None = None,
    extra_endpoints: dict | None = None,
    batch_size: int | None = None,
) -> pathlib.Path:
    """Writes `model` as a SavedModel at `path`, atomically.

    The `serving_default` signature takes the model's named inputs (`image`, or `moving` and
    `fixed`) and returns a dict of named outputs: `output_names`, default the model's own output
    names; for a dict-output model (the aligner) its keys, or the subset `output_names` picks
    (e.g. without the training-only `corners`). The object also has the reusable-SavedModel
    attributes `__call__(inputs)`, `variables`, `trainable_variables` and
    `regularization_losses`, so `tf.saved_model.load`, `keras.layers.TFSMLayer(path,
    call_endpoint="serving_default")` and `tensorflow_hub.load` all work. Loading it never needs
    keras_attn.

    `extra_endpoints` maps more signature names to `(function, input_signature)` pairs, traced
    and saved beside `serving_default` (the aligner's `align_any_size`,
    `keras_attn.models.aligner_serving`); `serving_default` stays the one TFLite converts.

    `batch_size` fixes the batch of `serving_default` and `__call__` (default: open), as
    `export_tflite(..., batch_size=...)` needs for its conversion.

    Returns:
        The path written.
    """
    specs = input_specs(model, batch_size)
    dict_outputs = isinstance(model.output, dict)
    if dict_outputs:
        names = list(model.output) if output_names is None else list(output_names)
        missing = sorted(set(names) - set(model.output))
        if missing:
            raise ValueError(
                f"output_names {missing} are not outputs of {model.name!r}: {list(model.output)}"
            )
    else:
        names = resolve_output_names(model, output_names)

    def as_dict(outputs):
        if dict_outputs:
            return {name: outputs[name] for name in names}
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(names, outputs, strict=True))

    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(*inputs):
        return as_dict(call_model(model, inputs))

    serving = archive.add_endpoint("serving_default", serve, input_signature=specs)
    if dict_outputs:
        # The serving function already returns the model's dict: `__call__` is the same
        # function. tf.saved_model.save traces every function again, so one function fewer
        # saves two traces of the aligner's large graph (a third of its export time).
        serving.get_concrete_function()
        archive.add_endpoint("__call__", serving)
    else:
        archive.add_endpoint(
            "__call__", lambda *inputs: call_model(model, inputs), input_signature=specs
        )
    for endpoint, (function, signature) in (extra_endpoints or {}).items():
        if endpoint in ("serving_default", "__call__"):
            raise ValueError(f"extra_endpoints may not replace {endpoint!r}")
        archive.add_endpoint(endpoint, function, input_signature=signature)
    archive._tf_trackable.regularization_losses = []  # reusable SavedModel: no extra losses
    with atomic_path(path, directory=True) as tmp:
        archive.write_out(str(tmp), verbose=False)
    return pathlib.Path(path)
