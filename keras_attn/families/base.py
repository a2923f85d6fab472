"""The registry itself: `Family`, `register`, `get`, `names`, `family_of`, `default_dataset`,
and the helpers the family modules share (see `keras_attn.families`)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Lazy:
    """A function named `"module:attribute"`, imported on its first call."""

    target: str

    def resolve(self) -> Callable:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family; see the module docstring for what each field does."""

    name: str
    title: str
    detect: Callable[..., bool]
    output_names: tuple[str, ...]
    default_dataset: tuple[str, str]
    make_predict: Callable[..., Callable]
    evaluate: Callable[..., dict]
    print_evaluation: Callable[[dict], None]
    writes_next_to_input: bool
    check_predict_inputs: Callable[[list], None]
    predict_files: Callable[..., None]
    held_out_metric: Callable[[dict], str]
    calibration_data: Callable[..., list]
    demo_figure: Callable
    task_helper: Callable


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Adds `family` to the registry (a name already registered is an error)."""
    if family.name in _REGISTRY:
        raise ValueError(f"The family {family.name!r} is already registered")
    _REGISTRY[family.name] = family
    return family


def names() -> tuple[str, ...]:
    """The registered family names, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> Family:
    """The registry entry of family `name`; a one-line `ValueError` names the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown model family {name!r}; the known families are {', '.join(_REGISTRY)}"
        ) from None


def family_of(model) -> str:
    """`"aligner"` for two image inputs `moving` and `fixed` with dict outputs holding
    `homography`; `"sr"` for an image-to-image model (4D output); `"classifier"` for a 2D output."""
    for family in _REGISTRY.values():
        if family.detect(model):
            return family.name
    ranks = [len(output.shape) for output in model.outputs]
    raise ValueError(
        f"Cannot tell the family of model {model.name!r} (output ranks {ranks}): expected a "
        "super-resolution model (one image output), a classifier (one (B, classes) output) or "
        "an aligner (inputs moving and fixed)."
    )


def default_dataset(family: str, card: dict | None = None) -> tuple[str, str]:
    """The `(dataset, split)` a model is scored on: where its card says it was scored (a
    shipped model), else the family's default."""
    recorded = ((card or {}).get("metrics") or {}).get("evaluation") or {}
    default_name, default_split = get(family).default_dataset
    return recorded.get("dataset", default_name), recorded.get("split", default_split)


def representative_data(
    family: str,
    input_shape: tuple,
    *,
    count: int = 32,
    data_dir: str | None = None,
    seed: int = 0,
    dataset: str | None = None,
) -> Callable[[], list]:
    """Representative inputs for full-int8 TFLite conversion, from each family's TRAINING data
    (never the held-out split): random `64 x 64` crops of the bundled training photos for SR,
    the first `count` training images of `dataset` (default `bundled_digits`) for classifiers;
    aligners raise (float only). The family's `calibration_data` makes them; this returns the
    callable that `export_tflite(..., representative_data=...)` takes (a list of one-input
    lists)."""
    samples = get(family).calibration_data(
        input_shape, count=count, data_dir=data_dir, seed=seed, dataset=dataset
    )
    return lambda: samples


# --------------------------------------------------------------------------- shared helpers


def format_fixed(value, decimals: int, suffix: str = "", sign: bool = False) -> str:
    """`value` with fixed decimals (and a sign), or "-" where it is not a number."""
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:{'+' if sign else ''}.{decimals}f}{suffix}"


def _takes_moving_and_fixed(model) -> bool:
    return sorted(tensor.name for tensor in model.inputs) == ["fixed", "moving"]


def _output_ranks(model) -> list[int]:
    return [len(output.shape) for output in model.outputs]


def _as_numpy(output):
    import numpy as np

    from keras_attn.utils.model_io import single_output

    return np.asarray(single_output(output), dtype="float32")


def _image_predict(loaded, format: str, input_name: str | None = None) -> Callable:
    """One float32 `(B, H, W, C)` batch in, the model's one output out as float32 numpy."""
    if format == "keras":
        return lambda batch: _as_numpy(loaded(batch, training=False))
    if format == "saved_model":
        import tensorflow as tf

        signature = loaded.signatures["serving_default"]
        return lambda batch: _as_numpy(signature(**{input_name: tf.constant(batch, tf.float32)}))
    return lambda batch: _as_numpy(loaded(**{input_name: batch}))


def _to_8bit(image):
    """16-bit and float images as 8-bit (PNGs are written 8-bit); uint8 unchanged."""
    import numpy as np

    if image.dtype == np.uint8:
        return image
    top = 65535.0 if image.dtype == np.uint16 else 1.0
    return np.round(np.clip(image / top, 0, 1) * 255).astype("uint8")


def _no_input_check(paths: list) -> None:
    """Any number of input images."""
