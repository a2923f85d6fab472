import numpy as np
import pytest
import skimage.transform
import tensorflow as tf
import tensorflow_datasets as tfds
from scipy import ndimage

from keras_attn import data
from keras_attn.data.alignment import (
    AlignmentConfig,
    make_pair,
    photometric_change,
    sample_bilinear,
)

PATCH, SHIFT = 32, 8.0


def patch_corners(size=PATCH):
    last = size - 1.0
    return np.array([[0.0, 0.0], [last, 0.0], [last, last], [0.0, last]])


def apply_np(matrix, points):
    mapped = np.concatenate([points, np.ones((len(points), 1))], axis=-1) @ matrix.T
    return mapped[:, :2] / mapped[:, 2:]


def validation_pairs(photos_dir, **overrides):
    settings = {"patch_size": PATCH, "max_shift": SHIFT, "batch_size": 4, "training": False}
    settings.update(pairs_per_image=2, data_dir=photos_dir, **overrides)
    batches = list(data.alignment_dataset("bundled_photos", "validation", **settings))
    inputs = {k: np.concatenate([b[0][k].numpy() for b in batches]) for k in ("moving", "fixed")}
    targets = {
        k: np.concatenate([b[1][k].numpy() for b in batches]) for k in ("homography", "corners")
    }
    return inputs, targets


@pytest.fixture(scope="module")
def pairs(photos_dir):
    return validation_pairs(photos_dir)


