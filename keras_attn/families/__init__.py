"""The model families, one registry entry each: what the CLI, the catalogue, the evaluation and
the demo do differently for super-resolution, classifiers and aligners.

A family is a frozen `Family`; `get(name)` returns it (a one-line `ValueError` naming the known
families for any other name), `names()` lists them in registration order and `family_of(model)`
asks every entry's `detect` which one a Keras model belongs to. An entry holds:

- `name`, `title`: the family's key in cards and on the command line, and its title in words;
- `detect(model) -> bool`: whether a built Keras model is of this family (at most one entry
  says yes; an entry may raise a one-line `ValueError` for a model that is almost of its kind);
- `output_names`: the serving output names of its shipped models (as
  `keras_attn.export.package.OUTPUT_NAMES`), and `default_dataset`: the `(dataset, split)` it
  is scored on when a card records none;
- `make_predict(loaded, format, input_name)`: the numpy function of a loaded model (`format`
  `"keras"`, `"saved_model"` or `"tflite"`) that `keras_attn.pretrained.Predictor` wraps;
- `evaluate(predictor, dataset, split, **options) -> dict` and `print_evaluation(result)`: the
  held-out scores of `keras-attn evaluate` and its text table (options: `data_dir`,
  `pairs_per_image`, `progress(runner, target, unit)` wrapping the predictor in a progress bar);
- `writes_next_to_input`, `check_predict_inputs(paths)` and
  `predict_files(predictor, inputs, images, output, **options)`: `keras-attn predict` (options
  `tile`, `overlap`, `top_k`, `refine`), which prints one summary line per result;
- `held_out_metric(metrics) -> str`: the card's metric as the README's zoo table shows it;
- `calibration_data(input_shape, count=, data_dir=, seed=, dataset=) -> list`: representative
  inputs for int8 TFLite conversion, from training data (aligners raise: float only;
  `representative_data(family, input_shape, ...)` wraps them as `export_tflite` takes them);
- `demo_figure(output, name, card)`: the demo's figure(s) of a shipped model (in
  `keras_attn.demo`), and `task_helper`: the numpy-in, numpy-out function of the family
  (`keras_attn.models.upscale`, `keras_attn.models.align`, `keras_attn.inference.classify`).

Everything heavy is imported when called (`Lazy` names a function in another module), so
`import keras_attn.families` loads nothing beyond `keras_attn` itself.

To add a family: write a module `keras_attn/families/NAME.py` like `sr.py` (its functions, or
`Lazy("module:function")` references to the modules that own them, and `register(Family(...))`),
import it below, add its serving output names to
`keras_attn.export.package.OUTPUT_NAMES`, its title to `keras_attn_cli.FAMILY_TITLES` and its
recipe to `keras_attn.training.recipes.TRAINERS`; `tests/families/test_families.py` checks the
entry.
"""

# isort: off
# Registration order is the order of `names()` (and of the CLI's and the zoo's listings).
from keras_attn.families import sr  # noqa: F401
from keras_attn.families import classifier  # noqa: F401
from keras_attn.families import aligner  # noqa: F401

# isort: on
from keras_attn.families.base import (
    Family,
    Lazy,
    default_dataset,
    family_of,
    format_fixed,
    get,
    names,
    register,
    representative_data,
)
from keras_attn.families.classifier import classifier_input

__all__ = [
    "Family",
    "Lazy",
    "classifier_input",
    "default_dataset",
    "family_of",
    "format_fixed",
    "get",
    "names",
    "register",
    "representative_data",
]
