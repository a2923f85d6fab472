"""keras_attn.training: losses, metrics and the training entry point."""

from keras_attn.training import fit, losses, metrics

__all__ = ["fit", "losses", "metrics"]
