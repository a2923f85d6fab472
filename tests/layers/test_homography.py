import keras
import numpy as np
import pytest
import skimage.transform

from keras_attn.layers import HomographyFlow, HomographyOutputs, HomographyUpdate
from keras_attn.layers import homography_ops as hom
from tests.helpers import tflite_outputs

# --------------------------------------------------------------------------- numpy references


def pixel_to_normalised(height, width):
    """x_n = 2 x / (W - 1) - 1 (pixel centres at integers, corners of the image at +-1)."""
    return np.array([[2 / (width - 1), 0, -1], [0, 2 / (height - 1), -1], [0, 0, 1]])


def apply_np(matrix, points):
    homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    mapped = homogeneous @ np.swapaxes(matrix, -1, -2)
    return mapped[..., :2] / mapped[..., 2:]


def random_homography(rng, scale=0.1):
    """A well-behaved homography near the identity (normalised coordinates), H[2, 2] = 1."""
    matrix = np.eye(3) + rng.normal(scale=scale, size=(3, 3))
    return matrix / matrix[2, 2]


def to_pixels_np(matrix, height, width):
    forward = pixel_to_normalised(height, width)
    pixels = np.linalg.inv(forward) @ matrix @ forward
    return pixels / pixels[2, 2]


def cell_centres(height, width, stride):
    """Pixel (x, y) of the centres of a stride-`stride` grid, (rows, cols, 2)."""
    xs = (np.arange(width // stride) + 0.5) * stride - 0.5
    ys = (np.arange(height // stride) + 0.5) * stride - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], axis=-1)


GRID = np.stack(np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5)), -1).reshape(-1, 2)


# --------------------------------------------------------------------------- math


def test_solve_spd_matches_numpy(rng):
    factors = rng.normal(size=(5, 8, 8))
    matrices = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(8)
    rhs = rng.normal(size=(5, 8))
    expected = np.linalg.solve(matrices, rhs[..., None])[..., 0]
    solved = hom.solve_spd(matrices.astype("float32"), rhs.astype("float32"))
    assert tuple(solved.shape) == (5, 8)
    np.testing.assert_allclose(solved, expected, atol=2e-4 * np.abs(expected).max())


def test_fit_recovers_a_known_homography_exactly(rng):
    matrices = np.stack([random_homography(rng) for _ in range(3)])
    source = np.tile(GRID[None], (3, 1, 1))
    target = apply_np(matrices, source)
    fitted = np.asarray(
        hom.fit(
            source.astype("float32"),
            target.astype("float32"),
            np.ones((3, len(GRID)), "float32"),
            regularization=0.0,
        )
    )
    np.testing.assert_allclose(fitted, matrices, atol=1e-5)
    # the same as scikit-image's DLT on the same points
    for b in range(3):
        reference = skimage.transform.ProjectiveTransform.from_estimate(source[b], target[b])
        assert reference
        np.testing.assert_allclose(fitted[b], reference.params / reference.params[2, 2], atol=1e-5)


def test_fit_weights_are_relative_and_regularization_pulls_towards_identity(rng):
    matrix = random_homography(rng)
    target = apply_np(matrix, GRID)[None].astype("float32")
    source = GRID[None].astype("float32")
    weights = rng.uniform(0.2, 1.0, size=(1, len(GRID))).astype("float32")

    def fitted(w, regularization):
        return np.asarray(hom.fit(source, target, w, regularization))[0]

    # the weights are normalised per example: scaling them all changes nothing
    np.testing.assert_allclose(fitted(weights, 1e-3), fitted(weights * 1e-2, 1e-3), atol=1e-4)
    exact = np.abs(fitted(weights, 0.0) - matrix).max()
    mild = np.abs(fitted(weights, 1e-3) - matrix).max()
    strong = fitted(weights, 10.0)
    assert exact < 1e-5 < mild < 5e-3
    assert np.abs(strong - np.eye(3)).max() < 0.2 * np.abs(matrix - np.eye(3)).max()
    # no match at all: the prior alone
    np.testing.assert_allclose(fitted(np.zeros_like(weights), 1e-3), np.eye(3), atol=1e-6)


def test_fit_ignores_points_of_weight_zero(rng):
    matrix = random_homography(rng)
    source = np.concatenate([GRID, rng.uniform(-1, 1, size=(6, 2))])
    target = apply_np(matrix, source)
    target[len(GRID) :] += rng.uniform(0.3, 0.6, size=(6, 2))  # outliers
    weights = np.ones((1, len(source)), "float32")
    weights[0, len(GRID) :] = 0.0

    def fitted(w):
        result = hom.fit(source[None].astype("float32"), target[None].astype("float32"), w, 0.0)
        return np.asarray(result)[0]

    np.testing.assert_allclose(fitted(weights), matrix, atol=1e-5)
    assert np.abs(fitted(np.ones_like(weights)) - matrix).max() > 0.05  # outliers count


def _with_outliers(rng, matrix, count=5):
    source = np.concatenate([GRID, rng.uniform(-0.8, 0.8, size=(count, 2))])
    target = apply_np(matrix, source)
    target[len(GRID) :] += rng.choice([-1, 1], size=(count, 2)) * rng.uniform(0.3, 0.6, (count, 2))
    return source[None].astype("float32"), target[None].astype("float32")


def test_robust_fit_down_weights_outliers(rng):
    matrix = random_homography(rng, 0.05)
    source, target = _with_outliers(rng, matrix)
    weights = np.ones(source.shape[:2], "float32")
    plain = np.asarray(hom.fit(source, target, weights, 0.0))[0]
    robust = np.asarray(hom.robust_fit(source, target, weights, 0.0, 8, 0.05))[0]
    once = np.asarray(hom.robust_fit(source, target, weights, 0.0, 0, 0.05))[0]
    np.testing.assert_allclose(once, plain, atol=1e-6)  # 0 iterations: the plain fit
    plain_error = np.abs(apply_np(plain, GRID) - apply_np(matrix, GRID)).max()
    robust_error = np.abs(apply_np(robust, GRID) - apply_np(matrix, GRID)).max()
    assert plain_error > 0.05
    assert robust_error < 0.1 * plain_error


def test_robust_translation(rng):
    shift = np.array([0.2, -0.1])
    source = np.concatenate([GRID, rng.uniform(-1, 1, size=(4, 2))])
    target = source + shift
    target[len(GRID) :] += rng.uniform(0.5, 1.0, size=(4, 2))  # outliers, all one way
    source, target = source[None].astype("float32"), target[None].astype("float32")
    weights = np.ones(source.shape[:2], "float32")
    matrix = np.asarray(hom.robust_translation(source, target, weights, 8, 0.05))[0]
    expected = np.eye(3)
    expected[:2, 2] = shift
    np.testing.assert_allclose(matrix, expected, atol=5e-3)
    mean = np.asarray(hom.robust_translation(source, target, weights, 0))[0]
    np.testing.assert_allclose(mean[:2, 2], (target - source)[0].mean(axis=0), atol=1e-5)
    assert np.abs(mean[:2, 2] - shift).max() > 0.05  # the plain mean is pulled by the outliers
    # no match at all: no motion
    zero = hom.robust_translation(source, target, np.zeros_like(weights))
    np.testing.assert_allclose(zero[0], np.eye(3), atol=1e-5)


def test_invert_matches_numpy(rng):
    matrices = np.stack([random_homography(rng, 0.3) for _ in range(4)])
    expected = np.linalg.inv(matrices)
    expected /= expected[:, 2:3, 2:3]
    inverse = np.asarray(hom.invert(matrices.astype("float32")))
    np.testing.assert_allclose(inverse, expected, atol=1e-5)
    assert np.all(inverse[:, 2, 2] == 1.0)


def test_square_to_quad_matches_skimage(rng):
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    corners = square[None] * 40 + rng.uniform(-8, 8, size=(3, 4, 2))
    matrices = np.asarray(hom.square_to_quad(corners.astype("float32")))
    for b in range(3):
        reference = skimage.transform.ProjectiveTransform.from_estimate(square, corners[b])
        assert reference
        expected = reference.params / reference.params[2, 2]
        np.testing.assert_allclose(matrices[b], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(apply_np(matrices.astype("float64"), square), corners, atol=1e-3)


def test_apply_includes_the_projective_division():
    matrix = np.array([[[2.0, 0.0, 1.0], [0.0, 1.0, -1.0], [0.5, 0.0, 1.0]]], "float32")
    points = np.array([[[2.0, 3.0], [0.0, 0.0]]], "float32")
    # (2 * 2 + 1, 3 - 1) / (0.5 * 2 + 1) = (2.5, 1); (1, -1) / 1
    np.testing.assert_allclose(hom.apply(matrix, points), [[[2.5, 1.0], [1.0, -1.0]]])


def test_pixel_normalised_round_trip(rng):
    height, width = 48, 64
    forward = np.asarray(hom.pixel_to_normalised(height, width))
    np.testing.assert_allclose(forward, pixel_to_normalised(height, width), atol=1e-7)
    np.testing.assert_allclose(
        np.asarray(hom.normalised_to_pixel(height, width)) @ forward, np.eye(3), atol=1e-6
    )
    matrix = random_homography(rng)
    pixels = np.asarray(hom.to_pixels(matrix[None].astype("float32"), height, width))[0]
    assert pixels[2, 2] == 1.0
    np.testing.assert_allclose(pixels, to_pixels_np(matrix, height, width), rtol=1e-5, atol=1e-4)
    # mapping pixel points directly == normalise, map, back to pixels
    points = rng.uniform(0, [width - 1, height - 1], size=(10, 2))
    via_normalised = apply_np(
        np.linalg.inv(pixel_to_normalised(height, width)),
        apply_np(matrix, apply_np(pixel_to_normalised(height, width), points)),
    )
    np.testing.assert_allclose(
        apply_np(pixels.astype("float64"), points), via_normalised, atol=1e-3
    )


def test_grid_gives_cell_centres():
    points = np.asarray(hom.grid(16, 24, stride=4))
    expected = apply_np(pixel_to_normalised(16, 24), cell_centres(16, 24, 4).reshape(-1, 2))
    np.testing.assert_allclose(points, expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(hom.grid(4, 3))[[0, -1]], [[-1, -1], [1, 1]], atol=1e-6)


# --------------------------------------------------------------------------- layers


def displacement_field(matrix, height, width, stride):
    """Cells (dx, dy) at which each fixed cell centre lies in moving, for a normalised G."""
    centres = cell_centres(height, width, stride)
    moving = apply_np(to_pixels_np(matrix, height, width), centres)
    return (moving - centres) / stride


def test_update_recovers_the_homography_of_a_displacement_field(rng):
    matrix = random_homography(rng)
    displacement = displacement_field(matrix, 64, 64, 8)[None].astype("float32")
    assert np.abs(displacement).max() > 0.5  # a real motion, several pixels
    layer = HomographyUpdate((64, 64), stride=8, regularization=0.0)
    fitted = np.asarray(layer(displacement, np.ones((1, 8, 8, 1), "float32")))
    np.testing.assert_allclose(fitted[0], matrix, atol=1e-4)

    # with a previous estimate P the result is P R, normalised
    previous = random_homography(rng)
    composed = np.asarray(
        layer(displacement, np.ones((1, 8, 8, 1), "float32"), previous[None].astype("float32"))
    )[0]
    expected = previous @ matrix
    np.testing.assert_allclose(composed, expected / expected[2, 2], atol=1e-4)


def test_update_translation_motion_fits_only_a_shift(rng):
    height, width = 32, 48
    displacement = np.zeros((1, 8, 12, 2), "float32")
    displacement[..., 0] = 0.75  # cells of 4 px: 3 px right
    displacement[..., 1] = -0.5  # 2 px up
    displacement[0, 2, 3] = [5.0, 5.0]  # one wild match
    weights = np.ones((1, 8, 12, 1), "float32")
    layer = HomographyUpdate((height, width), stride=4, motion="translation", robust_iterations=8)
    matrix = np.asarray(layer(displacement, weights))[0]
    pixels = to_pixels_np(matrix, height, width)
    expected = np.eye(3)
    expected[:2, 2] = [3.0, -2.0]
    np.testing.assert_allclose(pixels, expected, atol=0.05)
    # a homography fit of the same field is also a translation, up to the outlier's pull
    full = to_pixels_np(
        np.asarray(HomographyUpdate((height, width), 4)(displacement, weights))[0], height, width
    )
    np.testing.assert_allclose(full, expected, atol=0.1)


def test_update_zero_displacement_is_identity_and_zero_weights_fall_back_to_it(rng):
    layer = HomographyUpdate((32, 48), stride=4)
    identity = layer(np.zeros((2, 8, 12, 2), "float32"), np.ones((2, 8, 12, 1), "float32"))
    np.testing.assert_allclose(identity, np.tile(np.eye(3), (2, 1, 1)), atol=1e-6)
    noisy = rng.normal(size=(1, 8, 12, 2)).astype("float32")
    ignored = layer(noisy, np.zeros((1, 8, 12, 1), "float32"))
    np.testing.assert_allclose(ignored[0], np.eye(3), atol=1e-6)


@pytest.mark.parametrize("stride", [1, 4])
def test_flow_matches_numpy(stride, rng):
    height, width = 16, 24
    matrices = np.stack([random_homography(rng) for _ in range(2)])
    flow = np.asarray(HomographyFlow((height, width), stride)(matrices.astype("float32")))
    assert flow.shape == (2, height // stride, width // stride, 2)
    for b in range(2):
        expected = displacement_field(matrices[b], height, width, stride)
        np.testing.assert_allclose(flow[b], expected, atol=1e-4)
    np.testing.assert_allclose(
        HomographyFlow((height, width), stride)(np.eye(3, dtype="float32")[None]), 0.0, atol=1e-6
    )


def test_flow_translation_in_pixels():
    # G translates by +2 px in x and -1 px in y: the fixed pixel (x, y) is at (x + 2, y - 1).
    height, width = 9, 11
    shift = np.eye(3)
    shift[0, 2] = 2.0
    shift[1, 2] = -1.0
    forward = pixel_to_normalised(height, width)
    matrix = (forward @ shift @ np.linalg.inv(forward))[None].astype("float32")
    flow = np.asarray(HomographyFlow((height, width))(matrix))
    np.testing.assert_allclose(flow[..., 0], 2.0, atol=1e-5)
    np.testing.assert_allclose(flow[..., 1], -1.0, atol=1e-5)


def test_outputs_are_the_inverse_in_pixels_and_its_corners(rng):
    height, width = 32, 48
    matrices = np.stack([random_homography(rng) for _ in range(2)])
    homography, corners = HomographyOutputs((height, width))(matrices.astype("float32"))
    homography, corners = np.asarray(homography), np.asarray(corners)
    patch = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], float)
    for b in range(2):
        expected = to_pixels_np(np.linalg.inv(matrices[b]), height, width)
        np.testing.assert_allclose(homography[b], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(corners[b], apply_np(expected, patch), atol=1e-3)
        # H (moving -> fixed) undoes G (fixed -> moving)
        fixed_points = rng.uniform(0, [width - 1, height - 1], size=(5, 2))
        moving_points = apply_np(to_pixels_np(matrices[b], height, width), fixed_points)
        np.testing.assert_allclose(
            apply_np(homography[b].astype("float64"), moving_points), fixed_points, atol=1e-3
        )


LAYERS = [
    (
        HomographyUpdate,
        {
            "image_size": (64, 32),
            "stride": 8,
            "regularization": 0.5,
            "motion": "translation",
            "robust_iterations": 2,
            "robust_scale": 0.2,
        },
    ),
    (HomographyFlow, {"image_size": (16, 24), "stride": 4, "stop_gradient": True}),
    (HomographyOutputs, {"image_size": (16, 24)}),
]


def _call(layer, rng):
    if isinstance(layer, HomographyUpdate):
        height, width = layer.image_size
        shape = (2, height // layer.stride, width // layer.stride)
        return layer(
            rng.normal(size=shape + (2,)).astype("float32"),
            rng.uniform(size=shape + (1,)).astype("float32"),
        )
    return layer(np.stack([random_homography(rng) for _ in range(2)]).astype("float32"))


@pytest.mark.parametrize("layer_cls, kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_config_and_serialization_round_trip(layer_cls, kwargs):
    layer = layer_cls(**kwargs, name="h")
    config = layer.get_config()
    for key, value in kwargs.items():
        assert config[key] == value, key
    assert not layer.weights and not layer.trainable_weights
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is layer_cls and clone.get_config() == config
    outputs = _call(layer, np.random.default_rng(5))
    cloned = _call(clone, np.random.default_rng(5))
    for a, b in zip(keras.tree.flatten(outputs), keras.tree.flatten(cloned), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layer_cls, kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_configs_saved_from_the_former_single_module_still_load(layer_cls, kwargs):
    """Shipped .keras files name the module `keras_attn.layers.homography` (one module held the
    three layers then); the registered name is what finds the class."""
    saved = {
        "module": "keras_attn.layers.homography",
        "class_name": layer_cls.__name__,
        "config": {**kwargs, "name": "h"},
        "registered_name": f"keras_attn>{layer_cls.__name__}",
    }
    layer = keras.saving.deserialize_keras_object(saved)
    assert type(layer) is layer_cls
    assert {key: layer.get_config()[key] for key in kwargs} == kwargs


def test_float32_under_mixed_precision(rng):
    keras.config.set_dtype_policy("mixed_float16")
    matrix = random_homography(rng)[None].astype("float32")
    assert HomographyFlow((8, 8))(matrix).dtype == "float32"
    homography, corners = HomographyOutputs((8, 8))(matrix)
    assert homography.dtype == corners.dtype == "float32"
    update = HomographyUpdate((8, 8), 2)(np.zeros((1, 4, 4, 2)), np.ones((1, 4, 4, 1)))
    assert update.dtype == "float32"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: HomographyUpdate((64,)), "image_size must be"),
        (lambda: HomographyFlow((1, 8)), "image_size must be"),
        (lambda: HomographyOutputs("64x64"), "image_size must be"),
        (lambda: HomographyUpdate((8, 8), stride=0), "stride="),
        (lambda: HomographyFlow((8, 8), stride=1.5), "stride="),
        (lambda: HomographyUpdate((8, True)), r"image_size=\(8, True\)"),
        (lambda: HomographyUpdate((8, 8), stride=True), "stride=True"),
        (
            lambda: HomographyUpdate((8, 8), regularization=-1.0),
            "regularization must be a non-negative number. Received: regularization=-1.0",
        ),
        (lambda: HomographyUpdate((8, 8), regularization=True), "regularization=True"),
        (lambda: HomographyUpdate((8, 8), motion="affine"), "motion must be one of"),
        (
            lambda: HomographyUpdate((8, 8), robust_iterations=-1),
            "robust_iterations must be a non-negative integer. Received: robust_iterations=-1",
        ),
        (lambda: HomographyUpdate((8, 8), robust_iterations=True), "robust_iterations=True"),
        (lambda: HomographyUpdate((8, 8), robust_iterations=2.0), "robust_iterations=2.0"),
        (
            lambda: HomographyUpdate((8, 8), robust_scale=0.0),
            "robust_scale must be a positive number. Received: robust_scale=0.0",
        ),
        (lambda: HomographyUpdate((8, 8), robust_scale=True), "robust_scale=True"),
        (lambda: HomographyUpdate((8, 8), robust_scale=float("nan")), "robust_scale=nan"),
        (
            lambda: HomographyFlow((8, 8), stop_gradient="no"),
            "stop_gradient must be True or False. Received: stop_gradient='no'",
        ),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _tiny_functional_model(size=(32, 32), stride=8):
    """The aligner's chain: a robust shift, then a homography refinement composed with it."""
    cells = (size[0] // stride, size[1] // stride)
    displacement = keras.Input(cells + (2,), name="displacement")
    refinement = keras.Input(cells + (2,), name="refinement")
    weights = keras.Input(cells + (1,), name="weights")
    shift = HomographyUpdate(size, stride, motion="translation", name="shift")(
        displacement, weights
    )
    # one IRLS round is enough to put the reweighting in the graph; more only add conversion time
    update = HomographyUpdate(size, stride, robust_iterations=1, name="update")
    estimate = update(refinement, weights, shift)
    flow = HomographyFlow(size, stride, name="flow")(estimate)
    homography, corners = HomographyOutputs(size, name="outputs")(estimate)
    return keras.Model(
        [displacement, refinement, weights],
        {"homography": homography, "corners": corners, "flow": flow},
    )


def _tiny_inputs(rng):
    return [
        rng.normal(1.0, 0.3, size=(1, 4, 4, 2)).astype("float32"),
        rng.normal(scale=0.3, size=(1, 4, 4, 2)).astype("float32"),
        rng.uniform(0.2, 1.0, size=(1, 4, 4, 1)).astype("float32"),
    ]


def test_keras_save_and_load(tmp_path, rng):
    model = _tiny_functional_model()
    inputs = _tiny_inputs(rng)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")  # safe_mode=True
    expected, actual = model(inputs), reloaded(inputs)
    for key in ("homography", "corners", "flow"):
        np.testing.assert_allclose(actual[key], expected[key], atol=1e-6)


def _check_tflite(model, rng):
    inputs = _tiny_inputs(rng)
    expected = {key: np.asarray(value) for key, value in model(inputs).items()}
    outputs, ops = tflite_outputs(model, inputs)
    assert not any(op.startswith("Flex") for op in ops), ops
    # outputs come back in the interpreter's order; their shapes tell them apart
    by_shape = {tuple(output.shape[1:]): output for output in outputs}
    assert len(by_shape) == 3
    for value in expected.values():
        np.testing.assert_allclose(by_shape[value.shape[1:]], value, atol=1e-4, rtol=0)
    # the corners move by pixels, not hundredths: the comparison is not between zeros
    assert np.abs(expected["corners"][0] - [[0, 0], [31, 0], [31, 31], [0, 31]]).max() > 1.0


def test_tflite_builtins_match_keras(rng):
    # dynamic batch, as exported: `[..., None]` on a (?, ?) tensor would not be a builtin
    _check_tflite(_tiny_functional_model(), rng)
