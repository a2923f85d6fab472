"""The demo behind `keras-attn demo` / `make demo`: the attention layers on a real photograph.

Until the shipped models exist this shows what the layers compute, untrained, on
scikit-image's bundled astronaut photo (Eileen Collins, NASA, public domain): where a
`SelfAttention2D` with cosine similarity sends the attention of three query pixels, CBAM's spatial
map, and the SE channel gates of a fixed random convolution. Untrained cosine attention on raw
colour features is a colour-similarity map: the point is to show the layers' outputs on a real
image, not a learned behaviour.
"""

from __future__ import annotations

import html
import math
import os
import pathlib

import numpy as np

from keras_attn._io import atomic_path

QUERY_POINTS = {"face": (17, 29), "suit": (50, 10), "shuttle": (14, 54)}  # (row, col) at 64x64


def _photo(size: int = 64) -> np.ndarray:
    import skimage.data
    import skimage.transform

    image = skimage.data.astronaut().astype("float32") / 255.0
    return skimage.transform.resize(image, (size, size), anti_aliasing=True).astype("float32")


def _layer_outputs(image: np.ndarray) -> dict:
    import keras

    from keras_attn import layers

    keras.utils.set_random_seed(0)
    batch = image[None]
    # Features: colour plus a faint row/column code, so attention is not purely colour-based.
    rows, cols = np.meshgrid(np.linspace(-1, 1, 64), np.linspace(-1, 1, 64), indexing="ij")
    features = np.concatenate([batch, 0.3 * np.stack([rows, cols], -1)[None]], -1)
    features = features.astype("float32")

    attention = layers.SelfAttention2D(
        num_heads=4, key_dim=8, position=None, similarity="cosine", name="self_attention"
    )
    attention(features)
    attention.logit_scale.assign(np.full((4, 1, 1), math.log(30.0), "float32"))
    _, scores = attention(features, return_attention_scores=True)
    scores = np.asarray(scores)[0].mean(axis=0)  # (HW, HW), averaged over heads

    conv = keras.layers.Conv2D(16, 3, padding="same", activation="relu")
    feature_map = conv(batch)
    _, gates = layers.SqueezeExcite(ratio=1.0)(feature_map, return_attention_scores=True)
    _, cbam = layers.CBAM(ratio=0.25, kernel_size=7)(feature_map, return_attention_scores=True)
    return {
        "queries": {
            name: scores[row * 64 + col].reshape(64, 64)
            for name, (row, col) in QUERY_POINTS.items()
        },
        "se_gates": np.asarray(gates)[0],
        "cbam_spatial": np.asarray(cbam["spatial"])[0, ..., 0],
    }


def run_demo(output_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Writes `layers_on_astronaut.png` and `index.html` into `output_dir`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = pathlib.Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    image = _photo()
    results = _layer_outputs(image)

    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    axes[0, 0].imshow(image)
    for name, (row, col) in QUERY_POINTS.items():
        axes[0, 0].scatter([col], [row], s=60, edgecolors="white", label=name)
    axes[0, 0].legend(loc="lower right", fontsize=8)
    axes[0, 0].set_title("astronaut (skimage.data), 64x64, query pixels")
    for ax, (name, attention_map) in zip(
        [axes[0, 1], axes[0, 2], axes[1, 0]], results["queries"].items(), strict=True
    ):
        ax.imshow(image)
        ax.imshow(attention_map, cmap="inferno", alpha=0.7)
        row, col = QUERY_POINTS[name]
        ax.scatter([col], [row], s=60, c="cyan", marker="x")
        ax.set_title(f"SelfAttention2D, query '{name}' (untrained)")
    axes[1, 1].imshow(image)
    axes[1, 1].imshow(results["cbam_spatial"], cmap="viridis", alpha=0.6)
    axes[1, 1].set_title("CBAM spatial map (untrained)")
    axes[1, 2].bar(np.arange(results["se_gates"].size), results["se_gates"])
    axes[1, 2].set_ylim(0, 1)
    axes[1, 2].set_title("SqueezeExcite gates per channel (untrained)")
    axes[1, 2].set_xlabel("channel")
    for ax in axes.flat[:5]:
        ax.axis("off")
    fig.tight_layout()

    figure_path = output / "layers_on_astronaut.png"
    with atomic_path(figure_path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)

    index_path = output / "index.html"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>keras_attn demo</title></head>"
        "<body><h1>keras_attn demo</h1>"
        f"<p>{html.escape(__doc__.strip().splitlines()[2])}</p>"
        f"<img src='{figure_path.name}' alt='attention layers on the astronaut photo'>"
        "</body></html>"
    )
    with atomic_path(index_path) as tmp:
        tmp.write_text(page)
    return [figure_path, index_path]