def test_training_batches(photos_dir):
    # many pairs per photo fill the pair shuffle buffer from fewer (slow) photo resizes
    dataset = data.alignment_dataset(
        "bundled_photos",
        "train",
        PATCH,
        SHIFT,
        3,
        channels=3,
        pairs_per_image=32,
        data_dir=photos_dir,
    )
    inputs, targets = next(iter(dataset))
    for key in ("moving", "fixed"):
        image = inputs[key].numpy()
        assert image.shape == (3, PATCH, PATCH, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert image.std() > 0.02  # photo content, not padding
    assert targets["homography"].shape == (3, 3, 3) and targets["homography"].dtype == tf.float32
    assert targets["corners"].shape == (3, 4, 2)
    np.testing.assert_allclose(targets["homography"][:, 2, 2], 1.0)
    assert np.abs(targets["corners"].numpy() - patch_corners()).max() <= SHIFT
    # the training stream is endless and drops incomplete batches
    assert dataset.cardinality() == tf.data.INFINITE_CARDINALITY
    assert dataset.element_spec[0]["moving"].shape.as_list() == [3, PATCH, PATCH, 3]


def test_validation_pairs_shapes_and_count(pairs):
    inputs, targets = pairs
    assert inputs["moving"].shape == (10, PATCH, PATCH, 1)  # 5 validation photos x 2 pairs
    assert inputs["fixed"].shape == (10, PATCH, PATCH, 1)
    assert targets["homography"].shape == (10, 3, 3) and targets["corners"].shape == (10, 4, 2)
    assert 0.0 <= inputs["moving"].min() and inputs["moving"].max() <= 1.0
    # different pairs of the same photo: distinct crops and distinct motions
    assert len({tuple(np.round(c.ravel(), 3)) for c in targets["corners"]}) == 10


def test_validation_pairs_are_deterministic_and_seeded(pairs, photos_dir):
    inputs, targets = pairs
    again_inputs, again_targets = validation_pairs(photos_dir)
    for key in inputs:
        np.testing.assert_array_equal(again_inputs[key], inputs[key])
    for key in targets:
        np.testing.assert_array_equal(again_targets[key], targets[key])
    other_inputs, other_targets = validation_pairs(photos_dir, seed=1)
    assert not np.allclose(other_targets["corners"], targets["corners"])
    assert not np.allclose(other_inputs["fixed"], inputs["fixed"])


def _warp_error(moving, fixed, matrix):
    """Mean |warp(moving) - fixed| over valid pixels, warping with skimage (inverse map H^-1)."""
    transform = skimage.transform.ProjectiveTransform(matrix=matrix)
    warped = skimage.transform.warp(moving, transform.inverse, order=1, cval=np.nan)
    valid = ~np.isnan(warped)
    assert valid.mean() > 0.5
    return np.abs(warped - fixed)[valid].mean()


def test_homography_maps_moving_onto_fixed(pairs):
    inputs, targets = pairs
    errors = {"truth": [], "identity": [], "inverse": []}
    for moving, fixed, matrix in zip(
        inputs["moving"][..., 0],
        inputs["fixed"][..., 0],
        targets["homography"].astype("float64"),
        strict=True,
    ):
        errors["truth"].append(_warp_error(moving, fixed, matrix))
        errors["identity"].append(_warp_error(moving, fixed, np.eye(3)))
        errors["inverse"].append(_warp_error(moving, fixed, np.linalg.inv(matrix)))
    errors = {key: float(np.mean(value)) for key, value in errors.items()}
    # measured: truth 0.012 (two bilinear resamplings), identity 0.079, inverse 0.096
    assert errors["truth"] < 0.03
    assert errors["truth"] < 0.35 * errors["identity"]
    assert errors["truth"] < 0.35 * errors["inverse"]  # fails if the convention were flipped


def test_corners_are_the_homography_applied_to_the_patch_corners(pairs):
    _, targets = pairs
    for matrix, corners in zip(
        targets["homography"].astype("float64"), targets["corners"], strict=True
    ):
        np.testing.assert_allclose(apply_np(matrix, patch_corners()), corners, atol=1e-3)
    shifts = targets["corners"] - patch_corners()
    assert np.abs(shifts).max() <= SHIFT
    assert np.abs(shifts).max() > SHIFT / 2  # the shifts use the range they are given


def test_make_pair_convention_is_exact_on_a_ramp():
    """On a photo whose pixels are their own coordinates, moving(u) shows fixed point H(u)."""
    height, width = 70, 90
    ys, xs = np.mgrid[0:height, 0:width].astype("float32")
    photo = np.stack([xs / width, ys / height, np.full_like(xs, 0.5)], axis=-1)
    config = AlignmentConfig(PATCH, SHIFT, channels=3)
    inputs, targets = make_pair(tf.constant(photo), tf.constant([7, 11]), config)
    fixed, moving = inputs["fixed"].numpy(), inputs["moving"].numpy()
    offset = np.array([fixed[0, 0, 0] * width, fixed[0, 0, 1] * height])  # crop position
    np.testing.assert_allclose(offset, np.round(offset), atol=1e-3)
    mapped = np.stack([moving[..., 0] * width, moving[..., 1] * height], axis=-1) - offset
    grid = np.stack(np.meshgrid(np.arange(PATCH), np.arange(PATCH)), axis=-1).reshape(-1, 2)
    expected = apply_np(targets["homography"].numpy().astype("float64"), grid.astype("float64"))
    np.testing.assert_allclose(mapped.reshape(-1, 2), expected, atol=2e-3)
    assert np.abs(expected - grid).max() > 1.0


def test_sample_bilinear_matches_scipy(rng):
    image = rng.uniform(size=(9, 12, 2)).astype("float32")
    xy = rng.uniform([0, 0], [11, 8], size=(5, 7, 2)).astype("float32")
    sampled = sample_bilinear(tf.constant(image), tf.constant(xy)).numpy()
    for c in range(2):
        expected = ndimage.map_coordinates(image[..., c], [xy[..., 1], xy[..., 0]], order=1)
        np.testing.assert_allclose(sampled[..., c], expected, atol=1e-5)
    # outside the image the coordinates are clamped to the border
    outside = sample_bilinear(tf.constant(image), tf.constant([[-3.0, 20.0]])).numpy()
    np.testing.assert_allclose(outside[0], image[8, 0], atol=1e-6)


def test_photometric_change(rng):
    image = tf.constant(rng.uniform(size=(16, 16, 1)).astype("float32"))
    seed = tf.constant([1, 2])
    assert photometric_change(image, seed, 0.0) is image
    changed = photometric_change(image, seed, 1.0).numpy()
    np.testing.assert_array_equal(changed, photometric_change(image, seed, 1.0).numpy())
    assert 0.0 <= changed.min() and changed.max() <= 1.0
    assert np.abs(changed - image.numpy()).mean() > 0.01
    assert np.corrcoef(changed.ravel(), image.numpy().ravel())[0, 1] > 0.8  # same content


def test_photometric_changes_pixels_not_geometry(pairs, photos_dir):
    inputs, targets = pairs
    changed_inputs, changed_targets = validation_pairs(photos_dir, photometric=1.0)
    for key in targets:
        np.testing.assert_array_equal(changed_targets[key], targets[key])
    for key in inputs:
        difference = np.abs(changed_inputs[key] - inputs[key]).mean(axis=(1, 2, 3))
        assert difference.min() > 0.005
        for changed, plain in zip(changed_inputs[key], inputs[key], strict=True):
            assert np.corrcoef(changed.ravel(), plain.ravel())[0, 1] > 0.8
    # the two views change independently: their difference is no longer just the warp
    gain = changed_inputs["fixed"].mean(axis=(1, 2, 3)) / changed_inputs["moving"].mean(
        axis=(1, 2, 3)
    )
    plain_gain = inputs["fixed"].mean(axis=(1, 2, 3)) / inputs["moving"].mean(axis=(1, 2, 3))
    assert np.abs(gain - plain_gain).max() > 0.05


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_shift": 17.0}, r"max_shift must be a number in \[0, patch_size / 2\]"),
        ({"max_shift": -1.0}, r"max_shift must be a number"),
        ({"channels": 2}, r"channels must be 1 or 3. Received: channels=2"),
        ({"patch_size": 8}, r"patch_size must be an integer >= 16. Received: patch_size=8"),
        ({"photometric": 2}, r"photometric must be a number in \[0, 1\]"),
        ({"batch_size": 0}, r"batch_size must be a positive integer"),
        ({"pairs_per_image": 0}, r"pairs_per_image must be a positive integer"),
    ],
)
def test_bad_settings_name_the_value(kwargs, message):
    settings = {"patch_size": PATCH, "max_shift": SHIFT}
    settings.update(kwargs)
    with pytest.raises(ValueError, match=message):
        data.alignment_dataset("bundled_photos", "train", **settings)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Could not load tfds dataset 'no_such_dataset'"):
        data.alignment_dataset("no_such_dataset", "train")


