"""The demo behind `keras-attn demo` / `make demo`: the shipped models on real held-out photos.

Writes PNG figures and an `index.html` that shows them:

- `sr_<name>.png`: each shipped super-resolution model on a held-out photo (chelsea, never
  seen in training): bicubic vs the model vs the original, with PSNR, and an enlarged crop;
- `alignment.png`: the shipped aligner on a DeTone pair cut from a held-out photo
  (checkerboard overlays before/after), when an aligner is shipped;
- `<classifier>.png` for each shipped classifier (`classifier_digits`, `classifier_fashion`):
  its answers on held-out test items in words, one it gets wrong, and the Grad-CAM heat map
  of each answer; `<classifier>_attention.png`: its SE channel gates and Grad-CAM on one item;
- `layers_on_astronaut.png`: the untrained layers on scikit-image's astronaut photo
  (where cosine self-attention sends three query pixels, CBAM's spatial map, SE gates).

Every shipped model is loaded with `keras_attn.pretrained.load`, so its files are verified
against the sha256 in its card first.
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


def _layers_figure(output: pathlib.Path) -> pathlib.Path:
    import matplotlib.figure

    image = _photo()
    results = _layer_outputs(image)
    fig = matplotlib.figure.Figure(figsize=(12, 8))
    axes = fig.subplots(2, 3)
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
    path = output / "layers_on_astronaut.png"
    _save_png(fig, path)
    return path


def _super_resolution(output: pathlib.Path, name: str, model_card: dict):
    import tensorflow as tf

    from keras_attn import pretrained
    from keras_attn.data import bicubic_downscale, load_photo
    from keras_attn.models import upscale
    from keras_attn.viz import plot_super_resolution

    scale = int(model_card.get("scale", name.rsplit("x", 1)[-1]))
    model = pretrained.load(name)
    photo = load_photo("chelsea").astype("float32") / 255.0
    height, width = (photo.shape[0] // scale) * scale, (photo.shape[1] // scale) * scale
    hr = photo[:height, :width]
    lr = bicubic_downscale(tf.constant(hr), scale).numpy()
    upscaled = upscale(model, lr)
    crop = (height // 4, width // 3, min(96, height // 2), min(96, width // 2))
    path = output / f"{name}.png"
    plot_super_resolution(
        lr, upscaled, hr, path, crop=crop, labels=("bicubic", name, "original"), border=scale
    )
    return path, (
        f"{name}: x{scale} on the held-out photo 'chelsea' (PSNR-Y over the whole image, "
        f"{scale}-pixel border crop: the protocol of the model card)"
    )


def _save_png(figure, path: pathlib.Path) -> None:
    """Writes a demo figure as PNG at 80 dpi, atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=80, format="png")


def _alignment(output: pathlib.Path, name: str, model_card: dict):
    from keras_attn import pretrained
    from keras_attn.models import align, warp_image
    from keras_attn.models.aligner_tasks import has_dense_flow
    from keras_attn.training import evaluation
    from keras_attn.viz import plot_alignment

    model = pretrained.load(name)
    if has_dense_flow(model):
        return _stereo(output, name, model)
    size, _, channels = model.inputs[0].shape[1:]
    pairs = evaluation.held_out_alignment_pairs(size, channels, pairs_per_image=1, seed=7)
    # the pair cut from the held-out coins photo (one pair per photo, in the split's order):
    # its misalignment shows before alignment
    from keras_attn.data.bundled_photos import VALIDATION_PHOTOS

    photo = "coins"
    pair = pairs[VALIDATION_PHOTOS.index(photo)]
    result = align(model, pair.moving, pair.fixed)
    before = evaluation.corner_error(np.eye(3), pair.corners, size)
    after = evaluation.corner_error(result["homography"], pair.corners, size)
    # the photometric error where the warped image has content (the overlap), before and after
    covered = warp_image(np.ones(pair.moving.shape[:2], "float32"), result["homography"]) > 0.999
    fixed = pair.fixed[..., 0]
    overlap_before = float(np.abs(pair.moving[..., 0] - fixed)[covered].mean())
    overlap_after = float(np.abs(result["warped"][..., 0] - fixed)[covered].mean())
    figure = plot_alignment(pair.moving, pair.fixed, result["warped"])
    figure.suptitle(
        f"{name} on a held-out pair cut from the '{photo}' photo: corner error "
        f"{before:.1f} px before, {after:.2f} px after\nmean |fixed - image| over the overlap: "
        f"{overlap_before:.3f} before, {overlap_after:.3f} after (pixel values in [0, 1])"
    )
    path = output / "alignment.png"
    _save_png(figure, path)
    return path, (
        f"{name}: a held-out pair with corners shifted by up to "
        f"{evaluation.ALIGNMENT_MAX_SHIFT:g} px; corner error {before:.1f} px before, "
        f"{after:.2f} px after"
    )


