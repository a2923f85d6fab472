"""Numpy-in, numpy-out inference that takes a shipped model's name as well as a model:
`classify` (exported as `keras_attn.classify`). It sits above `keras_attn.pretrained` (it loads
shipped models by name) and the family registry (`keras_attn.families`), which it uses; the
other task helpers, `keras_attn.models.upscale` and `keras_attn.models.align`, take a loaded
model and live with their builders.
"""

from __future__ import annotations

from keras_attn.families.base import Lazy, _image_predict, family_of, get
from keras_attn.families.classifier import classifier_input


def _is_one_image(item) -> bool:
    """A path, a PIL image or a numpy array (an element of a list of images)."""
    import os

    import numpy as np

    return isinstance(item, (str, os.PathLike, np.ndarray)) or hasattr(item, "getbands")


def _classifier_predictor(model):
    """A `Predictor` of a classifier and its class names, from a shipped name, a `.keras` path,
    a `Predictor` or a Keras model."""
    import keras

    from keras_attn import pretrained

    if isinstance(model, str):
        model = pretrained.load_predictor(model)
    elif isinstance(model, keras.Model):
        shape = tuple(model.inputs[0].shape[1:])
        model = pretrained.Predictor(
            _image_predict(model, "keras"), family_of(model), shape, model.name
        )
    elif not isinstance(model, pretrained.Predictor):
        raise ValueError(
            "model must be a shipped classifier's name, a .keras path, a Predictor or a Keras "
            f"model. Received: {type(model).__name__}"
        )
    if model.family != "classifier":
        family = get(model.family)
        helper = family.task_helper
        helper = helper.target.replace(":", ".") if isinstance(helper, Lazy) else helper.__name__
        raise ValueError(
            f"classify takes a classifier; {model.source} is a {family.title} model (use {helper})"
        )
    return model, (model.card or {}).get("classes")


def classify(model, images) -> dict | list[dict]:
    """The top class of each image under a classifier, e.g. `classify("classifier_fashion", x)`
    (the same argument order as `keras_attn.upscale(model, image)` and `align(model, ...)`).

    Args:
        model: a shipped classifier's name, a `.keras` path, a
            `keras_attn.pretrained.Predictor` or a Keras classifier (pass a loaded one to
            classify many times without reloading).
        images: a file path, a PIL image or a numpy array `(H, W)`, `(H, W, C)` (uint8, uint16
            or float in [0, 1]; RGB or grayscale, converted and resized to the model's input as
            in training), a batch `(B, H, W[, C])` of those, or a list of paths, PIL images
            or arrays (any sizes).

    Returns:
        For one image a dict: `class` (the name from the card's `classes`, else the index as a
        string), `index`, `probability` (of that class) and `probabilities` (float32, every
        class); for a batch or a list, a list of such dicts.
    """
    import numpy as np

    from keras_attn.utils.images import image_array

    predictor, classes = _classifier_predictor(model)
    if isinstance(images, (list, tuple)) and images and all(map(_is_one_image, images)):
        items, single = [image_array(item, "images") for item in images], False
    else:
        array = image_array(images, "images")
        single = array.ndim != 4
        items = [array] if single else list(array)
    if not items:
        raise ValueError("images holds no image")
    batch = np.concatenate([classifier_input(item, predictor.input_shape) for item in items])
    probabilities = np.concatenate(
        [predictor(batch[start : start + 256]) for start in range(0, len(batch), 256)]
    )
    results = []
    for row in probabilities:
        index = int(row.argmax())
        results.append(
            {
                "class": str(classes[index]) if classes else str(index),
                "index": index,
                "probability": float(row[index]),
                "probabilities": row,
            }
        )
    return results[0] if single else results
