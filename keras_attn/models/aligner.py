"""Image aligner: siamese CNN features, correlation matching, coarse-to-fine homography refinement.

Design: a single-shot regressor of the 4 corner offsets learns too slowly on a CPU budget (it
stayed at the do-nothing error; docs/benchmarks.md, "Aligner"), so the match is *computed* here
and only the features are learned:

1. a shared (siamese) CNN encodes both images, once each, into feature maps at strides 8, 4
   and 2, with relative-position self-attention on the stride-8 map for context;
2. iteration 1 matches every fixed cell against every moving cell on the stride-8 grid
   (`CorrelationMatch2D`: cross-attention whose values are positions, i.e. soft-argmax over a
   global cost volume) and estimates a robust shift from the matches (a projective fit to
   coarse matches with many outliers can degenerate); the weights of the matches come from a
   small confidence head;
3. each later iteration warps the moving features with the current estimate (`Warp`, as in
   PWC-Net), matches locally on a finer grid and composes the residual homography fitted by
   robust (IRLS) weighted least squares, the DLT solved in-graph (`HomographyUpdate`);
4. outputs: `homography` (moving->fixed pixels, OpenCV's convention), the backward `flow` it implies
   on the fixed grid, and the `warped` moving image. With `head="flow"` the flow gets a final dense
   residual from one more local match at stride 2, for scenes that are not one plane.

Every op converts to TFLite builtins.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_attn.layers.bilinear_upsampling_2d import BilinearUpsampling2D
from keras_attn.layers.correlation_match_2d import CorrelationMatch2D
from keras_attn.layers.homography_flow import HomographyFlow
from keras_attn.layers.homography_outputs import HomographyOutputs
from keras_attn.layers.homography_update import HomographyUpdate
from keras_attn.layers.hypotheses import (
    FirstHypothesis,
    RepeatHypotheses,
    SelectHypothesis,
    ShiftHypotheses,
)
from keras_attn.layers.registry import get_attention
from keras_attn.layers.warp import Warp
from keras_attn.models.registry import register_model
from keras_attn.models.weights import transfer_aligner_weights  # noqa: F401  (public here too)
from keras_attn.utils.images import as_float_image, image_array

HEADS = ("homography", "flow")
# The output conventions, as written into model cards and `keras-attn predict` JSON.
HOMOGRAPHY_CONVENTION = (
    "3x3 matrix H mapping MOVING pixel coordinates to FIXED ones, [x_f, y_f, 1] ~ H @ "
    "[x_m, y_m, 1], x = column, y = row, pixel centres at integer coordinates, H[2][2] = 1; "
    "cv2.warpPerspective(moving, H, (width, height)) reproduces fixed"
)
FLOW_CONVENTION = (
    "(H, W, 2) displacements (u, v) = (dx, dy) on the FIXED grid, backward warping: "
    "fixed(y, x) ~ moving(y + v, x + u)"
)
STRIDES = (2, 4, 8)
# global shift at stride 8; then a wide local search at stride 4 (+-24 px: what a global shift
# leaves of a rho-32 perspective change), a narrow one at stride 4 and two at stride 2
DEFAULT_LEVELS = ((8, None), (4, 6), (4, 3), (2, 2), (2, 2))
# global hypotheses of the presets: 4 took the held-out rho-32 failures (> 10 px) from 3.0 % to
# 1.0 % with the shipped weights; 6 and 8 were no better (docs/benchmarks.md, "Aligner")
GLOBAL_HYPOTHESES = 4


def _check_levels(levels, input_shape):
    levels = tuple(tuple(level) for level in levels)
    if not levels:
        raise ValueError("levels must hold at least one (stride, radius) pair. Received: ()")
    for stride, radius in levels:
        if stride not in STRIDES:
            raise ValueError(
                f"Each level's stride must be one of {list(STRIDES)}. Received: levels={levels}"
            )
        if radius is not None and (not isinstance(radius, int) or radius < 1):
            raise ValueError(
                f"Each level's radius must be None (global) or a positive integer. "
                f"Received: levels={levels}"
            )
    for side in input_shape[:2]:
        if side % 8:
            raise ValueError(
                f"input_shape height and width must be multiples of 8. "
                f"Received: input_shape={input_shape}"
            )
    return levels


def _conv(x, filters, stride, name):
    x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_conv")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def _encoder(input_shape, widths, attention, attention_heads, name):
    """Siamese feature extractor: features at strides 2, 4 and 8 (one pass per image)."""
    image = keras.Input(input_shape, name="image")
    # per-image standardisation: robust to gain and bias changes between the two views
    x = keras.layers.GroupNormalization(groups=1, center=False, scale=False, name=f"{name}_norm")(
        image
    )
    x = _conv(x, widths[0], 2, f"{name}_stem")
    features = []
    for i, (stride, filters) in enumerate(zip(STRIDES, widths[1:], strict=True), start=1):
        if stride > 2:
            x = _conv(x, filters, 2, f"{name}_stage{i}_down")
        x = _conv(x, filters, 1, f"{name}_stage{i}_mix")
        if stride == 8 and attention is not None:
            attended = get_attention(attention)(
                **_attention_kwargs(attention, filters, attention_heads),
                name=f"{name}_stage{i}_{attention}",
            )(x)
            x = keras.layers.Add(name=f"{name}_stage{i}_attention_add")([x, attended])
        features.append(keras.layers.Conv2D(filters, 1, name=f"{name}_stage{i}_features")(x))
    return keras.Model(image, features, name=name)


def _attention_kwargs(attention, channels, heads):
    if attention == "self":
        return {"num_heads": heads, "key_dim": max(8, channels // heads), "output_dim": channels}
    return {}


def _confidence(features, mass, name):
    """Weight of each match: the attention mass at its peak times a learned gate in (0, 1)."""
    x = keras.layers.Concatenate(name=f"{name}_concat")([features, mass])
    x = keras.layers.Conv2D(16, 1, activation="relu", name=f"{name}_hidden")(x)
    gate = keras.layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_gate", dtype="float32")(x)
    return keras.layers.Multiply(name=f"{name}_weight", dtype="float32")([gate, mass])


def aligner(
    input_shape=(128, 128, 1),
    head: str = "homography",
    *,
    widths=(16, 16, 32, 48),
    levels=DEFAULT_LEVELS,
    attention: str | None = "self",
    attention_heads: int = 2,
    regularization: float = 1e-3,
    hypotheses: int = 1,
    return_corners: bool = False,
    name: str = "aligner",
) -> keras.Model:
    """Builds an aligner: `{"moving", "fixed"}` -> `{"homography", "flow", "warped"}`.

    Args:
        input_shape: `(H, W, C)` of both images; H and W multiples of 8, C 1 or 3.
        head: `"homography"` (flow follows the homography) or `"flow"` (plus a dense residual).
        widths: channels of the full-resolution stem and of the stride-2, 4 and 8 stages.
        levels: one `(stride, radius)` per refinement iteration: stride 2, 4 or 8, radius
            `None` for global matching or the local search radius in cells. The number of
            levels is the number of iterations.
        attention: attention in the stride-8 encoder stage (`"self"`, `"se"`, ..., or None).
        attention_heads: heads of `"self"` attention.
        regularization: pull of each fitted residual towards the identity.
        hypotheses: global hypotheses kept after the first (global) iteration: the robust
            shift plus the `hypotheses - 1` strongest other peaks of the shift votes. Each is
            refined by the later iterations (same weights, folded into the batch axis) and the
            one whose warp correlates best with `fixed` is kept (`keras_attn.layers.hypotheses`).
            Adds no weights; costs about `hypotheses` times the refinement iterations.
        return_corners: also output `corners` `(B, iterations, 4, 2)`: where each iteration's
            estimate puts the moving patch's corners in the fixed image (for the corner loss;
            `aligner_inference_model` removes it again for export). With several hypotheses
            these follow hypothesis 0, so training sees the single-hypothesis path.
        name: model name and prefix of every layer name.

    Returns:
        A `keras.Model` with inputs `moving`, `fixed` `(B, H, W, C)` float32 in [0, 1] and dict
        outputs `homography` `(B, 3, 3)`, `flow` `(B, H, W, 2)`, `warped` `(B, H, W, C)`
        (and `corners` with `return_corners=True`).
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {list(HEADS)}. Received: head={head!r}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3) or None in input_shape:
        raise ValueError(
            f"input_shape must be (height, width, channels) with fixed sizes and 1 or 3 "
            f"channels. Received: input_shape={input_shape}"
        )
    levels = _check_levels(levels, input_shape)
    if not isinstance(hypotheses, int) or isinstance(hypotheses, bool) or hypotheses < 1:
        raise ValueError(f"hypotheses must be a positive integer. Received: {hypotheses!r}")
    if hypotheses > 1 and levels[0][1] is not None:
        raise ValueError(
            f"hypotheses > 1 needs a global first level (radius None). Received: levels={levels}"
        )
    if len(widths) != 4:
        raise ValueError(f"widths must hold 4 channel counts. Received: widths={widths!r}")
    size = input_shape[:2]

    # inputs
    moving = keras.Input(input_shape, name="moving")
    fixed = keras.Input(input_shape, name="fixed")

    # body: shared encoder (one pass per image), then coarse-to-fine refinement in which each
    # iteration warps the moving features by the current estimate and matches what is left
    encoder = _encoder(input_shape, widths, attention, attention_heads, f"{name}_encoder")
    fixed_features = dict(zip(STRIDES, encoder(fixed), strict=True))
    moving_features = dict(zip(STRIDES, encoder(moving), strict=True))
    estimate = None
    corners = []
    per_pair = {"fixed": fixed_features, "moving": moving_features}
    for i, (stride, radius) in enumerate(levels, start=1):
        prefix = f"{name}_iter{i}"
        if estimate is None:
            warped = moving_features[stride]
        else:
            flow = HomographyFlow(size, stride, stop_gradient=True, name=f"{prefix}_flow")(estimate)
            warped = Warp(fill_mode="nearest", name=f"{prefix}_warp")(
                [moving_features[stride], flow]
            )
        displacement, mass = CorrelationMatch2D(radius, name=f"{prefix}_match")(
            fixed_features[stride], warped
        )
        weights = _confidence(fixed_features[stride], mass, f"{prefix}_confidence")
        motion = "translation" if i == 1 else "homography"
        update = HomographyUpdate(
            size, stride, regularization, motion=motion, name=f"{prefix}_update"
        )
        estimate = update(displacement, weights, estimate)
        level_estimate = estimate
        if i > 1 and hypotheses > 1:
            level_estimate = FirstHypothesis(hypotheses, name=f"{prefix}_first")(estimate)
        homography, level_corners = HomographyOutputs(size, name=f"{prefix}_outputs")(
            level_estimate
        )
        corners.append(keras.layers.Reshape((1, 4, 2), name=f"{prefix}_corners")(level_corners))
        if i == 1 and hypotheses > 1 and len(levels) > 1:
            estimate = ShiftHypotheses(size, stride, hypotheses, name=f"{name}_hypotheses")(
                displacement, weights, estimate
            )
            fixed_features, moving_features = (
                {
                    s: RepeatHypotheses(hypotheses, name=f"{name}_{key}_repeat_{s}")(f)
                    for s, f in features.items()
                    if any(s == level[0] for level in levels[1:])
                }
                for key, features in per_pair.items()
            )
    if hypotheses > 1 and len(levels) > 1:
        estimate = SelectHypothesis(size, hypotheses, name=f"{name}_select")(
            fixed, moving, estimate
        )
        homography, _ = HomographyOutputs(size, name=f"{name}_outputs")(estimate)
    fixed_features, moving_features = per_pair["fixed"], per_pair["moving"]
    if len(corners) > 1:
        corners = keras.layers.Concatenate(axis=1, name=f"{name}_corners")(corners)
    else:
        corners = keras.layers.Identity(name=f"{name}_corners")(corners[0])

    # heads
    flow = HomographyFlow(size, name=f"{name}_homography_flow")(estimate)
    if head == "flow":
        cells = HomographyFlow(size, 2, name=f"{name}_flow_cells")(estimate)
        resampled = Warp(fill_mode="nearest", name=f"{name}_flow_warp")([moving_features[2], cells])
        residual, _ = CorrelationMatch2D(2, name=f"{name}_flow_match")(fixed_features[2], resampled)
        residual = BilinearUpsampling2D(2, name=f"{name}_flow_upsample")(residual)
        residual = keras.layers.Rescaling(2.0, name=f"{name}_flow_to_pixels")(residual)
        flow = keras.layers.Add(name=f"{name}_flow")([flow, residual])
    warped = Warp(fill_mode="constant", name=f"{name}_warped")([moving, flow])
    outputs = {
        "homography": keras.layers.Identity(name=f"{name}_homography")(homography),
        "flow": keras.layers.Identity(name=f"{name}_flow_out", dtype="float32")(flow),
        "warped": warped,
    }
    if return_corners:
        outputs["corners"] = corners
    return keras.Model({"moving": moving, "fixed": fixed}, outputs, name=name)


