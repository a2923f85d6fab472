"""Figures: attention overlays, super-resolution comparisons and alignment checkerboards.

Figures are made with `matplotlib.figure.Figure` on an Agg canvas, so no display and no pyplot
backend are needed; matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

from keras_attn import _io
from keras_attn.viz import _images


def _figure(rows: int, cols: int, panel_size: float = 3.0):
    """A `(Figure, axes[rows, cols])` pair on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(cols * panel_size, rows * panel_size), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return figure, axes


def _save(figure, path) -> None:
    """Writes `figure` to `path` atomically, in the format its suffix names (PNG by default)."""
    if path is None:
        return
    suffix = pathlib.Path(path).suffix
    with _io.atomic_path(path, suffix=suffix) as tmp:
        figure.savefig(tmp, format=suffix.lstrip(".").lower() or "png", dpi=100)


def _show(ax, image, title: str) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.set_title(title, fontsize=9)


def _panels(maps, index: int, max_maps: int):
    """`(title, kind, values, query)` for each panel: kind `"bars"` or `"map"`."""
    panels = []
    for name, values in maps.items():
        values = np.asarray(values, dtype="float32")
        if values.ndim < 2 or not 0 <= index < values.shape[0]:
            raise ValueError(
                f"maps[{name!r}] must be batched (B, ...) as attention_maps returns it, with "
                f"index < B. Received: shape {values.shape}, index={index}"
            )
        values = values[index]
        if values.ndim == 1:
            panels.append((name, "bars", values, None))
        elif values.ndim == 2:
            panels.append((name, "map", values, None))
        elif values.ndim == 3 and values.shape[-1] == 1:
            panels.append((name, "map", values[..., 0], None))
        elif values.ndim == 3:
            for query, query_map in enumerate(values):
                panels.append((f"{name} [query {query}]", "map", query_map, query))
        else:
            raise ValueError(
                f"maps[{name!r}] must be (B, C) gates, (B, H, W), (B, H, W, 1) or (B, Q, H, W) "
                f"maps. Received: shape {(None, *values.shape)}"
            )
    return panels[:max_maps], len(panels)


