"""Multi-head cross-attention from the pixels of one 2D feature map to those of another."""

from __future__ import annotations

import keras

from keras_attn.layers._attention_2d import Attention2DBase


@keras.saving.register_keras_serializable(package="keras_attn")
class CrossAttention2D(Attention2DBase):
    """Multi-head attention with queries from one feature map and keys/values from another.

    Each pixel of `query` attends to every pixel of `context`, as in the encoder-decoder
    attention of the Transformer applied to 2D maps; in an aligner the query is the fixed image
    and the context the moving image, so the scores say where each fixed pixel is found.
    `"relative"` positions use the offset between the key's and the query's pixel coordinates
    (meaningful when both maps share one grid). Every option of `SelfAttention2D` is supported,
    including exact blockwise attention with `block_size`.

    Paper: Vaswani et al., "Attention Is All You Need", https://arxiv.org/abs/1706.03762

    Args:
        num_heads, key_dim, value_dim, output_dim, dropout, position, similarity, block_size,
        key_block_size, max_distance, use_bias, kernel_initializer, seed: as in
            `SelfAttention2D`; `output_dim` defaults to the channels of `query`.

    Call arguments:
        query: `(B, H, W, C)` map the queries come from.
        context: `(B, H', W', C')` map the keys and values come from.
        return_attention_scores: also return the attention weights.
        training: whether dropout is active.

    Returns:
        `(B, H, W, output_dim)` map; with `return_attention_scores`, also the float32 weights
        `(B, num_heads, H*W, H'*W')`.

    Example:

    >>> fixed = keras.random.normal((1, 8, 8, 16))
    >>> moving = keras.random.normal((1, 12, 12, 16))
    >>> y, s = CrossAttention2D(2, 8)(fixed, moving, return_attention_scores=True)
    >>> tuple(y.shape), tuple(s.shape)
    ((1, 8, 8, 16), (1, 2, 64, 144))
    """

    def build(self, query_shape, context_shape):
        self._build_attention(query_shape, context_shape)

    def call(self, query, context, return_attention_scores=False, training=None):
        return self._attend(query, context, training, return_attention_scores)

    def compute_output_shape(self, query_shape, context_shape):
        return self._output_shape(query_shape)

    def compute_output_spec(self, query, context, return_attention_scores=False, training=None):
        return self._output_spec(query, context, return_attention_scores)
