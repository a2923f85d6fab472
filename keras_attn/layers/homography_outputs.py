"""The aligner's published outputs: the moving->fixed pixel homography and the moved corners."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import homography_ops as hom
from keras_attn.layers._homography_layer import HomographyLayer


@keras.saving.register_keras_serializable(package="keras_attn")
class HomographyOutputs(HomographyLayer):
    """Turns a normalised fixed->moving `G` into the published moving->fixed pixel homography.

    Also returns where the moving patch's corners land in the fixed image (DeTone's 4-point
    parameterisation), the quantity the corner loss and the mean corner error are computed on.

    Args:
        image_size: `(height, width)` of the images in pixels.

    Call arguments:
        matrix: `(B, 3, 3)` normalised fixed->moving homographies.

    Returns:
        `(homography, corners)`: `(B, 3, 3)` moving->fixed pixel homographies with
        `H[2, 2] == 1` (OpenCV's `warpPerspective(moving, H, (W, H))` gives the fixed view), and
        `(B, 4, 2)` images of the corners `(0, 0), (W-1, 0), (W-1, H-1), (0, H-1)` under `H`.

    Example:

    >>> h, corners = HomographyOutputs(image_size=(8, 8))(keras.ops.eye(3)[None])
    >>> tuple(h.shape), tuple(corners.shape)
    ((1, 3, 3), (1, 4, 2))
    """

    def call(self, matrix):
        height, width = self.image_size
        inverse = hom.invert(ops.cast(matrix, "float32"))
        homography = hom.to_pixels(inverse, height, width)
        corners = ops.convert_to_tensor(
            [[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]]
        )
        batch = ops.shape(matrix)[0]
        mapped = hom.apply(homography, ops.tile(corners[None], (batch, 1, 1)))
        return homography, mapped

    def compute_output_spec(self, matrix):
        batch = matrix.shape[0]
        return (
            keras.KerasTensor((batch, 3, 3), "float32"),
            keras.KerasTensor((batch, 4, 2), "float32"),
        )