def plot_attention(
    image,
    maps,
    path: str | os.PathLike | None = None,
    *,
    title: str | None = None,
    max_maps: int = 12,
    alpha: float = 0.5,
    index: int = 0,
    query_pixels=None,
    cmap: str = "jet",
):
    """Overlays attention maps on the image they were computed from, one panel each.

    The first panel is the image. Each 2-D map (a spatial map, a Grad-CAM heat map, or one
    query pixel's attention over the key grid) is stretched over the image with bilinear
    interpolation and drawn with `cmap` at opacity `alpha`, after scaling it to its own
    [min, max] (printed under its title); channel gates `(C,)` are drawn as a bar chart.

    Args:
        image: the image, `(H, W)` or `(H, W, C)` with 1, 3 or 4 channels, uint8 or float in
            [0, 1]; or the batch `(B, H, W, C)` the maps were computed on (`index` picks one).
        maps: a dict from name to a batched array, as `attention_maps` or `grad_cam` (wrap it
            in a dict, or pass it alone) return: `(B, C)` gates, `(B, H, W)`, `(B, H, W, 1)`
            or `(B, Q, H, W)` maps.
        path: where to write the figure (PNG, or the format of the suffix); written
            atomically. Nothing is written when None.
        title: the figure's title.
        max_maps: at most this many map panels are drawn (the first ones).
        alpha: opacity of the maps over the image, in [0, 1].
        index: which image of the batch the maps belong to.
        query_pixels: the `(row, col)` query pixels the `(B, Q, H, W)` maps were computed for;
            when given, query `q` is marked with a cross on its panel.
        cmap: matplotlib colour map of the overlays.

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: for an image or maps of unexpected shape or dtype, or bad arguments.

    Example:

    >>> maps = attention_maps(model, image)
    >>> figure = plot_attention(image, maps, "attention.png", title="SE gates")
    """
    if not isinstance(max_maps, int) or isinstance(max_maps, bool) or max_maps < 1:
        raise ValueError(f"max_maps must be a positive integer. Received: max_maps={max_maps!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]. Received: alpha={alpha!r}")
    if not isinstance(maps, Mapping):
        maps = {"attention": maps}
    if not maps:
        raise ValueError("maps is empty: there is nothing to plot.")
    image = np.asarray(image)
    if image.ndim == 4:
        if not 0 <= index < image.shape[0]:
            raise ValueError(f"index must be in [0, {image.shape[0]}). Received: index={index}")
        image = image[index]
    image = _images.as_display_image(image, "image")
    height, width = image.shape[:2]
    pixels = None
    if query_pixels is not None:
        pixels = np.asarray(query_pixels)
        if pixels.size == 0 or pixels.size % 2 or not np.issubdtype(pixels.dtype, np.number):
            raise ValueError(
                "query_pixels must be one (row, col) pair or a sequence of them. "
                f"Received: query_pixels={query_pixels!r}"
            )
        pixels = pixels.reshape(-1, 2)

    panels, total = _panels(maps, index, max_maps)
    cols = min(4, len(panels) + 1)
    rows = math.ceil((len(panels) + 1) / cols)
    figure, axes = _figure(rows, cols)
    axes = axes.flat
    _show(axes[0], image, "image")
    axes[0].set_axis_on()
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for ax, (name, kind, values, query) in zip(axes[1:], panels, strict=False):
        low, high = float(values.min()), float(values.max())
        panel_title = f"{name}\n[{low:.3g}, {high:.3g}]"
        if kind == "bars":
            ax.set_title(panel_title, fontsize=7)
            ax.set_axis_on()
            ax.bar(np.arange(values.size), values, width=1.0, color="tab:blue")
            ax.set_xlim(-0.5, values.size - 0.5)
            ax.set_ylim(0.0, max(1.0, high))
            ax.set_xlabel("channel", fontsize=7)
            ax.tick_params(labelsize=6)
            continue
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        _show(ax, image, panel_title)
        ax.title.set_fontsize(7)
        ax.imshow(
            scaled,
            cmap=cmap,
            alpha=alpha,
            vmin=0.0,
            vmax=1.0,
            interpolation="bilinear",
            extent=(-0.5, width - 0.5, height - 0.5, -0.5),
        )
        if pixels is not None and query is not None and query < len(pixels):
            row, col = pixels[query]
            ax.plot(col, row, marker="+", color="white", markersize=12, markeredgewidth=2)
    if title or total > len(panels):
        shown = f" (first {len(panels)} of {total} maps)" if total > len(panels) else ""
        figure.suptitle(f"{title or ''}{shown}".strip())
    _save(figure, path)
    return figure


