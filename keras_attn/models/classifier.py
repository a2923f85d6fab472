"""Classifier family: a ResNet-style network whose residual blocks take attention by name."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras

from keras_attn.layers import NonLocal2D, SelfAttention2D
from keras_attn.layers.registry import ATTENTION_LAYERS, get_attention
from keras_attn.models.registry import register_model

STEMS = ("small", "large")

# Where each attention type goes in a stage; any other layer class gates the residual branch.
#   "conv": replaces the block's second 3x3 convolution (BoTNet);
#   "stage_end": one block after the stage's last residual block (non-local networks);
#   "branch": applied to the residual branch before the addition (SENet, CBAM).
_PLACEMENTS = {SelfAttention2D: "conv", NonLocal2D: "stage_end"}
_PART_NAMES = {layer_class: name for name, layer_class in ATTENTION_LAYERS.items()}


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_positive_ints(argument: str, values) -> tuple[int, ...]:
    ok = isinstance(values, Sequence) and not isinstance(values, str) and len(values) > 0
    ok = ok and all(_is_int(v) and v > 0 for v in values)
    if not ok:
        raise ValueError(
            f"{argument} must be a non-empty sequence of positive integers. "
            f"Received: {argument}={values!r}"
        )
    return tuple(int(v) for v in values)


def _check_input_shape(input_shape) -> tuple:
    ok = isinstance(input_shape, Sequence) and len(input_shape) == 3
    if ok:
        *spatial, channels = input_shape
        ok = all(d is None or (_is_int(d) and d > 0) for d in spatial)
        ok = ok and _is_int(channels) and channels > 0
    if not ok:
        raise ValueError(
            "input_shape must be (height, width, channels) with positive sizes (height and "
            f"width may be None). Received: input_shape={input_shape!r}"
        )
    return tuple(input_shape)


def _stage_attention(attention, num_stages: int) -> list:
    """One attention layer class (or None) per stage, from a name/class/None or a list of them."""
    if isinstance(attention, (list, tuple)):
        if len(attention) != num_stages:
            raise ValueError(
                f"attention must have one entry per stage ({num_stages}, the length of widths). "
                f"Received: attention={attention!r}"
            )
        entries = [(f"attention[{i}]", a) for i, a in enumerate(attention)]
    else:
        entries = [("attention", attention)] * num_stages
    classes = []
    for argument, entry in entries:
        try:
            classes.append(get_attention(entry))
        except ValueError as error:
            raise ValueError(f"{error} Received: {argument}={entry!r}") from None
    return classes


def _check_arguments(
    input_shape, num_classes, attention, widths, depths, stem, attention_heads, dropout
):
    """`attention_classifier`'s arguments checked (one-line errors naming the argument):
    `(input_shape, widths, depths, stage_attention)` normalised."""
    input_shape = _check_input_shape(input_shape)
    if not _is_int(num_classes) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}"
        )
    widths = _check_positive_ints("widths", widths)
    depths = _check_positive_ints("depths", depths)
    if len(depths) != len(widths):
        raise ValueError(
            f"depths must have one entry per stage (the length of widths, {len(widths)}). "
            f"Received: depths={depths!r}"
        )
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {list(STEMS)}. Received: stem={stem!r}")
    if not _is_int(attention_heads) or attention_heads < 1:
        raise ValueError(
            "attention_heads must be a positive integer. "
            f"Received: attention_heads={attention_heads!r}"
        )
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1). Received: dropout={dropout!r}")
    stage_attention = _stage_attention(attention, len(widths))
    for width, layer_class in zip(widths, stage_attention, strict=True):
        if _PLACEMENTS.get(layer_class) == "conv" and width < attention_heads:
            raise ValueError(
                "attention_heads must not exceed the width of a 'self' stage. Received: "
                f"attention_heads={attention_heads}, widths={widths}"
            )
    return input_shape, widths, depths, stage_attention


def attention_classifier(
    input_shape: Sequence[int | None],
    num_classes: int,
    *,
    attention="se",
    widths: Sequence[int] = (32, 64, 128),
    depths: Sequence[int] = (2, 2, 2),
    stem: str = "small",
    attention_heads: int = 4,
    dropout: float = 0.0,
    name: str = "attention_classifier",
) -> keras.Model:
    """ResNet-style image classifier with attention in its residual blocks; outputs probabilities.

    Sections: a stem (`"small"`: 3x3 convolution, stride 1, for 32x32 CIFAR-like images;
    `"large"`: 7x7 stride-2 convolution and 3x3 stride-2 max-pooling, for 224x224 ImageNet-like
    images); `len(widths)` stages of `depths[s]` basic residual blocks (3x3 conv-BN-ReLU, 3x3
    conv-BN, addition, ReLU; the first block of every stage after the first halves the
    resolution with stride 2 and a 1x1 projection shortcut); a head of global average pooling,
    optional dropout, a dense layer and a float32 softmax (safe under mixed precision).

    Attention is picked per stage by name through `keras_attn.layers.get_attention`:
    `"se"`, `"cbam"` and `"spatial"` gate the residual branch before the addition (SENet,
    CBAM); `"nonlocal"` adds a `NonLocal2D` block after the stage's last block (it starts as the
    identity); `"self"` replaces the second 3x3 convolution of every block in the stage with
    `SelfAttention2D(attention_heads, width // attention_heads, position="relative")` (BoTNet,
    whose last stage swaps its spatial convolutions for multi-head self-attention; the first
    convolution keeps the stride and the width change). Any H and W work, including `None`.

    Layers are named `f"{name}_stem_conv"`, `f"{name}_stage{s}_block{b}_<part>"` (parts `conv1`,
    `bn1`, `relu1`, `conv2` or `self`, `bn2`, `se` / `cbam` / `spatial`, `shortcut_conv`,
    `shortcut_bn`, `add`, `out`, and `nonlocal` after the last block of a stage) and
    `f"{name}_head_<part>"`, with stages and blocks counted from 1, so attention layers can be
    found by name, e.g. `model.get_layer("attention_classifier_stage2_block1_se")`.

    Papers: He et al., "Deep Residual Learning for Image Recognition",
    https://arxiv.org/abs/1512.03385; Hu et al., "Squeeze-and-Excitation Networks",
    https://arxiv.org/abs/1709.01507; Woo et al., "CBAM", https://arxiv.org/abs/1807.06521;
    Wang et al., "Non-local Neural Networks", https://arxiv.org/abs/1711.07971; Srinivas et
    al., "Bottleneck Transformers for Visual Recognition", https://arxiv.org/abs/2101.11605

    Args:
        input_shape: `(height, width, channels)`; height and width may be `None`.
        num_classes: number of classes, at least 2.
        attention: `"se"`, `"cbam"`, `"spatial"`, `"nonlocal"`, `"self"`, `None` (plain
            ResNet), a `keras.layers.Layer` subclass (built with its defaults, gating the
            residual branch), or a list with one of these per stage.
        widths: channels of each stage; the stem has `widths[0]`.
        depths: residual blocks of each stage, same length as `widths`.
        stem: `"small"` or `"large"`.
        attention_heads: heads of `"self"` stages; their widths must be at least this.
        dropout: dropout rate before the dense layer, in [0, 1).
        name: model name, and prefix of every layer name.

    Returns:
        A `keras.Model` with input `image` `(B, *input_shape)` (float32 in [0, 1]) and output
        `(B, num_classes)` float32 class probabilities (softmax; train with
        `SparseCategoricalCrossentropy()`, which expects probabilities by default).

    Example:

    >>> model = attention_classifier((32, 32, 3), 10, attention=[None, "cbam", "self"],
    ...                              widths=(8, 16, 32), depths=(1, 1, 1))
    >>> tuple(model(np.zeros((2, 32, 32, 3), "float32")).shape)
    (2, 10)
    """
    input_shape, widths, depths, stage_attention = _check_arguments(
        input_shape, num_classes, attention, widths, depths, stem, attention_heads, dropout
    )

    def conv(filters, kernel_size, label, strides=1):
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"{name}_{label}",
        )

    def batch_norm(label):
        # momentum 0.9 (PyTorch's 0.1) so the moving statistics keep up in short CPU runs:
        # with Keras's 0.99 they lag far behind the weights, and a short run that fits its
        # training batches scores much worse held out (inference uses the moving statistics).
        return keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_{label}")

    def relu(label):
        return keras.layers.ReLU(name=f"{name}_{label}")

    # ---- inputs
    image = keras.Input(input_shape, name="image")

    # ---- stem
    if stem == "small":
        x = conv(widths[0], 3, "stem_conv")(image)
    else:
        x = conv(widths[0], 7, "stem_conv", strides=2)(image)
    x = relu("stem_relu")(batch_norm("stem_bn")(x))
    if stem == "large":
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_stem_pool")(x)
    channels = widths[0]

    # ---- body: stages of basic residual blocks with attention
    for stage, (width, depth, layer_class) in enumerate(
        zip(widths, depths, stage_attention, strict=True), start=1
    ):
        placement = _PLACEMENTS.get(layer_class, "branch") if layer_class else None
        part = _PART_NAMES.get(layer_class, layer_class.__name__.lower() if layer_class else "")
        for block in range(1, depth + 1):
            prefix = f"stage{stage}_block{block}"
            strides = 2 if stage > 1 and block == 1 else 1
            shortcut = x
            if strides != 1 or channels != width:
                shortcut = conv(width, 1, f"{prefix}_shortcut_conv", strides=strides)(x)
                shortcut = batch_norm(f"{prefix}_shortcut_bn")(shortcut)
            y = conv(width, 3, f"{prefix}_conv1", strides=strides)(x)
            y = relu(f"{prefix}_relu1")(batch_norm(f"{prefix}_bn1")(y))
            if placement == "conv":
                y = SelfAttention2D(
                    num_heads=attention_heads,
                    key_dim=width // attention_heads,
                    position="relative",
                    name=f"{name}_{prefix}_{part}",
                )(y)
            else:
                y = conv(width, 3, f"{prefix}_conv2")(y)
            y = batch_norm(f"{prefix}_bn2")(y)
            if placement == "branch":
                y = layer_class(name=f"{name}_{prefix}_{part}")(y)
            x = keras.layers.Add(name=f"{name}_{prefix}_add")([shortcut, y])
            x = relu(f"{prefix}_out")(x)
            channels = width
        if placement == "stage_end":
            x = layer_class(name=f"{name}_stage{stage}_block{depth}_{part}")(x)

    # ---- head: global average pooling, dropout, dense, float32 softmax
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_head_pool")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=f"{name}_head_dropout")(x)
    logits = keras.layers.Dense(num_classes, name=f"{name}_head_dense")(x)
    probabilities = keras.layers.Activation(
        "softmax", dtype="float32", name=f"{name}_head_softmax"
    )(logits)
    return keras.Model(image, probabilities, name=name)


# --------------------------------------------------------------------------- presets

_CIFAR = {"input_shape": (32, 32, 3), "num_classes": 10}
# The classic CIFAR ResNet-20 layout (He et al. 2016, section 4.2): the attention comparisons
# share it, so they differ only in their attention.
_RESNET20 = {"widths": (16, 32, 64), "depths": (3, 3, 3), **_CIFAR}

# name: (description, builder arguments). Registered below, in this order.
PRESETS = {
    "attention_cnn_tiny": (
        "SE ResNet, 3 stages (16, 32, 64) x 1 block",
        {"attention": "se", "widths": (16, 32, 64), "depths": (1, 1, 1), **_CIFAR},
    ),
    "attention_cnn_small": (
        "SE ResNet, 3 stages (32, 64, 128) x 2 blocks",
        {"attention": "se", "widths": (32, 64, 128), "depths": (2, 2, 2), **_CIFAR},
    ),
    "attention_cnn_base": (
        "SE ResNet-18 layout, 4 stages (64, 128, 256, 512) x 2 blocks",
        {"attention": "se", "widths": (64, 128, 256, 512), "depths": (2, 2, 2, 2), **_CIFAR},
    ),
    "plain_resnet": (
        "ResNet-20 without attention (the baseline)",
        {"attention": None, **_RESNET20},
    ),
    "se_resnet": (
        "ResNet-20 with squeeze-and-excitation in every block",
        {"attention": "se", **_RESNET20},
    ),
    "cbam_resnet": ("ResNet-20 with CBAM in every block", {"attention": "cbam", **_RESNET20}),
    "botnet": (
        "ResNet-20 with relative-position self-attention in the last stage (BoTNet)",
        {"attention": (None, None, "self"), **_RESNET20},
    ),
    "classifier_digits": (
        "SE ResNet for 32x32 grayscale digits (the shipped bundled_digits model)",
        {
            "attention": "se",
            "widths": (16, 32, 64),
            "depths": (1, 1, 1),
            "input_shape": (32, 32, 1),
            "num_classes": 10,
        },
    ),
    "classifier_fashion": (
        "SE ResNet, 3 stages (32, 64, 96) x 2 blocks, dropout 0.2, for 28x28 grayscale "
        "Fashion-MNIST (the shipped fashion_mnist model)",
        {
            "attention": "se",
            "widths": (32, 64, 96),
            "depths": (2, 2, 2),
            "dropout": 0.2,
            "input_shape": (28, 28, 1),
            "num_classes": 10,
        },
    ),
}
for _name, (_description, _arguments) in PRESETS.items():
    register_model(
        _name, "classifier", attention_classifier, description=_description, **_arguments
    )
