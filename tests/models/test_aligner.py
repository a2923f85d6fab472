import keras
import numpy as np
import pytest
import skimage.data
import skimage.transform
from scipy import ndimage

from keras_attn import models
from keras_attn.export import export_tflite
from keras_attn.export.tflite import TFLiteModel
from keras_attn.models.aligner import (
    align,
    aligner,
    aligner_inference_model,
    homography_flow,
    resize_matrix,
    transfer_aligner_weights,
    warp_image,
)
from keras_attn.training.losses import CornerLoss

SIZE = 64
PATCH_CORNERS = np.array([[0, 0], [SIZE - 1, 0], [SIZE - 1, SIZE - 1], [0, SIZE - 1]], float)
# moving -> fixed: a small rotation/zoom, a translation and a little perspective
MOTION = np.array([[1.03, 0.04, -2.5], [-0.03, 0.98, 1.5], [4e-4, -3e-4, 1.0]])


def apply_np(matrix, points):
    homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    mapped = homogeneous @ np.swapaxes(matrix, -1, -2)
    return mapped[..., :2] / mapped[..., 2:]


def camera(size=SIZE):
    """A real photo as float32 (size, size) in [0, 1]."""
    photo = skimage.data.camera()[40:360, 100:420]
    return skimage.transform.resize(photo, (size, size), anti_aliasing=True).astype("float32")


def photo_pair():
    """(moving, fixed) float32 (1, 64, 64, 1): fixed is moving seen through MOTION."""
    moving = camera()
    fixed = skimage.transform.warp(
        moving, skimage.transform.ProjectiveTransform(matrix=MOTION).inverse, order=1, mode="edge"
    )
    return moving[None, ..., None], fixed.astype("float32")[None, ..., None]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)
    return models.build_model("aligner_tiny", return_corners=True)


@pytest.fixture(scope="module")
def outputs(model):
    moving, fixed = photo_pair()
    batch = {"moving": np.repeat(moving, 2, 0), "fixed": np.concatenate([fixed, moving])}
    return batch, {key: np.asarray(value) for key, value in model(batch).items()}


def test_outputs_keys_and_shapes(outputs):
    _, result = outputs
    assert sorted(result) == ["corners", "flow", "homography", "warped"]
    assert result["homography"].shape == (2, 3, 3)
    assert result["flow"].shape == (2, SIZE, SIZE, 2)
    assert result["warped"].shape == (2, SIZE, SIZE, 1)
    assert result["corners"].shape == (2, 2, 4, 2)  # aligner_tiny: 2 iterations
    assert all(value.dtype == np.float32 for value in result.values())
    np.testing.assert_array_equal(result["homography"][:, 2, 2], 1.0)


def test_outputs_follow_the_conventions(outputs):
    """corners = H(patch corners); flow = H^-1(x) - x (backward); warped = moving(x + flow)."""
    batch, result = outputs
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    grid = np.stack([xs, ys], axis=-1)
    for b in range(2):
        homography = result["homography"][b].astype("float64")
        np.testing.assert_allclose(
            result["corners"][b, -1], apply_np(homography, PATCH_CORNERS), atol=1e-3
        )
        implied_flow = apply_np(np.linalg.inv(homography), grid) - grid
        np.testing.assert_allclose(result["flow"][b], implied_flow, atol=5e-3)
        flow = result["flow"][b]
        expected = ndimage.map_coordinates(
            batch["moving"][b, ..., 0],
            [ys + flow[..., 1], xs + flow[..., 0]],
            order=1,
            mode="grid-constant",
        )
        np.testing.assert_allclose(result["warped"][b, ..., 0], expected, atol=1e-5)


