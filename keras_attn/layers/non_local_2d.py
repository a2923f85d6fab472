"""Non-local block: every pixel aggregates features from all pixels, weighted by affinity."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers._attention_block import ShapePreservingAttention

MODES = ("embedded_gaussian", "gaussian", "dot", "concatenation")


@keras.saving.register_keras_serializable(package="keras_attn")
class NonLocal2D(ShapePreservingAttention):
    """Non-local block: `z = x + W_z(f(x) g(x))` with a pairwise affinity `f` over all pixels.

    The four affinities of the paper: `"embedded_gaussian"` softmax(theta(x_i) . phi(x_j)),
    `"gaussian"` softmax(x_i . x_j), `"dot"` theta(x_i) . phi(x_j) / N and `"concatenation"`
    relu(w . [theta(x_i), phi(x_j)]) / N, with N the number of pixels. theta, phi and g are
    1x1 projections to `inter_channels`; the output projection W_z starts at zero, so a new
    block is the identity and can be inserted into a trained network. Affinities are float32.

    Paper: Wang et al., "Non-local Neural Networks", https://arxiv.org/abs/1711.07971

    Args:
        inter_channels: width of theta, phi and g; defaults to half the input channels.
        mode: one of `"embedded_gaussian"`, `"gaussian"`, `"dot"`, `"concatenation"`.

    Call arguments:
        inputs: `(B, H, W, C)` feature map; H and W may be `None`.
        return_attention_scores: also return the affinities.

    Returns:
        `(B, H, W, C)` map; with `return_attention_scores`, also the affinities
        `(B, 1, H*W, H*W)`.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> y, f = NonLocal2D(mode="dot")(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(f.shape)
    ((2, 8, 8, 16), (2, 1, 64, 64))
    """

    def __init__(
        self, inter_channels: int | None = None, mode: str = "embedded_gaussian", **kwargs
    ):
        super().__init__(**kwargs)
        _checks.optional_positive_int("inter_channels", inter_channels)
        _checks.one_of("mode", mode, MODES)
        self.inter_channels = inter_channels
        self.mode = mode

    def build(self, input_shape):
        _checks.feature_map_shape(self.name, "inputs", input_shape)
        channels = input_shape[-1]
        inter = self.inter_channels or max(1, channels // 2)

        def dense(name, units, **kwargs):
            layer = keras.layers.Dense(units, dtype=self.dtype_policy, name=name, **kwargs)
            return layer

        self.g = dense("g", inter)
        self.g.build(input_shape)
        if self.mode != "gaussian":
            self.theta = dense("theta", inter)
            self.phi = dense("phi", inter)
            self.theta.build(input_shape)
            self.phi.build(input_shape)
        if self.mode == "concatenation":
            self.concat_project = dense("concat_project", 2, use_bias=False)
            self.concat_project.build((None, inter))
        self.output_projection = dense("output", channels, kernel_initializer="zeros")
        self.output_projection.build(tuple(input_shape[:-1]) + (inter,))

    @staticmethod
    def _tokens(x):
        return ops.reshape(x, (ops.shape(x)[0], 1, -1, x.shape[-1]))

    def _affinity(self, inputs):
        if self.mode == "gaussian":
            tokens = self._tokens(ops.cast(inputs, "float32"))
            logits = ops.einsum("bhqc,bhkc->bhqk", tokens, tokens)
            return ops.softmax(logits, axis=-1)
        theta = self._tokens(self.theta(inputs))
        phi = self._tokens(self.phi(inputs))
        num_keys = ops.cast(ops.shape(phi)[2], "float32")
        if self.mode == "embedded_gaussian":
            logits = ops.cast(ops.einsum("bhqc,bhkc->bhqk", theta, phi), "float32")
            return ops.softmax(logits, axis=-1)
        if self.mode == "dot":
            return ops.cast(ops.einsum("bhqc,bhkc->bhqk", theta, phi), "float32") / num_keys
        # concatenation: w . [theta_i, phi_j] = w_theta . theta_i + w_phi . phi_j
        kernel = ops.cast(self.concat_project.kernel, theta.dtype)
        from_query = ops.cast(ops.matmul(theta, kernel[:, :1]), "float32")  # (B, 1, N, 1)
        from_key = ops.cast(ops.matmul(phi, kernel[:, 1:]), "float32")  # (B, 1, N, 1)
        return ops.relu(from_query + ops.transpose(from_key, (0, 1, 3, 2))) / num_keys

    def call(self, inputs, return_attention_scores=False):
        affinity = self._affinity(inputs)
        values = self._tokens(self.g(inputs))
        aggregated = ops.einsum("bhqk,bhkc->bhqc", ops.cast(affinity, values.dtype), values)
        shape = ops.shape(inputs)
        aggregated = ops.reshape(aggregated, (shape[0], shape[1], shape[2], values.shape[-1]))
        outputs = inputs + self.output_projection(aggregated)
        if return_attention_scores:
            return outputs, affinity
        return outputs

    def _scores_spec(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        tokens = None if height is None or width is None else height * width
        return keras.KerasTensor((input_shape[0], 1, tokens, tokens), "float32")

    def get_config(self):
        config = super().get_config()
        config.update({"inter_channels": self.inter_channels, "mode": self.mode})
        return config
