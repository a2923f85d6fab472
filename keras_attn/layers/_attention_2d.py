"""Shared core of SelfAttention2D and CrossAttention2D: multi-head attention over 2D token grids.

Conventions: tokens are pixels in row-major order (token `i` sits at row `i // W`, column
`i % W`). Scores never exceed rank 4 `(B, heads, queries, keys)` and softmax runs in float32.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers._ops import l2_normalize
from keras_attn.layers.qkv_projection import QKVProjection

POSITIONS = ("relative", "sinusoidal", None)
SIMILARITIES = ("dot", "cosine")
_MASK_VALUE = -1e30
_MAX_LOGIT_SCALE = math.log(100.0)
# Cosine similarity: queries and keys are scaled to unit length unless their norm is ~1e-6 or
# less (as PyTorch's F.normalize in Swin V2); a larger epsilon would shift the cosines of short
# vectors.
_COSINE_EPSILON = 1e-12


def sinusoidal_2d(height, width, dim: int):
    """`(height * width, dim)` float32 encoding: sin/cos of the row, then of the column."""
    quarter = -(-dim // 4)
    frequencies = ops.power(10000.0, -ops.arange(quarter, dtype="float32") / quarter)
    rows = ops.repeat(ops.arange(height, dtype="float32"), width)
    cols = ops.tile(ops.arange(width, dtype="float32"), (height,))
    row_angles = rows[:, None] * frequencies[None, :]
    col_angles = cols[:, None] * frequencies[None, :]
    encoding = ops.concatenate(
        [ops.sin(row_angles), ops.cos(row_angles), ops.sin(col_angles), ops.cos(col_angles)],
        axis=-1,
    )
    return encoding[:, :dim]


def _serial_while_loop(cond, body, loop_vars, maximum_iterations):
    """`ops.while_loop`, but one iteration at a time on TensorFlow.

    `tf.while_loop` runs up to 10 iterations concurrently by default, which multiplies the
    memory of the blockwise loop by up to 10 and defeats its purpose; the other backends run
    loop iterations in order anyway. `maximum_iterations` also lets XLA differentiate the loop.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.while_loop(
            cond,
            body,
            loop_vars,
            maximum_iterations=maximum_iterations,
            parallel_iterations=1,
        )
    return ops.while_loop(cond, body, loop_vars, maximum_iterations=maximum_iterations)


