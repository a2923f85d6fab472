"""Shared by the viz tests: a batch of two random 16x16 RGB images."""

import pytest


@pytest.fixture
def images(rng):
    """Two random `(16, 16, 3)` float32 images in [0, 1)."""
    return rng.uniform(size=(2, 16, 16, 3)).astype("float32")