def test_untrained_model_on_identical_images_is_close_to_identity(outputs):
    # Matching identical features puts every cell on itself; what is left is the pull of the
    # peak window towards the inside at the borders. Measured over 5 seeds, on this photo and
    # on noise: corners within 0.6 px, linear part within 0.008 of the identity.
    _, result = outputs
    error = np.linalg.norm(result["corners"][1] - PATCH_CORNERS, axis=-1)  # (iterations, 4)
    assert error.max() < 1.0
    np.testing.assert_allclose(result["homography"][1, :2, :2], np.eye(2), atol=0.02)
    assert np.abs(result["homography"][1, :2, 2]).max() < 1.0


def test_untrained_model_already_moves_the_corners_towards_the_truth(model):
    # The match is computed (correlation + soft-argmax + robust fit), not learned: random
    # features already align a photo. Measured over 8 seeds: 0.8-1.3 px mean corner error,
    # against 2.3 px for the identity and 3.6 px for the inverse (the flipped convention).
    moving, fixed = photo_pair()
    corners = np.asarray(model({"moving": moving, "fixed": fixed})["corners"])[0, -1]

    truth = apply_np(MOTION, PATCH_CORNERS)
    error = np.linalg.norm(corners - truth, axis=-1).mean()
    identity_error = np.linalg.norm(PATCH_CORNERS - truth, axis=-1).mean()
    flipped = apply_np(np.linalg.inv(MOTION), PATCH_CORNERS)
    assert error < 0.7 * identity_error
    assert error < 0.5 * np.linalg.norm(corners - flipped, axis=-1).mean()


def test_inference_model_drops_corners_and_shares_weights(model, outputs):
    batch, result = outputs
    inference = aligner_inference_model(model)
    assert {id(w) for w in inference.weights} == {id(w) for w in model.weights}
    assert len(inference.weights) == len(model.weights)
    inferred = inference(batch)
    assert sorted(inferred) == ["flow", "homography", "warped"]
    for key in inferred:
        np.testing.assert_allclose(inferred[key], result[key], atol=1e-6)
    with pytest.raises(ValueError, match="is not an aligner built by keras_attn.models.aligner"):
        aligner_inference_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_keras_round_trip(model, outputs, tmp_path):
    batch, result = outputs
    model.save(tmp_path / "aligner.keras")
    reloaded = keras.saving.load_model(tmp_path / "aligner.keras")  # safe_mode=True
    again = reloaded(batch)
    assert sorted(again) == sorted(result)
    for key, value in again.items():
        np.testing.assert_allclose(value, result[key], atol=1e-5)


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # aligner_tiny skips stride 4
def test_one_training_step_on_the_corners(outputs):
    keras.utils.set_random_seed(3)
    model = models.build_model("aligner_tiny", return_corners=True)
    batch, _ = outputs
    truth = apply_np(np.stack([MOTION, np.eye(3)]), PATCH_CORNERS[None]).astype("float32")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss={"corners": CornerLoss()}, run_eagerly=True
    )
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(batch, {"corners": truth})
    assert np.isfinite(loss) and loss > 0
    changed = {
        w.path
        for w, b in zip(model.trainable_weights, before, strict=True)
        if not np.allclose(np.array(w), b)
    }
    assert "aligner_tiny_encoder_stem_conv/kernel" in changed
    assert "aligner_tiny_iter1_match/log_scale" in changed
    assert "aligner_tiny_iter2_confidence_gate/kernel" in changed
    assert all(np.isfinite(np.array(w)).all() for w in model.trainable_weights)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"head": "bogus"},
            r"head must be one of \['homography', 'flow'\]. Received: head='bogus'",
        ),
        ({"input_shape": (60, 64, 1)}, "multiples of 8"),
        ({"input_shape": (64, 64, 2)}, "1 or 3 channels"),
        ({"input_shape": (64, 64)}, "1 or 3 channels"),
        ({"levels": ((16, None),)}, r"stride must be one of \[2, 4, 8\]"),
        ({"levels": ((8, 0),)}, "radius must be None"),
        ({"levels": ()}, "at least one"),
        ({"widths": (16, 16)}, "widths must hold 4"),
        ({"hypotheses": 0}, "hypotheses must be a positive integer"),
        ({"hypotheses": True}, "hypotheses must be a positive integer"),
        ({"hypotheses": 2, "levels": ((4, 2), (2, 2))}, "needs a global first level"),
        ({"score_stride": 0}, "score_stride must be a positive integer dividing"),
        ({"score_stride": 3}, r"dividing the image size \(64, 64\). Received: 3"),
    ],
)
def test_bad_builder_arguments(kwargs, message):
    settings = {"input_shape": (SIZE, SIZE, 1)}
    settings.update(kwargs)
    with pytest.raises(ValueError, match=message):
        aligner(**settings)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in models.list_models("aligner") if "tiny" not in n])
