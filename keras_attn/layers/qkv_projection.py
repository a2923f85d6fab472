"""Query / key / value projection of 2D feature maps into attention heads."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks


@keras.saving.register_keras_serializable(package="keras_attn")
class QKVProjection(keras.layers.Layer):
    """Projects a feature map to multi-head queries, keys and values.

    A 1x1 (per-pixel) linear projection of an NHWC feature map into `num_heads` heads, with the
    spatial grid flattened into tokens, as in "Attention Is All You Need" and the 2D attention
    blocks built on it (BoTNet, https://arxiv.org/abs/2101.11605). Queries come from `inputs`;
    keys and values come from `context` when it is given (cross-attention), else from `inputs`.
    Any spatial size works, including `None` H and W.

    Paper: Vaswani et al., "Attention Is All You Need", https://arxiv.org/abs/1706.03762

    Args:
        key_dim: size of each query and key head.
        num_heads: number of attention heads.
        value_dim: size of each value head; defaults to `key_dim`.
        use_bias: whether the projections have biases.
        kernel_initializer: initializer of the projection kernels.

    Call arguments:
        inputs: `(B, H, W, C)` map the queries are computed from.
        context: optional `(B, H', W', C')` map for keys and values; defaults to `inputs`.

    Returns:
        Tuple `(query, key, value)` of shapes `(B, num_heads, H*W, key_dim)`,
        `(B, num_heads, H'*W', key_dim)` and `(B, num_heads, H'*W', value_dim)`.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> q, k, v = QKVProjection(key_dim=4, num_heads=2)(x)
    >>> tuple(q.shape), tuple(v.shape)
    ((2, 2, 64, 4), (2, 2, 64, 4))
    """

    def __init__(
        self,
        key_dim: int,
        num_heads: int = 1,
        value_dim: int | None = None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _checks.positive_int("key_dim", key_dim)
        _checks.positive_int("num_heads", num_heads)
        if value_dim is not None:
            _checks.positive_int("value_dim", value_dim)
        self.key_dim = key_dim
        self.num_heads = num_heads
        self.value_dim = value_dim
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    @property
    def _value_dim(self) -> int:
        return self.value_dim or self.key_dim

    def build(self, inputs_shape, context_shape=None):
        _checks.feature_map_shape(self.name, "inputs", inputs_shape)
        context_shape = inputs_shape if context_shape is None else context_shape
        _checks.feature_map_shape(self.name, "context", context_shape)

        def dense(name, units):
            return keras.layers.Dense(
                units,
                use_bias=self.use_bias,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.query_dense = dense("query", self.num_heads * self.key_dim)
        self.key_dense = dense("key", self.num_heads * self.key_dim)
        self.value_dense = dense("value", self.num_heads * self._value_dim)
        self.query_dense.build(inputs_shape)
        self.key_dense.build(context_shape)
        self.value_dense.build(context_shape)

    def _split_heads(self, x, head_dim):
        batch = ops.shape(x)[0]
        height, width = x.shape[1], x.shape[2]
        # A static token count (when H and W are known) keeps downstream shapes static for XLA.
        tokens = -1 if height is None or width is None else height * width
        x = ops.reshape(x, (batch, tokens, self.num_heads, head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, inputs, context=None):
        context = inputs if context is None else context
        query = self._split_heads(self.query_dense(inputs), self.key_dim)
        key = self._split_heads(self.key_dense(context), self.key_dim)
        value = self._split_heads(self.value_dense(context), self._value_dim)
        return query, key, value

    def compute_output_shape(self, inputs_shape, context_shape=None):
        context_shape = inputs_shape if context_shape is None else context_shape

        def tokens(shape):
            height, width = shape[1], shape[2]
            return None if height is None or width is None else height * width

        batch = inputs_shape[0]
        return (
            (batch, self.num_heads, tokens(inputs_shape), self.key_dim),
            (batch, self.num_heads, tokens(context_shape), self.key_dim),
            (batch, self.num_heads, tokens(context_shape), self._value_dim),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "key_dim": self.key_dim,
                "num_heads": self.num_heads,
                "value_dim": self.value_dim,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
