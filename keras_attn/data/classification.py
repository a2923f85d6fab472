"""Image-classification pipeline over any supervised tfds image dataset, and the offline digits.

tfds.load(as_supervised=True) -> float [0, 1] -> channels -> bilinear resize to a square
-> uint8 -> cache -> (training) shuffle + repeat + random translation (zero padding and random
crop) + horizontal flip where the dataset allows it + optional random erasing -> float32 -> batch
-> prefetch. The cache holds uint8 (4x smaller than float32; rounding costs at most 0.5/255 per
pixel).

Random erasing (Zhong et al. 2017, arXiv:1708.04896) is off by default. With probability
`random_erasing` it replaces one rectangle of 2-40% of the image, aspect ratio (height / width)
drawn uniformly from [0.3, 3.3] as in the paper's code, by uniform random values or zeros.
All augmentation is stateless and derived from `seed`, so a seed always gives the same batches.

`fashion_mnist` works offline: when tfds has not prepared it and its download server does not
answer, `keras_attn.data.fashion_mnist.prepare_fashion_mnist` prepares tfds's own builder from
the local official files (Debian package `dataset-fashion-mnist`).

Horizontal flips follow one per-dataset rule, `allows_horizontal_flip(name)`: only datasets
listed in `MIRROR_INVARIANT_DATASETS` (natural photographs whose classes survive mirroring)
are flipped. Digits, letters and other symbols change meaning or become invalid when mirrored
(a mirrored 2 is no digit), and unlisted datasets are treated the same way: a missing flip
costs a little augmentation, a wrong one corrupts the labels silently.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_datasets as tfds

from keras_attn.data import (
    digits,  # noqa: F401  (registers the "bundled_digits" builder)
    fashion_mnist,
)
from keras_attn.utils.errors import one_line

AUTOTUNE = tf.data.AUTOTUNE
CHANNELS = (None, 1, 3)
ERASING_FILLS = ("random", "zero")
ERASING_ATTEMPTS = 10  # candidate rectangles per image; the first that fits is erased

MIRROR_INVARIANT_DATASETS = frozenset(
    {
        "caltech101",
        "cars196",
        "cats_vs_dogs",
        "cifar10",
        "cifar100",
        "fashion_mnist",
        "food101",
        "imagenet2012",
        "imagenet_resized",
        "imagenette",
        "oxford_flowers102",
        "oxford_iiit_pet",
        "stanford_dogs",
        "stl10",
        "tf_flowers",
    }
)


def base_name(name: str) -> str:
    """The tfds dataset name without config and version: `"imagenette/320px:1.0.0"` ->
    `"imagenette"`."""
    return name.split("/")[0].split(":")[0].strip().lower()


def allows_horizontal_flip(name: str) -> bool:
    """Whether training may mirror images of dataset `name` (see the module docstring)."""
    return base_name(name) in MIRROR_INVARIANT_DATASETS


@dataclasses.dataclass(frozen=True)
class ClassificationConfig:
    """Settings of `classification_dataset`; see there."""

    image_size: int = 32
    batch_size: int = 64
    training: bool = True
    channels: int | None = None
    horizontal_flip: bool = False
    max_shift: int | None = None  # default: image_size // 8 (4 pixels at 32, as for CIFAR)
    shuffle_buffer: int = 10_000
    seed: int = 0
    random_erasing: float = 0.0  # probability per image; 0.5 in the Fashion-MNIST/CIFAR recipes
    erasing_area: tuple[float, float] = (0.02, 0.4)  # fraction of the image
    erasing_aspect: tuple[float, float] = (0.3, 3.3)  # height / width
    erasing_fill: str = "random"  # "random": uniform random values, "zero": zeros

    def __post_init__(self):
        for name in ("image_size", "batch_size", "shuffle_buffer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if self.channels not in CHANNELS:
            raise ValueError(
                f"channels must be one of {list(CHANNELS)}. Received: channels={self.channels!r}"
            )
        if self.max_shift is not None and (
            isinstance(self.max_shift, bool)
            or not isinstance(self.max_shift, int)
            or not 0 <= self.max_shift < self.image_size
        ):
            raise ValueError(
                f"max_shift must be an integer in [0, image_size). Received: "
                f"max_shift={self.max_shift!r}, image_size={self.image_size}"
            )
        if (
            isinstance(self.random_erasing, bool)
            or not isinstance(self.random_erasing, (int, float))
            or not 0.0 <= self.random_erasing <= 1.0
        ):
            raise ValueError(
                f"random_erasing must be a probability in [0, 1]. Received: "
                f"random_erasing={self.random_erasing!r}"
            )
        for name, upper in (("erasing_area", 1.0), ("erasing_aspect", None)):
            value = getattr(self, name)
            if not (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                and 0.0 < value[0] <= value[1]
                and (upper is None or value[1] <= upper)
            ):
                bounds = "0 < low <= high <= 1" if upper else "0 < low <= high"
                raise ValueError(
                    f"{name} must be a tuple (low, high) with {bounds}. Received: {name}={value!r}"
                )
        if self.erasing_fill not in ERASING_FILLS:
            raise ValueError(
                f"erasing_fill must be one of {list(ERASING_FILLS)}. Received: "
                f"erasing_fill={self.erasing_fill!r}"
            )

    @property
    def shift(self) -> int:
        return self.image_size // 8 if self.max_shift is None else self.max_shift


def dataset_info(name: str, data_dir: str | None = None) -> tfds.core.DatasetInfo:
    """The tfds `DatasetInfo` of `name`, with a one-line `ValueError` for unknown names."""
    try:
        return tfds.builder(name, data_dir=data_dir).info
    except Exception as error:  # tfds raises many types; re-raise one clear line
        message = one_line(error, first_line=True)
        raise ValueError(f"Unknown tfds dataset {name!r}: {message}") from None


def _class_label(name: str, data_dir: str | None) -> tfds.features.ClassLabel:
    info = dataset_info(name, data_dir)
    if not info.supervised_keys:
        raise ValueError(f"Dataset {name!r} has no supervised (image, label) keys.")
    label = info.features[info.supervised_keys[1]]
    if not isinstance(label, tfds.features.ClassLabel):
        raise ValueError(f"Dataset {name!r} has no class label. Its label: {label!r}")
    return label


def num_classes(name: str, data_dir: str | None = None) -> int:
    """Number of classes of a supervised tfds image-classification dataset."""
    return _class_label(name, data_dir).num_classes


def class_names(name: str, data_dir: str | None = None) -> list[str]:
    """The class names of a supervised tfds image-classification dataset, in label order
    (tfds's `ClassLabel.names`: `"0"`, `"1"`, ... where the dataset names none)."""
    return list(_class_label(name, data_dir).names)


def prepare_offline_if_needed(name: str, data_dir: str | None = None) -> None:
    """Prepares `fashion_mnist` from its local official files (see
    `keras_attn.data.fashion_mnist`) when tfds has not prepared it and its download server does
    not answer; otherwise, and for every other dataset, does nothing and leaves it to tfds."""
    if base_name(name) != fashion_mnist.NAME:
        return
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception:  # noqa: BLE001 - an unknown version: tfds.load reports it
        return
    if builder.is_prepared() or fashion_mnist.download_reachable():
        return
    fashion_mnist.prepare_fashion_mnist(data_dir=data_dir)


def num_examples(name: str, split: str, data_dir: str | None = None) -> int | None:
    """Examples in `split` (slices like `"train[:90%]"` work), or `None` where tfds does not
    know (mock data)."""
    try:
        prepare_offline_if_needed(name, data_dir)
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            # As tfds.load would: split sizes exist only once the dataset is prepared (for the
            # local builders that needs no download).
            builder.download_and_prepare()
        return builder.info.splits[split].num_examples or None
    except Exception:  # noqa: BLE001 - unknown sizes (mock data, offline) mean "ask the user"
        return None


def load_supervised(name: str, split: str, data_dir: str | None = None) -> tf.data.Dataset:
    """`(image, label)` pairs of a tfds dataset, `uint8 (H, W, C)` and an integer label.
    `fashion_mnist` is prepared from local files first where tfds could not download it."""
    prepare_offline_if_needed(name, data_dir)
    try:
        return tfds.load(name, split=split, as_supervised=True, data_dir=data_dir)
    except Exception as error:  # tfds raises many types; re-raise one clear line
        message = one_line(error, first_line=True)
        message = f"Could not load tfds dataset {name!r} split {split!r}: {message}"
        raise ValueError(message) from None


def preprocess(image: tf.Tensor, config: ClassificationConfig) -> tf.Tensor:
    """Deterministic part, before the cache: uint8 image -> `(S, S, C)` uint8, with the
    channels converted (gray <-> RGB) and a bilinear (antialiased when shrinking) resize."""
    image = tf.image.convert_image_dtype(image, tf.float32)
    if config.channels == 1 and image.shape[-1] == 3:
        image = tf.image.rgb_to_grayscale(image)
    elif config.channels == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    size = (config.image_size, config.image_size)
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    # Rounded, not truncated (as convert_image_dtype would): at most 0.5/255 off.
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)


