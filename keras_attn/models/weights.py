"""Starting one model from another's weights: `transfer_weights` (layers by name and shape),
`transfer_aligner_weights` (aligners whose refinement levels differ) and `float32_model` (a
model trained under a mixed precision policy, computing in float32).

Layer names in this package carry their model's name as a prefix (`sr_fast_x2_group1_block1_conv1`),
so layers are matched by the name without it (`group1_block1_conv1`): an x3 SR model starts from
an x2 one with every layer but the upsampler, and an aligner with another level schedule starts
from a trained one with each refinement iteration mapped to the source iteration at its stride.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

__all__ = ["float32_model", "transfer_aligner_weights", "transfer_weights"]


def _local_name(model: keras.Model, layer_name: str) -> str:
    return layer_name.removeprefix(f"{model.name}_")


def transfer_weights(
    source: keras.Model,
    target: keras.Model,
    *,
    rename: Callable[[str], str | None] | None = None,
) -> list[str]:
    """Copies the weights of every `target` layer from the `source` layer of the same local name
    (the name without the model-name prefix) when their weight shapes match; returns the names
    of the `target` layers left as initialised.

    Args:
        source: the trained model.
        target: the model to start; changed in place.
        rename: maps a `target` local name to the `source` local name to copy from (`None`:
            copy nothing into that layer); default: the same name.

    Example: starting an x3 SR model from a trained x2 one transfers everything but the
    upsampler, `["sr_tiny_x3_upsample_conv"]` is returned.
    """
    source_layers = {_local_name(source, layer.name): layer for layer in source.layers}
    skipped = []
    for layer in target.layers:
        if not layer.weights:
            continue
        name = _local_name(target, layer.name)
        match = source_layers.get((rename(name) if rename else name) or "")
        if match is not None and [w.shape for w in match.weights] == [
            w.shape for w in layer.weights
        ]:
            layer.set_weights(match.get_weights())
        else:
            skipped.append(layer.name)
    return skipped


def _iteration_strides(model: keras.Model) -> list[int]:
    """Each refinement iteration's stride: the grid of its match input relative to the image."""
    size = model.inputs[0].shape[1]
    strides = []
    while True:
        try:
            layer = model.get_layer(f"{model.name}_iter{len(strides) + 1}_match")
        except ValueError:
            return strides
        strides.append(size // layer.input[0].shape[1])


def transfer_aligner_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Starts `target` from a trained aligner `source` whose levels may differ; returns the
    names of `target` layers left as initialised.

    The encoder and the flow head copy by name. Each refinement iteration of `target` copies
    the matching and confidence weights of the `source` iteration at the same stride in the same
    order; a `target` with more iterations at a stride than `source` reuses the last `source`
    iteration of that stride for the extra ones (the layers are the same shapes at every
    radius). E.g. source levels strides (8, 4, 2, 2) -> target (8, 4, 4, 2, 2): iterations
    1, 2, 2, 3, 4.
    """
    source_strides, target_strides = _iteration_strides(source), _iteration_strides(target)
    if not source_strides or not target_strides:
        raise ValueError("Both models must be aligners built by keras_attn.models.aligner.")
    mapping = {}  # target iteration -> source iteration
    for i, stride in enumerate(target_strides, start=1):
        same = [j for j, s in enumerate(source_strides, start=1) if s == stride]
        if same:
            earlier = sum(1 for s in target_strides[: i - 1] if s == stride)
            mapping[i] = same[min(earlier, len(same) - 1)]

    def rename(name: str) -> str | None:
        if not name.startswith("iter"):
            return name
        index, _, tail = name[4:].partition("_")
        return f"iter{mapping[int(index)]}_{tail}" if int(index) in mapping else None

    return transfer_weights(source, target, rename=rename)


def float32_model(model: keras.Model) -> keras.Model:
    """`model` with every layer computing in float32: the model itself when it already does,
    else a copy (the same architecture, names and weights) of a model built under a mixed
    policy (`mixed_bfloat16`, `mixed_float16`), whose weights are float32 already. Layers that
    chose their own dtype (a float32 softmax, an int input) keep it. Training under a mixed
    policy saves and evaluates this copy, so `model.keras` computes as a float32 run's would."""

    def is_mixed(layer) -> bool:
        return layer.dtype_policy.name.startswith("mixed_")

    if not any(is_mixed(layer) for layer in model._flatten_layers(include_self=False)):
        return model

    def clone(layer):
        config = layer.get_config()
        if is_mixed(layer):
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
