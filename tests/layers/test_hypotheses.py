"""Several global hypotheses: proposals from the shift votes, repetition, selection."""

import keras
import numpy as np
import pytest
import scipy.ndimage
import skimage.data
import skimage.transform

from keras_attn import models
from keras_attn.export import export_tflite
from keras_attn.export.tflite import TFLiteModel
from keras_attn.layers.hypotheses import (
    FirstHypothesis,
    RepeatHypotheses,
    SelectHypothesis,
    ShiftHypotheses,
)
from keras_attn.models.aligner import aligner, aligner_inference_model

SIZE = 64
STRIDE = 8
CELL = 2.0 * STRIDE / (SIZE - 1.0)  # one cell in normalised units


def _translation(dx, dy):
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], "float32")


def test_one_hypothesis_is_the_estimate():
    estimate = _translation(0.1, -0.2)[None]
    layer = ShiftHypotheses((SIZE, SIZE), STRIDE, hypotheses=1)
    out = layer(np.zeros((1, 8, 8, 2), "float32"), np.ones((1, 8, 8, 1), "float32"), estimate)
    np.testing.assert_array_equal(out, estimate)


def test_hypotheses_are_the_estimate_then_the_other_modes_by_weight():
    # three groups of cells vote for three shifts (in cells); the estimate sits on the first
    displacement = np.zeros((1, 8, 8, 2), "float32")
    weights = np.zeros((1, 8, 8, 1), "float32")
    displacement[0, :4] = (3, 0)
    weights[0, :4] = 1.0
    displacement[0, 4:6] = (-2, 1)
    weights[0, 4:6] = 0.9
    displacement[0, 6:] = (0, -4)
    weights[0, 6:] = 0.2
    estimate = _translation(3 * CELL, 0.0)[None]
    out = ShiftHypotheses((SIZE, SIZE), STRIDE, hypotheses=3)(displacement, weights, estimate)
    out = np.asarray(out)
    assert out.shape == (3, 3, 3)
    np.testing.assert_allclose(out[0], estimate[0])
    np.testing.assert_allclose(out[1], _translation(-2 * CELL, 1 * CELL), atol=1e-6)
    np.testing.assert_allclose(out[2], _translation(0.0, -4 * CELL), atol=1e-6)


def test_repeat_then_first_round_trips_pair_major():
    x = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    repeated = np.asarray(RepeatHypotheses(3)(x))
    assert repeated.shape == (6, 3, 4)
    np.testing.assert_array_equal(repeated[:3], np.stack([x[0]] * 3))
    np.testing.assert_array_equal(FirstHypothesis(3)(repeated), x)


def _shifted_photos(dx):
    photo = skimage.transform.resize(skimage.data.camera(), (128, 128), anti_aliasing=True)
    fixed = photo[32:96, 32:96]
    moving = photo[32:96, 32 + dx : 96 + dx]  # fixed(y, x) = moving(y, x - dx)
    return moving.astype("float32")[None, ..., None], fixed.astype("float32")[None, ..., None]


@pytest.mark.parametrize("score_stride", [1, 2, 4])
def test_select_keeps_the_hypothesis_whose_warp_matches_fixed(score_stride):
    moving, fixed = _shifted_photos(8)
    # G maps fixed to moving coordinates: the true one shifts by -8 px
    true = _translation(-8 * 2.0 / (SIZE - 1.0), 0.0)
    wrong = _translation(8 * 2.0 / (SIZE - 1.0), 0.0)
    hypotheses = np.stack([wrong, true, np.eye(3, dtype="float32")])
    chosen, scores = SelectHypothesis((SIZE, SIZE), 3, score_stride=score_stride)(
        fixed, moving, hypotheses, return_scores=True
    )
    np.testing.assert_allclose(chosen[0], true)
    scores = np.asarray(scores)[0]
    assert scores[1] > 0.99 and scores[1] > scores[0] and scores[1] > scores[2]


@pytest.mark.parametrize("score_stride", [1, 2])
def test_select_breaks_ties_towards_hypothesis_zero_and_needs_overlap(score_stride):
    moving, fixed = _shifted_photos(0)
    off_image = _translation(10.0, 0.0)  # the whole grid samples outside: no overlap
    hypotheses = np.stack([np.eye(3, dtype="float32"), np.eye(3, dtype="float32"), off_image])
    chosen, scores = SelectHypothesis((SIZE, SIZE), 3, score_stride=score_stride)(
        fixed, moving, hypotheses, return_scores=True
    )
    np.testing.assert_array_equal(chosen[0], np.eye(3))
    assert np.asarray(scores)[0, 2] == -1.0


