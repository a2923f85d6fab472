"""Held-out evaluation of each family: the SR pairs and scores, classifier accuracy, the aligner's
DeTone pairs and corner errors, and the int8 calibration samples."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attn import data, families, models
from keras_attn.training import evaluation
from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZE = 64  # the side of `aligner_pairs` (conftest.py)
# BT.601 studio-swing luma of an RGB offset d in every channel: d * (65.481+128.553+24.966)/255
LUMA_GAIN = (65.481 + 128.553 + 24.966) / 255


# --------------------------------------------------------------------------- super-resolution


def test_held_out_sr_pairs_are_whole_photos_cropped_to_the_scale_and_downscaled():
    pairs = evaluation.held_out_pairs(3)
    assert [name for name, _, _ in pairs] == data.photo_names("validation")
    for name, lr, hr in pairs:
        photo = data.load_photo(name)
        assert hr.shape[0] % 3 == 0 and hr.shape[1] % 3 == 0
        assert 0 <= photo.shape[0] - hr.shape[0] < 3 and 0 <= photo.shape[1] - hr.shape[1] < 3
        assert lr.shape == (hr.shape[0] // 3, hr.shape[1] // 3, 3) and lr.dtype == np.float32
    name, lr, hr = pairs[0]
    photo = data.load_photo(name)
    np.testing.assert_array_equal(hr, photo[: hr.shape[0], : hr.shape[1]] / np.float32(255))
    np.testing.assert_allclose(lr, data.bicubic_downscale(tf.constant(hr), 3).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="scale must be one of"):
        evaluation.held_out_pairs(5)


def sr_pairs():
    """Two (name, lr, hr) pairs of real photo crops of different sizes, HR in [0, 0.8]."""
    photo = data.load_photo("astronaut").astype("float32") / 255.0 * 0.8
    pairs = []
    for name, hr in (("small", photo[100:124, 200:236]), ("large", photo[50:98, 60:92])):
        pairs.append((name, data.bicubic_downscale(tf.constant(hr), 2).numpy(), hr))
    return pairs


def test_evaluate_super_resolution_scores_each_image_and_the_mean():
    pairs = sr_pairs()
    truth = {lr.shape: hr for _, lr, hr in pairs}

    def brighter(batch):  # the HR image plus 0.1 in every channel, as a dict output
        return {"upscaled": truth[batch.shape[1:]][None] + 0.1}

    scores = evaluation.evaluate_super_resolution(brighter, 2, pairs)
    expected_psnr = -20 * np.log10(0.1 * LUMA_GAIN)  # a constant luma error: 21.32 dB
    assert set(scores.per_image) == {"small", "large"}
    for values in scores.per_image.values():
        assert values["psnr_y_db"] == pytest.approx(expected_psnr, abs=1e-3)
        assert 0 < values["ssim_y"] < 1
    assert scores.psnr_y == pytest.approx(expected_psnr, abs=1e-3)
    assert scores.ssim_y == pytest.approx(np.mean([v["ssim_y"] for v in scores.per_image.values()]))
    np.testing.assert_allclose(scores.outputs["large"], truth[pairs[1][1].shape] + 0.1)
    assert scores.as_dict() == {
        "psnr_y_db": scores.psnr_y,
        "ssim_y": scores.ssim_y,
        "images": 2,
        "per_image": scores.per_image,
    }

    exact = evaluation.evaluate_super_resolution(
        lambda batch: truth[batch.shape[1:]][None], 2, pairs
    )
    assert exact.psnr_y == np.inf and exact.ssim_y == pytest.approx(1.0, abs=1e-6)


def test_evaluate_super_resolution_without_a_model_is_clipped_bicubic():
    pairs = sr_pairs()
    bicubic = evaluation.evaluate_super_resolution(None, 2, pairs)
    for name, lr, hr in pairs:
        expected = np.clip(tf.image.resize(lr, hr.shape[:2], method="bicubic").numpy(), 0, 1)
        np.testing.assert_allclose(bicubic.outputs[name], expected, atol=1e-6)
        psnr, ssim = evaluation.score_upscaled(expected, hr, 2)
        assert bicubic.per_image[name] == {"psnr_y_db": psnr, "ssim_y": ssim}
    assert 20 < bicubic.psnr_y < 45  # a plausible x2 bicubic score on photo crops


def test_evaluate_super_resolution_rejects_an_output_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"expected \(24, 36, 3\) \(scale 2\)"):
        evaluation.evaluate_super_resolution(lambda batch: batch, 2, sr_pairs())


# --------------------------------------------------------------------------- classifier


def test_evaluate_classifier_counts_every_example_once():
    labels = np.array([0, 1, 2, 1, 0], "int64")
    # each image carries its label as its pixel value; the "model" reads it back, but calls 2 a 1
    images = np.broadcast_to(labels[:, None, None, None], (5, 4, 4, 1)).astype("float32")
    test_data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)

    def predict(batch):
        guesses = np.minimum(batch[:, 0, 0, 0].astype(int), 1)
        return {"probabilities": np.eye(3, dtype="float32")[guesses]}

    result = evaluation.evaluate_classifier(predict, test_data)
    assert result == {"accuracy": 4 / 5, "examples": 5, "errors": 1}
    with pytest.raises(ValueError, match="holds no examples"):
        evaluation.evaluate_classifier(predict, test_data.take(0))


def test_classifier_test_data_is_the_whole_split_resized_to_the_input(digits_dir):
    test_data = evaluation.classifier_test_data((16, 16, 1), batch_size=100, data_dir=digits_dir)
    sizes = [int(labels.shape[0]) for _, labels in test_data]
    assert sizes == [100, 100, 100, 59]  # the 359 test scans, unshuffled and unrepeated
    images, labels = next(iter(test_data))
    assert images.shape == (100, 16, 16, 1) and images.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    for shape in [(32, 16, 1), (None, None, 1)]:
        with pytest.raises(ValueError, match="Expected a square classifier input"):
            evaluation.classifier_test_data(shape)


# --------------------------------------------------------------------------- aligner


def test_family_of_recognises_aligners():
    assert families.family_of(models.build_model("aligner_tiny")) == "aligner"
    assert families.family_of(models.build_model("sr_tiny_x2")) == "sr"
    moving = keras.Input((8, 8, 1), name="moving")
    fixed = keras.Input((8, 8, 1), name="fixed")
    flow_only = keras.Model(
        {"moving": moving, "fixed": fixed},
        {"flow": keras.layers.Concatenate()([moving, fixed])},
    )
    with pytest.raises(ValueError, match="no 'homography' output"):
        families.family_of(flow_only)


def test_held_out_pairs_are_fixed_and_named(aligner_pairs, photos_dir):
    pairs = aligner_pairs
    assert len(pairs) == 10
    assert [pair.name for pair in pairs[:3]] == [
        "validation[0]#0",
        "validation[0]#1",
        "validation[1]#0",
    ]
    first = pairs[0]
    assert first.moving.shape == first.fixed.shape == (SIZE, SIZE, 1)
    # corners are where the true homography puts the patch corners, shifted by at most rho
    np.testing.assert_allclose(
        evaluation.map_corners(first.homography, SIZE), first.corners, atol=1e-3
    )
    square = evaluation.map_corners(np.eye(3), SIZE)
    assert 0 < np.abs(first.corners - square).max() <= evaluation.ALIGNMENT_MAX_SHIFT
    again = evaluation.held_out_alignment_pairs(SIZE, 1, pairs_per_image=2, data_dir=photos_dir)
    np.testing.assert_array_equal(again[7].moving, pairs[7].moving)


def test_map_corners_and_corner_error_definitions():
    square = [[0, 0], [63, 0], [63, 63], [0, 63]]  # clockwise from the top-left pixel
    np.testing.assert_array_equal(evaluation.map_corners(np.eye(3), 64), square)
    shift = np.array([[1, 0, 3], [0, 1, -4], [0, 0, 1]], "float64")
    np.testing.assert_allclose(evaluation.map_corners(shift, 64), np.add(square, [3, -4]))
    # a homography is defined up to scale: the division by w undoes it
    np.testing.assert_allclose(evaluation.map_corners(2 * shift, 64), np.add(square, [3, -4]))
    assert evaluation.corner_error(shift, np.array(square, "float64"), 64) == pytest.approx(5.0)
    # doubling about the origin moves the corners by 0, 127, 127*sqrt(2) and 127 px (size 128)
    zoom = np.diag([2.0, 2.0, 1.0])
    square_128 = evaluation.map_corners(np.eye(3), 128)
    expected = 127 * (0 + 1 + np.sqrt(2) + 1) / 4
    assert evaluation.corner_error(zoom, square_128) == pytest.approx(expected)


def test_evaluate_aligner_identity_and_perfect(aligner_pairs):
    few = aligner_pairs[:3]
    square = np.array([[0, 0], [63, 0], [63, 63], [0, 63]], "float64")
    expected = [np.linalg.norm(pair.corners - square, axis=-1).mean() for pair in few]

    identity = evaluation.evaluate_aligner(None, few)
    np.testing.assert_allclose(identity.errors, expected, rtol=1e-6)
    summary = identity.as_dict()
    assert summary["mean_corner_error_px"] == pytest.approx(np.mean(expected))
    assert summary["median_corner_error_px"] == pytest.approx(np.median(expected))
    assert summary["pairs"] == 3 and summary["non_finite"] == 0
    # the same numbers from a predictor that returns the identity, two pairs per call
    as_predictor = evaluation.evaluate_aligner(
        lambda moving, fixed: {"homography": np.tile(np.eye(3), (len(moving), 1, 1))},
        few,
        batch_size=2,
    )
    np.testing.assert_allclose(as_predictor.errors, expected, rtol=1e-6)

    def perfect(moving, fixed):  # called once with all three pairs, in order
        np.testing.assert_array_equal(moving, np.stack([pair.moving for pair in few]))
        return {"homography": np.stack([pair.homography for pair in few])}

    scores = evaluation.evaluate_aligner(perfect, few, batch_size=3).as_dict()
    assert scores["mean_corner_error_px"] < 1e-3 and scores["over_10px_percent"] == 0
    # float32 leaves errors of ~1e-5 px, just above the curve's first threshold (0 px): the
    # trapezoid loses half a grid step, 1/400
    for limit in (3, 5, 10):
        assert scores[f"auc_{limit}px"] == pytest.approx(1.0, abs=1 / 400 + 1e-9)

    broken = evaluation.evaluate_aligner(
        lambda moving, fixed: {"homography": np.full((len(moving), 3, 3), np.nan)}, few
    )
    assert broken.non_finite == 3  # counted as the identity, as in benchmarks/aligner.py
    np.testing.assert_allclose(broken.errors, expected, rtol=1e-6)


def test_corner_error_summary_definitions():
    summary = evaluation.corner_error_summary([0.0, 2.0, 4.0, 20.0])
    assert summary["mean_corner_error_px"] == 6.5 and summary["median_corner_error_px"] == 3.0
    assert summary["over_10px_percent"] == 25.0
    # AUC@10: mean over thresholds t in [0, 10] of the fraction of errors <= t
    # = (1/4) * ((10 - 0) + (10 - 2) + (10 - 4) + 0) / 10 = 0.6, up to the trapezoid rule on
    # the 0.05 px grid (half a grid step at each of the two steps inside: +0.00125)
    assert summary["auc_10px"] == pytest.approx(0.6 + 0.00125, abs=1e-9)
    # AUC@3 = (0.25 * 3 + 0.25 * (3 - 2)) / 3 = 1/3, within a grid step (3/200 px)
    assert summary["auc_3px"] == pytest.approx(1 / 3, abs=0.25 * 0.015 / 3)
    with pytest.raises(ValueError, match="No corner errors"):
        evaluation.corner_error_summary([])


def test_benchmark_uses_the_same_implementation():
    bench = load_script(ROOT / "benchmarks" / "aligner.py", "bench_aligner")
    assert bench.corner_error is evaluation.corner_error
    row = bench.summarise([1.0, 3.0], [0.01, 0.03])
    assert row == {**evaluation.corner_error_summary([1.0, 3.0]), "ms_per_pair": 20.0}


# --------------------------------------------------------------------------- calibration


def test_sr_calibration_data_is_seeded_crops_of_training_photos():
    representative = families.representative_data("sr", (None, None, 3), count=3, seed=5)
    samples = representative()
    assert representative() is samples  # made once; the converter may call it again
    assert len(samples) == 3 and all(len(sample) == 1 for sample in samples)
    for (crop,) in samples:
        assert crop.shape == (1, 64, 64, 3) and crop.dtype == np.float32
        assert 0.0 <= crop.min() and crop.max() <= 1.0 and crop.std() > 0.01  # a photo, not flat
    again = families.representative_data("sr", (None, None, 3), count=3, seed=5)()
    other = families.representative_data("sr", (None, None, 3), count=3, seed=6)()
    np.testing.assert_array_equal(again[2][0], samples[2][0])
    assert not np.array_equal(other[0][0], samples[0][0])
    # the first crop comes from the first training photo, never a held-out one
    first_photo = data.load_photo(data.photo_names("train")[0]).astype("float32") / 255.0
    crop = samples[0][0][0]
    starts = np.argwhere((first_photo[:-63, :-63] == crop[0, 0]).all(axis=-1))
    assert any(
        np.array_equal(first_photo[top : top + 64, left : left + 64], crop) for top, left in starts
    )


def test_evaluate_flow_pools_the_end_point_errors_of_visible_pixels(photos_dir):
    pairs = evaluation.held_out_alignment_pairs(
        SIZE, 1, pairs_per_image=1, deformation=4.0, data_dir=photos_dir
    )
    assert all(p.flow.shape == (SIZE, SIZE, 2) and p.visible.dtype == bool for p in pairs)
    visible = sum(int(p.visible.sum()) for p in pairs)

    truth = np.stack([p.flow for p in pairs])

    def offset(dx):  # one batch of all pairs: the true flow moved dx px along x
        return lambda moving, fixed: {"flow": truth + np.array([dx, 0.0])}

    exact = evaluation.evaluate_flow(offset(0.0), pairs, batch_size=len(pairs))
    assert exact["mean_epe_px"] == pytest.approx(0.0, abs=1e-9) and exact["pixels"] == visible
    off = evaluation.evaluate_flow(offset(4.0), pairs, batch_size=len(pairs))
    assert off["mean_epe_px"] == pytest.approx(4.0) and off["median_epe_px"] == pytest.approx(4.0)
    assert off["bad_3px_percent"] == pytest.approx(100.0)
