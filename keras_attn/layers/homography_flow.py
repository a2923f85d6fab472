"""The dense backward flow of a homography, for `Warp`."""

from __future__ import annotations

import keras
from keras import ops

from keras_attn.layers import _checks
from keras_attn.layers import homography_ops as hom
from keras_attn.layers._homography_layer import HomographyLayer


@keras.saving.register_keras_serializable(package="keras_attn")
class HomographyFlow(HomographyLayer):
    """Dense backward flow, in pixels on the fixed grid, of a normalised fixed->moving homography.

    `flow(y, x) = G(x, y) - (x, y)` in pixels, which `Warp` consumes:
    `Warp()([moving, flow])` resamples the moving image onto the fixed grid.

    With `stride > 1` the flow is given on the grid of cell centres of a stride-`stride`
    feature map, in cells, so that `Warp` can resample feature maps.

    Args:
        image_size: `(height, width)` of the images in pixels.
        stride: 1 for the image grid, or the stride of a feature map.
        stop_gradient: do not backpropagate into the homography (used between refinement
            iterations, like RAFT's detached flow, so each iteration learns its own update).

    Call arguments:
        matrix: `(B, 3, 3)` normalised fixed->moving homographies.

    Returns:
        `(B, height / stride, width / stride, 2)` float32 flow `(u, v)`.

    Example:

    >>> flow = HomographyFlow(image_size=(16, 16))(keras.ops.eye(3)[None])
    >>> tuple(flow.shape)
    (1, 16, 16, 2)
    """

    def __init__(self, image_size, stride: int = 1, stop_gradient: bool = False, **kwargs):
        super().__init__(image_size, **kwargs)
        _checks.positive_int("stride", stride)
        _checks.boolean("stop_gradient", stop_gradient)
        self.stride = stride
        self.stop_gradient = stop_gradient

    def call(self, matrix):
        height, width = self.image_size
        matrix = ops.cast(matrix, "float32")
        if self.stop_gradient:
            matrix = ops.stop_gradient(matrix)
        batch = ops.shape(matrix)[0]
        points = ops.tile(hom.grid(height, width, self.stride)[None], (batch, 1, 1))
        mapped = hom.apply(matrix, points)
        to_cells = ops.convert_to_tensor(
            [(width - 1.0) / (2.0 * self.stride), (height - 1.0) / (2.0 * self.stride)]
        )
        flow = (mapped - points) * to_cells
        return ops.reshape(flow, (batch, height // self.stride, width // self.stride, 2))

    def compute_output_shape(self, matrix_shape):
        height, width = self.image_size
        return (matrix_shape[0], height // self.stride, width // self.stride, 2)

    def get_config(self):
        config = super().get_config()
        config.update({"stride": self.stride, "stop_gradient": self.stop_gradient})
        return config
