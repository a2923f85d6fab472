"""Held-out evaluation of each model family, shared by the CLI, scripts/ship_model.py, benchmarks.

Every function takes `predict`, a plain function from a float32 numpy batch to the model's output
(a tensor, or a dict holding one), so the same code scores a Keras model, a loaded SavedModel
signature and a TFLite file.

- Super-resolution: full images of a held-out split (default: the 5 `validation` photos of
  `bundled_photos`), HR cropped to a multiple of the scale, LR made by antialiased bicubic
  downscaling as in training (`keras_attn.data.bicubic_downscale`), PSNR-Y / SSIM-Y with a
  `scale`-pixel border crop (`keras_attn.training.metrics`).
- Classifier: top-1 accuracy on a held-out split (default: the `test` split of
  `bundled_digits`), preprocessed exactly as in training (`classification_dataset`).
- Aligner: DeTone's protocol (https://arxiv.org/abs/1606.03798) on held-out photos (default:
  the 5 `validation` photos of `bundled_photos`, each rescaled to a 240-pixel short side): a
  fixed patch, its corners shifted by up to rho = 32 px, the photo resampled inside that
  quadrilateral as the moving patch (`keras_attn.data.alignment_dataset`, fixed seed). Scored
  by the corner error (where the estimated vs the true moving->fixed homography puts the moving
  patch's corners, mean over the 4, in px): mean, median, % of pairs over 10 px and the AUC of
  the cumulative error curve up to 3/5/10 px. `benchmarks/aligner.py` uses the same functions.
  Aligner `predict` functions take two batches, `predict(moving, fixed)`, and return a dict
  holding `homography`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from keras_attn import data
from keras_attn.data import classification
from keras_attn.data import super_resolution as sr_data
from keras_attn.training.metrics import psnr_y, ssim_y
from keras_attn.utils.model_io import single_output

# The aligner's held-out protocol: DeTone's rho, the seed of the pairs (as benchmarks/aligner.py).
ALIGNMENT_MAX_SHIFT = 32.0
ALIGNMENT_SEED = 1234
ALIGNMENT_PAIRS_PER_IMAGE = 20

Predict = Callable[[np.ndarray], object]


def as_numpy(output) -> np.ndarray:
    """The single output of a model call as a float32 numpy array."""
    return np.asarray(single_output(output), dtype="float32")


# --------------------------------------------------------------------------- super-resolution


def full_images(
    dataset: str = "bundled_photos", split: str = "validation", *, data_dir: str | None = None
) -> list[tuple[str, np.ndarray]]:
    """`(name, uint8 RGB image)` of every whole photo in a split, for evaluation.

    `bundled_photos` is read from the installed packages; `photo_collection` and
    `folder:/path` from their image files (whole photographs, not the training tiles; split
    `train` or `validation` as in `keras_attn.data.photo_folder`); any other tfds image dataset
    through tfds. Several joined by `+` are read one after the other.
    """
    from keras_attn.data import photo_folder

    images = []
    for part in (piece.strip() for piece in dataset.split("+")):
        if part == "bundled_photos":
            images += [(name, data.load_photo(name)) for name in data.photo_names(split)]
        elif (folder := photo_folder.source_folder(part)) is not None:
            splits = photo_folder.split_files(folder)
            if split not in splits:
                raise ValueError(
                    f"{part} has the splits 'train' and 'validation'. Received: split={split!r}"
                )
            images += [(path.stem, photo_folder.read_rgb(path)) for path in splits[split]]
        else:
            images += [
                (f"{split}[{index}]", image.numpy())
                for index, image in enumerate(sr_data.load_images(part, split, data_dir))
            ]
    return images


def held_out_pairs(
    scale: int,
    dataset: str = "bundled_photos",
    split: str = "validation",
    *,
    data_dir: str | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """`(name, lr, hr)` float32 full images of a held-out split (see `full_images`), HR cropped
    to a multiple of `scale`, LR its antialiased bicubic downscale."""
    if scale not in sr_data.SCALES:
        raise ValueError(f"scale must be one of {list(sr_data.SCALES)}. Received: scale={scale!r}")
    pairs = []
    for name, image in full_images(dataset, split, data_dir=data_dir):
        hr = image.astype("float32") / 255.0
        height, width = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
        hr = hr[:height, :width]
        lr = sr_data.bicubic_downscale(tf.constant(hr), scale).numpy()
        pairs.append((name, lr, hr))
    if not pairs:
        raise ValueError(f"Dataset {dataset!r} split {split!r} holds no images.")
    return pairs


def score_upscaled(upscaled: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR-Y dB, SSIM-Y) of one upscaled image against its HR, `scale`-pixel border crop."""
    upscaled = np.clip(np.asarray(upscaled, "float32"), 0.0, 1.0)[None]
    return (
        float(psnr_y(hr[None], upscaled, border=scale)[0]),
        float(ssim_y(hr[None], upscaled, border=scale)[0]),
    )