def aligner_inference_model(model: keras.Model) -> keras.Model:
    """The same graph and weights without the training-only `corners` output (for export)."""
    names = {"homography": "_homography", "flow": "_flow_out", "warped": "_warped"}
    try:
        outputs = {
            key: model.get_layer(model.name + suffix).output for key, suffix in names.items()
        }
    except ValueError as error:
        raise ValueError(
            f"Model {model.name!r} is not an aligner built by keras_attn.models.aligner."
        ) from error
    return keras.Model(model.inputs, outputs, name=model.name)


# ------------------------------------------------------------------------------ task helpers


def _model_image_shape(model) -> tuple:
    if isinstance(model, keras.Model):
        shape = tuple(model.inputs[0].shape[1:])
    else:
        shape = tuple(getattr(model, "input_shape", ()))
    if len(shape) != 3 or None in shape:
        raise ValueError(
            f"The {_model_label(model)} does not look like an aligner (inputs {shape})."
        )
    return shape


def _model_label(model) -> str:
    if isinstance(model, keras.Model):
        return f"model {model.name!r}"
    return f"model {getattr(model, 'source', type(model).__name__)!r}"


MIN_ALIGN_SIDE = 16


def resize_matrix(from_shape, to_shape) -> np.ndarray:
    """The 3x3 map of pixel coordinates of an image of `from_shape` `(H, W)` onto the same image
    resized to `to_shape`, pixel centres at integers: `x' = (x + 0.5) * W' / W - 0.5`."""
    sy, sx = to_shape[0] / from_shape[0], to_shape[1] / from_shape[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], "float64")


