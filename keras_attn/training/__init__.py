"""keras_attn.training: losses, metrics, the training entry point, recipes and evaluation.

The losses and metrics import at once (they are registered for loading compiled models);
`evaluation`, `fit` and `recipes`, which need the data pipelines, load on first use, as does
`schedule` (the optimiser and learning-rate schedule, Keras alone).
"""

import importlib

from keras_attn.training import losses, metrics

_LAZY = ("evaluation", "fit", "recipes", "schedule")

__all__ = ["evaluation", "fit", "losses", "metrics", "recipes", "schedule"]


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"keras_attn.training.{name}")
    raise AttributeError(f"module 'keras_attn.training' has no attribute {name!r}")
