"""Attention maps of keras_attn models: what each attention layer attended to, as numpy arrays."""

from __future__ import annotations

import collections
import contextlib
import inspect

import keras
import numpy as np

from keras_attn.layers import (
    CBAM,
    CorrelationMatch2D,
    CrossAttention2D,
    NonLocal2D,
    SelfAttention2D,
    SpatialAttention,
    SqueezeExcite,
)
from keras_attn.viz import _inputs

ATTENTION_TYPES = (
    SqueezeExcite,
    SpatialAttention,
    CBAM,
    SelfAttention2D,
    NonLocal2D,
    CrossAttention2D,
    CorrelationMatch2D,
)
# Layers whose scores are (B, heads, queries, keys) over pixel tokens.
_TOKEN_TYPES = (SelfAttention2D, NonLocal2D, CrossAttention2D)
# Layers called on (query, context) feature maps.
_PAIR_TYPES = (CrossAttention2D, CorrelationMatch2D)
_MISSING = object()


def _query_pixels(query_pixels, image_hw) -> list[tuple[int, int]]:
    height, width = image_hw
    if query_pixels is None:
        return [(height // 2, width // 2)]
    pixels = np.asarray(query_pixels)
    if pixels.ndim == 1:
        pixels = pixels[None]
    if (
        pixels.ndim != 2
        or pixels.shape[0] == 0
        or pixels.shape[1] != 2
        or not np.issubdtype(pixels.dtype, np.integer)
    ):
        raise ValueError(
            "query_pixels must be one (row, col) pair of integer pixel coordinates or a "
            f"sequence of them. Received: query_pixels={query_pixels!r}"
        )
    for row, col in pixels:
        if not (0 <= row < height and 0 <= col < width):
            raise ValueError(
                f"query_pixels must lie inside the {height}x{width} input image. "
                f"Received: ({row}, {col})"
            )
    return [(int(row), int(col)) for row, col in pixels]


# --------------------------------------------------------------------------- layers


def _attention_layers(model) -> list[tuple[str, keras.layers.Layer]]:
    """`(path, layer)` for every attention layer in `model`, nested models and layers included.

    The path is the layer's name, prefixed by the names of the models or layers that contain
    it (`"encoder/stage1_se"`). The sublayers of an attention layer (CBAM's spatial attention)
    are part of it and are not listed.
    """
    found, seen = [], set()

    def visit(container, prefix):
        for layer in container._flatten_layers(include_self=False, recursive=False):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            path = prefix + layer.name
            if isinstance(layer, ATTENTION_TYPES):
                found.append((path, layer))
            else:
                visit(layer, path + "/")

    visit(model, "")
    return found


def _select(model, found, layers):
    if layers is None:
        return found
    if isinstance(layers, (str, keras.layers.Layer)):
        layers = [layers]
    chosen = set()
    for item in layers:
        if isinstance(item, keras.layers.Layer):
            matches = [id(layer) for _, layer in found if layer is item]
        else:
            matches = [id(layer) for path, layer in found if item in (path, layer.name)]
        if not matches:
            raise ValueError(
                f"layers: {item!r} is not an attention layer of model '{model.name}'. "
                f"Its attention layers: {[path for path, _ in found]}"
            )
        chosen.update(matches)
    return [(path, layer) for path, layer in found if id(layer) in chosen]


def _recorder(path, layer, original, records):
    """A stand-in for `layer.call` that also records the attention scores of every call."""
    signature = inspect.signature(original)
    first, *rest = signature.parameters

    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        wanted = bool(bound.arguments.get("return_attention_scores", False))
        bound.arguments["return_attention_scores"] = True
        result = original(*bound.args, **bound.kwargs)
        scores = result[-1]
        # (outputs, scores), or for CorrelationMatch2D (displacement, confidence, weights)
        outputs = result[0] if len(result) == 2 else tuple(result[:-1])
        query = bound.arguments[first]
        context = bound.arguments[rest[0]] if isinstance(layer, _PAIR_TYPES) else query
        records.append(
            (
                path,
                layer,
                keras.tree.map_structure(
                    lambda s: keras.ops.convert_to_numpy(s).astype("float32"), scores
                ),
                tuple(query.shape[1:3]),
                tuple(context.shape[1:3]),
            )
        )
        return result if wanted else outputs

    return call


@contextlib.contextmanager
def _recording(layers):
    """Makes every layer in `layers` record its scores while the block runs."""
    records, previous = [], []
    try:
        for path, layer in layers:
            previous.append((layer, vars(layer).get("call", _MISSING)))
            object.__setattr__(layer, "call", _recorder(path, layer, layer.call, records))
        yield records
    finally:
        for layer, call in reversed(previous):
            if call is _MISSING:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", call)


def _grid_index(pixel: int, image_size: int, grid_size: int) -> int:
    """The cell of a `grid_size` grid covering a `image_size` image that holds `pixel`."""
    return min(grid_size - 1, int((pixel + 0.5) * grid_size / image_size))


def _token_maps(scores, pixels, image_hw, query_hw, context_hw) -> np.ndarray:
    """`(B, heads, Nq, Nk)` scores -> head-averaged rows of the query pixels `(B, Q, Hc, Wc)`."""
    averaged = scores.mean(axis=1)
    tokens = [
        _grid_index(row, image_hw[0], query_hw[0]) * query_hw[1]
        + _grid_index(col, image_hw[1], query_hw[1])
        for row, col in pixels
    ]
    rows = averaged[:, tokens, :]
    return rows.reshape(rows.shape[0], len(tokens), *context_hw)


def _window_maps(weights, pixels, image_hw) -> np.ndarray:
    """Local matching weights `(B, H, W, (2r+1)^2)` -> each query's window on the grid.

    Window entries are ordered row offset first (`dy` then `dx`, each from `-r` to `r`); those
    that fall outside the grid (matched against padding) are left out.
    """
    batch, height, width, cells = weights.shape
    radius = (round(cells**0.5) - 1) // 2
    side = 2 * radius + 1
    maps = np.zeros((batch, len(pixels), height, width), "float32")
    for query, (row, col) in enumerate(pixels):
        cell_y = _grid_index(row, image_hw[0], height)
        cell_x = _grid_index(col, image_hw[1], width)
        window = weights[:, cell_y, cell_x].reshape(batch, side, side)
        top, left = cell_y - radius, cell_x - radius
        y0, y1 = max(0, top), min(height, top + side)
        x0, x1 = max(0, left), min(width, left + side)
        maps[:, query, y0:y1, x0:x1] = window[:, y0 - top : y1 - top, x0 - left : x1 - left]
    return maps


# --------------------------------------------------------------------------- public


def attention_maps(
    model: keras.Model,
    images,
    *,
    query_pixels=None,
    layers=None,
) -> dict[str, np.ndarray]:
    """Runs `model` on `images` and returns what each of its attention layers attended to.

    Every keras_attn attention layer in the model is found by type, wherever it sits: in a
    functional or Sequential model, in nested submodels, or inside custom layers. During one
    inference pass each layer is called with `return_attention_scores=True` (the model's
    outputs are unchanged), and its scores are returned as numpy arrays:

    - `SqueezeExcite`: channel gates `(B, C)` in `(0, 1)`.
    - `SpatialAttention`: the spatial map `(B, H, W, 1)` in `(0, 1)`.
    - `CBAM`: two entries, `"<name>/channel"` `(B, C)` and `"<name>/spatial"` `(B, H, W, 1)`.
    - `SelfAttention2D`, `NonLocal2D`: for each query pixel, its row of the attention matrix
      averaged over heads, on the key grid: `(B, Q, H, W)`. Rows of softmax attention sum to 1.
    - `CrossAttention2D`: queries come from its first input (e.g. the fixed image's features)
      and keys from its second (the moving image's): `(B, Q, Hc, Wc)` on the context grid.
    - `CorrelationMatch2D` (the aligner's matching): the matching weights of each query pixel
      of `fixed` over `moving`, `(B, Q, H, W)`; with a local search `radius`, only the
      `(2r + 1)^2` window around the query cell is non-zero.

    Keys are layer names, prefixed with the names of the models or layers that contain them
    (`"encoder/block1_se"`); a layer that runs `n > 1` times gives `"<name>/0"` ...
    `"<name>/<n-1>"`. Entries follow the order in which the layers ran.

    Args:
        model: a Keras model containing keras_attn attention layers.
        images: one image `(H, W, C)` or a batch `(B, H, W, C)`, uint8 or float in [0, 1]; for
            a model with several inputs, a list in the order of `model.inputs` or a dict keyed
            by input name.
        query_pixels: `(row, col)` or a sequence of them, in pixel coordinates of the (first)
            input image; each is mapped onto the query grid of every token-attention layer.
            Defaults to the centre pixel.
        layers: restrict to these layers: names, paths or layer instances (one or a list).

    Returns:
        A dict from layer name to a float32 array, described above.

    Raises:
        ValueError: if the model has no attention layers, `images` does not fit the model's
            inputs, or `query_pixels` or `layers` name something that does not exist.

    Example:

    >>> model = keras_attn.models.build_model("attention_cnn_tiny")
    >>> maps = attention_maps(model, np.zeros((32, 32, 3), "uint8"))
    >>> maps["attention_cnn_tiny_stage1_block1_se"].shape
    (1, 16)
    """
    found = _attention_layers(model)
    if not found:
        names = ", ".join(cls.__name__ for cls in ATTENTION_TYPES)
        raise ValueError(
            f"Model '{model.name}' has no keras_attn attention layers (looked for {names})."
        )
    found = _select(model, found, layers)
    inputs, image_hw, _ = _inputs.prepare_inputs(model, images)
    pixels = None
    if any(isinstance(layer, (*_TOKEN_TYPES, CorrelationMatch2D)) for _, layer in found):
        if image_hw is None:
            raise ValueError(
                f"Model '{model.name}' has no image input (B, H, W, C) to place query pixels on."
            )
        pixels = _query_pixels(query_pixels, image_hw)

    with _recording(found) as records:
        model(inputs, training=False)
    if not records:
        raise ValueError(
            f"None of the attention layers of model '{model.name}' ran on these inputs: "
            f"{[path for path, _ in found]}"
        )

    counts = collections.Counter(path for path, *_ in records)
    calls = collections.Counter()
    maps = {}
    for path, layer, scores, query_hw, context_hw in records:
        key = path
        if counts[path] > 1:
            key = f"{path}/{calls[path]}"
            calls[path] += 1
        if isinstance(layer, CBAM):
            maps[f"{key}/channel"] = scores["channel"]
            maps[f"{key}/spatial"] = scores["spatial"]
        elif isinstance(layer, _TOKEN_TYPES):
            maps[key] = _token_maps(scores, pixels, image_hw, query_hw, context_hw)
        elif isinstance(layer, CorrelationMatch2D) and scores.ndim == 3:  # global matching
            maps[key] = _token_maps(scores[:, None], pixels, image_hw, query_hw, context_hw)
        elif isinstance(layer, CorrelationMatch2D):  # local matching in a window
            maps[key] = _window_maps(scores, pixels, image_hw)
        else:
            maps[key] = scores
    return maps
