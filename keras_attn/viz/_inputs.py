"""Checks of the images given to the visualisation functions against a model's inputs."""

from __future__ import annotations

from collections.abc import Mapping

from keras_attn.viz import _images


def model_inputs(model) -> list | None:
    """The symbolic inputs of a functional or built Sequential model, else None."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    return list(inputs) if inputs else None


def input_structure(model):
    """`(names, specs, as_dict)` of the model's inputs, in the order of `model.inputs`.

    `specs` is None for a model without symbolic inputs (subclassed); `as_dict` says whether
    the model was built on a dict of inputs (then `names` are its keys).
    """
    specs = model_inputs(model)
    if specs is None:
        return ["images"], None, False
    try:
        structure = model.input
    except (AttributeError, ValueError):
        structure = None
    if isinstance(structure, Mapping):
        names = sorted(structure)  # the order in which keras.tree flattens a dict
        return names, [structure[name] for name in names], True
    return [spec.name for spec in specs], specs, False


def prepare_inputs(model, images):
    """Checks `images` against the model's inputs.

    Returns what to call the model on (an array, a list or a dict of float32 batches, as the
    model was built), the `(H, W)` of the first image input (None without one) and the batch
    size.
    """
    names, specs, as_dict = input_structure(model)
    if isinstance(images, Mapping):
        if specs is None or set(images) != set(names):
            raise ValueError(
                f"A dict of images must have one entry per model input {names}. "
                f"Received keys: {sorted(images)}"
            )
        arrays = [images[name] for name in names]
    elif len(names) > 1:
        if not isinstance(images, (list, tuple)) or len(images) != len(names):
            count = len(images) if isinstance(images, (list, tuple)) else 1
            raise ValueError(
                f"Model '{model.name}' has {len(names)} inputs {names}: pass a list or a dict "
                f"of {len(names)} arrays. Received {count} ({type(images).__name__})."
            )
        arrays = list(images)
    else:
        arrays = [images]

    batches, image_hw = [], None
    for index, array in enumerate(arrays):
        label = "images" if len(names) == 1 else f"images[{names[index]!r}]"
        array = _images.as_float(array, label)
        expected = tuple(specs[index].shape) if specs else (None, None, None, None)
        if array.ndim == len(expected) - 1:
            array = array[None]
        elif array.ndim != len(expected):
            raise ValueError(
                f"{label} must be one input of rank {len(expected) - 1} {expected[1:]} or a "
                f"batch of rank {len(expected)}. Received: {label}.shape={array.shape}"
            )
        for axis, size in enumerate(expected[1:], start=1):
            if size is not None and array.shape[axis] != size:
                raise ValueError(
                    f"{label} does not fit the model input {names[index]!r} of shape "
                    f"{expected}. Received: {label}.shape={array.shape}"
                )
        if image_hw is None and array.ndim == 4:
            image_hw = tuple(array.shape[1:3])
        batches.append(array)
    sizes = {len(batch) for batch in batches}
    if len(sizes) > 1:
        raise ValueError(
            "All inputs must have the same batch size. "
            f"Received shapes: {[batch.shape for batch in batches]}"
        )
    if as_dict:
        inputs = dict(zip(names, batches, strict=True))
    elif len(batches) > 1:
        inputs = batches
    else:
        inputs = batches[0]
    return inputs, image_hw, sizes.pop()
