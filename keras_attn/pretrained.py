"""The catalogue of shipped models (`saved_models/`): list, verify, load, and package new ones.

Each model is a folder `<root>/<name>/` holding `model.keras`, `saved_model/`, `model.tflite`
(float32), optionally `model_fp16.tflite` and `model_int8.tflite` (never for aligners), and
`card.json` (see `saved_models/README.md`). The card records the sha256 and size of every other
file; `load` checks every file the chosen format needs against it first, so a tampered,
truncated or missing file raises a `ValueError` naming it instead of loading.

The root is, in order: the `root` argument; the `KERAS_ATTN_SAVED_MODELS` environment variable;
`saved_models/` beside the `keras_attn` package folder (a repository checkout, which an editable
install `pip install -e .` uses); `keras_attn/saved_models/` inside the installed package (a
wheel or `pip install .` carries the shipped models as package data: `setup.py` maps the
repository's `saved_models/` there).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import pathlib
from collections.abc import Callable

import keras
import numpy as np

from keras_attn import families
from keras_attn.export import TFLiteModel, check_value_range
from keras_attn.export.package import (
    CARD,
    KERAS_FILE,
    OUTPUT_NAMES,
    SAVED_MODEL_DIR,
    TFLITE_FILES,
    package_model,
    sha256_of,
)
from keras_attn.utils.model_io import load_keras_model

__all__ = [
    "ENV_VAR",
    "FORMATS",
    "OUTPUT_NAMES",
    "TFLITE_FILES",
    "Predictor",
    "card",
    "list_models",
    "load",
    "load_predictor",
    "package_model",
    "render_table",
    "render_zoo_table",
    "saved_models_root",
    "sha256_of",
    "verify",
]

ENV_VAR = "KERAS_ATTN_SAVED_MODELS"
VALUE_RANGE = (0.0, 1.0)  # every shipped model takes float32 images in [0, 1]
FORMATS = ("keras", "saved_model", "tflite")


def _candidate_roots() -> list[pathlib.Path]:
    """Where models are looked for when neither `root` nor the environment variable is set."""
    import keras_attn

    package = pathlib.Path(keras_attn.__file__).resolve().parent
    return [package.parent / "saved_models", package / "saved_models"]


def saved_models_root(root: str | os.PathLike | None = None) -> pathlib.Path:
    """The catalogue folder: `root`, else `$KERAS_ATTN_SAVED_MODELS`, else `saved_models/` of
    the repository checkout, else the copy installed inside the package (see the module doc)."""
    if root is not None:
        return pathlib.Path(root)
    if os.environ.get(ENV_VAR):
        return pathlib.Path(os.environ[ENV_VAR])
    candidates = _candidate_roots()
    for candidate in candidates:
        if _model_folders(candidate):
            return candidate
    return candidates[-1]


def where_models_are_looked_for(root: str | os.PathLike | None = None) -> str:
    """One phrase naming the folders searched, for error messages."""
    if root is not None:
        return str(root)
    if os.environ.get(ENV_VAR):
        return f"{os.environ[ENV_VAR]} (${ENV_VAR})"
    places = " or ".join(str(path) for path in _candidate_roots())
    return f"{places} (set ${ENV_VAR} to a folder of shipped models to use another)"


def _read_card(folder: pathlib.Path) -> dict:
    path = folder / CARD
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: {folder.name} is not a shipped model") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(card, dict) or not isinstance(card.get("files"), dict):
        raise ValueError(f"{path} has no 'files' table of sha256 sums")
    return card


def _model_folders(root: pathlib.Path) -> list[pathlib.Path]:
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / CARD).exists()
    )


def _folder(name: str, root: str | os.PathLike | None) -> pathlib.Path:
    base = saved_models_root(root)
    folders = {p.name: p for p in _model_folders(base)}
    if name not in folders:
        if not folders:
            raise ValueError(
                f"No shipped models found: looked in {where_models_are_looked_for(root)}"
            )
        close = difflib.get_close_matches(name, list(folders), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown shipped model {name!r}.{hint} Available in {base}: {sorted(folders)}"
        )
    return folders[name]


def card(name: str, *, root: str | os.PathLike | None = None) -> dict:
    """The model card (`card.json`) of shipped model `name`, as a dict."""
    return _read_card(_folder(name, root))


def list_models(*, root: str | os.PathLike | None = None) -> list[dict]:
    """One summary per shipped model, sorted by name.

    Returns:
        Dicts with `name`, `family`, `task`, `params`, `metric` (`{"name", "value"}`: the
        card's key metric, measured on held-out data), `files` (relative path -> bytes, the
        SavedModel folder summed as `"saved_model/"`) and `path`.
    """
    summaries = []
    for folder in _model_folders(saved_models_root(root)):
        model_card = _read_card(folder)
        files: dict[str, int] = {}
        for relative, entry in sorted(model_card["files"].items()):
            key = relative.split("/")[0] + "/" if "/" in relative else relative
            files[key] = files.get(key, 0) + int(entry["bytes"])
        key_metric = model_card.get("key_metric")
        summaries.append(
            {
                "name": folder.name,
                "family": model_card.get("family"),
                "task": model_card.get("task"),
                "params": model_card.get("params"),
                "metric": {
                    "name": key_metric,
                    "value": model_card.get("metrics", {}).get(key_metric),
                },
                "files": files,
                "path": str(folder),
            }
        )
    return summaries


# --------------------------------------------------------------------------- verification


def _needed_files(model_card: dict, name: str, format: str, variant: str | None) -> list[str]:
    listed = sorted(model_card["files"])
    if format == "keras":
        needed = [KERAS_FILE]
    elif format == "saved_model":
        needed = [f for f in listed if f.startswith(f"{SAVED_MODEL_DIR}/")]
        if f"{SAVED_MODEL_DIR}/saved_model.pb" not in needed:
            raise ValueError(f"The card of {name} lists no {SAVED_MODEL_DIR}/saved_model.pb")
    else:
        needed = [TFLITE_FILES[variant or "fp32"]]
    for relative in needed:
        if relative not in model_card["files"]:
            raise ValueError(f"{name} ships no {relative} (not in its card.json)")
    return needed


def verify(
    name: str,
    format: str = "keras",
    *,
    variant: str | None = None,
    root: str | os.PathLike | None = None,
) -> pathlib.Path:
    """Checks the files `format` needs against the sha256 and sizes in the card.

    For `"saved_model"` that is every file under `saved_model/`, and a file there that the card
    does not list is an error too.

    Returns:
        The path of the file (keras, tflite) or folder (saved_model) to load.

    Raises:
        ValueError: unknown name, format or variant; a file missing, of the wrong size
            (truncated) or with another sha256 (altered), naming the file.
    """
    _check_format(format, variant)
    folder = _folder(name, root)
    model_card = _read_card(folder)
    needed = _needed_files(model_card, name, format, variant)
    if format == "saved_model":
        present = {
            p.relative_to(folder).as_posix()
            for p in (folder / SAVED_MODEL_DIR).rglob("*")
            if p.is_file()
        }
        extra = sorted(present - set(needed))
        if extra:
            raise ValueError(f"{name}: {folder / extra[0]} is not listed in card.json")
    for relative in needed:
        path = folder / relative
        expected = model_card["files"][relative]
        if not path.is_file():
            raise ValueError(f"{name}: {path} is missing")
        size = path.stat().st_size
        if size != int(expected["bytes"]):
            raise ValueError(
                f"{name}: {path} has {size} bytes, card.json says {expected['bytes']} "
                "(truncated or altered)"
            )
        if sha256_of(path) != expected["sha256"]:
            raise ValueError(f"{name}: {path} does not match its sha256 in card.json (altered)")
    return folder / (SAVED_MODEL_DIR if format == "saved_model" else needed[0])


def _check_format(format: str, variant: str | None) -> None:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}. Received: format={format!r}")
    if variant is not None and (format != "tflite" or variant not in TFLITE_FILES):
        raise ValueError(
            f"variant is for format='tflite' only, one of {list(TFLITE_FILES)}. "
            f"Received: variant={variant!r}, format={format!r}"
        )


# --------------------------------------------------------------------------- loading


def load(
    name: str,
    format: str = "keras",
    *,
    variant: str | None = None,
    root: str | os.PathLike | None = None,
):
    """Loads shipped model `name` after checking its files' sha256 (see `verify`).

    Args:
        name: a folder of the catalogue, e.g. `"sr_x2"` (`list_models()` lists them).
        format: `"keras"` -> a `keras.Model` (uncompiled) whose `model(x)` and
            `model.predict(x)` raise a one-line `ValueError` on uint8, 0-255 or NaN input
            (every shipped model takes float32 images in [0, 1]); `"saved_model"` -> the
            `tf.saved_model.load` object (`.signatures["serving_default"]` takes named inputs
            and returns a dict); `"tflite"` -> a `keras_attn.export.TFLiteModel` (call it on
            numpy inputs; its `.interpreter` is the LiteRT `Interpreter`; it checks the input
            range likewise). The SavedModel signature does not check.
        variant: TFLite only: `None`/`"fp32"`, `"fp16"` or `"int8"`.
        root: catalogue folder (default: see `saved_models_root`).

    Raises:
        ValueError: unknown name (the message lists the available ones), unknown format or
            variant, or a file that fails verification.
    """
    path = verify(name, format, variant=variant, root=root)
    if format == "keras":
        return _guard_value_range(keras.saving.load_model(path, compile=False))
    if format == "saved_model":
        import tensorflow as tf

        return tf.saved_model.load(str(path))
    # XNNPACK, except for an aligner file with an open batch (see TFLiteModel)
    return TFLiteModel(path, value_range=VALUE_RANGE)


def _guard_value_range(model: keras.Model) -> keras.Model:
    """Makes `model(x)` and `model.predict(x)` raise a one-line `ValueError` on uint8, 0-255 or
    NaN input instead of returning white images (`check_value_range`; symbolic and
    `tf.data` inputs pass unchecked). Only this loaded instance changes: its class becomes a
    subclass that keeps the original's name and module, so `model.save` writes the same file."""
    model.__class__ = _checked_class(type(model))
    model._value_range_input_names = [tensor.name.split(":")[0] for tensor in model.inputs]
    return model


