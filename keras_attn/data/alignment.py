"""Alignment pairs made on the fly, DeTone-style, from any tfds image dataset.

DeTone et al., "Deep Image Homography Estimation" (https://arxiv.org/abs/1606.03798): take a
square patch of a photo as the **fixed** image, move its four corners by up to `max_shift`
pixels, and resample the photo inside that quadrilateral onto a square as the **moving** image.
The homography between them is then known exactly: `H` maps moving pixel coordinates to fixed
ones and the moving patch's corners land at `corners = (0,0),(p-1,0),(p-1,p-1),(0,p-1) + shifts`.

tfds.load -> image -> cache -> (training) repeat + shuffle + random rescale -> pairs (random
crop position, corner shifts, photometric change) -> batch -> prefetch. Validation pairs are
drawn with fixed seeds per image, so every call gives the same pairs.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from keras_attn.data import bundled_photos  # noqa: F401  (registers the "bundled_photos" builder)
from keras_attn.data.super_resolution import load_images
from keras_attn.layers import homography_ops as hom  # the same Heckbert closed form as the model

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class AlignmentConfig:
    """Settings of `alignment_dataset`; see there."""

    patch_size: int = 128
    max_shift: float = 32.0
    batch_size: int = 16
    training: bool = True
    channels: int = 1
    photometric: float = 0.0
    pairs_per_image: int = 8
    deformation: float = 0.0
    eval_short_side: int = 240
    shuffle_buffer: int = 64
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.patch_size, int) or self.patch_size < 16:
            raise ValueError(
                f"patch_size must be an integer >= 16. Received: patch_size={self.patch_size!r}"
            )
        if not isinstance(self.max_shift, (int, float)) or not (
            0 <= self.max_shift <= self.patch_size / 2
        ):
            raise ValueError(
                f"max_shift must be a number in [0, patch_size / 2]. Received: max_shift="
                f"{self.max_shift!r}, patch_size={self.patch_size}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3. Received: channels={self.channels!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(
                f"batch_size must be a positive integer. Received: {self.batch_size!r}"
            )
        if not isinstance(self.pairs_per_image, int) or self.pairs_per_image < 1:
            raise ValueError(
                f"pairs_per_image must be a positive integer. Received: {self.pairs_per_image!r}"
            )
        if not isinstance(self.photometric, (int, float)) or not 0 <= self.photometric <= 1:
            raise ValueError(
                f"photometric must be a number in [0, 1]. Received: {self.photometric!r}"
            )
        if not isinstance(self.deformation, (int, float)) or not (
            0 <= self.deformation <= max(self.max_shift, 1.0)
        ):
            raise ValueError(
                f"deformation must be a number in [0, max(max_shift, 1)]. Received: "
                f"deformation={self.deformation!r}, max_shift={self.max_shift!r}"
            )

    @property
    def min_side(self) -> int:
        """Smallest photo side that fits a patch with its shifted corners."""
        return int(self.patch_size + 2 * self.max_shift + 2)


def patch_corners(patch_size: int) -> tf.Tensor:
    """`(4, 2)` corners `(x, y)` of a `patch_size` square, clockwise from the top-left pixel."""
    last = float(patch_size - 1)
    return tf.constant([[0.0, 0.0], [last, 0.0], [last, last], [0.0, last]])


def corners_to_homography(corners: tf.Tensor, patch_size: int) -> tf.Tensor:
    """Moving->fixed homography taking the patch corners to `corners` `(4, 2)`."""
    scale = 1.0 / float(patch_size - 1)
    return hom.square_to_quad(corners[None])[0] @ tf.linalg.diag([scale, scale, 1.0])


def sample_bilinear(image: tf.Tensor, xy: tf.Tensor) -> tf.Tensor:
    """Samples `(H, W, C)` float `image` at `(..., 2)` pixel coordinates `(x, y)`, clamped."""
    shape = tf.shape(image)
    max_x = tf.cast(shape[1] - 1, tf.float32)
    max_y = tf.cast(shape[0] - 1, tf.float32)
    x = tf.clip_by_value(xy[..., 0], 0.0, max_x)
    y = tf.clip_by_value(xy[..., 1], 0.0, max_y)
    x0 = tf.floor(x)
    y0 = tf.floor(y)
    wx = (x - x0)[..., None]
    wy = (y - y0)[..., None]

    def at(yi, xi):
        yi = tf.cast(tf.minimum(yi, max_y), tf.int32)
        xi = tf.cast(tf.minimum(xi, max_x), tf.int32)
        return tf.gather_nd(image, tf.stack([yi, xi], axis=-1))

    top = at(y0, x0) * (1.0 - wx) + at(y0, x0 + 1.0) * wx
    bottom = at(y0 + 1.0, x0) * (1.0 - wx) + at(y0 + 1.0, x0 + 1.0) * wx
    return top * (1.0 - wy) + bottom * wy


def photometric_change(image: tf.Tensor, seed: tf.Tensor, strength: float) -> tf.Tensor:
    """Random gain, bias, gamma and Gaussian noise, scaled by `strength` in [0, 1]."""
    if strength == 0:
        return image
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    gain = tf.random.stateless_uniform((), seeds[0], 1 - 0.4 * strength, 1 + 0.4 * strength)
    bias = tf.random.stateless_uniform((), seeds[1], -0.1 * strength, 0.1 * strength)
    gamma = tf.exp(tf.random.stateless_uniform((), seeds[2], -0.4 * strength, 0.4 * strength))
    sigma = tf.random.stateless_uniform((), seeds[3], 0.0, 0.02 * strength)
    noise = tf.random.stateless_normal(tf.shape(image), seeds[4]) * sigma
    image = tf.pow(tf.clip_by_value(image, 0.0, 1.0), gamma) * gain + bias + noise
    return tf.clip_by_value(image, 0.0, 1.0)


def random_deformation(patch_size: int, seed: tf.Tensor, amplitude: float) -> tf.Tensor:
    """A random non-planar displacement field `(p, p, 2)` in pixels, at most about `amplitude`.

    A smooth part (a random 4x4 grid of displacements in `[-amplitude, amplitude] / 2`,
    upsampled bicubically: depth that varies slowly, or a soft deformation) plus, in half the
    pairs, an elliptical "object" of random size moved by its own shift of up to `amplitude`
    (a depth discontinuity, as at the edge of a foreground object in a stereo pair).
    """
    p = patch_size
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    grid = tf.random.stateless_uniform((1, 4, 4, 2), seeds[0], -0.5, 0.5) * amplitude
    smooth = tf.image.resize(grid, (p, p), method="bicubic")[0]
    centre = tf.random.stateless_uniform((2,), seeds[1], 0.2 * p, 0.8 * p)
    radii = tf.random.stateless_uniform((2,), seeds[2], 0.1 * p, 0.35 * p)
    shift = tf.random.stateless_uniform((2,), seeds[3], -1.0, 1.0) * amplitude
    xs, ys = tf.meshgrid(tf.range(p, dtype=tf.float32), tf.range(p, dtype=tf.float32))
    inside = ((xs - centre[0]) / radii[0]) ** 2 + ((ys - centre[1]) / radii[1]) ** 2 <= 1.0
    with_object = tf.random.stateless_uniform((), seeds[4]) < 0.5
    layer = tf.where((inside & with_object)[..., None], shift, tf.zeros_like(shift))
    return smooth + layer


def make_pair(image: tf.Tensor, seed: tf.Tensor, config: AlignmentConfig):
    """One DeTone pair from a float `(H, W, C)` photo whose sides are >= `config.min_side`.

    With `config.deformation > 0` the fixed image is also resampled through a random
    non-planar displacement (`random_deformation`), so the pair is related by the homography
    plus a dense residual; the targets' `flow` is the exact backward flow either way.
    """
    p = config.patch_size
    rho = float(config.max_shift)
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    shape = tf.shape(image)
    margin = int(rho) + 1
    ox = tf.random.stateless_uniform((), seeds[0], margin, shape[1] - p - margin + 1, tf.int32)
    oy = tf.random.stateless_uniform((), seeds[1], margin, shape[0] - p - margin + 1, tf.int32)
    shifts = tf.random.stateless_uniform((4, 2), seeds[2], -rho, rho)
    corners = patch_corners(p) + shifts
    homography = corners_to_homography(corners, p)

    xs, ys = tf.meshgrid(tf.range(p, dtype=tf.float32), tf.range(p, dtype=tf.float32))
    grid = tf.stack([xs, ys], axis=-1)
    points = tf.concat([grid, tf.ones_like(xs)[..., None]], axis=-1) @ tf.transpose(homography)
    offset = tf.cast(tf.stack([ox, oy]), tf.float32)
    moving = sample_bilinear(image, points[..., :2] / points[..., 2:] + offset)
    # fixed pixel x shows the photo at x + d(x) (d = 0 for a plane), which the moving image
    # shows at H^-1 (x + d(x)): the backward flow is that minus x
    if config.deformation > 0:
        deformation_seed = tf.random.experimental.stateless_fold_in(seed, 5)
        source = grid + random_deformation(p, deformation_seed, config.deformation)
        fixed = sample_bilinear(image, source + offset)
    else:
        source = grid
        fixed = image[oy : oy + p, ox : ox + p]
    back = tf.concat([source, tf.ones_like(xs)[..., None]], axis=-1) @ tf.transpose(
        tf.linalg.inv(homography)
    )
    flow = back[..., :2] / back[..., 2:] - grid
    seen = (back[..., :2] / back[..., 2:] >= 0.0) & (back[..., :2] / back[..., 2:] <= p - 1.0)
    visible = tf.cast(tf.reduce_all(seen, axis=-1, keepdims=True), tf.float32)
    fixed = photometric_change(fixed, seeds[3], config.photometric)
    moving = photometric_change(moving, seeds[4], config.photometric)
    fixed = tf.ensure_shape(fixed, (p, p, config.channels))
    moving = tf.ensure_shape(moving, (p, p, config.channels))
    targets = {"homography": homography, "corners": corners, "flow": flow, "visible": visible}
    return {"moving": moving, "fixed": fixed}, targets


def _resize_short_side(image: tf.Tensor, short_side: tf.Tensor) -> tf.Tensor:
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    factor = tf.cast(short_side, tf.float32) / tf.reduce_min(shape)
    size = tf.cast(tf.math.ceil(shape * factor), tf.int32)
    return tf.image.resize(image, size, method="bilinear", antialias=True)


def alignment_dataset(
    name: str = "bundled_photos",
    split: str = "train",
    patch_size: int = 128,
    max_shift: float = 32.0,
    batch_size: int = 16,
    training: bool = True,
    *,
    channels: int = 1,
    photometric: float = 0.0,
    pairs_per_image: int = 8,
    deformation: float = 0.0,
    data_dir: str | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of `({"moving", "fixed"}, {"homography", "corners", "flow", "visible"})` pairs.

    Args:
        name: any tfds image dataset (`"coco/2017"`, `"div2k/bicubic_x2"` takes `hr`), or
            `"bundled_photos"` (default: real photos that ship with scikit-image, offline).
        split: tfds split; `bundled_photos` holds out `"validation"` photos.
        patch_size: side of the square patches.
        max_shift: corner shifts are uniform in `[-max_shift, max_shift]` pixels (DeTone: 32).
        batch_size: pairs per batch.
        training: `True`: an endless stream, each photo randomly rescaled (short side between
            `min_side` and twice that) before `pairs_per_image` pairs are cut from it;
            `False`: every photo rescaled to a 240-pixel short side (DeTone's 320x240
            protocol), `pairs_per_image` fixed pairs from each, once.
        channels: 1 (grayscale) or 3 (RGB).
        photometric: strength in [0, 1] of independent random gain/bias/gamma/noise changes
            of the two images (0: none).
        pairs_per_image: pairs drawn from each (rescaled) photo.
        deformation: 0 (default: the pair is related by the homography alone) or the size in
            pixels of a random non-planar residual (`random_deformation`: smooth depth plus an
            object moved on its own), for training and testing dense-flow aligners.
        data_dir: tfds data directory.
        seed: seed of every random choice.

    Returns:
        A `tf.data.Dataset` of `(inputs, targets)`: `moving`/`fixed` `(B, p, p, channels)`
        float32 in [0, 1]; `homography` `(B, 3, 3)` moving->fixed, `corners` `(B, 4, 2)`;
        `flow` `(B, p, p, 2)` the exact backward flow on the fixed grid (the models' `flow`
        convention), `visible` `(B, p, p, 1)` 1 where that flow lands inside the moving image.
    """
    config = AlignmentConfig(
        patch_size,
        float(max_shift),
        batch_size,
        training,
        channels,
        float(photometric),
        pairs_per_image,
        float(deformation),
        seed=seed,
    )
    images = load_images(name, split, data_dir).cache()

    def to_float(image):
        image = tf.image.convert_image_dtype(image, tf.float32)
        if config.channels == 1:
            image = tf.image.rgb_to_grayscale(image)
        return image

    images = images.map(to_float, num_parallel_calls=AUTOTUNE)
    min_side = max(config.min_side, config.eval_short_side if not training else 0)

    def pairs_from(index, image, seed):
        if training:
            short = tf.random.stateless_uniform(
                (), seed, config.min_side, 2 * config.min_side + 1, tf.int32
            )
        else:
            short = tf.constant(min_side)
        image = _resize_short_side(image, short)
        seeds = tf.random.experimental.stateless_split(seed, num=config.pairs_per_image)
        pairs = tf.data.Dataset.from_tensor_slices(seeds)
        return pairs.map(lambda s: make_pair(image, s, config))

    if training:
        images = images.repeat().shuffle(
            config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=False
        )
        randoms = tf.data.Dataset.random(seed=config.seed).batch(2)
        numbered = tf.data.Dataset.zip((tf.data.Dataset.counter(), images, randoms))
        pairs = numbered.interleave(
            pairs_from, cycle_length=4, num_parallel_calls=AUTOTUNE, deterministic=True
        ).shuffle(config.shuffle_buffer * 4, seed=config.seed, reshuffle_each_iteration=False)
    else:
        numbered = images.enumerate().map(
            lambda i, image: (
                i,
                image,
                tf.stack([tf.cast(config.seed, tf.int64), i]),
            )
        )
        pairs = numbered.flat_map(pairs_from)
    return pairs.batch(config.batch_size, drop_remainder=training).prefetch(AUTOTUNE)