@pytest.mark.parametrize("training", [True, False])
def test_named_tfds_dataset_with_mock_data_upsamples_small_images(training):
    # mock COCO images are 5..50 px, smaller than patch + 2 * max_shift: they are upsampled
    with tfds.testing.mock_data(num_examples=3):
        dataset = data.alignment_dataset(
            "coco/2017", "train", PATCH, SHIFT, 2, training=training, pairs_per_image=32
        )
        inputs, targets = next(iter(dataset))
    assert inputs["moving"].shape == (2, PATCH, PATCH, 1)
    assert inputs["fixed"].shape == (2, PATCH, PATCH, 1)
    assert (
        np.isfinite(inputs["moving"].numpy()).all()
        and float(tf.math.reduce_std(inputs["fixed"])) > 0.01
    )
    for matrix, corners in zip(
        targets["homography"].numpy().astype("float64"), targets["corners"].numpy(), strict=True
    ):
        np.testing.assert_allclose(apply_np(matrix, patch_corners()), corners, atol=1e-3)


@pytest.mark.parametrize("deformation", [0.0, 6.0])
def test_the_true_flow_warps_moving_onto_fixed(deformation, photos_dir):
    """`flow` is the exact backward flow: moving sampled at x + flow(x) is fixed(x), with or
    without the non-planar residual; a flow off by 1.5 px is far worse."""
    from keras_attn.layers import Warp

    settings = {"patch_size": PATCH, "max_shift": SHIFT, "batch_size": 10, "training": False}
    dataset = data.alignment_dataset(
        "bundled_photos",
        "validation",
        **settings,
        pairs_per_image=2,
        deformation=deformation,
        data_dir=photos_dir,
    )
    inputs, targets = next(iter(dataset))
    flow, visible = targets["flow"].numpy(), targets["visible"].numpy()
    assert flow.shape == (10, PATCH, PATCH, 2) and visible.shape == (10, PATCH, PATCH, 1)
    assert set(np.unique(visible)) <= {0.0, 1.0} and visible.mean() > 0.5

    def error(candidate):
        warped = Warp(fill_mode="constant")([inputs["moving"], candidate]).numpy()
        inner = (slice(None), slice(2, -2), slice(2, -2))
        difference = np.abs(warped - inputs["fixed"].numpy()) * visible
        return difference[inner].sum() / visible[inner].sum()

    assert error(flow) < 0.02 and error(flow + 1.5) > 2.5 * error(flow)
    # in the fixed frame the residual is the deformation d: H(x + flow(x)) = x + d(x)
    grid = np.stack(np.meshgrid(np.arange(PATCH), np.arange(PATCH)), axis=-1).reshape(-1, 2)
    residual = np.stack(
        [
            np.linalg.norm(apply_np(h.astype("float64"), grid + f.reshape(-1, 2)) - grid, axis=-1)
            for h, f in zip(targets["homography"].numpy(), flow, strict=True)
        ]
    )
    if deformation:  # smooth part <= amplitude / 2 per axis, the object's shift <= amplitude
        assert 0.5 < residual.mean() and residual.max() <= 1.5 * np.sqrt(2) * deformation
    else:
        assert residual.max() < 1e-2


def test_without_deformation_the_pairs_are_unchanged(photos_dir):
    """`deformation=0` (the default) draws the same pairs as before it existed: the fixed image
    is an exact crop of the photo."""
    plain, _ = validation_pairs(photos_dir)
    zero, _ = validation_pairs(photos_dir, deformation=0.0)
    np.testing.assert_array_equal(plain["fixed"], zero["fixed"])
    deformed, _ = validation_pairs(photos_dir, deformation=4.0)
    np.testing.assert_array_equal(plain["moving"], deformed["moving"])
    assert np.abs(plain["fixed"] - deformed["fixed"]).mean() > 1e-3


@pytest.mark.parametrize("deformation", [-1.0, 40.0])
def test_deformation_out_of_range_is_rejected(deformation):
    with pytest.raises(ValueError, match=r"deformation must be a number in \[0, max\(max_shift"):
        AlignmentConfig(PATCH, SHIFT, deformation=deformation)