@functools.cache
def _checked_class(base: type) -> type:
    def as_dict(model, inputs):
        names = model._value_range_input_names
        if isinstance(inputs, dict):
            return inputs
        if isinstance(inputs, (list, tuple)) and len(inputs) == len(names) > 1:
            return dict(zip(names, inputs, strict=True))
        return {names[0]: inputs}

    def checked_call(self, inputs, *args, **kwargs):
        check_value_range(as_dict(self, inputs), VALUE_RANGE)
        return base.__call__(self, inputs, *args, **kwargs)

    def checked_predict(self, x, *args, **kwargs):
        if not hasattr(x, "element_spec"):  # a tf.data.Dataset is not read ahead
            check_value_range(as_dict(self, x), VALUE_RANGE)
        return base.predict(self, x, *args, **kwargs)

    namespace = {
        "__call__": checked_call,
        "predict": checked_predict,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
    }
    return type(base.__name__, (base,), namespace)


# --------------------------------------------------------------------------- CLI support


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A loaded model as a numpy function, with what the CLI needs to know about it.

    SR and classifier: `predictor(batch)` maps a float32 `(B, H, W, C)` batch in [0, 1] to the
    model's one output as float32 numpy. Aligner: `predictor(moving, fixed)` maps two float32
    `(B, H, W, C)` batches of the model's size to a dict of float32 numpy arrays `homography`
    `(B, 3, 3)` (moving->fixed pixels), `flow` `(B, H, W, 2)` and `warped` `(B, H, W, C)`,
    whichever format it was loaded from. `dense_flow`: an aligner whose flow is more than its
    homography's (`head="flow"`).
    """

    predict: Callable[..., np.ndarray | dict[str, np.ndarray]]
    family: str
    input_shape: tuple
    source: str
    card: dict | None = None
    dense_flow: bool = False

    def __call__(self, *batches: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        return self.predict(*batches)


def load_predictor(
    name_or_path: str,
    format: str = "keras",
    *,
    variant: str | None = None,
    root: str | os.PathLike | None = None,
) -> Predictor:
    """A `Predictor` for a shipped model name (any format) or a `.keras` file path; its numpy
    function is the family's `make_predict` (`keras_attn.families`)."""
    from keras_attn.models.aligner_tasks import has_dense_flow

    path = pathlib.Path(name_or_path)
    if path.suffix == ".keras" or "/" in name_or_path or os.sep in name_or_path:
        if format != "keras" or variant is not None:
            raise ValueError("format and variant apply to shipped model names, not to files")
        if path.suffix != ".keras":
            raise ValueError(f"{name_or_path} is not a .keras file or a shipped model name")
        model = load_keras_model(path)
        family = families.family_of(model)
        predict = families.get(family).make_predict(model, "keras")
        shape = tuple(model.inputs[0].shape[1:])
        return Predictor(predict, family, shape, str(path), dense_flow=has_dense_flow(model))

    model_card = card(name_or_path, root=root)
    family = model_card["family"]
    loaded = load(name_or_path, format, variant=variant, root=root)
    input_name = model_card["inputs"][0]["name"]
    return Predictor(
        families.get(family).make_predict(loaded, format, input_name),
        family,
        tuple(model_card["inputs"][0]["shape"][1:]),
        f"{name_or_path} ({format}{'/' + variant if variant else ''})",
        model_card,
        dense_flow=has_dense_flow(loaded),
    )


