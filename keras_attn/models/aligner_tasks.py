"""Task helpers of the aligner: `align` (pairs of any size, mapped back exactly), `warp_image`,
`homography_flow` and `resize_matrix`, in numpy around any aligner (Keras, or a
`keras_attn.pretrained.Predictor` of any format).

`keras_attn.models.aligner` re-exports the public ones; `keras_attn.models.aligner_serving` puts
the same mapping into a SavedModel endpoint.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_attn.layers.warp import Warp
from keras_attn.utils.images import as_float_image, image_array


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
                if not has_dense_flow(model):  # a dense flow keeps its own residual
                    flow = homography_flow(composed, working)
                    result["flow"] = flow.astype(result["flow"].dtype)
    to_moving = resize_matrix(full["moving"].shape[:2], working)
    to_fixed = resize_matrix(full["fixed"].shape[:2], working)
    homography = np.linalg.inv(to_fixed) @ small @ to_moving
    homography /= homography[2, 2]
    fixed_shape = full["fixed"].shape[:2]
    if originals["moving"].shape[:2] == fixed_shape == working:
        flow = result["flow"]
    elif has_dense_flow(model):
        flow = _flow_to_full(result["flow"], to_moving, to_fixed, fixed_shape)
    else:
        flow = homography_flow(homography, fixed_shape).astype("float32")
    return {
        "homography": homography.astype(result["homography"].dtype),
        "flow": flow.astype(result["flow"].dtype),
        "warped": warp_image(originals["moving"], flow),
    }


def has_dense_flow(model) -> bool:
    """Whether the aligner's flow is more than its homography's (the `head="flow"` models)."""
    if isinstance(model, keras.Model):
        return any(layer.name.endswith("_flow_match") for layer in model.layers)
    if getattr(model, "dense_flow", False):  # a keras_attn.pretrained.Predictor
        return True
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
