"""The real stereo pair with ground truth (scikit-image's Middlebury 'motorcycle')."""

import numpy as np
import pytest

from keras_attn.data.stereo import disparity_flow, motorcycle_pair


def test_the_pair_and_its_halved_version():
    left, right, disparity = motorcycle_pair()
    assert left.shape == right.shape == disparity.shape == (500, 741)
    assert left.dtype == np.float32 and 0 <= left.min() and left.max() <= 1
    half = motorcycle_pair(2)
    assert half[0].shape == half[2].shape == (250, 370)
    known = np.isfinite(half[2])
    assert 0.8 < known.mean() < 1 and 3 < np.median(half[2][known]) < 30  # disparity / 2
    np.testing.assert_allclose(half[0][0, 0], left[:2, :2].mean(), atol=1e-6)
    with pytest.raises(ValueError, match="downscale must be a positive integer"):
        motorcycle_pair(0)


def test_disparity_flow_is_minus_d_along_x():
    disparity = np.array([[5.0, np.inf], [0.0, 12.5]], "float32")
    flow, valid = disparity_flow(disparity)
    np.testing.assert_array_equal(valid, [[True, False], [False, True]])
    np.testing.assert_array_equal(flow[..., 0], [[-5.0, 0.0], [0.0, -12.5]])
    assert (flow[..., 1] == 0).all()