def test_registered_presets_build_and_run(name, rng):
    model = models.build_model(name)
    height, width, channels = model.inputs[0].shape[1:]
    image = rng.uniform(size=(1, height, width, channels)).astype("float32")
    result = model({"moving": image, "fixed": image})
    assert result["homography"].shape == (1, 3, 3)
    assert result["flow"].shape == (1, height, width, 2)
    assert result["warped"].shape == (1, height, width, channels)
    assert all(np.isfinite(np.asarray(value)).all() for value in result.values())


# --------------------------------------------------------------------------- align


def test_align_returns_numpy_in_the_input_layout(model):
    moving, fixed = photo_pair()
    moving8 = np.round(moving[0, ..., 0] * 255).astype("uint8")
    fixed8 = np.round(fixed[0, ..., 0] * 255).astype("uint8")
    result = align(model, moving8, fixed8)
    assert result["homography"].shape == (3, 3) and result["flow"].shape == (SIZE, SIZE, 2)
    assert result["warped"].dtype == np.uint8 and result["warped"].shape == (SIZE, SIZE)
    np.testing.assert_array_equal(result["warped"], warp_image(moving8, result["flow"]))
    # uint8 means [0, 255]: the model sees the images divided by 255 (align predicts in graph
    # mode, so compare with predict_on_batch: eager and graph results differ, see below)
    scaled = {
        "moving": moving8[None, ..., None].astype("float32") / 255,
        "fixed": fixed8[None, ..., None].astype("float32") / 255,
    }
    expected = model.predict_on_batch(scaled)
    np.testing.assert_allclose(result["homography"], expected["homography"][0], atol=1e-5)
    np.testing.assert_allclose(result["flow"], expected["flow"][0], atol=1e-4)


def test_align_gives_rgb_to_a_grayscale_model_as_luma(model, rng):
    moving = (rng.uniform(size=(SIZE, SIZE, 3)) * 255).astype("uint8")
    fixed = np.roll(moving, 3, axis=1)
    result = align(model, moving, fixed)
    assert result["warped"].shape == (SIZE, SIZE, 3) and result["warped"].dtype == np.uint8
    luma = np.array([0.299, 0.587, 0.114], "float32")
    # what align does: uint8 -> float32 / 255 -> luma
    gray = align(model, moving.astype("float32") / 255 @ luma, fixed.astype("float32") / 255 @ luma)
    np.testing.assert_allclose(result["homography"], gray["homography"], atol=1e-4)


@pytest.mark.parametrize(
    "moving_shape, fixed_shape, message",
    [
        ((8, 32), (SIZE, SIZE), r"moving is too small to align: at least 16 pixels"),
        ((SIZE, SIZE), (SIZE, 12), r"fixed is too small"),
        ((SIZE, SIZE, 2), (SIZE, SIZE), r"moving must have 1 or 3 channels"),
    ],
)
def test_align_bad_sizes(model, moving_shape, fixed_shape, message):
    with pytest.raises(ValueError, match=message):
        align(model, np.zeros(moving_shape, "uint8"), np.zeros(fixed_shape, "uint8"))


