"""Super-resolution pipeline: HR crops from any tfds image dataset, LR made by bicubic downscaling.

tfds.load -> image (uint8) -> cache -> (training) shuffle + repeat + random crop + flips/rot90
-> LR = bicubic downscale with antialiasing (MATLAB `imresize` after the standard border crop)
-> (training, optionally) drop most flat crops -> batch -> prefetch. Validation tiles every
image into non-overlapping crops, deterministically.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_datasets as tfds

from keras_attn.data import bundled_photos  # noqa: F401  (registers the "bundled_photos" builder)
from keras_attn.utils.errors import one_line

AUTOTUNE = tf.data.AUTOTUNE
SCALES = (2, 3, 4)
MIXES = ("pixels", "equal")  # how training mixes datasets joined by "+"
FLAT_KEEP = 0.1  # with min_detail: the share of flat crops kept (so flat data still trains)


@dataclasses.dataclass(frozen=True)
class SuperResolutionConfig:
    """Settings of `super_resolution_dataset`; see there."""

    scale: int = 2
    patch_size: int = 96
    batch_size: int = 16
    training: bool = True
    shuffle_buffer: int = 512
    seed: int = 0
    mix: str = "pixels"
    min_detail: float = 0.0

    def __post_init__(self):
        if (
            isinstance(self.min_detail, bool)
            or not isinstance(self.min_detail, (int, float))
            or not 0.0 <= self.min_detail < 255.0
        ):
            raise ValueError(
                f"min_detail must be a number of 8-bit levels in [0, 255). Received: "
                f"min_detail={self.min_detail!r}"
            )
        if self.mix not in MIXES:
            raise ValueError(f"mix must be one of {list(MIXES)}. Received: mix={self.mix!r}")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {list(SCALES)}. Received: scale={self.scale!r}")
        if not isinstance(self.patch_size, int) or self.patch_size < 2 * self.scale:
            raise ValueError(
                f"patch_size must be an integer >= 2 * scale. Received: patch_size="
                f"{self.patch_size!r}, scale={self.scale}"
            )
        if self.patch_size % self.scale:
            raise ValueError(
                f"patch_size must be a multiple of scale so the LR patch is whole. Received: "
                f"patch_size={self.patch_size}, scale={self.scale}"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(
                f"batch_size must be a positive integer. Received: {self.batch_size!r}"
            )


def bicubic_downscale(hr: tf.Tensor, scale: int) -> tf.Tensor:
    """LR image(s) from float HR in [0, 1]: bicubic resize with antialiasing, clipped to [0, 1].

    HR height and width must be multiples of `scale`. Works on `(H, W, C)` or `(B, H, W, C)`.
    """
    shape = tf.shape(hr)
    size = tf.stack([shape[-3] // scale, shape[-2] // scale])
    lr = tf.image.resize(hr, size, method="bicubic", antialias=True)
    return tf.clip_by_value(lr, 0.0, 1.0)


def crop_detail(lr: tf.Tensor, hr: tf.Tensor) -> tf.Tensor:
    """What an SR model has to restore in a crop: the RMS of HR minus the bicubic upscale of its
    LR, in 8-bit levels (0: flat; the bundled validation tiles' median at x2 is about 8).

    `(H, W, C)` pairs give a scalar, `(B, H, W, C)` batches one value per crop.
    """
    size = tf.shape(hr)[-3:-1]
    up = tf.clip_by_value(tf.image.resize(lr, size, method="bicubic"), 0.0, 1.0)
    return 255.0 * tf.sqrt(tf.reduce_mean(tf.square(hr - up), axis=[-3, -2, -1]))


def _image_key(info: tfds.core.DatasetInfo) -> str:
    keys = list(info.features.keys())
    for key in ("hr", "image"):
        if key in keys:
            return key
    raise ValueError(f"Dataset {info.name!r} has no 'image' or 'hr' feature. Features: {keys}")


def _load_one(name: str, split: str, data_dir: str | None) -> tf.data.Dataset:
    from keras_attn.data import photo_folder

    try:
        if name.startswith("folder:"):
            builder = photo_folder.photo_folder_builder(name[len("folder:") :], data_dir=data_dir)
            dataset, info = builder.as_dataset(split=split), builder.info
        else:
            if name == "photo_collection":
                name = "photo_folder/photo_collection"
            dataset, info = tfds.load(name, split=split, with_info=True, data_dir=data_dir)
    except Exception as error:  # tfds raises many types; re-raise one clear line
        message = one_line(error, first_line=True)
        message = f"Could not load tfds dataset {name!r} split {split!r}: {message}"
        raise ValueError(message) from None
    key = _image_key(info)

    def to_rgb(example):
        image = example[key]
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        return image

    return dataset.map(to_rgb, num_parallel_calls=AUTOTUNE)


def load_images(name: str, split: str, data_dir: str | None = None) -> tf.data.Dataset:
    """uint8 RGB images `(H, W, 3)` of one or more image datasets, one after the other.

    `name` is a tfds name (`hr` images for div2k-like datasets, else `image`),
    `"photo_collection"` (the Debian photographs, `tfds.load("photo_folder/photo_collection")`),
    `"folder:/path/to/photos"` (any folder of images, see `keras_attn.data.photo_folder`), or
    several of these joined by `+` (e.g. `"bundled_photos+photo_collection"`), each read with the
    same `split`.
    """
    datasets = [_load_one(part, split, data_dir) for part in dataset_names(name)]
    images = datasets[0]
    for other in datasets[1:]:
        images = images.concatenate(other)
    return images


def dataset_names(name: str) -> list[str]:
    """The datasets of a `+`-joined name: `"a+b"` -> `["a", "b"]`."""
    names = [part.strip() for part in name.split("+")]
    if not all(names):
        raise ValueError(f"Empty dataset name in {name!r}")
    return names


def _at_least(image: tf.Tensor, size: int) -> tf.Tensor:
    """Upsamples (bilinear) a uint8 image smaller than `size` on a side; larger ones pass."""
    shape = tf.shape(image)
    factor = tf.maximum(1.0, size / tf.cast(tf.minimum(shape[0], shape[1]), tf.float32))
    new_size = tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * factor), tf.int32)
    resized = tf.image.resize(image, new_size, method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _augment(hr: tf.Tensor, seed: tf.Tensor, patch_size: int) -> tf.Tensor:
    """A random `patch_size` crop of a uint8 image, flipped and turned, as float32 [0, 1]."""
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    hr = tf.image.stateless_random_crop(hr, (patch_size, patch_size, 3), seed=seeds[0])
    hr = tf.image.convert_image_dtype(hr, tf.float32)
    hr = tf.image.stateless_random_flip_left_right(hr, seed=seeds[1])
    hr = tf.image.stateless_random_flip_up_down(hr, seed=seeds[2])
    turns = tf.random.stateless_uniform((), seeds[3], minval=0, maxval=4, dtype=tf.int32)
    return tf.image.rot90(hr, turns)


def _tiles(image: tf.Tensor, patch_size: int) -> tf.data.Dataset:
    """Non-overlapping `patch_size` crops covering the image (the remainder is dropped)."""
    patches = tf.image.extract_patches(
        image[None],
        sizes=(1, patch_size, patch_size, 1),
        strides=(1, patch_size, patch_size, 1),
        rates=(1, 1, 1, 1),
        padding="VALID",
    )
    patches = tf.reshape(patches, (-1, patch_size, patch_size, 3))
    return tf.data.Dataset.from_tensor_slices(patches)


def super_resolution_dataset(
    name: str = "bundled_photos",
    split: str = "train",
    scale: int = 2,
    patch_size: int = 96,
    batch_size: int = 16,
    training: bool = True,
    *,
    data_dir: str | None = None,
    seed: int = 0,
    mix: str = "pixels",
    min_detail: float = 0.0,
) -> tf.data.Dataset:
    """Batches of `(lr, hr)` float32 pairs in [0, 1] for training or validating SR models.

    Args:
        name: any tfds image dataset (`"div2k/bicubic_x2"` uses its `hr` images only,
            others their `image`), `"bundled_photos"` (default: real photos, offline),
            `"photo_collection"` (22 Debian photographs, `keras-attn data fetch-photos`),
            `"folder:/path/to/photos"` (any folder of images), or several joined by `+`,
            e.g. `"bundled_photos+photo_collection"` (training mixes them as `mix` says).
        split: tfds split, e.g. `"train"`, `"validation"`, `"train[:90%]"`.
        scale: 2, 3 or 4.
        patch_size: HR crop side, a multiple of `scale`; LR crops are `patch_size // scale`.
        batch_size: crops per batch.
        training: `True`: an endless stream of random crops with flips and 90-degree turns;
            `False`: every image tiled into non-overlapping crops, once, in order.
        data_dir: tfds data directory (default: tfds's own).
        seed: seed of the random crops and flips.
        mix: how training draws crops from datasets joined by `+`: `"pixels"` in proportion
            to their pixels (large photos are tiles of at most 512 pixels a side, and each
            tile or smaller photo is drawn equally often), `"equal"` from each dataset equally
            often, so a small dataset is not drowned by a large one. Validation ignores it.
        min_detail: training drops crops whose `crop_detail` (what the model has to restore,
            RMS in 8-bit levels) is under this, except a seeded tenth (`FLAT_KEEP`) of them, so
            sky, walls and blurred backgrounds no longer fill most batches while a flat
            dataset still trains. 0 (default): every crop. Validation ignores it.

    Returns:
        A `tf.data.Dataset` of `(lr, hr)`: `(B, p/s, p/s, 3)` and `(B, p, p, 3)`.
    """
    config = SuperResolutionConfig(
        scale, patch_size, batch_size, training, seed=seed, mix=mix, min_detail=min_detail
    )

    def cached(images):
        # Decoded once, cached as uint8 (a 512-pixel tile is 0.8 MB); every crop is cut from
        # the cache, so no JPEG is decoded twice and no full image is converted to float per crop.
        images = images.map(
            lambda image: _at_least(image, config.patch_size), num_parallel_calls=AUTOTUNE
        )
        return images.cache()

    def endless(images, seed):
        # One endless seeded stream: the buffer spans more than a pass over the images (tiles),
        # so a batch mixes crops from many photographs, and every iterator of this dataset
        # yields the same stream (a resumed run skips into it).
        return images.repeat().shuffle(
            config.shuffle_buffer, seed=seed, reshuffle_each_iteration=False
        )

    names = dataset_names(name)
    if training and config.mix == "equal" and len(names) > 1:
        streams = [
            endless(cached(load_images(part, split, data_dir)), config.seed + index)
            for index, part in enumerate(names)
        ]
        # equal weights, one seeded draw sequence: the same for every iterator
        images = tf.data.Dataset.sample_from_datasets(
            streams, seed=config.seed, rerandomize_each_iteration=False
        )
    else:
        images = cached(load_images(name, split, data_dir))
        if training:
            images = endless(images, config.seed)
    if training:
        randoms = tf.data.Dataset.random(seed=config.seed).batch(2)
        patches = tf.data.Dataset.zip((images, randoms)).map(
            lambda image, seed: _augment(image, seed, config.patch_size),
            num_parallel_calls=AUTOTUNE,
        )
    else:
        patches = images.map(
            lambda image: tf.image.convert_image_dtype(image, tf.float32),
            num_parallel_calls=AUTOTUNE,
        ).flat_map(lambda image: _tiles(image, config.patch_size))

    pairs = patches.map(
        lambda hr: (bicubic_downscale(hr, config.scale), hr), num_parallel_calls=AUTOTUNE
    )
    if training and config.min_detail > 0:
        keep_draws = tf.data.Dataset.random(seed=config.seed + 1).map(
            lambda value: tf.cast(value % 1000, tf.float32) < 1000 * FLAT_KEEP
        )

        def detailed(pair, keep_flat):
            return tf.logical_or(crop_detail(*pair) >= config.min_detail, keep_flat)

        pairs = (
            tf.data.Dataset.zip((pairs, keep_draws))
            .filter(detailed)
            .map(lambda pair, keep_flat: pair, num_parallel_calls=AUTOTUNE)
        )
    return pairs.batch(config.batch_size, drop_remainder=training).prefetch(AUTOTUNE)
