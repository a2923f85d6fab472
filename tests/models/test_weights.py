"""Starting one model from another's weights: by layer name and shape, and aligners by stride."""

import keras
import numpy as np
import pytest

from keras_attn import data, models
from keras_attn.models.aligner import aligner
from keras_attn.models.super_resolution import super_resolution
from keras_attn.models.weights import float32_model, transfer_aligner_weights, transfer_weights

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


@pytest.fixture
def policy():
    """Sets a global dtype policy for the test; float32 again afterwards."""
    yield keras.config.set_dtype_policy
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("preset", ["sr_tiny_x2", "espcn_skip_x2", "attention_cnn_tiny"])
def test_float32_model_copies_a_mixed_model_to_float32_with_its_weights(policy, preset):
    policy("mixed_bfloat16")
    mixed = models.build_model(preset)
    policy("float32")
    rng = np.random.default_rng(0)
    for weight in mixed.trainable_weights:  # off their initial values (a zero last conv)
        weight.assign(weight + rng.normal(0, 0.1, weight.shape).astype("float32"))
    copy = float32_model(mixed)
    assert copy is not mixed and copy.name == mixed.name
    assert [layer.name for layer in copy.layers] == [layer.name for layer in mixed.layers]
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    for ours, theirs in zip(copy.weights, mixed.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    x = rng.random((2, *(size or 16 for size in mixed.inputs[0].shape[1:])), dtype="float32")
    reference = models.build_model(preset)  # the same preset built in float32
    reference.set_weights(mixed.get_weights())
    np.testing.assert_allclose(copy(x), reference(x), atol=1e-6)
    # the mixed model's own output differs: it computes in bfloat16
    assert np.abs(np.asarray(mixed(x), "float32") - np.asarray(reference(x))).max() > 1e-4


def test_float32_model_returns_a_float32_model_itself():
    model = models.build_model("sr_tiny_x2")
    assert float32_model(model) is model


def test_sr_head_is_float32_under_a_mixed_policy(policy):
    """The image skip and the clip compute in float32, so the output is not rounded to
    bfloat16's 1/256 steps near white (the residual before them may be bfloat16)."""
    policy("mixed_bfloat16")
    for preset in ["sr_tiny_x2", "espcn_skip_x2", "edsr_small_skip_x2"]:
        model = models.build_model(preset)
        assert model.outputs[0].dtype == "float32"
        ends = ("_image_skip", "_skip_add")
        skip = [layer for layer in model.layers if layer.name.endswith(ends)]
        assert len(skip) == 1 and skip[0].dtype_policy.name == "float32"
        assert model.layers[2].dtype_policy.name == "mixed_bfloat16"  # the trunk is mixed