# --------------------------------------------------------------------------- documentation


def render_table(*, root: str | os.PathLike | None = None) -> str:
    """A Markdown table of the shipped models, generated from their cards."""
    rows = [
        "| model | task | params | held-out metric (Keras) | TFLite fp32 / fp16 / int8 | "
        "size (MB) | trained by |",
        "|---|---|---|---|---|---|---|",
    ]
    for summary in list_models(root=root):
        model_card = card(summary["name"], root=root)
        metric = summary["metric"]
        value = metric["value"]
        shown = f"{metric['name']} {value:.4g}" if isinstance(value, (int, float)) else "-"
        tflite = model_card.get("metrics", {}).get("tflite", {})
        variants = " / ".join(
            _short(tflite.get(file, {}).get(metric["name"])) for file in TFLITE_FILES.values()
        )
        command = model_card.get("training", {}).get("command", "-")
        rows.append(
            f"| `{summary['name']}` | {summary['task']} | {summary['params']:,} | {shown} | "
            f"{variants} | {model_card['total_bytes'] / 1e6:.2f} | `{command}` |"
        )
    return "\n".join(rows)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


_number = families.format_fixed


def _held_out_metric(model_card: dict) -> str:
    """The card's held-out metric, one protocol per family (its registry entry's
    `held_out_metric`), with fixed decimals."""
    metrics = model_card.get("metrics", {})
    family = model_card.get("family")
    if family in families.names():
        return families.get(family).held_out_metric(metrics)
    key = model_card.get("key_metric")
    return f"{key} {_number(metrics.get(key), 4)}"


