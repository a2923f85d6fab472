"""Figure of a dense flow: the two views, the horizontal flow of each estimate (against the
truth where known) and the moving view warped onto the fixed one."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from keras_attn.viz import _images
from keras_attn.viz.plots import _figure, _save


def plot_flow(
    fixed,
    moving,
    flows: Mapping[str, np.ndarray],
    path: str | os.PathLike | None = None,
    *,
    truth=None,
    valid=None,
    warped=None,
):
    """Shows dense flows between two views, for stereo or any motion that is mostly horizontal.

    Panels: `fixed`, `moving`, the true disparity `-u` (when `truth` is given), each flow's
    `-u` (titled with its mean end-point error over `valid` pixels when `truth` is given), and
    an overlay of `fixed` (magenta) with `warped` (green): grey where they agree. All flows use
    the aligners' convention, `fixed(y, x) ~ moving(y + v, x + u)`.

    Args:
        fixed: `(H, W)` or `(H, W, C)` image, uint8 or float in [0, 1].
        moving: the other view, same shape.
        flows: `{label: (H, W, 2) flow}`, one panel each, in order.
        path: where to write the figure (PNG, or the suffix's format), atomically; nothing is
            written when None.
        truth: the true flow `(H, W, 2)`, or None.
        valid: `(H, W)` bool, where `truth` is known (default: everywhere).
        warped: `moving` resampled onto the fixed grid by the last flow, for the overlay
            (`keras_attn.models.warp_image(moving, flow)`); no overlay when None.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    fixed = _images.as_display_image(fixed, "fixed")
    moving = _images.as_display_image(moving, "moving")
    if fixed.shape != moving.shape:
        raise ValueError(
            f"fixed and moving must have the same shape. Received: {fixed.shape}, {moving.shape}"
        )
    if not flows:
        raise ValueError("flows must hold at least one (H, W, 2) flow.")
    shape = fixed.shape[:2]
    for label, flow in flows.items():
        if np.shape(flow) != (*shape, 2):
            raise ValueError(f"flow {label!r} must be {(*shape, 2)}. Received: {np.shape(flow)}")
    valid = np.ones(shape, bool) if valid is None else np.asarray(valid, bool)
    panels = [("fixed", fixed, None), ("moving", moving, None)]
    maps = [-np.asarray(flow, "float64")[..., 0] for flow in flows.values()]
    if truth is not None:
        truth = np.asarray(truth, "float64")
        maps.insert(0, np.where(valid, -truth[..., 0], np.nan))
        panels.append(("true disparity -u (px)", maps[0], "map"))
    for label, flow in flows.items():
        title = f"{label}: -u (px)"
        if truth is not None:
            error = np.linalg.norm(np.asarray(flow, "float64") - truth, axis=-1)[valid].mean()
            title = f"{label}: -u\nmean EPE {error:.2f} px"
        panels.append((title, -np.asarray(flow, "float64")[..., 0], "map"))
    if warped is not None:
        grey = [_grey(image) for image in (fixed, _images.as_display_image(warped, "warped"))]
        overlay = np.stack([grey[0], grey[1], grey[0]], axis=-1)
        panels.append(
            (f"fixed (magenta) and\nmoving warped by {list(flows)[-1]} (green)", overlay, None)
        )
    low, high = np.nanpercentile(np.concatenate([m.ravel() for m in maps]), [1, 99])
    figure, axes = _figure(1, len(panels), panel_size=2.6)
    for axis, (title, image, kind) in zip(axes[0], panels, strict=True):
        if kind == "map":
            shown = axis.imshow(image, cmap="viridis", vmin=low, vmax=high)
        else:
            axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)
        axis.set_title(title, fontsize=8)
    figure.colorbar(shown, ax=list(axes[0]), shrink=0.7, label="px")
    _save(figure, path)
    return figure


def _grey(image):
    return image if image.ndim == 2 else image[..., :3].mean(axis=-1)
