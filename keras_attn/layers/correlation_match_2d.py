"""Dense matching by feature correlation and soft-argmax: cross-attention, positions as values."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers._ops import first_argmax, l2_normalize

# Added to the squared norm of the features: cells with almost no feature response (flat
# regions, after a ReLU) get cosines near zero, not unit vectors pointing anywhere. The shipped
# aligners were trained with this value; 1e-12 changes their outputs measurably.
_FEATURE_EPSILON = 1e-6
# From this radius on, the local cost volume is computed row offset by row offset with batched
# matmuls instead of offset by offset: the same cosines in far fewer ops, faster in TFLite
# there and slower below it (docs/benchmarks.md, "Aligners in TFLite").
_ROW_MATMUL_MIN_RADIUS = 3


@keras.saving.register_keras_serializable(package="keras_attn")
class CorrelationMatch2D(keras.layers.Layer):
    """Finds, for every cell of `fixed`, where it lies in `moving`, by correlation + soft-argmax.

    Features are L2-normalised per cell; their dot products (cosine similarities) times a learned
    scale are the attention logits of every fixed cell (query) over the moving cells (keys),
    and the attention-weighted mean of the key *positions* is the match: cross-attention whose
    values are coordinates, so the displacement is computed, not regressed. With `radius=None`
    every moving cell is a candidate (global, for large displacements on a coarse grid); with a
    radius, only the `(2r + 1)^2` cells around the same position (local, for refinement on finer
    grids, as in the cost volumes of PWC-Net and RAFT). A plain soft-argmax over all candidates
    is pulled towards the centre of the candidates, so by default the mean is taken only over
    the candidates within `peak_radius` cells of the best one (renormalised); the attention mass
    there is the confidence: near 1 for a distinct match, small in flat or repetitive regions.

    Paper: Rocco et al., "Convolutional neural network architecture for geometric matching",
    https://arxiv.org/abs/1703.05593 ; soft-argmax: Kendall et al., https://arxiv.org/abs/1703.04309

    Args:
        radius: `None` (global matching) or the half-size of the local search window, in cells.
        temperature: initial scale of the cosine logits (learned, kept positive via its log).
        peak_radius: half-size in cells of the window around the best candidate that the
            soft-argmax averages over; `None` averages over all candidates.

    Call arguments:
        fixed: `(B, H, W, C)` features of the fixed image.
        moving: `(B, H, W, C)` features of the moving image (same grid).
        return_attention_scores: also return the matching weights.

    Returns:
        `(displacement, confidence)`: `(B, H, W, 2)` float32 `(dx, dy)` in cells such that
        `fixed(y, x)` matches `moving(y + dy, x + dx)`, and `(B, H, W, 1)` float32 confidence.
        With `return_attention_scores`, also the weights: `(B, H*W, H*W)` (global) or
        `(B, H, W, (2r+1)^2)` (local).

    Example:

    >>> fixed = keras.random.normal((1, 8, 8, 16))
    >>> displacement, confidence = CorrelationMatch2D()(fixed, fixed)
    >>> tuple(displacement.shape), tuple(confidence.shape)
    ((1, 8, 8, 2), (1, 8, 8, 1))
    """

    def __init__(
        self,
        radius: int | None = None,
        temperature: float = 10.0,
        peak_radius: int | None = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _checks.optional_positive_int("radius", radius)
        _checks.positive_number("temperature", temperature)
        _checks.optional_non_negative_int("peak_radius", peak_radius)
        self.radius = radius
        self.temperature = float(temperature)
        self.peak_radius = peak_radius

    def build(self, fixed_shape, moving_shape):
        _checks.feature_map_shape(self.name, "fixed", fixed_shape)
        _checks.feature_map_shape(self.name, "moving", moving_shape)
        if tuple(fixed_shape)[1:] != tuple(moving_shape)[1:]:
            raise ValueError(
                f"Layer '{self.name}' needs fixed and moving features on the same grid. "
                f"Received: fixed.shape={tuple(fixed_shape)}, moving.shape={tuple(moving_shape)}"
            )
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(math.log(self.temperature)),
            dtype="float32",
            autocast=False,  # the cosines are float32 under mixed precision too
        )

    def call(self, fixed, moving, return_attention_scores=False):
        fixed = l2_normalize(fixed, epsilon=_FEATURE_EPSILON)
        moving = l2_normalize(moving, epsilon=_FEATURE_EPSILON)
        scale = ops.exp(self.log_scale)
        if self.radius is None:
            displacement, confidence, weights = self._global(fixed, moving, scale)
        else:
            displacement, confidence, weights = self._local(fixed, moving, scale)
        if return_attention_scores:
            return displacement, confidence, weights
        return displacement, confidence

    def _global(self, fixed, moving, scale):
        shape = ops.shape(fixed)
        batch, height, width = shape[0], shape[1], shape[2]
        channels = fixed.shape[-1]
        queries = ops.reshape(fixed, (batch, -1, channels))
        keys = ops.reshape(moving, (batch, -1, channels))
        weights = ops.softmax(ops.einsum("bqc,bkc->bqk", queries, keys) * scale, axis=-1)
        xs = ops.cast(ops.arange(width), "float32")
        ys = ops.cast(ops.arange(height), "float32")
        positions = ops.reshape(
            ops.stack(
                [ops.tile(xs[None, :], (height, 1)), ops.tile(ys[:, None], (1, width))], axis=-1
            ),
            (-1, 2),
        )
        peak, mass = self._around_peak(weights, positions)
        matched = ops.einsum("bqk,kd->bqd", peak, positions)
        displacement = ops.reshape(matched - positions[None], (batch, height, width, 2))
        confidence = ops.reshape(mass, (batch, height, width, 1))
        return displacement, confidence, weights

    def _around_peak(self, weights, positions):
        """Weights restricted to candidates within `peak_radius` of the best one, renormalised,
        and the attention mass there (the confidence)."""
        if self.peak_radius is None:
            return weights, ops.max(weights, axis=-1)
        best = ops.take(positions, first_argmax(weights), axis=0)
        # expand_dims, not `[..., None]`: TFLite has no builtin for a strided slice that adds
        # an axis after an ellipsis on a tensor of unknown dims
        distance = ops.max(ops.abs(positions - ops.expand_dims(best, -2)), axis=-1)
        inside = ops.cast(distance <= float(self.peak_radius) + 1e-3, weights.dtype)
        return self._renormalise(weights * inside)

    @staticmethod
    def _renormalise(kept):
        """(kept / its sum, the sum) along the last axis."""
        mass = ops.sum(kept, axis=-1)
        return kept / (ops.expand_dims(mass, -1) + 1e-12), mass

    def _local(self, fixed, moving, scale):
        r = self.radius
        padded = ops.pad(moving, ((0, 0), (r, r), (r, r), (0, 0)))
        offsets = [(float(dx), float(dy)) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        if r >= _ROW_MATMUL_MIN_RADIUS:
            logits = self._local_logits_by_rows(fixed, padded)
        else:
            logits = self._local_logits_by_offsets(fixed, padded)
        weights = ops.softmax(logits * scale, axis=-1)
        if self.peak_radius is None:
            peak, mass = weights, ops.max(weights, axis=-1)
        else:
            # which candidates lie within peak_radius of each candidate: a constant, so the
            # window around the best one is one row lookup (the global path computes it)
            table = np.asarray(offsets, dtype="float32")
            distance = np.abs(table[:, None, :] - table[None, :, :]).max(axis=-1)
            near = (distance <= float(self.peak_radius) + 1e-3).astype("float32")
            inside = ops.take(ops.convert_to_tensor(near), first_argmax(weights), axis=0)
            peak, mass = self._renormalise(weights * inside)
        offsets = ops.convert_to_tensor(offsets, dtype="float32")
        displacement = ops.einsum("bhwk,kd->bhwd", peak, offsets)
        return displacement, ops.expand_dims(mass, -1), weights

    def _local_logits_by_offsets(self, fixed, padded):
        """`(B, H, W, (2r + 1)^2)` cosines: a slice, a product and a sum per offset."""
        r = self.radius
        shape = ops.shape(fixed)
        logits = []
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                shifted = ops.slice(
                    padded, (0, r + dy, r + dx, 0), (shape[0], shape[1], shape[2], shape[3])
                )
                logits.append(ops.sum(fixed * shifted, axis=-1))
        return ops.stack(logits, axis=-1)

    def _local_logits_by_rows(self, fixed, padded):
        """The same cosines, in the same order, from one batched matmul per row offset.

        Every cell of a row against the whole shifted row of `padded` (length `L = W + 2r`);
        the `2r + 1` column offsets of cell `x` are `M[x, x:x + 2r + 1]`, which a flat view of
        `M` padded to rows of `L + 1` lays out as the first `2r + 1` columns of row `x`. Far
        fewer ops than one slice per offset, which is what TFLite's time depends on at
        larger radii (docs/benchmarks.md, "Aligners in TFLite").
        """
        r = self.radius
        window = 2 * r + 1
        shape = ops.shape(fixed)
        batch, height, width = shape[0], shape[1], shape[2]
        channels = fixed.shape[-1]
        length = width + 2 * r
        queries = ops.reshape(fixed, (-1, width, channels))
        rows = []
        for dy in range(window):
            keys = ops.reshape(
                ops.slice(padded, (0, dy, 0, 0), (batch, height, length, channels)),
                (-1, length, channels),
            )
            scores = ops.einsum("bqc,bkc->bqk", queries, keys)  # (B * H, W, L)
            scores = ops.reshape(scores, (batch * height, width * length))
            scores = ops.pad(scores, ((0, 0), (0, width)))
            scores = ops.reshape(scores, (batch * height, width, length + 1))
            rows.append(ops.slice(scores, (0, 0, 0), (batch * height, width, window)))
        return ops.reshape(ops.concatenate(rows, axis=-1), (batch, height, width, window**2))

    def compute_output_spec(self, fixed, moving, return_attention_scores=False):
        batch, height, width = fixed.shape[:3]
        displacement = keras.KerasTensor((batch, height, width, 2), "float32")
        confidence = keras.KerasTensor((batch, height, width, 1), "float32")
        if not return_attention_scores:
            return displacement, confidence
        if self.radius is None:
            cells = None if None in (height, width) else height * width
            weights = keras.KerasTensor((batch, cells, cells), "float32")
        else:
            weights = keras.KerasTensor((batch, height, width, (2 * self.radius + 1) ** 2))
        return displacement, confidence, weights

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "radius": self.radius,
                "temperature": self.temperature,
                "peak_radius": self.peak_radius,
            }
        )
        return config
