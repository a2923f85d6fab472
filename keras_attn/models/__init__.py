"""keras_attn.models: the model families, their registry and task helpers on numpy images."""

from keras_attn.models import sr_references  # noqa: F401  (registers the reference SR nets)
from keras_attn.models.aligner import align, aligner, aligner_inference_model, warp_image
from keras_attn.models.classifier import attention_classifier
from keras_attn.models.registry import build_model, list_models, register_model
from keras_attn.models.super_resolution import super_resolution, upscale
from keras_attn.models.weights import transfer_aligner_weights, transfer_weights

__all__ = [
    "align",
    "aligner",
    "aligner_inference_model",
    "warp_image",
    "attention_classifier",
    "build_model",
    "list_models",
    "register_model",
    "super_resolution",
    "transfer_aligner_weights",
    "transfer_weights",
    "upscale",
]