class _ExactAligner:
    """A stand-in aligner that returns, at its 64x64 working size, the true homography of the
    resized pair: what align() maps back must then be the full-resolution truth."""

    input_shape = (SIZE, SIZE, 1)
    source = "exact"

    def __init__(self, truth, moving_shape, fixed_shape):
        to_moving = resize_matrix(moving_shape, (SIZE, SIZE))
        to_fixed = resize_matrix(fixed_shape, (SIZE, SIZE))
        self.small = to_fixed @ truth @ np.linalg.inv(to_moving)
        self.small /= self.small[2, 2]

    def __call__(self, moving, fixed):
        flow = homography_flow(self.small, (SIZE, SIZE))[None].astype("float32")
        return {"homography": self.small[None], "flow": flow, "warped": moving}


@pytest.mark.parametrize("moving_shape", [(480, 640), (240, 320), (300, 500)])
def test_align_maps_the_working_size_result_back_exactly(moving_shape):
    fixed_shape = (480, 640)
    truth = np.array([[1.02, 0.03, 12.0], [-0.02, 0.99, -7.0], [1e-5, -2e-5, 1.0]])
    truth = truth @ np.linalg.inv(resize_matrix(moving_shape, fixed_shape))  # other sizes
    stand_in = _ExactAligner(truth, moving_shape, fixed_shape)
    moving = np.zeros(moving_shape, "uint8")
    result = align(stand_in, moving, np.zeros(fixed_shape, "uint8"))
    np.testing.assert_allclose(result["homography"], truth / truth[2, 2], rtol=1e-9, atol=1e-9)
    assert result["flow"].shape == (*fixed_shape, 2) and result["warped"].shape == fixed_shape
    np.testing.assert_allclose(result["flow"], homography_flow(truth, fixed_shape), atol=1e-3)


def test_align_real_photos_at_640x480_and_of_different_sizes():
    """The shipped aligner on a real photo pair far larger than its 128x128 input: fixed is a
    640x480 view, moving the same scene through a known homography, then also at half size."""
    from keras_attn import pretrained

    photo = skimage.transform.resize(skimage.data.astronaut(), (560, 720), anti_aliasing=True)
    truth = np.array([[1.0, 0.02, 20.0], [-0.02, 1.0, 12.0], [0.0, 0.0, 1.0]])
    # fixed(x) = photo(x + 40, y + 40); moving(p) shows photo at the point fixed shows at truth(p)
    offset = np.array([[1.0, 0, 40], [0, 1.0, 40], [0, 0, 1]])
    fixed = skimage.transform.warp(photo, offset, output_shape=(480, 640), order=1)
    moving = skimage.transform.warp(photo, offset @ truth, output_shape=(480, 640), order=1)
    predictor = pretrained.load_predictor("aligner_homography")
    corners = np.array([[0, 0], [639, 0], [639, 479], [0, 479]], float)

    def corner_error(homography, scale=1.0):
        return np.linalg.norm(
            apply_np(homography, corners * scale) - apply_np(truth, corners), axis=1
        ).mean()

    result = align(predictor, moving, fixed)
    identity = corner_error(np.eye(3))
    assert corner_error(result["homography"]) < 0.1 * identity, (
        corner_error(result["homography"]),
        identity,
    )
    assert result["warped"].shape == (480, 640, 3) and result["flow"].shape == (480, 640, 2)

    half = skimage.transform.resize(moving, (240, 320), anti_aliasing=True).astype("float32")
    small = align(predictor, half, fixed)["homography"]  # maps half-size moving pixels
    assert corner_error(small @ resize_matrix((480, 640), (240, 320))) < 0.1 * identity


def test_align_rejects_nan(model):
    image = np.full((SIZE, SIZE), 0.5, "float32")
    broken = image.copy()
    broken[3, 4] = np.nan
    with pytest.raises(ValueError, match="fixed contains NaN or Inf pixels"):
        align(model, image, broken)


# --------------------------------------------------------------------------- warp_image


