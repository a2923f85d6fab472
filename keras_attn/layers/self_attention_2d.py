"""Multi-head self-attention over the pixels of a 2D feature map."""

from __future__ import annotations

import keras

from keras_attn.layers._attention_2d import Attention2DBase


@keras.saving.register_keras_serializable(package="keras_attn")
class SelfAttention2D(Attention2DBase):
    """Multi-head self-attention between all pixels of an NHWC feature map.

    Every pixel attends to every pixel of the same map, as in the multi-head self-attention
    block of BoTNet, which replaces the 3x3 convolution of a ResNet bottleneck. Positions are
    learned relative offsets (`"relative"`: q . (r_dy + r_dx), clipped at `max_distance`), a
    fixed 2D sinusoidal code added to queries and keys (`"sinusoidal"`), or none. Similarity is
    scaled dot product or cosine with a learned per-head temperature (Swin V2). With
    `block_size`, the same attention is computed exactly in tiles of `block_size` queries by
    `key_block_size` keys (default `block_size`) with a running (online) softmax over the key
    tiles, so the largest intermediate is `(B, heads, block_size, key_block_size)` instead of
    `(B, heads, H*W, H*W)`. Logits and softmax are float32 under mixed precision.

    Paper: Srinivas et al., "Bottleneck Transformers for Visual Recognition",
    https://arxiv.org/abs/2101.11605 (online softmax: Milakov & Gimelshein,
    https://arxiv.org/abs/1805.02867).

    Args:
        num_heads: number of attention heads.
        key_dim: size of each query/key head.
        value_dim: size of each value head; defaults to `key_dim`.
        output_dim: channels of the output; defaults to the input channels, so the layer can
            be used residually.
        dropout: dropout rate on the attention weights (training only).
        position: `"relative"`, `"sinusoidal"` or `None`.
        similarity: `"dot"` or `"cosine"`.
        block_size: queries (and, by default, keys) per tile for memory-bounded exact
            attention; `None` computes the full score matrix at once.
        key_block_size: keys per tile, when it should differ from `block_size`. A key tile
            that covers every key uses one fused softmax per query block: on a CPU that is
            faster than the running softmax (see benchmarks/attention.py) at memory linear,
            not quadratic, in H*W.
        max_distance: largest row/column offset with its own relative embedding; larger
            offsets share the embedding of the clipped offset.
        use_bias: whether the projections have biases.
        kernel_initializer: initializer of the projection kernels.
        seed: seed of the attention dropout.

    Call arguments:
        inputs: `(B, H, W, C)` feature map; H and W may be `None`.
        return_attention_scores: also return the attention weights.
        training: whether dropout is active.

    Returns:
        `(B, H, W, output_dim)` map; with `return_attention_scores`, also the float32 weights
        `(B, num_heads, H*W, H*W)` (always computed in full).

    Example:

    >>> x = keras.random.normal((2, 16, 16, 32))
    >>> y, scores = SelfAttention2D(num_heads=4, key_dim=8)(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(scores.shape)
    ((2, 16, 16, 32), (2, 4, 256, 256))
    """

    def build(self, input_shape):
        self._build_attention(input_shape, input_shape)

    def call(self, inputs, return_attention_scores=False, training=None):
        return self._attend(inputs, inputs, training, return_attention_scores)

    def compute_output_shape(self, input_shape):
        return self._output_shape(input_shape)

    def compute_output_spec(self, inputs, return_attention_scores=False, training=None):
        return self._output_spec(inputs, inputs, return_attention_scores)