def bicubic_upscale(lr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The classical baseline: bicubic upsampling of `lr` to `shape`, clipped to [0, 1]."""
    return np.clip(tf.image.resize(lr, shape, method="bicubic").numpy(), 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class SuperResolutionScores:
    """Mean and per-image PSNR-Y / SSIM-Y; `outputs` holds the upscaled images by name."""

    psnr_y: float
    ssim_y: float
    per_image: dict[str, dict[str, float]]
    outputs: dict[str, np.ndarray] = dataclasses.field(repr=False)

    def as_dict(self) -> dict:
        return {
            "psnr_y_db": self.psnr_y,
            "ssim_y": self.ssim_y,
            "images": len(self.per_image),
            "per_image": self.per_image,
        }


def evaluate_super_resolution(
    predict: Predict | None, scale: int, pairs: list[tuple[str, np.ndarray, np.ndarray]]
) -> SuperResolutionScores:
    """Upscales every LR image of `pairs` (from `held_out_pairs`) with `predict` (batch of one,
    `(1, h, w, 3)` -> `(1, s*h, s*w, 3)`), or bicubically when `predict` is None, and scores it."""
    per_image, outputs = {}, {}
    for name, lr, hr in pairs:
        if predict is None:
            upscaled = bicubic_upscale(lr, hr.shape[:2])
        else:
            upscaled = as_numpy(predict(lr[None]))[0]
        if upscaled.shape != hr.shape:
            raise ValueError(
                f"The model turned a {lr.shape} image into {upscaled.shape}; expected {hr.shape} "
                f"(scale {scale})."
            )
        psnr, ssim = score_upscaled(upscaled, hr, scale)
        per_image[name] = {"psnr_y_db": psnr, "ssim_y": ssim}
        outputs[name] = upscaled
    return SuperResolutionScores(
        psnr_y=float(np.mean([s["psnr_y_db"] for s in per_image.values()])),
        ssim_y=float(np.mean([s["ssim_y"] for s in per_image.values()])),
        per_image=per_image,
        outputs=outputs,
    )


# --------------------------------------------------------------------------- classifier


def classifier_test_data(
    input_shape: tuple,
    dataset: str = "bundled_digits",
    split: str = "test",
    *,
    batch_size: int = 128,
    data_dir: str | None = None,
) -> tf.data.Dataset:
    """Unaugmented `(images, labels)` batches of a held-out split, resized and converted to the
    model's `(S, S, C)` input as in training."""
    size, width, channels = input_shape
    if size is None or size != width:
        raise ValueError(f"Expected a square classifier input. Received: {tuple(input_shape)}")
    return classification.classification_dataset(
        dataset, split, batch_size, size, training=False, data_dir=data_dir, channels=channels
    )


def evaluate_classifier(predict: Predict, test_data: tf.data.Dataset) -> dict:
    """Top-1 accuracy of `predict` (images -> class probabilities) over every example once."""
    correct = total = 0
    for images, labels in test_data:
        probabilities = as_numpy(predict(images.numpy()))
        correct += int((probabilities.argmax(axis=-1) == labels.numpy()).sum())
        total += int(labels.shape[0])
    if not total:
        raise ValueError("The evaluation split holds no examples.")
    return {"accuracy": correct / total, "examples": total, "errors": total - correct}


# --------------------------------------------------------------------------- aligner


class AlignmentPair(NamedTuple):
    """One held-out DeTone pair: float32 `(p, p, C)` images, the true moving->fixed
    `homography` `(3, 3)` and where it puts the moving patch's corners, `corners` `(4, 2)`."""

    name: str
    moving: np.ndarray
    fixed: np.ndarray
    homography: np.ndarray
    corners: np.ndarray
    flow: np.ndarray | None = None  # (p, p, 2) the true backward flow on the fixed grid
    visible: np.ndarray | None = None  # (p, p) True where that flow lands inside moving


def held_out_alignment_pairs(
    patch_size: int = 128,
    channels: int = 1,
    dataset: str = "bundled_photos",
    split: str = "validation",
    *,
    pairs_per_image: int = ALIGNMENT_PAIRS_PER_IMAGE,
    max_shift: float = ALIGNMENT_MAX_SHIFT,
    photometric: float = 0.0,
    deformation: float = 0.0,
    seed: int = ALIGNMENT_SEED,
    data_dir: str | None = None,
) -> list[AlignmentPair]:
    """The fixed DeTone pairs of a held-out split: every photo rescaled to a 240-pixel short
    side, `pairs_per_image` pairs cut from each with corner shifts up to `max_shift` px
    (`keras_attn.data.alignment_dataset(..., training=False)`: the same pairs on every call),
    with a non-planar residual of `deformation` px if given, and their true flow.
    Pairs are named `"<split>[<photo index>]#<pair index>"`."""
    pairs = data.alignment_dataset(
        dataset,
        split,
        patch_size=patch_size,
        max_shift=max_shift,
        batch_size=1,
        training=False,
        channels=channels,
        photometric=photometric,
        pairs_per_image=pairs_per_image,
        deformation=deformation,
        data_dir=data_dir,
        seed=seed,
    )
    held_out = []
    for index, (inputs, targets) in enumerate(pairs.as_numpy_iterator()):
        held_out.append(
            AlignmentPair(
                f"{split}[{index // pairs_per_image}]#{index % pairs_per_image}",
                inputs["moving"][0],
                inputs["fixed"][0],
                targets["homography"][0],
                targets["corners"][0],
                targets["flow"][0],
                targets["visible"][0, ..., 0] > 0.5,
            )
        )
    if not held_out:
        raise ValueError(f"Dataset {dataset!r} split {split!r} holds no images.")
    return held_out


def corner_error(homography, corners_true, size: int = 128) -> float:
    """Mean distance in px between where `homography` (moving->fixed) puts the corners of the
    `size` x `size` moving patch, `(0, 0), (size-1, 0), (size-1, size-1), (0, size-1)`, and
    their true positions `corners_true` `(4, 2)`."""
    mapped = map_corners(homography, size)
    return float(np.linalg.norm(mapped - corners_true, axis=-1).mean())


def map_corners(homography, size: int = 128) -> np.ndarray:
    """`(4, 2)` positions `(x, y)` where `homography` puts the corners of a `size` x `size`
    moving patch, clockwise from the top-left pixel (the order of the pairs' `corners`)."""
    last = size - 1.0
    square = np.array([[0, 0, 1], [last, 0, 1], [last, last, 1], [0, last, 1]], dtype="float64")
    mapped = square @ np.asarray(homography, dtype="float64").T
    return mapped[:, :2] / mapped[:, 2:]


def corner_disagreement(homographies, reference, size: int = 128) -> float:
    """Largest distance (px) between where two stacks of homographies put the corners of a
    `size` x `size` patch (e.g. an exported model against the Keras one)."""
    return max(
        float(np.linalg.norm(map_corners(h, size) - map_corners(r, size), axis=-1).max())
        for h, r in zip(homographies, reference, strict=True)
    )


def corner_error_summary(errors) -> dict:
    """Mean and median corner error (px), % of pairs over 10 px, and the area under the
    cumulative error curve up to 3, 5 and 10 px (normalised to [0, 1]; 1 = every pair exact)."""
    errors = np.asarray(errors, dtype="float64")
    if errors.size == 0:
        raise ValueError("No corner errors to summarise.")
    summary = {
        "mean_corner_error_px": float(errors.mean()),
        "median_corner_error_px": float(np.median(errors)),
        "over_10px_percent": float((errors > 10).mean() * 100),
    }
    for limit in (3, 5, 10):
        grid = np.linspace(0, limit, 201)
        curve = [(errors <= threshold).mean() for threshold in grid]
        summary[f"auc_{limit}px"] = float(np.trapezoid(curve, grid) / limit)
    return summary


@dataclasses.dataclass(frozen=True)
class AlignmentScores:
    """Corner errors of one method on held-out pairs: `summary` (see `corner_error_summary`),
    per-pair `errors` `(N,)` and the estimated `homographies` `(N, 3, 3)` as returned."""

    summary: dict
    errors: np.ndarray = dataclasses.field(repr=False)
    homographies: np.ndarray = dataclasses.field(repr=False)
    non_finite: int = 0

    def as_dict(self) -> dict:
        return {**self.summary, "pairs": int(self.errors.size), "non_finite": self.non_finite}


def evaluate_aligner(
    predict, pairs: list[AlignmentPair], *, batch_size: int = 1
) -> AlignmentScores:
    """Corner errors of an aligner on `pairs` (from `held_out_alignment_pairs`).

    Args:
        predict: a Keras aligner (run with `predict_on_batch({"moving", "fixed"})`), a function
            `predict(moving, fixed)` of two `(B, p, p, C)` float32 batches returning a dict
            holding `homography` `(B, 3, 3)` (e.g. a `keras_attn.pretrained.Predictor` or a
            `TFLiteModel` wrapped as `lambda m, f: runner(moving=m, fixed=f)`), or `None` for the
            identity (the error of doing nothing).
        pairs: held-out pairs.
        batch_size: pairs per call.

    Returns:
        `AlignmentScores`. A non-finite homography counts as the identity (as a failed method
        in `benchmarks/aligner.py`) and is counted in `non_finite`.
    """
    if isinstance(predict, keras.Model):
        model = predict

        def predict(moving, fixed):  # a compiled graph: eager calls of this model are slow
            return model.predict_on_batch({"moving": moving, "fixed": fixed})

    size = pairs[0].moving.shape[0]
    homographies = []
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        if predict is None:
            homographies.append(np.tile(np.eye(3, dtype="float32"), (len(batch), 1, 1)))
            continue
        # the last batch is padded with its last pair: every call has the same shape, so a
        # compiled model (predict_on_batch) is traced once
        padded = batch + [batch[-1]] * (min(batch_size, len(pairs)) - len(batch))
        moving = np.stack([pair.moving for pair in padded])
        fixed = np.stack([pair.fixed for pair in padded])
        estimated = np.asarray(predict(moving, fixed)["homography"], dtype="float32")
        homographies.append(estimated[: len(batch)])
    homographies = np.concatenate(homographies)
    finite = np.isfinite(homographies).all(axis=(1, 2))
    errors = np.array(
        [
            corner_error(h if ok else np.eye(3), pair.corners, size)
            for h, ok, pair in zip(homographies, finite, pairs, strict=True)
        ]
    )
    return AlignmentScores(corner_error_summary(errors), errors, homographies, int((~finite).sum()))


def evaluate_flow(run, pairs: list[AlignmentPair], batch_size: int = 8) -> dict:
    """End-point errors (px) of a dense flow against the pairs' true flow, pooled over the
    pixels whose true match lies inside the moving image: `mean_epe_px`, `median_epe_px`,
    `bad_3px_percent` (share of those pixels off by more than 3 px).

    `run` is a `keras.Model` or `run(moving, fixed) -> {"flow": (B, H, W, 2), ...}`.
    """
    if isinstance(run, keras.Model):
        model = run

        def run(moving, fixed):
            return model.predict_on_batch({"moving": moving, "fixed": fixed})

    errors = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        outputs = run(np.stack([p.moving for p in chunk]), np.stack([p.fixed for p in chunk]))
        flows = np.asarray(outputs["flow"], "float64")
        for pair, flow in zip(chunk, flows, strict=True):
            errors.append(np.linalg.norm(flow - pair.flow, axis=-1)[pair.visible])
    errors = np.concatenate(errors)
    return {
        "mean_epe_px": float(errors.mean()),
        "median_epe_px": float(np.median(errors)),
        "bad_3px_percent": float((errors > 3.0).mean() * 100),
        "pixels": int(errors.size),
    }