def test_warp_image_identity_keeps_dtype_and_layout(rng):
    gray = (rng.uniform(size=(20, 24)) * 255).astype("uint8")
    out = warp_image(gray, np.eye(3))
    assert out.dtype == np.uint8 and out.shape == (20, 24)
    np.testing.assert_array_equal(out, gray)
    rgb = (rng.uniform(size=(20, 24, 3)) * 65535).astype("uint16")
    out = warp_image(rgb, np.eye(3))
    assert out.dtype == np.uint16 and out.shape == (20, 24, 3)
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("dx, dy", [(3.0, 2.0), (2.5, -1.25)])
def test_warp_image_translation(dx, dy, rng):
    # H moves moving pixel (x, y) to (x + dx, y + dy) in fixed: fixed = moving shifted by (dy, dx)
    image = rng.uniform(size=(20, 24)).astype("float32")
    translation = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
    expected = ndimage.shift(image, (dy, dx), order=1, mode="grid-constant")
    np.testing.assert_allclose(warp_image(image, translation), expected, atol=1e-5)


def test_warp_image_matches_skimage_and_the_implied_flow(rng):
    image = rng.uniform(size=(20, 24, 3)).astype("float32")
    expected = skimage.transform.warp(
        image, skimage.transform.ProjectiveTransform(matrix=MOTION).inverse, order=1, cval=0.0
    )
    warped = warp_image(image, MOTION)
    np.testing.assert_allclose(warped, expected, atol=1e-5)
    ys, xs = np.mgrid[0:20, 0:24].astype(float)
    grid = np.stack([xs, ys], axis=-1)
    flow = apply_np(np.linalg.inv(MOTION), grid) - grid
    np.testing.assert_allclose(warp_image(image, flow), warped, atol=1e-5)
    assert np.abs(warped - image).mean() > 0.05  # the motion is visible


def test_warp_image_onto_a_grid_of_another_size(rng):
    image = rng.uniform(size=(20, 24)).astype("float32")
    flow = np.zeros((30, 16, 2), "float32")  # identity on a taller, narrower grid
    warped = warp_image(image, flow)
    assert warped.shape == (30, 16)
    np.testing.assert_allclose(warped[:20], image[:, :16], atol=1e-6)
    assert (warped[20:] == 0).all()  # outside the image


@pytest.mark.parametrize(
    "transform, message",
    [
        (np.zeros((2, 2)), r"3x3 homography or an \(H, W, 2\) flow"),
        (np.zeros((3, 3)), "finite, invertible"),
        (np.full((3, 3), np.nan), "finite, invertible"),
        (np.full((20, 24, 2), np.inf), "flow contains NaN or Inf"),
    ],
)
def test_warp_image_bad_transforms(transform, message):
    with pytest.raises(ValueError, match=message):
        warp_image(np.zeros((20, 24), "uint8"), transform)


# --------------------------------------------------------------------------- TFLite