# A 128x128 crop of the real stereo pair (halved), where the disparity varies most (13 to 30 px):
# benchmarks/stereo_flow.py's crop 38 of seed 0
STEREO_DOWNSCALE, STEREO_CROP = 2, (122, 209)


def _stereo(output: pathlib.Path, name: str, model):
    """A dense-flow aligner on a real stereo pair with ground truth: the disparity it finds
    against the true one and against its own homography's, and the warped overlay."""
    from keras_attn.data.stereo import disparity_flow, motorcycle_pair
    from keras_attn.models import warp_image
    from keras_attn.models.aligner_tasks import homography_flow
    from keras_attn.viz import plot_flow

    size, _, channels = model.inputs[0].shape[1:]
    left, right, disparity = motorcycle_pair(STEREO_DOWNSCALE)
    y, x = STEREO_CROP
    window = (slice(y, y + size), slice(x, x + size))
    fixed, moving = left[window], right[window]
    truth, valid = disparity_flow(disparity[window])

    def batch(image):
        return np.repeat(image[None, ..., None], channels, axis=-1)

    result = model.predict_on_batch({"moving": batch(moving), "fixed": batch(fixed)})
    flow = np.asarray(result["flow"][0])
    planar = homography_flow(np.asarray(result["homography"][0], "float64"), (size, size))
    flows = {"its homography": planar, name: flow}
    errors = {k: np.linalg.norm(f - truth, axis=-1)[valid].mean() for k, f in flows.items()}
    figure = plot_flow(
        fixed, moving, flows, truth=truth, valid=valid, warped=warp_image(moving, flow)
    )
    figure.suptitle(
        f"{name} on a real stereo pair (Middlebury 'motorcycle' from scikit-image, halved; "
        f"left = fixed, right = moving): mean end-point error {errors[name]:.2f} px, "
        f"{errors['its homography']:.2f} px with its homography alone",
        fontsize=9,
    )
    path = output / "stereo_flow.png"
    _save_png(figure, path)
    return path, (
        f"{name}: dense flow on a real stereo pair, mean end-point error {errors[name]:.2f} px "
        f"against the true disparity ({errors['its homography']:.2f} px with its homography alone)"
    )