def _resized(image: np.ndarray, shape) -> np.ndarray:
    if image.shape[:2] == tuple(shape):
        return image
    import tensorflow as tf

    return tf.image.resize(image, shape, method="bilinear", antialias=True).numpy()


def align(model, moving, fixed, *, refine: bool = False) -> dict:
    """Aligns `moving` onto `fixed`: numpy images of any size (the two sizes may differ),
    uint8 or float in [0, 1].

    The network works at its own input size (128x128 for the shipped aligner): both images are
    resized to it (bilinear with antialiasing), and the homography and flow it finds are mapped
    back to full-resolution pixel coordinates exactly (`resize_matrix`), so an error of e pixels
    at the working size is about e times the resize factor at full size. RGB images given to a
    grayscale model are converted to gray (luma), and vice versa.

    Args:
        model: a Keras aligner, or a `keras_attn.pretrained.Predictor` of one (any format).
        moving, fixed: `(H, W)` or `(H, W, C)` images, paths or PIL images.
        refine: run the model a second time on `moving` warped by the first estimate and keep
            the composed homography only if it raises the normalised cross-correlation with
            `fixed` over the overlap (homography models): it sharpens pairs the first pass
            aligned and cannot rescue one with no overlap.

    Returns:
        dict of numpy arrays: `homography` `(3, 3)` moving->fixed in full-resolution pixels
        (OpenCV convention), `flow` `(H, W, 2)` backward flow on the fixed image's grid,
        `warped` `(H, W, C)`: `moving` resampled onto the fixed grid, in the dtype and channel
        count of `moving`.
    """
    shape = _model_image_shape(model)
    working = tuple(shape[:2])
    images, full, originals = {}, {}, {}
    for key, image in (("moving", moving), ("fixed", fixed)):
        originals[key] = image_array(image, key)
        full[key] = as_float_image(originals[key], key)
        if min(full[key].shape[:2]) < MIN_ALIGN_SIDE:
            raise ValueError(
                f"{key} is too small to align: at least {MIN_ALIGN_SIDE} pixels a side. "
                f"Received: {key}.shape={originals[key].shape}"
            )
        images[key] = _match_channels(_resized(full[key], working), shape[-1])[None]

    def run(moving_batch):
        if isinstance(model, keras.Model):
            out = model.predict_on_batch({"moving": moving_batch, "fixed": images["fixed"]})
        else:
            out = model(moving_batch, images["fixed"])
        return {k: np.asarray(out[k])[0] for k in ("homography", "flow", "warped")}

    result = run(images["moving"])
    small = result["homography"].astype("float64")
    if refine:
        if np.isfinite(small).all() and abs(np.linalg.det(small)) > 1e-12:
            second = run(warp_image(images["moving"][0], small)[None])["homography"]
            composed = second.astype("float64") @ small
            composed /= composed[2, 2]
            score = {
                "first": _overlap_ncc(images["moving"][0], images["fixed"][0], small),
                "composed": _overlap_ncc(images["moving"][0], images["fixed"][0], composed),
            }
            if score["composed"] > score["first"]:
                small = composed
                result["flow"] = homography_flow(composed, working).astype(result["flow"].dtype)
    to_moving = resize_matrix(full["moving"].shape[:2], working)
    to_fixed = resize_matrix(full["fixed"].shape[:2], working)
    homography = np.linalg.inv(to_fixed) @ small @ to_moving
    homography /= homography[2, 2]
    fixed_shape = full["fixed"].shape[:2]
    if originals["moving"].shape[:2] == fixed_shape == working:
        flow = result["flow"]
    elif _has_dense_flow(model):
        flow = _flow_to_full(result["flow"], to_moving, to_fixed, fixed_shape)
    else:
        flow = homography_flow(homography, fixed_shape).astype("float32")
    return {
        "homography": homography.astype(result["homography"].dtype),
        "flow": flow.astype(result["flow"].dtype),
        "warped": warp_image(originals["moving"], flow),
    }