@pytest.mark.slow  # about 30 s: the unrolled solves make a large graph to trace and convert
def test_tflite_export_matches_keras(model, tmp_path):
    moving, fixed = photo_pair()
    inference = aligner_inference_model(model)
    inputs = {"moving": moving, "fixed": fixed}
    # a fixed batch of 1, as keras_attn exports aligners (TFLITE_BATCH_SIZE)
    report = export_tflite(inference, tmp_path / "aligner.tflite", inputs=inputs, batch_size=1)
    assert not any(op.startswith("Flex") for op in report.ops)
    expected = {key: np.asarray(value)[0] for key, value in inference(inputs).items()}
    runner = TFLiteModel(report.path)
    assert runner.batch_size == 1 and runner.xnnpack
    # a batch of 2 runs a pair at a time: the pair, then the pair swapped (another answer)
    both = runner(moving=np.concatenate([moving, fixed]), fixed=np.concatenate([fixed, moving]))
    actual = {key: value[0] for key, value in both.items()}
    swapped = {
        key: np.asarray(value)[0]
        for key, value in inference({"moving": fixed, "fixed": moving}).items()
    }
    assert np.abs(both["flow"][1] - swapped["flow"]).max() < 0.1
    # The peak window of CorrelationMatch2D starts at an argmax, so rounding differences can
    # move a few near-tied matches by a cell: the output is not a smooth function of the input.
    # Measured on 5 photos: Keras eager vs graph (tf.function) up to
    # 0.06 px on the corners, eager vs TFLite up to 0.03 px; homography entries 2e-3, flow
    # 0.04 px, warped intensity 0.03 (at edges). So compare in pixels, at 0.1 px.
    corners = [apply_np(actual["homography"].astype(float), PATCH_CORNERS)]
    corners.append(apply_np(expected["homography"].astype(float), PATCH_CORNERS))
    assert np.abs(corners[0] - corners[1]).max() < 0.1
    assert np.abs(actual["flow"] - expected["flow"]).max() < 0.1
    warped_difference = np.abs(actual["warped"] - expected["warped"])
    assert warped_difference.mean() < 2e-3 and warped_difference.max() < 0.1
    assert report.max_abs_diff["flow"] < 0.1


def test_the_flow_head_adds_a_bounded_residual_to_the_homography_flow(rng):
    """`head="flow"`: same homography as the homography head with the same weights; the flow
    differs from the homography's by the head's residual (zero-initialised refinements, so at
    most the local match's +-4 cells = +-8 px, upsampled) and stays finite."""
    settings = {"input_shape": (64, 64, 1), "widths": (8, 8, 8, 8), "levels": ((8, None), (2, 2))}
    keras.utils.set_random_seed(1)
    dense = aligner(head="flow", name="dense", **settings)
    plain = aligner(name="dense", **settings)
    transfer_aligner_weights(plain, dense)
    moving = rng.uniform(size=(2, 64, 64, 1)).astype("float32")
    fixed = np.roll(moving, 3, axis=2)
    got = dense({"moving": moving, "fixed": fixed})
    want = plain({"moving": moving, "fixed": fixed})
    np.testing.assert_allclose(got["homography"], want["homography"], atol=1e-5)
    residual = np.asarray(got["flow"]) - np.asarray(want["flow"])
    assert np.isfinite(residual).all() and 0 < np.abs(residual).max() <= 8.0 + 1e-3
    head = [layer.name for layer in dense.layers if layer.weights and "flow" in layer.name]
    assert "dense_flow_context_out" in head and "dense_flow_fine_out" in head


@pytest.mark.slow  # about 30 s to trace and convert
def test_the_flow_head_converts_to_tflite_builtins(tmp_path):
    keras.utils.set_random_seed(2)
    dense = aligner(
        (64, 64, 1), head="flow", widths=(8, 8, 8, 8), levels=((8, None), (2, 2)), name="dense"
    )
    generator = np.random.default_rng(0)
    for layer in dense.layers:  # give the zero-initialised refinements something to say
        if layer.name.endswith("_out") and layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([generator.normal(0, 1e-3, kernel.shape).astype("float32"), bias])
    moving, fixed = photo_pair()
    inputs = {"moving": moving, "fixed": fixed}
    report = export_tflite(dense, tmp_path / "dense.tflite", inputs=inputs)
    assert not any(op.startswith("Flex") for op in report.ops)
    expected = np.asarray(dense(inputs)["flow"])
    actual = TFLiteModel(report.path)(**inputs)["flow"]
    # near-tied matches may flip a cell (see test_tflite_export_matches_keras), and the head
    # spreads such a flip over its neighbours: most pixels agree. An untrained encoder has many
    # near ties (here: median 0.009 px, mean 0.24 px); a trained head on 10 held-out pairs
    # measured median <= 0.016 px, mean <= 0.043 px, single pixels up to 2.9 px
    difference = np.linalg.norm(actual - expected, axis=-1)
    assert np.median(difference) < 0.02 and (difference < 0.1).mean() > 0.8