def augment(image: tf.Tensor, seed: tf.Tensor, config: ClassificationConfig) -> tf.Tensor:
    """Random translation by up to `config.shift` pixels (zero padding + random crop), a
    horizontal flip only when `config.horizontal_flip`, and random erasing with probability
    `config.random_erasing`. `seed`: a stateless seed, shape (2,)."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    shift = config.shift
    if shift:
        padded = tf.pad(image, [[shift, shift], [shift, shift], [0, 0]])
        image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seeds[0])
    if config.horizontal_flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    if config.random_erasing:
        # A seed of its own, so that switching erasing on leaves translation and flip unchanged.
        erasing_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        image = random_erase(image, erasing_seed, config)
    return image


def random_erase(image: tf.Tensor, seed: tf.Tensor, config: ClassificationConfig) -> tf.Tensor:
    """Random erasing (Zhong et al. 2017) of one `(H, W, C)` image: with probability
    `config.random_erasing`, a rectangle of `config.erasing_area` of the image with aspect ratio
    (height / width) in `config.erasing_aspect`, both uniform, at a uniform position, gets
    `config.erasing_fill` (uniform random values or zeros). Of `ERASING_ATTEMPTS` candidate sizes
    the first that fits inside the image is used (none fits: the image stays). `seed`: a
    stateless seed, shape (2,)."""
    gate_seed, size_seed, position_seed, fill_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=4)
    )
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    area_fraction, aspect = tf.unstack(
        tf.random.stateless_uniform(
            [2, ERASING_ATTEMPTS],
            size_seed,
            minval=[[config.erasing_area[0]], [config.erasing_aspect[0]]],
            maxval=[[config.erasing_area[1]], [config.erasing_aspect[1]]],
        )
    )
    area = area_fraction * tf.cast(height * width, tf.float32)
    heights = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
    widths = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = (heights > 0) & (widths > 0) & (heights < height) & (widths < width)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    erase = tf.reduce_any(fits) & (
        tf.random.stateless_uniform([], gate_seed) < config.random_erasing
    )
    box_height = tf.where(erase, heights[first], 1)
    box_width = tf.where(erase, widths[first], 1)
    corner = tf.random.stateless_uniform([2], position_seed)  # top and left, uniform in [0, 1)
    top = tf.cast(corner[0] * tf.cast(height - box_height + 1, tf.float32), tf.int32)
    left = tf.cast(corner[1] * tf.cast(width - box_width + 1, tf.float32), tf.int32)
    rows = tf.range(height)[:, None]
    columns = tf.range(width)[None, :]
    inside = (rows >= top) & (rows < top + box_height) & (columns >= left)
    inside = inside & (columns < left + box_width) & erase
    if config.erasing_fill == "random":
        fill = tf.random.stateless_uniform(shape, fill_seed, maxval=256, dtype=tf.int32)
    else:
        fill = tf.zeros(shape, tf.int32)
    return tf.where(inside[..., None], tf.cast(fill, image.dtype), image)


def classification_dataset(
    name: str = "bundled_digits",
    split: str = "train",
    batch_size: int = 64,
    image_size: int = 32,
    training: bool = True,
    *,
    data_dir: str | None = None,
    seed: int = 0,
    channels: int | None = None,
    random_erasing: float = 0.0,
    erasing_fill: str = "random",
) -> tf.data.Dataset:
    """Batches of `(images, labels)` for training or evaluating image classifiers.

    Args:
        name: any supervised tfds image-classification dataset (`"cifar10"`, `"mnist"`, ...,
            loaded with `as_supervised=True`), or `"bundled_digits"` (default: scikit-learn's
            real digit scans, offline). `"fashion_mnist"` also works offline (prepared from
            the Debian package `dataset-fashion-mnist` where tfds cannot download it).
        split: tfds split, e.g. `"train"`, `"test"`, `"train[:90%]"`.
        batch_size: images per batch.
        image_size: side of the square images the model sees (bilinear resize).
        training: `True`: an endless, shuffled stream with random translations and, only
            where `allows_horizontal_flip(name)`, horizontal flips; full batches only.
            `False`: every example once, in order, unaugmented.
        data_dir: tfds data directory (default: tfds's own).
        seed: seed of the shuffle and the augmentation.
        channels: `1` or `3` to convert (gray <-> RGB), `None` to keep the dataset's.
        random_erasing: probability of random erasing per training image (0: off; 0.5 in the
            Fashion-MNIST/CIFAR recipes).
        erasing_fill: `"random"` (uniform random values) or `"zero"`: what erased pixels get.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: float32 `(B, S, S, C)` in [0, 1] and int32
        `(B,)` class indices.
    """
    config = ClassificationConfig(
        image_size=image_size,
        batch_size=batch_size,
        training=training,
        channels=channels,
        horizontal_flip=allows_horizontal_flip(name),
        seed=seed,
        random_erasing=random_erasing,
        erasing_fill=erasing_fill,
    )
    examples = load_supervised(name, split, data_dir)
    examples = examples.map(
        lambda image, label: (preprocess(image, config), tf.cast(label, tf.int32)),
        num_parallel_calls=AUTOTUNE,
    ).cache()

    if training:
        examples = examples.shuffle(config.shuffle_buffer, seed=config.seed).repeat()
        randoms = tf.data.Dataset.random(seed=config.seed).batch(2)
        examples = tf.data.Dataset.zip((examples, randoms)).map(
            lambda example, seed: (augment(example[0], seed, config), example[1]),
            num_parallel_calls=AUTOTUNE,
        )

    def to_float(image, label):
        return tf.image.convert_image_dtype(image, tf.float32), label

    examples = examples.map(to_float, num_parallel_calls=AUTOTUNE)
    return examples.batch(config.batch_size, drop_remainder=training).prefetch(AUTOTUNE)
