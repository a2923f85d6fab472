"""keras_attn.training: losses, metrics and the training entry point."""
