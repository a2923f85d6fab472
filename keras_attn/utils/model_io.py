"""Keras models from files and their outputs: one loader with one-line errors for every caller."""

from __future__ import annotations

import os
import pathlib

import keras

from keras_attn.utils.errors import one_line


def load_keras_model(
    path: str | os.PathLike, *, argument: str | None = None, compile: bool = False
) -> keras.Model:
    """Loads a `.keras` file; anything else is one `ValueError` that names the path.

    `import keras_attn` has registered the package's layers, losses and metrics, so models
    saved by `keras-attn train` or taken from `saved_models/` load with no `custom_objects`.

    Args:
        path: the `.keras` file.
        argument: how the caller's user named the path (e.g. `"--init-from"`); it starts the
            error messages.
        compile: restore the training configuration too (not needed for inference or weight
            transfer).

    Raises:
        ValueError: a path that is not a `.keras` file, does not exist, or does not load
            (a truncated, foreign or corrupt file).
    """
    label = f"{argument} {str(path)!r}" if argument else str(path)
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{label} is not a .keras file")
    if not path.is_file():
        raise ValueError(f"{label} does not exist")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as error:  # noqa: BLE001 - zip/h5/config errors of a bad file
        raise ValueError(
            f"{label} is not a loadable .keras model ({one_line(error, first_line=True)})"
        ) from None


def single_output(result):
    """The one tensor of a model's output (a tensor, a 1-element list, or a 1-entry dict)."""
    if isinstance(result, dict):
        if len(result) != 1:
            raise ValueError(f"Expected one output; the model returned {sorted(result)}")
        return next(iter(result.values()))
    if isinstance(result, (list, tuple)):
        if len(result) != 1:
            raise ValueError(f"Expected one output; the model returned {len(result)}")
        return result[0]
    return result