def _classifier_test_items(model, model_card: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """Held-out `(images in [0, 1], labels, what they are)` for a shipped classifier: the
    package's Fashion-MNIST test sample for a Fashion-MNIST model (no download needed), else the
    whole test split of the card's dataset."""
    from keras_attn.data import classification_dataset, fashion_mnist
    from keras_attn.families import default_dataset

    dataset = default_dataset("classifier", model_card)[0]
    if dataset == fashion_mnist.NAME:
        images, labels = fashion_mnist.load_test_sample()
        about = f"the first {len(labels)} Fashion-MNIST test items"
        return images.astype("float32") / 255.0, labels, about
    size, _, channels = model.inputs[0].shape[1:]
    batches = classification_dataset(dataset, "test", 64, size, training=False, channels=channels)
    images, labels = (
        np.concatenate(parts) for parts in zip(*batches.as_numpy_iterator(), strict=True)
    )
    return images, labels, f"the {len(labels)} {dataset} test items"


def _classifier(output: pathlib.Path, name: str, model_card: dict):
    import matplotlib.figure

    from keras_attn import pretrained
    from keras_attn.viz import attention_maps, grad_cam, plot_attention

    model = pretrained.load(name)
    images, labels, about = _classifier_test_items(model, model_card)
    probabilities = np.asarray(model.predict(images, verbose=0))
    predicted = probabilities.argmax(-1)
    classes = model_card.get("classes", [str(i) for i in range(probabilities.shape[-1])])
    # the first 7 test items, and the first one the model gets wrong (if any) as the 8th
    wrong = np.flatnonzero(predicted != labels)
    shown = list(range(7)) + [int(wrong[0]) if len(wrong) and wrong[0] >= 7 else 7]
    heat = grad_cam(model, images[shown])

    fig = matplotlib.figure.Figure(figsize=(12, 4.3), layout="constrained")
    axes = fig.subplots(2, 8)
    for column, i in enumerate(shown):
        right = predicted[i] == labels[i]
        top, bottom = axes[0, column], axes[1, column]
        top.imshow(images[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        top.set_title(
            f"says {classes[predicted[i]]} ({probabilities[i].max():.0%})\n"
            f"{'right' if right else 'WRONG: is ' + classes[labels[i]]}",
            color="green" if right else "red",
            fontsize=8,
        )
        bottom.imshow(images[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        bottom.imshow(heat[column], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        bottom.set_title(f"where it saw\n'{classes[predicted[i]]}'", fontsize=8)
        for ax in (top, bottom):
            ax.axis("off")
    fig.suptitle(
        f"{name} on {about} (never seen in training)\n"
        "top: its answer and how sure; bottom: the Grad-CAM heat map of that answer "
        "(red = the evidence)\n"
        + (
            f"{len(wrong)} wrong of {len(labels)}; the last column is one of them"
            if len(wrong)
            else f"all {len(labels)} right"
        ),
        fontsize=10,
    )
    grid_path = output / f"{name}.png"
    with atomic_path(grid_path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")

    maps = attention_maps(model, images[shown][:1])
    maps["grad_cam"] = heat[:1]
    attention_path = output / f"{name}_attention.png"
    plot_attention(
        images[shown][0],
        maps,
        attention_path,
        title=f"{name}: attention on one test item",
        max_maps=8,
    )
    return [
        (
            grid_path,
            f"{name}: {len(labels) - len(wrong)}/{len(labels)} of {about} right; 7 of them "
            "and one it gets wrong, with Grad-CAM",
        ),
        (attention_path, f"{name}: SE channel gates and Grad-CAM for the first test item"),
    ]


def run_demo(output_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Writes the demo figures and `index.html` into `output_dir`; returns their paths."""
    from keras_attn import families, pretrained

    shipped = pretrained.list_models()
    if not shipped:
        raise ValueError(
            f"No shipped models to show: looked in {pretrained.where_models_are_looked_for()}"
        )
    output = pathlib.Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    figures = []
    for summary in shipped:
        figure = families.get(summary["family"]).demo_figure  # _super_resolution, ...
        made = figure(output, summary["name"], pretrained.card(summary["name"]))
        figures.extend(made if isinstance(made, list) else [made])
    figures.append(
        (_layers_figure(output), "untrained layers on the astronaut photo (what they compute)")
    )

    index_path = output / "index.html"
    sections = "".join(
        f"<h2>{html.escape(caption)}</h2><img src='{html.escape(path.name)}' "
        f"alt='{html.escape(caption)}' style='max-width:100%'>"
        for path, caption in figures
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>keras_attn demo</title></head>"
        "<body><h1>keras_attn demo: the shipped models on held-out photos</h1>"
        f"{sections}</body></html>"
    )
    with atomic_path(index_path) as tmp:
        tmp.write_text(page)
    return [path for path, _ in figures] + [index_path]