def _has_dense_flow(model) -> bool:
    """Whether the aligner's flow is more than its homography's (the `head="flow"` models)."""
    if isinstance(model, keras.Model):
        return any(layer.name.endswith("_flow_match") for layer in model.layers)
    card = getattr(model, "card", None) or {}
    return card.get("architecture") == "aligner_flow"


def _flow_to_full(flow_small, to_moving, to_fixed, fixed_shape) -> np.ndarray:
    """A backward flow found at the working size, on the full fixed grid in full moving pixels:
    each fixed pixel's source point, sampled bilinearly from the working-size map of source
    points, taken back to full moving coordinates."""
    import tensorflow as tf

    height, width = flow_small.shape[:2]
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    source = np.stack([xs, ys], -1) + flow_small  # working moving coordinates
    inverse = np.linalg.inv(to_moving)
    source = source * np.diag(inverse)[:2] + inverse[:2, 2]  # full moving coordinates
    del to_fixed  # the resize below maps working fixed pixel centres to full ones
    source_full = tf.image.resize(source[None].astype("float32"), fixed_shape, "bilinear")[0]
    full_x, full_y = np.meshgrid(np.arange(fixed_shape[1]), np.arange(fixed_shape[0]))
    return source_full.numpy() - np.stack([full_x, full_y], -1)


