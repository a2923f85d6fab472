"""Model complexity for the benchmarks and model cards: multiply-accumulates of one forward pass,
counted by TensorFlow's profiler (`count_macs`), and the candidate closest to a parameter budget
(`closest_to_budget`, the equal-parameter comparisons)."""

from __future__ import annotations

import keras
import tensorflow as tf


def count_macs(model: keras.Model, size: int = 256) -> float:
    """Multiply-accumulates of one forward pass of batch 1, unknown spatial sizes set to `size`.

    The TF profiler counts the float operations of the traced graph (a convolution counts
    2 per multiply-add); half of that is the MAC count usually quoted for SR and vision nets.

    Args:
        model: a single-input Keras model.
        size: the value of every unknown (None) input dimension after the batch, e.g. 256 for a
            256x256 image into an SR model; fixed dimensions keep their value.

    Returns:
        The MAC count as a float.
    """
    if len(model.inputs) != 1:
        raise ValueError(f"count_macs needs a single-input model. Received {len(model.inputs)}")
    shape = [1] + [size if dim is None else dim for dim in model.inputs[0].shape[1:]]
    spec = tf.TensorSpec(shape, tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler warns about its own deprecated helpers
    try:
        profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    finally:
        logger.setLevel(level)
    return profile.total_float_ops / 2.0


def closest_to_budget(candidates: list, count, budget: int) -> tuple[object, int]:
    """The candidate whose `count(candidate)` is closest to `budget`, and that count.

    `count` must grow along `candidates` (e.g. widths scaled by a growing factor): a bisection
    finds the first candidate at or over the budget with about log2(len) calls, then the
    nearer of it and the one before wins.
    """
    counts: dict[int, int] = {}

    def at(index: int) -> int:
        if index not in counts:
            counts[index] = count(candidates[index])
        return counts[index]

    low, high = 0, len(candidates) - 1
    while low < high:
        middle = (low + high) // 2
        if at(middle) >= budget:
            high = middle
        else:
            low = middle + 1
    best = min((i for i in (low - 1, low) if i >= 0), key=lambda i: abs(at(i) - budget))
    return candidates[best], at(best)
