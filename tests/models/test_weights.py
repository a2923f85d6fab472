"""Starting one model from another's weights: by layer name and shape, and aligners by stride."""

import keras
import numpy as np
import pytest

from keras_attn import data, models
from keras_attn.models.aligner import aligner
from keras_attn.models.super_resolution import super_resolution
from keras_attn.models.weights import transfer_aligner_weights, transfer_weights

CONFIDENCE_AND_MATCH = ("match", "confidence_hidden", "confidence_gate")


def test_transfer_weights_between_registered_presets():
    from keras_attn.training import fit

    assert fit.transfer_weights is transfer_weights  # what the recipes' --init-from calls
    x2, x3 = models.build_model("sr_tiny_x2"), models.build_model("sr_tiny_x3")
    assert transfer_weights(x2, x3) == ["sr_tiny_x3_upsample_conv"]
    np.testing.assert_array_equal(
        x3.get_layer("sr_tiny_x3_group1_block2_conv2").kernel,
        x2.get_layer("sr_tiny_x2_group1_block2_conv2").kernel,
    )


def test_transfer_weights_skips_the_upsampler():
    x2 = super_resolution(2, channels=4, num_groups=1, blocks_per_group=1)
    x3 = super_resolution(3, channels=4, num_groups=1, blocks_per_group=1)
    skipped = transfer_weights(x2, x3)
    assert skipped == ["sr_upsample_conv"]
    np.testing.assert_array_equal(
        x3.get_layer("sr_shallow").kernel, x2.get_layer("sr_shallow").kernel
    )


def test_transfer_weights_rename_picks_the_source_layer_or_none():
    source = super_resolution(2, channels=4, num_groups=1, blocks_per_group=1)
    target = super_resolution(2, channels=4, num_groups=1, blocks_per_group=1)
    before = target.get_layer("sr_shallow").get_weights()
    # every layer from itself, except the shallow conv, which is left alone (None)
    skipped = transfer_weights(
        source, target, rename=lambda name: None if name == "shallow" else name
    )
    assert skipped == ["sr_shallow"]
    for got, kept in zip(target.get_layer("sr_shallow").get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, kept)
    np.testing.assert_array_equal(
        target.get_layer("sr_upsample_conv").kernel, source.get_layer("sr_upsample_conv").kernel
    )


def test_transfer_aligner_weights_maps_each_iteration_to_the_source_one_at_its_stride():
    keras.utils.set_random_seed(1)
    kwargs = {"input_shape": (64, 64, 1), "widths": (8, 8, 8, 16)}
    source = aligner(levels=((8, None), (2, 2)), name="source", **kwargs)
    target = aligner(levels=((8, None), (4, 3), (2, 2), (2, 1)), name="target", **kwargs)
    skipped = transfer_aligner_weights(source, target)

    # stride 4 is not in the source: that iteration keeps its initial weights
    assert sorted(skipped) == [f"target_iter2_{n}" for n in sorted(CONFIDENCE_AND_MATCH)]
    for target_iter, source_iter in ((1, 1), (3, 2), (4, 2)):  # iteration 4 reuses the last
        for suffix in CONFIDENCE_AND_MATCH:
            got = target.get_layer(f"target_iter{target_iter}_{suffix}").get_weights()
            want = source.get_layer(f"source_iter{source_iter}_{suffix}").get_weights()
            assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    for got, want in zip(
        target.get_layer("target_encoder").get_weights(),
        source.get_layer("source_encoder").get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)

    # the same levels: the copy computes exactly what the source does
    copy = aligner(levels=((8, None), (2, 2)), name="copy", **kwargs)
    assert transfer_aligner_weights(source, copy) == []
    photo = data.load_photo("camera")[..., 0].astype("float32") / 255.0
    batch = {
        "moving": photo[100:164, 200:264, None][None],
        "fixed": photo[103:167, 205:269, None][None],
    }
    np.testing.assert_array_equal(
        np.asarray(copy(batch)["homography"]), np.asarray(source(batch)["homography"])
    )


def test_transfer_aligner_weights_refuses_a_model_that_is_not_an_aligner():
    target = models.build_model("aligner_tiny")
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="built by keras_attn.models.aligner"):
        transfer_aligner_weights(other, target)
