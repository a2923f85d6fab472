"""Attention layers by name: the lookup the model builders use to pick a block's attention."""

from __future__ import annotations

import keras

from keras_attn.layers.cbam import CBAM
from keras_attn.layers.non_local_2d import NonLocal2D
from keras_attn.layers.self_attention_2d import SelfAttention2D
from keras_attn.layers.spatial_attention import SpatialAttention
from keras_attn.layers.squeeze_excite import SqueezeExcite

ATTENTION_LAYERS: dict[str, type[keras.layers.Layer]] = {
    "se": SqueezeExcite,
    "cbam": CBAM,
    "spatial": SpatialAttention,
    "nonlocal": NonLocal2D,
    "self": SelfAttention2D,
}


def get_attention(name_or_class_or_none):
    """Returns the attention layer class for a name, a class, or `None` (no attention).

    Args:
        name_or_class_or_none: one of `"se"`, `"cbam"`, `"spatial"`, `"nonlocal"`, `"self"`
            (case-insensitive), a `keras.layers.Layer` subclass (returned as is), or `None`.

    Returns:
        A `keras.layers.Layer` subclass, or `None`.

    Example:

    >>> get_attention("se").__name__
    'SqueezeExcite'
    """
    if name_or_class_or_none is None:
        return None
    if isinstance(name_or_class_or_none, type) and issubclass(
        name_or_class_or_none, keras.layers.Layer
    ):
        return name_or_class_or_none
    if isinstance(name_or_class_or_none, str):
        key = name_or_class_or_none.lower()
        if key in ATTENTION_LAYERS:
            return ATTENTION_LAYERS[key]
    raise ValueError(
        f"Unknown attention {name_or_class_or_none!r}. Valid names: "
        f"{sorted(ATTENTION_LAYERS)}, a keras.layers.Layer subclass, or None."
    )


def attention_name(layer_class: type[keras.layers.Layer]) -> str:
    """The registry name of an attention layer class, else its lower-cased class name.

    Model builders end the names of their attention layers with it, e.g.
    `"sr_attention_nonlocal"`, so attention maps can be found by name.

    Example:

    >>> attention_name(get_attention("nonlocal"))
    'nonlocal'
    """
    for name, registered in ATTENTION_LAYERS.items():
        if registered is layer_class:
            return name
    return layer_class.__name__.lower()
