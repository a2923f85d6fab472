"""keras_attn.training: losses, metrics, the training entry point, recipes and evaluation."""

from keras_attn.training import evaluation, fit, losses, metrics, recipes

__all__ = ["evaluation", "fit", "losses", "metrics", "recipes"]
