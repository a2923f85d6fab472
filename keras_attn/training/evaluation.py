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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_attn import data
from keras_attn.data import classification
from keras_attn.data import super_resolution as sr_data
from keras_attn.models._images import single_output
from keras_attn.training.metrics import psnr_y, ssim_y

FAMILIES = ("sr", "classifier")
DEFAULT_DATASETS = {
    "sr": ("bundled_photos", "validation"),
    "classifier": ("bundled_digits", "test"),
}

Predict = Callable[[np.ndarray], object]


def family_of(model: keras.Model) -> str:
    """`"sr"` for an image-to-image model (4D output), `"classifier"` for a 2D output."""
    ranks = [len(output.shape) for output in model.outputs]
    if ranks == [4] and model.inputs[0].shape[-1] == 3:
        return "sr"
    if ranks == [2]:
        return "classifier"
    raise ValueError(
        f"Cannot tell the family of model {model.name!r} (output ranks {ranks}): expected a "
        "super-resolution model (one image output) or a classifier (one (B, classes) output)."
    )


def as_numpy(output) -> np.ndarray:
    """The single output of a model call as a float32 numpy array."""
    return np.asarray(single_output(output), dtype="float32")


# --------------------------------------------------------------------------- super-resolution


def held_out_pairs(
    scale: int,
    dataset: str = "bundled_photos",
    split: str = "validation",
    *,
    data_dir: str | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """`(name, lr, hr)` float32 full images of a held-out split, HR cropped to a multiple of
    `scale`, LR its antialiased bicubic downscale. `bundled_photos` is read directly from the
    installed packages (no tfds preparation); any other tfds image dataset through tfds."""
    if scale not in sr_data.SCALES:
        raise ValueError(f"scale must be one of {list(sr_data.SCALES)}. Received: scale={scale!r}")
    if dataset == "bundled_photos":
        images = [(name, data.load_photo(name)) for name in data.photo_names(split)]
    else:
        images = [
            (f"{split}[{index}]", image.numpy())
            for index, image in enumerate(sr_data.load_images(dataset, split, data_dir))
        ]
    pairs = []
    for name, image in images:
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


# --------------------------------------------------------------------------- calibration


def calibration_data(
    family: str,
    input_shape: tuple,
    *,
    count: int = 32,
    data_dir: str | None = None,
    seed: int = 0,
) -> Callable[[], list]:
    """Representative inputs for full-int8 TFLite conversion, from each family's TRAINING data
    (never the held-out split): random `64 x 64` crops of the bundled training photos for SR,
    `count` training images of `bundled_digits` for classifiers. Returns the callable that
    `export_tflite(..., representative_data=...)` takes (a list of one-input lists)."""
    if family == "sr":
        rng = np.random.default_rng(seed)
        photos = [data.load_photo(name) for name in data.photo_names("train")]
        samples = []
        for index in range(count):
            photo = photos[index % len(photos)].astype("float32") / 255.0
            top = rng.integers(0, photo.shape[0] - 64 + 1)
            left = rng.integers(0, photo.shape[1] - 64 + 1)
            samples.append([photo[None, top : top + 64, left : left + 64]])
    elif family == "classifier":
        train = classifier_test_data(input_shape, "bundled_digits", "train", batch_size=count)
        images = next(iter(train))[0].numpy()
        samples = [[images[index : index + 1]] for index in range(len(images))]
    else:
        raise ValueError(f"family must be one of {list(FAMILIES)}. Received: family={family!r}")
    return lambda: samples