def _overlap_ncc(moving, fixed, homography) -> float:
    """Normalised cross-correlation of `fixed` and `moving` warped by `homography`, over the
    pixels the warp covers (-1 when it covers under 10 % of them)."""
    warped = warp_image(moving, homography).reshape(-1)
    covered = warp_image(np.ones(moving.shape[:2], "float32"), homography).reshape(-1) > 0.999
    if covered.mean() < 0.1:
        return -1.0
    a = warped[covered] - warped[covered].mean()
    b = fixed.reshape(-1)[covered] - fixed.reshape(-1)[covered].mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def homography_flow(homography, shape) -> np.ndarray:
    """The backward flow `(H, W, 2)` on the fixed grid of a moving->fixed `homography`:
    `fixed(y, x)` samples `moving(y + v, x + u)` (points beyond the horizon map far outside)."""
    height, width = shape
    inverse = np.linalg.inv(np.asarray(homography, dtype="float64"))
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    points = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ inverse.T
    depth = points[..., 2:]
    visible = depth > 1e-9  # beyond the horizon (w <= 0) nothing of the moving image shows
    source = np.where(visible, points[..., :2] / np.where(visible, depth, 1.0), -1e6)
    return source - np.stack([xs, ys], axis=-1)


def _match_channels(image, channels):
    if image.shape[-1] == channels:
        return image
    if channels == 1:
        luma = np.array([0.299, 0.587, 0.114], dtype="float32")
        return (image @ luma)[..., None]
    return np.repeat(image, 3, axis=-1)


