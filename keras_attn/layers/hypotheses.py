"""Several global hypotheses for the aligner: propose shifts, refine each, keep the best one.

A single global shift from a cost volume locks onto the wrong repeat of a repeated pattern (a
facade, a fence, tiles): the robust mean follows the strongest mode of the matches, and on a
repeated pattern several modes are almost equally strong. These layers keep `K` hypotheses in
the graph, folded into the batch axis so that the refinement iterations run on all of them with
the same weights, and keep the hypothesis whose refined warp agrees best with the fixed image:

1. `ShiftHypotheses`: the first, global estimate plus the `K - 1` strongest other modes of the
   weighted histogram of the per-cell matches (a vote over shifts: the peaks of the global cost
   volume), each a translation;
2. `RepeatHypotheses`: the fixed and moving features repeated `K` times along the batch axis;
3. `SelectHypothesis`: the normalised cross-correlation of the fixed image and the moving image
   warped by each refined hypothesis, over the pixels the warp covers; the best one per pair.

All three have no weights: a model with `K` hypotheses loads the weights of the same model with
one. Every op converts to TFLite builtins.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers import homography_ops as hom
from keras_attn.layers._homography_layer import HomographyLayer
from keras_attn.layers._ops import first_argmax
from keras_attn.layers.warp import Warp, coverage


def _one_hot(index, count):
    """`(B,)` int indices -> `(B, count)` float32 one-hot, by comparison (TFLite builtins)."""
    return ops.cast(ops.expand_dims(index, -1) == ops.arange(count, dtype="int32"), "float32")


def _repeat(x, hypotheses):
    """`(B, ...)` -> `(B * K, ...)`, each example repeated `K` times in a row (static trailing
    shape)."""
    if hypotheses == 1:
        return x
    trailing = tuple(x.shape[1:])
    x = ops.tile(ops.expand_dims(x, 1), (1, hypotheses) + (1,) * len(trailing))
    return ops.reshape(x, (-1,) + trailing)


def _group(x, hypotheses):
    """`(B * K, ...)` -> `(B, K, ...)` (static trailing shape)."""
    return ops.reshape(x, (-1, hypotheses) + tuple(x.shape[1:]))


@keras.saving.register_keras_serializable(package="keras_attn")
class ShiftHypotheses(HomographyLayer):
    """Translation hypotheses from the per-cell matches of a global correlation.

    Every fixed cell votes, with its match weight, for its match's shift rounded to whole cells;
    a shift's strength is the sum of the votes over its 3x3 neighbouring shifts plus its own
    votes once more (so a cluster peaks at its densest bin), and the strongest shifts away from
    the ones already taken (Chebyshev distance over `suppression` cells) become hypotheses. The
    first hypothesis is always `estimate`, the robust global shift, unchanged, so with
    `hypotheses=1` the layer returns its input.

    Args:
        image_size: `(height, width)` of the images in pixels.
        stride: stride of the matched feature grid.
        hypotheses: `K`, the number of hypotheses per pair (1 or more).
        suppression: peaks within this many cells of a taken one are skipped.

    Call arguments:
        displacement: `(B, h, w, 2)` per-cell matches in cells (from `CorrelationMatch2D`).
        weights: `(B, h, w, 1)` non-negative match weights.
        estimate: `(B, 3, 3)` normalised fixed->moving first estimate (hypothesis 0).

    Returns:
        `(B * K, 3, 3)` normalised fixed->moving homographies, pair-major (pair `b`'s hypotheses
        are rows `b * K` to `b * K + K - 1`).

    Example:

    >>> layer = ShiftHypotheses(image_size=(64, 64), stride=8, hypotheses=3)
    >>> out = layer(keras.ops.zeros((2, 8, 8, 2)), keras.ops.ones((2, 8, 8, 1)),
    ...             keras.ops.tile(keras.ops.eye(3)[None], (2, 1, 1)))
    >>> tuple(out.shape)
    (6, 3, 3)
    """

    def __init__(
        self, image_size, stride: int = 8, hypotheses: int = 4, suppression: int = 2, **kwargs
    ):
        super().__init__(image_size, **kwargs)
        _checks.positive_int("stride", stride)
        _checks.positive_int("hypotheses", hypotheses)
        _checks.non_negative_int("suppression", suppression)
        self.stride = stride
        self.hypotheses = hypotheses
        self.suppression = suppression

    def call(self, displacement, weights, estimate):
        estimate = ops.cast(estimate, "float32")
        if self.hypotheses == 1:
            return estimate
        height, width = self.image_size
        rows, cols = height // self.stride, width // self.stride
        span_y, span_x = 2 * rows - 1, 2 * cols - 1
        displacement = ops.cast(displacement, "float32")
        weights = ops.reshape(ops.cast(weights, "float32"), (-1, rows * cols, 1))
        shifts = ops.round(ops.reshape(displacement, (-1, rows * cols, 2)))
        shifts = ops.clip(shifts, [-(cols - 1.0), -(rows - 1.0)], [cols - 1.0, rows - 1.0])
        bins = ops.cast(
            (shifts[..., 1] + rows - 1.0) * span_x + shifts[..., 0] + cols - 1.0, "int32"
        )
        votes = ops.sum(
            ops.cast(
                ops.expand_dims(bins, -1) == ops.arange(span_y * span_x, dtype="int32"), "float32"
            )
            * weights,
            axis=1,
        )
        # a shift's strength: its 3x3 neighbourhood (a match spread over two bins counts
        # whole) plus its own votes again, so that the peak of a cluster is its densest bin
        summed = ops.conv(
            ops.reshape(votes, (-1, span_y, span_x, 1)), ops.ones((3, 3, 1, 1)), padding="same"
        )
        votes = ops.reshape(summed, (-1, span_y * span_x)) + votes
        # centre (dx, dy) in cells of every bin
        xs = ops.cast(ops.arange(span_x), "float32") - (cols - 1.0)
        ys = ops.cast(ops.arange(span_y), "float32") - (rows - 1.0)
        centres = ops.reshape(
            ops.stack([ops.tile(xs[None, :], (span_y, 1)), ops.tile(ys[:, None], (1, span_x))], -1),
            (-1, 2),
        )
        to_normalised = ops.convert_to_tensor(
            [2.0 * self.stride / (width - 1.0), 2.0 * self.stride / (height - 1.0)]
        )
        taken = estimate[:, :2, 2] / to_normalised  # hypothesis 0's shift, in cells
        hypotheses = [estimate]
        for _ in range(self.hypotheses - 1):
            distance = ops.max(ops.abs(centres[None] - ops.expand_dims(taken, 1)), axis=-1)
            votes = ops.where(distance <= self.suppression + 1e-3, -1.0, votes)
            best = ops.take(centres, first_argmax(votes), axis=0)
            hypotheses.append(hom.translation(best * to_normalised))
            taken = best
        return ops.reshape(ops.stack(hypotheses, axis=1), (-1, 3, 3))

    def compute_output_shape(self, displacement_shape, weights_shape, estimate_shape):
        batch = estimate_shape[0]
        return (None if batch is None else batch * self.hypotheses, 3, 3)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stride": self.stride,
                "hypotheses": self.hypotheses,
                "suppression": self.suppression,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_attn")
class RepeatHypotheses(keras.layers.Layer):
    """Repeats every example `hypotheses` times along the batch axis: `(B, ...)` -> `(B * K, ...)`,
    pair-major, to line up with `ShiftHypotheses`.

    Args:
        hypotheses: `K`.

    Example:

    >>> tuple(RepeatHypotheses(3)(keras.ops.zeros((2, 4, 4, 8))).shape)
    (6, 4, 4, 8)
    """

    def __init__(self, hypotheses: int, **kwargs):
        super().__init__(**kwargs)
        _checks.positive_int("hypotheses", hypotheses)
        self.hypotheses = hypotheses

    def call(self, x):
        return _repeat(x, self.hypotheses)

    def compute_output_shape(self, shape):
        batch = shape[0]
        return (None if batch is None else batch * self.hypotheses,) + tuple(shape[1:])

    def get_config(self):
        config = super().get_config()
        config.update({"hypotheses": self.hypotheses})
        return config


@keras.saving.register_keras_serializable(package="keras_attn")
class FirstHypothesis(keras.layers.Layer):
    """Hypothesis 0 of every pair: `(B * K, ...)` -> `(B, ...)` (the single-hypothesis path, whose
    per-iteration corners the aligner's training loss sees).

    Args:
        hypotheses: `K`.
    """

    def __init__(self, hypotheses: int, **kwargs):
        super().__init__(**kwargs)
        _checks.positive_int("hypotheses", hypotheses)
        self.hypotheses = hypotheses

    def call(self, x):
        if self.hypotheses == 1:
            return x
        return _group(x, self.hypotheses)[:, 0]

    def compute_output_shape(self, shape):
        batch = shape[0]
        return (None if batch is None else batch // self.hypotheses,) + tuple(shape[1:])

    def get_config(self):
        config = super().get_config()
        config.update({"hypotheses": self.hypotheses})
        return config


@keras.saving.register_keras_serializable(package="keras_attn")
class SelectHypothesis(HomographyLayer):
    """Keeps, per pair, the hypothesis whose warp agrees best with the fixed image.

    The score is the normalised cross-correlation (insensitive to gain and bias) of `fixed` and
    `moving` warped by the hypothesis, over the pixels the warp covers; a hypothesis that covers
    under `min_overlap` of the fixed image scores -1. Ties go to the lowest index, so hypothesis
    0 (the single-hypothesis answer) wins unless another one is strictly better.

    Args:
        image_size: `(height, width)` of the images in pixels.
        hypotheses: `K`.
        min_overlap: least covered fraction of the fixed image for a hypothesis to count.
        score_stride: score on both images averaged over `score_stride x score_stride` blocks
            (1: every pixel). The sample positions are the block centres, mapped exactly by
            each hypothesis; `image_size` must be a multiple of it.

    Call arguments:
        fixed, moving: `(B, H, W, C)` images.
        estimates: `(B * K, 3, 3)` normalised fixed->moving hypotheses, pair-major.
        return_scores: also return the `(B, K)` scores.

    Returns:
        `(B, 3, 3)` the chosen normalised fixed->moving homographies (and the scores).
    """

    def __init__(
        self,
        image_size,
        hypotheses: int,
        min_overlap: float = 0.25,
        score_stride: int = 1,
        **kwargs,
    ):
        super().__init__(image_size, **kwargs)
        _checks.positive_int("hypotheses", hypotheses)
        _checks.fraction("min_overlap", min_overlap)
        _checks.positive_int("score_stride", score_stride)
        if any(side % score_stride for side in self.image_size):
            raise ValueError(
                f"score_stride must divide image_size {self.image_size}, got {score_stride}"
            )
        self.hypotheses = hypotheses
        self.min_overlap = float(min_overlap)
        self.score_stride = score_stride
        self._warp = Warp(fill_mode="constant", dtype="float32")

    def build(self, fixed_shape, moving_shape=None, estimates_shape=None):
        pass  # no weights (nor has the warp inside)

    def call(self, fixed, moving, estimates, return_scores=False):
        k = self.hypotheses
        stride = self.score_stride
        height, width = self.image_size
        rows, cols = height // stride, width // stride
        estimates = ops.cast(estimates, "float32")
        if k == 1 and not return_scores:
            return estimates
        fixed = ops.mean(ops.cast(fixed, "float32"), axis=-1, keepdims=True)
        moving = ops.mean(ops.cast(moving, "float32"), axis=-1, keepdims=True)
        if stride > 1:
            fixed = ops.average_pool(fixed, stride, strides=stride, padding="valid")
            moving = ops.average_pool(moving, stride, strides=stride, padding="valid")
        fixed, moving = _repeat(fixed, k), _repeat(moving, k)
        batch = ops.shape(estimates)[0]
        # the block centres, and where each hypothesis maps them, in block units
        points = ops.tile(hom.grid(height, width, stride)[None], (batch, 1, 1))
        to_cells = ops.convert_to_tensor(
            [(width - 1.0) / (2.0 * stride), (height - 1.0) / (2.0 * stride)]
        )
        flow = ops.reshape((hom.apply(estimates, points) - points) * to_cells, (-1, rows, cols, 2))
        corners = self._warp.corners(moving, flow)
        warped = self._warp.sample(moving, corners)
        # the warp of an all-ones image, computed from the corners: nothing to gather
        covered = ops.cast(coverage(*corners, rows, cols) > 0.999, "float32")
        area = ops.sum(covered, axis=(1, 2, 3))
        safe = ops.maximum(area, 1.0)

        def centred(image):
            mean = ops.sum(image * covered, axis=(1, 2, 3)) / safe
            return (image - ops.reshape(mean, (-1, 1, 1, 1))) * covered

        a, b = centred(warped), centred(fixed)
        ncc = ops.sum(a * b, axis=(1, 2, 3)) / ops.sqrt(
            ops.sum(a * a, axis=(1, 2, 3)) * ops.sum(b * b, axis=(1, 2, 3)) + 1e-12
        )
        enough = area >= self.min_overlap * rows * cols
        scores = ops.reshape(ops.where(enough, ncc, -1.0), (-1, k))
        choice = _one_hot(first_argmax(scores), k)
        chosen = ops.sum(_group(estimates, k) * choice[:, :, None, None], axis=1)
        if return_scores:
            return chosen, scores
        return chosen

    def compute_output_spec(self, fixed, moving, estimates, return_scores=False):
        chosen = keras.KerasTensor((fixed.shape[0], 3, 3), "float32")
        if return_scores:
            return chosen, keras.KerasTensor((fixed.shape[0], self.hypotheses), "float32")
        return chosen

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hypotheses": self.hypotheses,
                "min_overlap": self.min_overlap,
                "score_stride": self.score_stride,
            }
        )
        return config