def _psnr(image: np.ndarray, reference: np.ndarray) -> float:
    mse = float(np.mean((image.astype("float64") - reference) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import tensorflow as tf

    batch = image[None, ..., None] if image.ndim == 2 else image[None]
    resized = tf.image.resize(batch, size, method="bicubic").numpy()[0]
    resized = np.clip(resized, 0.0, 1.0)
    return resized[..., 0] if image.ndim == 2 else resized


def _check_crop(crop, height: int, width: int) -> tuple[int, int, int, int]:
    ok = isinstance(crop, Sequence) and len(crop) == 4
    ok = ok and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in crop)
    if ok:
        top, left, crop_height, crop_width = (int(v) for v in crop)
        ok = top >= 0 and left >= 0 and crop_height > 0 and crop_width > 0
        ok = ok and top + crop_height <= height and left + crop_width <= width
    if not ok:
        raise ValueError(
            "crop must be (top, left, height, width) in integer pixels of the upscaled image, "
            f"inside its {height}x{width} frame. Received: crop={crop!r}"
        )
    return top, left, crop_height, crop_width


def plot_super_resolution(
    low_res,
    upscaled,
    reference=None,
    path: str | os.PathLike | None = None,
    *,
    crop: Sequence[int] | None = None,
    labels: Sequence[str] = ("bicubic", "ours", "HR"),
    border: int | None = None,
):
    """Shows a bicubic upscaling, the model's upscaling and the reference side by side.

    The bicubic image is `low_res` resized to the size of `upscaled`. With a `reference`, each
    upscaling's PSNR against it is printed in its title: with `border`, PSNR-Y (the Y channel,
    `border` pixels cropped from every side: the protocol of the model cards, RGB images only);
    without, PSNR over all channels and pixels (images in [0, 1]). With `crop`, a second row
    shows that region of each image enlarged (nearest neighbour) and a box marks it in the
    first row.

    Args:
        low_res: the low-resolution input `(h, w)` or `(h, w, C)`, uint8 or float in [0, 1].
        upscaled: the model's output `(s*h, s*w[, C])`, for an integer scale `s`.
        reference: the high-resolution ground truth, the shape of `upscaled`; optional.
        path: where to write the figure (PNG, or the format of the suffix); written
            atomically. Nothing is written when None.
        crop: `(top, left, height, width)` of a region in pixels of the upscaled image.
        labels: titles of the bicubic, upscaled and reference panels.
        border: score with PSNR-Y after cropping this many pixels (the scale, as the cards).

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: if the shapes do not match an integer scale, or for a bad `crop` or
            `labels`.

    Example:

    >>> upscaled = keras_attn.models.upscale(model, low_res)
    >>> figure = plot_super_resolution(low_res, upscaled, high_res, "sr.png",
    ...                                crop=(40, 40, 32, 32))
    """
    low_res = _images.as_display_image(low_res, "low_res")
    upscaled = _images.as_display_image(upscaled, "upscaled")
    if isinstance(labels, str) or len(labels) != 3:
        raise ValueError(f"labels must be three strings. Received: labels={labels!r}")
    (height, width), (low_height, low_width) = upscaled.shape[:2], low_res.shape[:2]
    if (
        upscaled.shape[2:] != low_res.shape[2:]
        or height % low_height
        or width % low_width
        or height // low_height != width // low_width
    ):
        raise ValueError(
            "upscaled must be low_res enlarged by one integer scale, with the same channels. "
            f"Received: low_res.shape={low_res.shape}, upscaled.shape={upscaled.shape}"
        )
    images = [_bicubic(low_res, (height, width)), upscaled]
    titles = list(labels[:2])
    if reference is not None:
        reference = _images.as_display_image(reference, "reference")
        if reference.shape != upscaled.shape:
            raise ValueError(
                "reference must have the shape of upscaled. "
                f"Received: reference.shape={reference.shape}, upscaled.shape={upscaled.shape}"
            )
        if border is None:
            score, unit = _psnr, "dB PSNR"
        else:
            from keras_attn.training.metrics import psnr_y

            def score(image, reference):
                return float(psnr_y(reference[None], image[None], border=border)[0])

            unit = f"dB PSNR-Y ({border}-px border)"
        titles = [
            f"{label}\n{score(image, reference):.2f} {unit}"
            for label, image in zip(titles, images, strict=True)
        ]
        images.append(reference)
        titles.append(labels[2])
    if crop is not None:
        crop = _check_crop(crop, height, width)

    from matplotlib.patches import Rectangle

    figure, axes = _figure(1 if crop is None else 2, len(images), panel_size=4.0)
    for column, (image, title) in enumerate(zip(images, titles, strict=True)):
        _show(axes[0, column], image, title)
        if crop is None:
            continue
        top, left, crop_height, crop_width = crop
        axes[0, column].add_patch(
            Rectangle(
                (left - 0.5, top - 0.5),
                crop_width,
                crop_height,
                fill=False,
                edgecolor="yellow",
                linewidth=1.5,
            )
        )
        region = image[top : top + crop_height, left : left + crop_width]
        axes[1, column].set_title("yellow box, enlarged", fontsize=9)
        axes[1, column].imshow(
            region,
            cmap="gray" if region.ndim == 2 else None,
            vmin=0.0,
            vmax=1.0,
            interpolation="nearest",
        )
    _save(figure, path)
    return figure


def checkerboard(a, b, tiles: int = 8) -> np.ndarray:
    """Interleaves two images in a `tiles x tiles` checkerboard, `a` in the top-left tile.

    Misalignment shows as broken edges where tiles meet. Images of the same dtype keep it;
    otherwise both are converted to float32 in [0, 1] (uint8 divided by 255).

    Args:
        a: image `(H, W)` or `(H, W, C)`.
        b: image of the same shape.
        tiles: tiles along each side, between 1 and `min(H, W)`.

    Returns:
        The composite, the shape of `a`.

    Raises:
        ValueError: if the shapes differ or `tiles` is out of range.

    Example:

    >>> checkerboard(np.zeros((4, 4)), np.ones((4, 4)), tiles=2)[0]
    array([0., 0., 1., 1.])
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(
            "a and b must be images (H, W) or (H, W, C) of the same shape. "
            f"Received: a.shape={a.shape}, b.shape={b.shape}"
        )
    height, width = a.shape[:2]
    if (
        not isinstance(tiles, (int, np.integer))
        or isinstance(tiles, bool)
        or not (1 <= tiles <= min(height, width))
    ):
        raise ValueError(
            f"tiles must be an integer in [1, {min(height, width)}]. Received: tiles={tiles!r}"
        )
    if a.dtype != b.dtype:
        a, b = _images.as_float(a, "a"), _images.as_float(b, "b")
    rows = np.arange(height) * tiles // height
    cols = np.arange(width) * tiles // width
    from_a = (rows[:, None] + cols[None, :]) % 2 == 0
    if a.ndim == 3:
        from_a = from_a[..., None]
    return np.where(from_a, a, b)


def plot_alignment(
    moving,
    fixed,
    warped,
    path: str | os.PathLike | None = None,
    *,
    tiles: int = 8,
):
    """Shows an alignment: the three images, and checkerboards of fixed against the others.

    The first row shows `moving`, `fixed` and `warped` (moving resampled onto the fixed grid);
    the second a checkerboard of fixed and moving (before alignment), one of fixed and warped
    (after), and `|fixed - warped|`. The mean absolute difference to `fixed` is printed above
    each checkerboard: it should drop after alignment.

    Args:
        moving: the moving image `(H, W)` or `(H, W, C)`, uint8 or float in [0, 1].
        fixed: the fixed image, same shape.
        warped: the aligned moving image, same shape.
        path: where to write the figure (PNG, or the format of the suffix); written
            atomically. Nothing is written when None.
        tiles: checkerboard tiles along each side.

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: if the images differ in shape or are not images.

    Example:

    >>> result = keras_attn.models.align(model, moving, fixed)
    >>> figure = plot_alignment(moving, fixed, result["warped"], "alignment.png")
    """
    moving = _images.as_display_image(moving, "moving")
    fixed = _images.as_display_image(fixed, "fixed")
    warped = _images.as_display_image(warped, "warped")
    if not moving.shape == fixed.shape == warped.shape:
        raise ValueError(
            "moving, fixed and warped must have the same shape. Received: "
            f"moving.shape={moving.shape}, fixed.shape={fixed.shape}, warped.shape={warped.shape}"
        )
    before = checkerboard(fixed, moving, tiles)
    after = checkerboard(fixed, warped, tiles)
    difference = np.abs(fixed - warped)
    if difference.ndim == 3:
        difference = difference[..., :3].mean(axis=-1)

    figure, axes = _figure(2, 3)
    _show(axes[0, 0], moving, "moving")
    _show(axes[0, 1], fixed, "fixed")
    _show(axes[0, 2], warped, "warped")
    _show(axes[1, 0], before, f"before: fixed | moving\nMAE {np.abs(fixed - moving).mean():.4f}")
    _show(axes[1, 1], after, f"after: fixed | warped\nMAE {np.abs(fixed - warped).mean():.4f}")
    axes[1, 2].imshow(difference, cmap="magma", vmin=0.0, vmax=1.0)
    axes[1, 2].set_title("|fixed - warped|", fontsize=9)
    _save(figure, path)
    return figure