def warp_image(image, transform, *, output_shape=None) -> np.ndarray:
    """Warps a numpy image by a moving->fixed homography `(3, 3)` or a backward flow `(H, W, 2)`.

    Bilinear, zeros outside; the result has the input's dtype and channel layout. With a
    homography, the output grid `output_shape` `(H, W)` defaults to the input's size (like
    `cv2.warpPerspective(image, H, (W, H))`); with a flow it is the flow's grid, which may
    differ from the image's size.
    """
    import tensorflow as tf

    original = np.asarray(image)
    pixels = as_float_image(original, "image", channels=(1, 2, 3, 4))
    transform = np.asarray(transform, dtype="float64")
    if transform.shape == (3, 3):
        if not np.isfinite(transform).all() or abs(np.linalg.det(transform)) < 1e-12:
            raise ValueError("homography must be a finite, invertible 3x3 matrix.")
        height, width = output_shape or pixels.shape[:2]
        flow = homography_flow(transform, (height, width))
    elif transform.ndim == 3 and transform.shape[-1] == 2:
        if not np.isfinite(transform).all():
            raise ValueError("flow contains NaN or Inf values.")
        flow = transform
    else:
        raise ValueError(
            f"transform must be a 3x3 homography or an (H, W, 2) flow. "
            f"Received: shape={transform.shape}"
        )
    # The Warp layer samples on the moving image's own grid: pad image and flow (zeros, as
    # outside the image) to a common size, then keep the output grid.
    out_height, out_width = flow.shape[:2]
    common = (max(out_height, pixels.shape[0]), max(out_width, pixels.shape[1]))
    pixels = np.pad(
        pixels, ((0, common[0] - pixels.shape[0]), (0, common[1] - pixels.shape[1]), (0, 0))
    )
    flow = np.pad(flow, ((0, common[0] - out_height), (0, common[1] - out_width), (0, 0)))
    warped = Warp()([tf.constant(pixels[None]), tf.constant(flow[None].astype("float32"))])
    warped = warped.numpy()[0, :out_height, :out_width]
    warped = np.clip(warped, 0.0, 1.0)
    if original.ndim == 2:
        warped = warped[..., 0]
    if original.dtype == np.uint8:
        return np.round(warped * 255).astype("uint8")
    if original.dtype == np.uint16:
        return np.round(warped * 65535).astype("uint16")
    return warped.astype(original.dtype)


register_model(
    "aligner_homography",
    "aligner",
    aligner,
    "128x128 grayscale, 4 global shift hypotheses, each refined 4 times, the best kept",
    hypotheses=GLOBAL_HYPOTHESES,
)
register_model(
    "aligner_flow",
    "aligner",
    aligner,
    "as aligner_homography, plus a dense residual flow from one more stride-2 match",
    head="flow",
    hypotheses=GLOBAL_HYPOTHESES,
)
register_model(
    "aligner_tiny",
    "aligner",
    aligner,
    "small and fast, for tests: 64x64 grayscale, 2 iterations",
    input_shape=(64, 64, 1),
    widths=(16, 16, 16, 16),
    levels=((8, None), (2, 2)),
)
