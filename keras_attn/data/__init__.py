"""keras_attn.data: tfds -> tf.data pipelines, and a local builder over bundled real photos."""

from keras_attn.data.alignment import AlignmentConfig, alignment_dataset
from keras_attn.data.bundled_photos import BundledPhotos, load_photo, photo_names
from keras_attn.data.classification import ClassificationConfig, classification_dataset
from keras_attn.data.digits import BundledDigits
from keras_attn.data.fashion_mnist import prepare_fashion_mnist
from keras_attn.data.super_resolution import (
    SuperResolutionConfig,
    bicubic_downscale,
    super_resolution_dataset,
)

__all__ = [
    "AlignmentConfig",
    "alignment_dataset",
    "BundledDigits",
    "ClassificationConfig",
    "classification_dataset",
    "BundledPhotos",
    "SuperResolutionConfig",
    "bicubic_downscale",
    "load_photo",
    "photo_names",
    "prepare_fashion_mnist",
    "super_resolution_dataset",
]
