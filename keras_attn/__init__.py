"""keras_attn: attention layers and an attention model zoo for Keras 3 on TensorFlow."""

from keras_attn.version import __version__

try:
    import tensorflow  # noqa: F401  (the backend; the data pipelines and export need it too)
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "keras_attn needs TensorFlow 2.21. Install it with the package: "
        'pip install "keras-attn[cpu]" (or "[gpu]" on a CUDA machine).'
    ) from error

# Importing the package registers every serialisable class (layers, losses, metrics), so
# `import keras_attn` is all `keras.saving.load_model` needs, trained-and-compiled models included.
from keras_attn import data, export, layers, models, pretrained, training, viz

__all__ = ["__version__", "data", "export", "layers", "models", "pretrained", "training", "viz"]
