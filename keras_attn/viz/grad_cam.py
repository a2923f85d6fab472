"""Grad-CAM heat maps of classifiers, as numpy arrays."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_attn.viz import _inputs


def _default_cam_layer(model) -> keras.layers.Layer:
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            output = layer.output
        except (AttributeError, ValueError):
            continue  # a layer used more than once has no single output
        if isinstance(output, keras.KerasTensor) and len(output.shape) == 4:
            return layer
    raise ValueError(f"Model '{model.name}' has no layer with a 4-D output for grad_cam.")


def _class_scores(model):
    """The pre-softmax logits when the model ends in a softmax layer, else its output."""
    output = model.outputs[0]
    operation, node_index, _ = output._keras_history
    is_softmax = isinstance(operation, keras.layers.Softmax) or (
        isinstance(operation, keras.layers.Activation)
        and operation.activation is keras.activations.softmax
    )
    if is_softmax:
        return operation._inbound_nodes[node_index].input_tensors[0]
    return output


def grad_cam(
    model: keras.Model,
    images,
    class_index: int | Sequence[int] | None = None,
    layer: str | keras.layers.Layer | None = None,
) -> np.ndarray:
    """Grad-CAM heat maps of a classifier: where the evidence for a class lies in each image.

    The gradients of the class score with respect to a 4-D feature map are averaged over space
    into one weight per channel; the ReLU of the weighted sum of channels is upsampled
    (bilinear) to the image size and divided by its maximum. The class score is the logit
    before the softmax when the model ends in a `Softmax` or softmax `Activation` layer (as
    `keras_attn.models.attention_classifier` does), otherwise the model's output.

    Paper: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", https://arxiv.org/abs/1610.02391

    Args:
        model: a functional classifier with one output `(B, num_classes)`.
        images: one image `(H, W, C)` or a batch `(B, H, W, C)`, uint8 or float in [0, 1].
        class_index: the class to explain, one for all images or one per image; defaults to
            each image's predicted class.
        layer: the feature map to explain, a layer or its name; defaults to the last layer of
            the model with a 4-D output (the last convolutional stage, before global pooling).

    Returns:
        float32 `(B, H, W)` heat maps in [0, 1], with maximum 1 unless the map is all zero.

    Raises:
        ValueError: if the model is not a functional classifier, `layer` has no single 4-D
            output, `class_index` is out of range, or `images` does not fit the model.

    Example:

    >>> model = keras_attn.models.build_model("attention_cnn_tiny")
    >>> grad_cam(model, np.zeros((2, 32, 32, 3), "float32")).shape
    (2, 32, 32)
    """
    outputs = getattr(model, "outputs", None)
    if _inputs.model_inputs(model) is None or not outputs:
        raise ValueError(f"grad_cam needs a functional model. Received: {type(model).__name__}")
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        raise ValueError(
            "grad_cam needs a classifier with one output of shape (B, num_classes). "
            f"Model '{model.name}' outputs shapes {[tuple(o.shape) for o in outputs]}"
        )
    num_classes = outputs[0].shape[-1]
    inputs, image_hw, batch = _inputs.prepare_inputs(model, images)

    if layer is None:
        layer = _default_cam_layer(model)
    elif isinstance(layer, str):
        layer = model.get_layer(layer)
    try:
        features = layer.output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"grad_cam layer '{layer.name}' must be used once in the model, with one output."
        ) from error
    if len(features.shape) != 4:
        raise ValueError(
            f"grad_cam layer '{layer.name}' must output a 4-D feature map. "
            f"Received: shape {tuple(features.shape)}"
        )

    if class_index is not None:
        try:
            classes = np.broadcast_to(np.asarray(class_index), (batch,))
        except ValueError:
            classes = np.asarray([-1])
        if not np.issubdtype(classes.dtype, np.integer) or not (
            (classes >= 0).all() and (classes < num_classes).all()
        ):
            raise ValueError(
                f"class_index must be integers in [0, {num_classes}), one or one per image. "
                f"Received: class_index={class_index!r}"
            )
        classes = tf.constant(classes, dtype="int32")

    scores_tensor = _class_scores(model)
    names, specs, as_dict = _inputs.input_structure(model)
    if as_dict:
        model_inputs = dict(zip(names, specs, strict=True))
    else:
        model_inputs = specs[0] if len(specs) == 1 else specs
    try:
        # Differentiate only the part of the network after the feature map: cheaper, and it
        # keeps convolution filter gradients (never needed here) out of the computation.
        head = keras.Model(features, scores_tensor)
    except ValueError:  # the head also reads tensors from before the feature map
        head = None
    if head is not None:
        feature_maps = keras.Model(model_inputs, features)(inputs, training=False)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(feature_maps)
            scores = head(feature_maps, training=False)
            if class_index is None:
                classes = tf.argmax(scores, axis=-1, output_type=tf.int32)
            selected = tf.gather(scores, classes, axis=1, batch_dims=1)
    else:
        probe = keras.Model(model_inputs, [features, scores_tensor])
        with tf.GradientTape() as tape:  # records every op: the model's variables are watched
            feature_maps, scores = probe(inputs, training=False)
            if class_index is None:
                classes = tf.argmax(scores, axis=-1, output_type=tf.int32)
            selected = tf.gather(scores, classes, axis=1, batch_dims=1)
    gradients = tape.gradient(selected, feature_maps)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(feature_maps * weights, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, image_hw or tuple(cam.shape[1:3]), method="bilinear")[..., 0]
    cam = cam.numpy().astype("float32")
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