class Attention2DBase(keras.layers.Layer):
    """Multi-head attention from a query map to a context map (subclassed, not used directly)."""

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        output_dim: int | None = None,
        dropout: float = 0.0,
        position: str | None = "relative",
        similarity: str = "dot",
        block_size: int | None = None,
        key_block_size: int | None = None,
        max_distance: int = 32,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _checks.positive_int("num_heads", num_heads)
        _checks.positive_int("key_dim", key_dim)
        _checks.optional_positive_int("value_dim", value_dim)
        _checks.optional_positive_int("output_dim", output_dim)
        _checks.fraction("dropout", dropout)
        _checks.one_of("position", position, POSITIONS)
        _checks.one_of("similarity", similarity, SIMILARITIES)
        _checks.optional_positive_int("block_size", block_size)
        _checks.optional_positive_int("key_block_size", key_block_size)
        if key_block_size is not None and block_size is None:
            raise ValueError(
                "key_block_size needs block_size to be set. Received: "
                f"block_size=None, key_block_size={key_block_size}"
            )
        _checks.positive_int("max_distance", max_distance)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.output_dim = output_dim
        self.dropout = dropout
        self.position = position
        self.similarity = similarity
        self.block_size = block_size
        self.key_block_size = key_block_size
        self.max_distance = max_distance
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if dropout > 0 else None

    # ---------------------------------------------------------------- build
    def _build_attention(self, query_shape, context_shape):
        _checks.feature_map_shape(self.name, "query", query_shape)
        _checks.feature_map_shape(self.name, "context", context_shape)
        self.qkv = QKVProjection(
            key_dim=self.key_dim,
            num_heads=self.num_heads,
            value_dim=self.value_dim,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="qkv",
        )
        self.qkv.build(query_shape, context_shape)
        value_dim = self.value_dim or self.key_dim
        self.output_dense = keras.layers.Dense(
            self.output_dim or query_shape[-1],
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="output",
        )
        self.output_dense.build(tuple(query_shape[:-1]) + (self.num_heads * value_dim,))
        if self.position == "relative":
            table_shape = (2 * self.max_distance + 1, self.key_dim)
            init = keras.initializers.RandomNormal(stddev=self.key_dim**-0.5)
            self.relative_height = self.add_weight(
                name="relative_height", shape=table_shape, initializer=init
            )
            self.relative_width = self.add_weight(
                name="relative_width", shape=table_shape, initializer=init
            )
        if self.similarity == "cosine":
            self.logit_scale = self.add_weight(
                name="logit_scale",
                shape=(self.num_heads, 1, 1),
                initializer=keras.initializers.Constant(math.log(10.0)),
            )

    # ------------------------------------------------------------- attention
    def _relative_logits(self, query, query_hw, key_hw):
        """Per-row and per-column position logits, `(B, h, Nq, Hk)` and `(B, h, Nq, Wk)`."""
        (query_h, query_w), (key_h, key_w) = query_hw, key_hw
        query_rows = ops.repeat(ops.arange(query_h, dtype="int32"), query_w)
        query_cols = ops.tile(ops.arange(query_w, dtype="int32"), (query_h,))

        def axis_logits(table, query_pos, key_len):
            # logits[b, h, i, r] = q_i . table[r]; pick r = clip(key - query) + max_distance.
            per_offset = ops.einsum("bhqd,rd->bhqr", query, ops.cast(table, query.dtype))
            offsets = ops.arange(key_len, dtype="int32")[None, :] - query_pos[:, None]
            index = ops.clip(offsets, -self.max_distance, self.max_distance) + self.max_distance
            return ops.take_along_axis(per_offset, index[None, None], axis=-1)

        row_logits = axis_logits(self.relative_height, query_rows, key_h)
        col_logits = axis_logits(self.relative_width, query_cols, key_w)
        return ops.cast(row_logits, "float32"), ops.cast(col_logits, "float32")

    def _scores(self, query, key, relative, key_ids, key_w):
        """float32 logits `(B, h, Nq, len(key_ids))` for the given keys."""
        logits = ops.cast(ops.einsum("bhqd,bhkd->bhqk", query, key), "float32")
        if self.similarity == "cosine":
            logits = logits * ops.exp(
                ops.minimum(ops.cast(self.logit_scale, "float32"), _MAX_LOGIT_SCALE)
            )
        if relative is not None:
            row_logits, col_logits = relative
            logits = logits + ops.take(row_logits, key_ids // key_w, axis=-1)
            logits = logits + ops.take(col_logits, key_ids % key_w, axis=-1)
        return logits

    def _dropout(self, weights, training):
        if training and self.dropout > 0:
            return keras.random.dropout(weights, self.dropout, seed=self.seed_generator)
        return weights

    def _full_attention(self, query, key, value, relative, key_w, training):
        num_keys = ops.shape(key)[2]
        key_ids = ops.arange(num_keys, dtype="int32")
        scores = ops.softmax(self._scores(query, key, relative, key_ids, key_w), axis=-1)
        weights = self._dropout(scores, training)
        output = ops.einsum("bhqk,bhkd->bhqd", ops.cast(weights, value.dtype), value)
        return output, scores

    def _online_update(self, state, query, key, value, relative, key_ids, key_w, training):
        """Folds one block of keys into the running max, running sum and weighted values."""
        running_max, running_sum, accumulator = state
        logits = self._scores(query, key, relative, key_ids, key_w)
        new_max = ops.maximum(running_max, ops.max(logits, axis=-1, keepdims=True))
        weights = ops.exp(logits - new_max)
        correction = ops.exp(running_max - new_max)
        running_sum = running_sum * correction + ops.sum(weights, axis=-1, keepdims=True)
        weights = self._dropout(weights, training)
        update = ops.einsum("bhqk,bhkd->bhqd", weights, ops.cast(value, "float32"))
        return new_max, running_sum, accumulator * correction + update

    def _streamed_keys(self, query, key, value, relative, key_w, training):
        """Attention of one query block over all keys, `key_block_size` keys at a time.

        When one key block covers every key, a single fused softmax is used; otherwise full
        key blocks go through a loop with a running (online) softmax and the `Nk % block` keys
        left over are folded in by one more update after it, so nothing needs padding or masks.
        """
        block = self.key_block_size or self.block_size
        batch, heads = ops.shape(key)[0], self.num_heads
        num_keys = key.shape[2] if key.shape[2] is not None else ops.shape(key)[2]
        value_dim = value.shape[-1]
        if isinstance(num_keys, int) and num_keys <= block:
            output, _ = self._full_attention(query, key, value, relative, key_w, training)
            return ops.cast(output, "float32")

        num_queries = ops.shape(query)[2]
        num_full = num_keys // block
        offsets = ops.arange(block, dtype="int32")

        def full_blocks(tensor, dim):
            kept = ops.slice(tensor, (0, 0, 0, 0), (batch, heads, num_full * block, dim))
            return ops.reshape(kept, (batch, heads, num_full, block, dim))

        key_blocks = full_blocks(key, self.key_dim)
        value_blocks = full_blocks(value, value_dim)

        def body(index, *state):
            state = self._online_update(
                state,
                query,
                ops.take(key_blocks, index, axis=2),
                ops.take(value_blocks, index, axis=2),
                relative,
                index * block + offsets,
                key_w,
                training,
            )
            return (index + 1, *state)

        state = (
            ops.full((batch, heads, num_queries, 1), _MASK_VALUE, dtype="float32"),
            ops.zeros((batch, heads, num_queries, 1), dtype="float32"),
            ops.zeros((batch, heads, num_queries, value_dim), dtype="float32"),
        )
        _, *state = _serial_while_loop(
            lambda index, *_: index < num_full,
            body,
            (ops.convert_to_tensor(0, dtype="int32"), *state),
            maximum_iterations=num_full,
        )
        if not isinstance(num_keys, int) or num_keys % block:
            start = num_full * block
            rest = num_keys - start
            state = self._online_update(
                state,
                query,
                ops.slice(key, (0, 0, start, 0), (batch, heads, rest, self.key_dim)),
                ops.slice(value, (0, 0, start, 0), (batch, heads, rest, value_dim)),
                relative,
                start + ops.arange(rest, dtype="int32"),
                key_w,
                training,
            )
        _, running_sum, accumulator = state
        return accumulator / running_sum

    def _blockwise_attention(self, query, key, value, relative, key_w, training):
        """Exact attention in tiles of `block_size` queries x `key_block_size` keys.

        Query blocks go through an outer loop; each block's output is written into a
        `(num_blocks, B, h, block, dv)` buffer with `where` (builtin ops on every backend and
        in TFLite). The largest intermediate is `(B, h, block_size, key_block_size)`.
        """
        block = self.block_size
        batch, heads = ops.shape(query)[0], self.num_heads
        num_queries = query.shape[2] if query.shape[2] is not None else ops.shape(query)[2]
        value_dim = value.shape[-1]
        num_blocks = (num_queries + block - 1) // block

        def query_blocks(tensor):
            padding = num_blocks * block - num_queries
            tensor = ops.pad(tensor, [[0, 0], [0, 0], [0, padding], [0, 0]])
            return ops.reshape(tensor, (batch, heads, num_blocks, block, tensor.shape[-1]))

        blocked_query = query_blocks(query)
        blocked_relative = None if relative is None else tuple(map(query_blocks, relative))
        block_ids = ops.reshape(ops.arange(num_blocks, dtype="int32"), (-1, 1, 1, 1, 1))

        def body(index, outputs):
            relative_block = None
            if blocked_relative is not None:
                relative_block = tuple(ops.take(t, index, axis=2) for t in blocked_relative)
            block_output = self._streamed_keys(
                ops.take(blocked_query, index, axis=2),
                key,
                value,
                relative_block,
                key_w,
                training,
            )
            return index + 1, ops.where(block_ids == index, block_output[None], outputs)

        outputs = ops.zeros((num_blocks, batch, heads, block, value_dim), dtype="float32")
        _, outputs = _serial_while_loop(
            lambda index, _: index < num_blocks,
            body,
            (ops.convert_to_tensor(0, dtype="int32"), outputs),
            maximum_iterations=num_blocks,
        )
        outputs = ops.reshape(
            ops.transpose(outputs, (1, 2, 0, 3, 4)), (batch, heads, num_blocks * block, value_dim)
        )
        outputs = ops.slice(outputs, (0, 0, 0, 0), (batch, heads, num_queries, value_dim))
        return ops.cast(outputs, value.dtype)

    def _attend(self, query_map, context_map, training=None, return_attention_scores=False):
        query, key, value = self.qkv(query_map, context_map)
        query_shape, context_shape = ops.shape(query_map), ops.shape(context_map)
        query_hw = (query_shape[1], query_shape[2])
        key_hw = (context_shape[1], context_shape[2])
        if self.position == "sinusoidal":
            query = query + ops.cast(sinusoidal_2d(*query_hw, self.key_dim), query.dtype)
            key = key + ops.cast(sinusoidal_2d(*key_hw, self.key_dim), key.dtype)
        if self.similarity == "cosine":
            query = ops.cast(l2_normalize(query, epsilon=_COSINE_EPSILON), query.dtype)
            key = ops.cast(l2_normalize(key, epsilon=_COSINE_EPSILON), key.dtype)
        else:
            query = query * ops.cast(self.key_dim**-0.5, query.dtype)
        relative = None
        if self.position == "relative":
            relative = self._relative_logits(query, query_hw, key_hw)

        scores = None
        if self.block_size is None or return_attention_scores:
            output, scores = self._full_attention(query, key, value, relative, key_hw[1], training)
        else:
            output = self._blockwise_attention(query, key, value, relative, key_hw[1], training)

        # (B, h, Nq, dv) -> (B, H, W, h * dv) -> output projection.
        output = ops.transpose(output, (0, 2, 1, 3))
        output = ops.reshape(
            output, (query_shape[0], query_hw[0], query_hw[1], self.num_heads * value.shape[-1])
        )
        output = self.output_dense(output)
        if return_attention_scores:
            return output, scores
        return output

    # ------------------------------------------------------------- shapes
    def _output_shape(self, query_shape):
        return tuple(query_shape[:-1]) + (self.output_dim or query_shape[-1],)

    def _scores_shape(self, query_shape, context_shape):
        def tokens(shape):
            return None if shape[1] is None or shape[2] is None else shape[1] * shape[2]

        return (query_shape[0], self.num_heads, tokens(query_shape), tokens(context_shape))

    def _output_spec(self, query, context, return_attention_scores):
        output = keras.KerasTensor(self._output_shape(query.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        scores = keras.KerasTensor(self._scores_shape(query.shape, context.shape), "float32")
        return output, scores

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "output_dim": self.output_dim,
                "dropout": self.dropout,
                "position": self.position,
                "similarity": self.similarity,
                "block_size": self.block_size,
                "key_block_size": self.key_block_size,
                "max_distance": self.max_distance,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "seed": self.seed,
            }
        )
        return config
