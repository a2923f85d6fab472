"""keras_attn: attention layers and an attention model zoo for Keras 3 on TensorFlow.

`import keras_attn` registers every serialisable class (the layers, the losses and metrics a
compiled model refers to) and the model presets, so it is all `keras.saving.load_model` needs.
The other subpackages load on first use (`keras_attn.data`, `.export`, `.families`,
`.pretrained`, `.training`, `.viz`; the task helpers `keras_attn.upscale`, `align` and
`classify`): `import keras_attn.layers` does not import tensorflow-datasets.
`import keras_attn.data` registers the local tfds builders (`bundled_photos`, `photo_folder`,
`bundled_digits`) before a `tfds.load` of them.

TensorFlow is the backend this package is built and tested for (data pipelines, export, the
CLI). On another Keras backend (`KERAS_BACKEND=jax`), `keras_attn.layers`, the model builders,
the losses and metrics and `keras_attn.training.schedule` import without TensorFlow, so a model
can be built and trained there and its weights loaded back under TensorFlow.
"""

import importlib

from keras_attn.version import __version__

try:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow  # noqa: F401  (the backend; the data pipelines and export need it too)
except ModuleNotFoundError as error:  # pragma: no cover - depends on the installation
    if error.name != "tensorflow":
        raise
    raise ImportError(
        "keras_attn needs TensorFlow 2.21. Install it with the package: "
        'pip install "keras-attn[cpu]" (or "[gpu]" on a CUDA machine).'
    ) from error

from keras_attn import layers, models  # noqa: E402  (layers and model presets registered)
from keras_attn.training import losses, metrics  # noqa: E402,F401  (registered)

_LAZY = ("data", "export", "families", "pretrained", "training", "viz")
# Task helpers exported here, loaded with their module on first use.
_LAZY_FUNCTIONS = {
    "align": "keras_attn.models",
    "classify": "keras_attn.inference",
    "upscale": "keras_attn.models",
}

__all__ = [
    "__version__",
    "align",
    "classify",
    "data",
    "export",
    "families",
    "layers",
    "models",
    "pretrained",
    "training",
    "upscale",
    "viz",
]


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"keras_attn.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'keras_attn' has no attribute {name!r}")
