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
   small confidence head; with `hypotheses=K` the K - 1 strongest other peaks of the shift
   votes are kept too, every later iteration refines all K, and the one whose warp correlates
   best with the fixed image wins (`keras_attn.layers.hypotheses`);
3. each later iteration warps the moving features with the current estimate (`Warp`, as in
   PWC-Net), matches locally on a finer grid and composes the residual homography fitted by
   robust (IRLS) weighted least squares, the DLT solved in-graph (`HomographyUpdate`);
4. outputs: `homography` (moving->fixed pixels, OpenCV's convention), the backward `flow` it implies
   on the fixed grid, and the `warped` moving image. With `head="flow"` the flow gets a dense
   residual, for scenes that are not one plane: one more local match at stride 2 refined by a
   dilated context network, then a full-resolution correction (`_flow_head`).

Every op converts to TFLite builtins.
"""

from __future__ import annotations

import keras

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
from keras_attn.models.aligner_tasks import (  # noqa: F401  (public here too)
    MIN_ALIGN_SIDE,
    align,
    homography_flow,
    resize_matrix,
    warp_image,
)
from keras_attn.models.registry import register_model
from keras_attn.models.weights import transfer_aligner_weights  # noqa: F401  (public here too)

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
# 1.0 % with the shipped weights; 6 and 8 were no better (docs/benchmarks.md, "Global hypotheses")
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


def _dilated(x, filters, dilation, name, activation="relu"):
    return keras.layers.Conv2D(
        filters, 3, padding="same", dilation_rate=dilation, activation=activation, name=name
    )(x)


def _residual_out(x, name):
    """The 2-channel residual flow of a refinement stack, zero at initialisation."""
    return keras.layers.Conv2D(
        2, 3, padding="same", kernel_initializer="zeros", name=name, dtype="float32"
    )(x)


def _flow_head(estimate, flow, fixed_features, moving_features, moving, fixed, name):
    """Dense residual flow on top of the homography's (`head="flow"`), in two steps.

    1. stride 2: warp the moving stride-2 features by the homography, match every cell locally
       (+-4 cells = +-8 px), and refine the matches with a dilated context network (PWC-Net's
       refinement, receptive field +-15 cells) that sees the fixed features, the raw match and
       its confidence, so flat or occluded cells take their flow from their neighbours;
    2. full resolution: warp the moving image by that flow and let a small network correct
       the rest from the two standardised images, their difference and the flow so far.
    Both final convolutions start at zero, so an untrained head returns the homography's flow.
    """
    size = tuple(moving.shape[1:3])
    cells = HomographyFlow(size, 2, name=f"{name}_flow_cells")(estimate)
    resampled = Warp(fill_mode="nearest", name=f"{name}_flow_warp")([moving_features, cells])
    match, mass = CorrelationMatch2D(4, name=f"{name}_flow_match")(fixed_features, resampled)
    x = keras.layers.Concatenate(name=f"{name}_flow_context_in")([fixed_features, match, mass])
    for i, (filters, dilation) in enumerate(((32, 1), (32, 2), (32, 4), (32, 8), (16, 1))):
        x = _dilated(x, filters, dilation, f"{name}_flow_context{i}")
    refined = _residual_out(x, f"{name}_flow_context_out")
    residual = keras.layers.Add(name=f"{name}_flow_stride2")([match, refined])
    residual = BilinearUpsampling2D(2, name=f"{name}_flow_upsample")(residual)
    residual = keras.layers.Rescaling(2.0, name=f"{name}_flow_to_pixels")(residual)
    coarse = keras.layers.Add(name=f"{name}_flow_coarse")([flow, residual])

    warped = Warp(fill_mode="nearest", name=f"{name}_flow_fine_warp")([moving, coarse])
    standardise = keras.layers.GroupNormalization(
        groups=1, center=False, scale=False, name=f"{name}_flow_fine_norm"
    )
    fixed_std, warped_std = standardise(fixed), standardise(warped)
    difference = keras.layers.Subtract(name=f"{name}_flow_fine_diff")([fixed_std, warped_std])
    scaled = keras.layers.Rescaling(0.125, name=f"{name}_flow_fine_scale")(residual)
    x = keras.layers.Concatenate(name=f"{name}_flow_fine_in")(
        [fixed_std, warped_std, difference, scaled]
    )
    for i, (filters, dilation) in enumerate(((16, 1), (16, 2), (16, 1))):
        x = _dilated(x, filters, dilation, f"{name}_flow_fine{i}")
    fine = _residual_out(x, f"{name}_flow_fine_out")
    return keras.layers.Add(name=f"{name}_flow")([coarse, fine])


def _check_score_stride(score_stride, size):
    if (
        not isinstance(score_stride, int)
        or isinstance(score_stride, bool)
        or score_stride < 1
        or size[0] % score_stride
        or size[1] % score_stride
    ):
        raise ValueError(
            f"score_stride must be a positive integer dividing the image size {size}. "
            f"Received: {score_stride!r}"
        )


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
    score_stride: int = 2,
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
        score_stride: the hypotheses are compared on both images averaged over
            `score_stride x score_stride` blocks (1: every pixel; 2 cost a third of the
            comparison at 128x128 and chose as well on held-out pairs). A divisor of H and W.
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
    _check_score_stride(score_stride, input_shape[:2])
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
        estimate = SelectHypothesis(
            size, hypotheses, score_stride=score_stride, name=f"{name}_select"
        )(fixed, moving, estimate)
        homography, _ = HomographyOutputs(size, name=f"{name}_outputs")(estimate)
    fixed_features, moving_features = per_pair["fixed"], per_pair["moving"]
    if len(corners) > 1:
        corners = keras.layers.Concatenate(axis=1, name=f"{name}_corners")(corners)
    else:
        corners = keras.layers.Identity(name=f"{name}_corners")(corners[0])

    # heads
    flow = HomographyFlow(size, name=f"{name}_homography_flow")(estimate)
    if head == "flow":
        flow = _flow_head(
            estimate, flow, fixed_features[2], moving_features[2], moving, fixed, name
        )
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
    "as aligner_homography, plus a dense residual flow (stride-2 match + context network, "
    "full-resolution correction)",
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
