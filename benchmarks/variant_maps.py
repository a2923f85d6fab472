"""Where each attention variant of the Fashion-MNIST benchmark looks, on the same test items.

One row per test item (from the 256 bundled test items, so no dataset is needed), one column
per variant of `benchmarks/classifier_variants.py` (seed 0 of each), each panel the item with
that variant's map over it and its prediction in the title (red when wrong):

- plain, se: Grad-CAM of the predicted class on the last stage (SE gates channels, not
  places, so its own scores are not a map);
- spatial, cbam: the spatial gate of the last block (bright: features let through);
- nonlocal, self: the attention row of the pixel where that model's Grad-CAM peaks, in its
  last non-local / self-attention layer (bright: where that pixel gathers features from).

The items: three items of three classes that every variant gets right, and the item that the
most variants get wrong.

Run (after seed 0 of every variant has finished; the models are kept in the --record folder):
    python benchmarks/variant_maps.py --record benchmarks/results/fashion_variants \
        --runs runs/fashion_variants --output docs/fashion_variant_maps.png
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_attn  # noqa: E402,F401  (registers the layers before loading .keras files)
from keras_attn import viz  # noqa: E402
from keras_attn._io import atomic_path  # noqa: E402
from keras_attn.data import fashion_mnist  # noqa: E402
from keras_attn.layers import CBAM, NonLocal2D, SelfAttention2D, SpatialAttention  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from classifier_variants import keep_model  # noqa: E402

VARIANTS = ("plain", "se", "spatial", "cbam", "nonlocal", "self")
MAP_KIND = {
    "plain": "Grad-CAM",
    "se": "Grad-CAM",
    "spatial": "spatial gate",
    "cbam": "spatial gate",
    "nonlocal": "attention of the peak pixel",
    "self": "attention of the peak pixel",
}


def model_path(record: pathlib.Path, variant: str) -> pathlib.Path:
    return record / f"{variant}_seed0.keras"


def _last_layer(model, types):
    found = [layer for layer in model._flatten_layers() if isinstance(layer, types)]
    return found[-1] if found else None


def variant_map(variant: str, model, image: np.ndarray, predicted: int) -> np.ndarray:
    """The `(28, 28)` map of one item (see the module docstring), in [0, 1]."""
    cam = viz.grad_cam(model, image[None], class_index=predicted)[0]
    if variant in ("plain", "se"):
        return cam
    if variant in ("spatial", "cbam"):
        layer = _last_layer(model, CBAM if variant == "cbam" else SpatialAttention)
        maps = viz.attention_maps(model, image[None], layers=layer.name)
        spatial = [v for k, v in maps.items() if v.ndim == 4][-1][0, ..., 0]
    else:
        layer = _last_layer(model, NonLocal2D if variant == "nonlocal" else SelfAttention2D)
        peak = np.unravel_index(np.argmax(cam), cam.shape)
        maps = viz.attention_maps(model, image[None], layers=layer.name, query_pixels=peak)
        spatial = next(iter(maps.values()))[0, 0]
    resized = keras.ops.image.resize(spatial[None, ..., None], image.shape[:2], "bilinear")
    spatial = np.asarray(resized)[0, ..., 0]
    low, high = spatial.min(), spatial.max()
    return (spatial - low) / (high - low) if high > low else np.zeros_like(spatial)


def choose_items(predictions: dict[str, np.ndarray], labels: np.ndarray) -> list[int]:
    """Three items of three classes that the most variants get right (all of them, for trained
    models; ties: the first), and the item that the most variants get wrong."""
    right = np.sum([p == labels for p in predictions.values()], axis=0)
    chosen, classes = [], set()
    for index in np.argsort(-right, kind="stable"):
        if labels[index] not in classes:
            chosen.append(int(index))
            classes.add(labels[index])
        if len(chosen) == 3:
            break
    missed = [i for i in np.argsort(right, kind="stable") if i not in chosen]
    return [*chosen, int(missed[0])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", required=True, help="folder of <variant>_seed0.keras")
    parser.add_argument(
        "--runs", help="run folders: a finished <variant>_seed0/model.keras is kept in --record"
    )
    parser.add_argument("--output", required=True, help="the figure (.png)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    args = parser.parse_args(argv)
    record = pathlib.Path(args.record)
    variants = args.variants.split(",")
    if args.runs:
        for variant in variants:
            run = pathlib.Path(args.runs) / f"{variant}_seed0"
            if (run / "metrics.json").is_file() and (run / "model.keras").is_file():
                keep_model(run, model_path(record, variant))
    missing = [v for v in variants if not model_path(record, v).is_file()]
    if missing:
        parser.error(f"no seed-0 model in {record} for {missing}: finish those runs first")

    import matplotlib.pyplot as plt

    images, labels = fashion_mnist.load_test_sample()
    inputs = images.astype("float32") / 255.0
    models = {v: keras.saving.load_model(model_path(record, v), compile=False) for v in variants}
    probabilities = {v: np.asarray(m.predict(inputs, verbose=0)) for v, m in models.items()}
    predictions = {v: p.argmax(-1) for v, p in probabilities.items()}
    for variant in variants:
        errors = int(np.sum(predictions[variant] != labels))
        print(f"{variant}: {errors} errors on the {len(labels)} bundled test items")
    items = choose_items(predictions, labels)

    names = fashion_mnist.CLASS_NAMES
    figure, axes = plt.subplots(
        len(items), len(variants) + 1, figsize=(1.9 * (len(variants) + 1), 2.35 * len(items))
    )
    for row, index in enumerate(items):
        axes[row, 0].imshow(images[index, ..., 0], cmap="gray")
        axes[row, 0].set_title(f"item {index}\ntrue: {names[labels[index]]}", fontsize=8)
        for col, variant in enumerate(variants, start=1):
            predicted = int(predictions[variant][index])
            heat = variant_map(variant, models[variant], inputs[index], predicted)
            axes[row, col].imshow(images[index, ..., 0], cmap="gray")
            axes[row, col].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            title = f"{variant}: {names[predicted]}\n{probabilities[variant][index, predicted]:.0%}"
            color = "black" if predicted == labels[index] else "red"
            axes[row, col].set_title(title, fontsize=8, color=color)
    for col, variant in enumerate(variants, start=1):
        axes[-1, col].set_xlabel(MAP_KIND[variant], fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(
        "Fashion-MNIST attention variants (equal parameters, seed 0): where each one looks",
        fontsize=10,
    )
    figure.tight_layout()
    with atomic_path(args.output, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110)
    plt.close(figure)
    print(f"wrote {args.output} (items {items})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