def _reference_scores(fixed, moving, hypotheses, stride, min_overlap=0.25):
    """The NCC of `SelectHypothesis` from its definition: both images averaged over
    `stride x stride` blocks, each block centre mapped by the hypothesis, the block image
    sampled there (SciPy, bilinear), the statistics over the samples whose bilinear weight
    inside the image is (almost) 1."""
    size = fixed.shape[0]
    small_fixed = skimage.transform.downscale_local_mean(fixed, (stride, stride))
    small_moving = skimage.transform.downscale_local_mean(moving, (stride, stride))
    cells = size // stride
    centres = (np.arange(cells) + 0.5) * stride - 0.5  # block centres in pixels
    xs, ys = np.meshgrid(centres, centres)
    to_norm = lambda v: 2.0 * v / (size - 1.0) - 1.0  # noqa: E731
    to_pixels = lambda v: (v + 1.0) * (size - 1.0) / 2.0  # noqa: E731
    points = np.stack([to_norm(xs), to_norm(ys), np.ones_like(xs)], axis=-1)
    scores = []
    for g in hypotheses.astype("float64"):
        mapped = points @ g.T
        px, py = (
            to_pixels(mapped[..., 0] / mapped[..., 2]),
            to_pixels(mapped[..., 1] / mapped[..., 2]),
        )
        qx, qy = (px + 0.5) / stride - 0.5, (py + 0.5) / stride - 0.5  # in block units
        warped = scipy.ndimage.map_coordinates(
            small_moving, [qy, qx], order=1, mode="grid-constant", cval=0.0
        )
        ones = np.ones_like(small_moving)
        weight_inside = scipy.ndimage.map_coordinates(
            ones, [qy, qx], order=1, mode="grid-constant", cval=0.0
        )
        inside = weight_inside > 0.999
        if inside.sum() < min_overlap * cells * cells:
            scores.append(-1.0)
            continue
        a = warped[inside] - warped[inside].mean()
        b = small_fixed[inside] - small_fixed[inside].mean()
        scores.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())))
    return np.array(scores)


@pytest.mark.parametrize("score_stride", [1, 2, 4])
def test_select_scores_match_their_definition(score_stride):
    moving, fixed = _shifted_photos(5)
    rng = np.random.default_rng(0)
    hypotheses = [_translation(0.3 * 2.0 / (SIZE - 1.0), 0.0)]
    for _ in range(4):  # small projective perturbations
        g = np.eye(3) + rng.normal(0.0, [[0.05, 0.05, 0.2], [0.05, 0.05, 0.2], [0.05, 0.05, 0]])
        hypotheses.append(g.astype("float32"))
    hypotheses = np.stack(hypotheses)
    _, scores = SelectHypothesis((SIZE, SIZE), len(hypotheses), score_stride=score_stride)(
        fixed, moving, hypotheses, return_scores=True
    )
    expected = _reference_scores(fixed[0, ..., 0], moving[0, ..., 0], hypotheses, score_stride)
    np.testing.assert_allclose(np.asarray(scores)[0], expected, atol=2e-4)


@pytest.mark.parametrize(
    "layer, kwargs",
    [
        (ShiftHypotheses, {"image_size": (64, 64), "hypotheses": 0}),
        (ShiftHypotheses, {"image_size": (64, 64), "suppression": -1}),
        (RepeatHypotheses, {"hypotheses": 1.5}),
        (SelectHypothesis, {"image_size": (64, 64), "hypotheses": 2, "min_overlap": 1.5}),
        (SelectHypothesis, {"image_size": (64, 64), "hypotheses": 2, "score_stride": 0}),
        (SelectHypothesis, {"image_size": (64, 64), "hypotheses": 2, "score_stride": 3}),
    ],
)
def test_bad_arguments(layer, kwargs):
    with pytest.raises(ValueError):
        layer(**kwargs)


@pytest.fixture(scope="module")
def single_and_multi():
    keras.utils.set_random_seed(5)
    single = models.build_model("aligner_tiny", return_corners=True)
    multi = aligner(
        input_shape=(SIZE, SIZE, 1),
        widths=(16, 16, 16, 16),
        levels=((8, None), (2, 2)),
        hypotheses=4,
        return_corners=True,
        name=single.name,
    )
    multi.set_weights(single.get_weights())
    return single, multi


def test_hypotheses_add_no_weights_and_train_the_single_path(single_and_multi):
    single, multi = single_and_multi
    assert multi.count_params() == single.count_params()
    moving, fixed = _shifted_photos(6)
    inputs = {"moving": moving, "fixed": fixed}
    # the corners (what the training loss sees) follow hypothesis 0: the single-hypothesis path
    np.testing.assert_allclose(multi(inputs)["corners"], single(inputs)["corners"], atol=1e-4)


def test_multi_hypothesis_aligner_converts_to_tflite_builtins(single_and_multi, tmp_path):
    _, multi = single_and_multi
    inference = aligner_inference_model(multi)
    moving, fixed = _shifted_photos(6)
    inputs = {"moving": moving, "fixed": fixed}
    report = export_tflite(inference, tmp_path / "multi.tflite", inputs=inputs)
    assert not any(op.startswith("Flex") for op in report.ops)
    expected = np.asarray(inference(inputs)["homography"])[0]
    actual = TFLiteModel(report.path)(**inputs)["homography"][0]
    corners = np.array([[0, 0, 1], [63, 0, 1], [63, 63, 1], [0, 63, 1]], "float64")
    mapped = [corners @ np.asarray(h, "float64").T for h in (expected, actual)]
    mapped = [m[:, :2] / m[:, 2:] for m in mapped]
    assert np.abs(mapped[0] - mapped[1]).max() < 0.1


def test_multi_hypothesis_aligner_saves_and_loads(single_and_multi, tmp_path):
    _, multi = single_and_multi
    inference = aligner_inference_model(multi)
    inference.save(tmp_path / "multi.keras")
    loaded = keras.saving.load_model(tmp_path / "multi.keras", compile=False)
    moving, fixed = _shifted_photos(6)
    inputs = {"moving": moving, "fixed": fixed}
    np.testing.assert_allclose(
        loaded(inputs)["homography"], inference(inputs)["homography"], atol=1e-6
    )