def _tflite_fp32_ms(model_card: dict):
    """The card's measured TFLite float32 latency in ms, or None where it has none."""
    fp32 = model_card.get("metrics", {}).get("tflite", {}).get(TFLITE_FILES["fp32"], {})
    for key, value in sorted(fp32.items()):
        if key.startswith("ms_per_") and isinstance(value, (int, float)):
            return value
    return None


def render_zoo_table(*, root: str | os.PathLike | None = None) -> str:
    """The README's zoo table: one row per shipped model, generated from the cards.

    Columns: model, task, params, the held-out metric of its family under one protocol (SR:
    PSNR-Y and the gain over bicubic in dB; classifier: accuracy in %; aligner: median corner
    error, share of pairs over 10 px, AUC@5, then the mean), the TFLite float32 latency (only
    if some card measured one), and the size of all its files in MB.
    """
    names = [summary["name"] for summary in list_models(root=root)]
    cards = [card(name, root=root) for name in names]
    latencies = [_tflite_fp32_ms(model_card) for model_card in cards]
    with_latency = any(latency is not None for latency in latencies)
    header = ["model", "task", "params", "held-out metric"]
    header += ["TFLite fp32 (ms)"] if with_latency else []
    header += ["size (MB)"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, model_card, latency in zip(names, cards, latencies, strict=True):
        params = model_card.get("params")
        cells = [
            f"`{name}`",
            str(model_card.get("task", "-")),
            f"{params:,}" if isinstance(params, int) else "-",
            _held_out_metric(model_card),
        ]
        cells += [_number(latency, 1)] if with_latency else []
        cells += [_number(model_card.get("total_bytes", 0) / 1e6, 2)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
