"""The output spec shared by the shape-preserving attention blocks: SE, CBAM, spatial, non-local."""

import keras
import numpy as np
import pytest

from keras_attn.layers import CBAM, NonLocal2D, SpatialAttention, SqueezeExcite

BLOCKS = [SqueezeExcite, CBAM, SpatialAttention, NonLocal2D]


@pytest.mark.parametrize("layer_cls", BLOCKS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("spatial", [(6, 5), (None, None)])
def test_symbolic_scores_have_the_shapes_of_the_eager_ones(layer_cls, spatial, rng):
    layer = layer_cls()
    symbolic_outputs, symbolic_scores = layer(
        keras.Input(spatial + (8,), batch_size=2), return_attention_scores=True
    )
    eager_outputs, eager_scores = layer(
        rng.normal(size=(2, 6, 5, 8)).astype("float32"), return_attention_scores=True
    )
    assert tuple(symbolic_outputs.shape) == (2,) + spatial + (8,)
    assert tuple(eager_outputs.shape) == (2, 6, 5, 8)
    pairs = zip(keras.tree.flatten(symbolic_scores), keras.tree.flatten(eager_scores), strict=True)
    for symbolic, eager in pairs:
        assert symbolic.dtype == keras.backend.standardize_dtype(eager.dtype)
        assert len(symbolic.shape) == len(eager.shape)
        for known, actual in zip(symbolic.shape, eager.shape, strict=True):
            # with unknown H and W only the spatial (or token) axes may be unknown
            assert known == actual or (known is None and None in spatial)
    assert layer.compute_output_shape((2,) + spatial + (8,)) == (2,) + spatial + (8,)


def test_channel_attentions_share_the_bottleneck_width():
    x = np.zeros((1, 4, 4, 32), "float32")
    for layer in (SqueezeExcite(ratio=0.125), CBAM(ratio=0.125)):
        layer(x)
        assert tuple(layer.reduce.kernel.shape) == (32, 4)
        assert tuple(layer.expand.kernel.shape) == (4, 32)
        assert layer.reduce.kernel.path == f"{layer.name}/reduce/kernel"
    tiny = SqueezeExcite(ratio=0.01)
    tiny(x)
    assert tuple(tiny.reduce.kernel.shape) == (32, 1)  # never narrower than one unit
