"""A real stereo pair with ground truth: Middlebury 2014 "motorcycle", as scikit-image ships it.

`skimage.data.stereo_motorcycle()` gives the rectified left and right views (500x741 RGB, the
Middlebury images downsampled 4x) and the disparity `d` on the LEFT grid, +inf where there is no
ground truth: the left pixel `(y, x)` is the right pixel `(y, x - d)`. As a flow from left
(fixed) to right (moving) in the aligners' convention, `left(y, x) ~ right(y + v, x + u)`, that
is `(u, v) = (-d, 0)`.
"""

from __future__ import annotations

import numpy as np


def motorcycle_pair(downscale: int = 1):
    """`(left, right, disparity)`: grayscale float32 `(H, W)` views in [0, 1] and the float32
    disparity (+inf where unknown). With `downscale` > 1 the views are shrunk by block means
    and the disparity by the same block mean (+inf where any pixel of the block is unknown)
    divided by `downscale`."""
    from skimage import data
    from skimage.color import rgb2gray
    from skimage.transform import downscale_local_mean

    if not isinstance(downscale, int) or downscale < 1:
        raise ValueError(f"downscale must be a positive integer. Received: {downscale!r}")
    left, right, disparity = data.stereo_motorcycle()
    gray = [rgb2gray(image).astype("float32") for image in (left, right)]
    disparity = disparity.astype("float32")
    if downscale > 1:
        height = disparity.shape[0] // downscale * downscale
        width = disparity.shape[1] // downscale * downscale
        block = (downscale, downscale)
        gray = [downscale_local_mean(g[:height, :width], block).astype("float32") for g in gray]
        disparity = downscale_local_mean(disparity[:height, :width], block) / downscale
        disparity = disparity.astype("float32")
    return gray[0], gray[1], disparity


def disparity_flow(disparity):
    """The left->right flow `(H, W, 2)` = `(-d, 0)` of a disparity map, and where it is known
    (finite `d` > 0; zero flow elsewhere)."""
    valid = np.isfinite(disparity) & (disparity > 0)
    u = np.where(valid, -disparity, 0.0)
    return np.stack([u, np.zeros_like(u)], axis=-1).astype("float32"), valid
