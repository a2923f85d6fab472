"""Shared by the export tests: a tiny SR model whose upsampler is not the identity."""

import numpy as np
import pytest

from keras_attn import models


@pytest.fixture(scope="module")
def sr_model():
    """`sr_tiny_x2` with a random upsampler, so a wrong export gives other outputs."""
    model = models.build_model("sr_tiny_x2")
    conv = model.get_layer("sr_tiny_x2_upsample_conv")
    conv.kernel.assign(np.random.default_rng(0).normal(scale=0.1, size=conv.kernel.shape))
    return model
