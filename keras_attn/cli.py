"""The commands of `keras-attn`; each is a thin call into the library.

The parser and the error handling live in the top-level module `keras_attn_cli` (light: no
TensorFlow until a command runs), which imports this module for the command that runs; `python
-m keras_attn` is the same entry point. Each `_command(args)` returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def format_metric(name: str, value) -> str:
    """A metric with the decimals of its kind: dB and px to 2, fractions to 4, counts whole."""
    if not isinstance(value, (int, float)):
        return "-"
    if name.endswith(("_db", "_px", "_ms", "_percent")):
        return f"{value:.2f}"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) <= 1:
        return f"{value:.4f}"
    return f"{value:.3g}"


def _load(args: argparse.Namespace):
    from keras_attn import pretrained

    return pretrained.load_predictor(args.model, args.format, variant=args.variant)


# --------------------------------------------------------------------------- list


def _list(args: argparse.Namespace) -> int:
    from keras_attn import models, pretrained
    from keras_attn.models.registry import get_spec

    architectures = [
        {"name": n, "family": get_spec(n).family, "description": get_spec(n).description}
        for n in models.list_models()
    ]
    shipped = pretrained.list_models()
    if args.json:
        print(json.dumps({"architectures": architectures, "shipped": shipped}, indent=1))
        return 0
    print(f"Shipped models ({pretrained.saved_models_root()}; `keras-attn info NAME` for a card):")
    for entry in shipped:
        metric = entry["metric"]
        value = format_metric(metric["name"], metric["value"])
        print(
            f"  {entry['name']:<22} {entry['family']:<11} {entry['params']:>10,} params  "
            f"{metric['name']} {value}  ({entry['task']})"
        )
    if not shipped:
        print(f"  none (looked in {pretrained.where_models_are_looked_for()})")
    print("Architectures (keras_attn.models.build_model, untrained):")
    for entry in architectures:
        print(f"  {entry['name']:<22} {entry['family']:<11} {entry['description']}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from keras_attn import pretrained

    card = pretrained.card(args.name)
    if args.json:
        print(json.dumps(card, indent=1))
        return 0
    metrics = card.get("metrics", {})
    scalars = {
        k: v
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not k.startswith("ms_per_")
    }
    training = card.get("training", {})
    data = training.get("data", {})
    lines = [
        f"{args.name}: {card.get('description', card.get('task', ''))}",
        f"  family        {card.get('family')} ({card.get('task')})",
        f"  parameters    {card.get('params', 0):,}",
        "  inputs        "
        + "; ".join(f"{i['name']} {i['shape']} {i.get('layout', '')}" for i in card["inputs"]),
        "  outputs       " + "; ".join(o["name"] for o in card.get("outputs", [])),
        "  held-out      " + ", ".join(f"{k} {format_metric(k, v)}" for k, v in scalars.items()),
        f"  measured by   {metrics.get('command', '-')}",
        f"  trained on    {data.get('dataset', '-')} {data.get('split', '')}".rstrip(),
        f"  trained by    {training.get('command', '-')}",
        "  files         " + ", ".join(sorted(card.get("files", {}))[:6]),
        f"  folder        {pretrained.saved_models_root() / args.name}",
    ]
    if card.get("classes"):
        lines.insert(3, f"  classes       {', '.join(map(str, card['classes']))}")
    latency = _latency_line(metrics)
    if latency:
        lines.insert(lines.index(f"  measured by   {metrics.get('command', '-')}"), latency)
    print("\n".join(lines))
    return 0


def _latency_line(metrics: dict) -> str | None:
    """`  latency       ms per <unit>, batch 1: Keras .., TFLite fp32 .., fp16 .., int8 ..`
    from a card's `ms_per_*` numbers (measured when it was shipped), or None if it has none."""
    from keras_attn import pretrained

    keys = sorted(
        k for k, v in metrics.items() if k.startswith("ms_per_") and isinstance(v, (int, float))
    )
    if not keys:
        return None
    key = keys[0]
    parts = [f"Keras {_ms(metrics[key])}"]
    tflite = metrics.get("tflite", {})
    for variant, filename in pretrained.TFLITE_FILES.items():
        value = tflite.get(filename, {}).get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{'TFLite ' if len(parts) == 1 else ''}{variant} {_ms(value)}")
    unit = key.removeprefix("ms_per_").replace("_", " ")
    return f"  latency       ms per {unit}, batch 1: " + ", ".join(parts)


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


# --------------------------------------------------------------------------- train


def _train(args: argparse.Namespace) -> int:
    from keras_attn.training.recipes import TRAINERS, recipe_from_args

    recipe_class, train = TRAINERS[args.family]
    summary = train(recipe_from_args(recipe_class, args), command=args.command_line)
    print(json.dumps(summary, indent=1))
    return 0


# --------------------------------------------------------------------------- evaluate


class _Progress:
    """A predictor that advances a Keras progress bar on every call (attributes forwarded)."""

    def __init__(self, predictor, target: int | None, unit: str):
        import keras

        self._predictor = predictor
        self._bar = keras.utils.Progbar(target, unit_name=unit)
        self._calls = 0

    def __call__(self, *args, **kwargs):
        output = self._predictor(*args, **kwargs)
        self._calls += 1
        self._bar.update(self._calls)
        return output

    def done(self) -> None:
        self._bar.update(self._calls, finalize=True)

    def __getattr__(self, name):
        return getattr(self._predictor, name)


def _evaluate(args: argparse.Namespace) -> int:
    """Scores and prints through the family's registry entry (`keras_attn.families`)."""
    from keras_attn import families

    predictor = _load(args)
    family = families.get(predictor.family)
    show_progress = sys.stdout.isatty() and not args.json
    dataset, split = families.default_dataset(predictor.family, predictor.card)
    dataset, split = args.dataset or dataset, args.split or split
    result = {"model": predictor.source, "family": predictor.family, "dataset": dataset}
    result["split"] = split
    bars = []

    def progress(runner, target: int | None, unit: str) -> _Progress:
        bars.append(_Progress(runner, target, unit))
        return bars[-1]

    scores = family.evaluate(
        predictor,
        dataset,
        split,
        data_dir=args.data_dir,
        pairs_per_image=args.pairs_per_image,
        progress=progress if show_progress else None,
    )
    result.update(scores)
    for bar in bars:
        bar.done()
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        family.print_evaluation(result)
    return 0


# --------------------------------------------------------------------------- export


def _export(args: argparse.Namespace) -> int:

    from keras_attn import export, families, pretrained
    from keras_attn.export.package import check_quantization, tflite_batch_size
    from keras_attn.utils.model_io import load_keras_model

    if args.format == "saved_model" and args.quantization:
        raise ValueError("--quantization applies to --format tflite only")
    path = pathlib.Path(args.model)
    if path.suffix == ".keras":
        model = load_keras_model(path)
    else:
        model = pretrained.load(args.model, "keras")
    family = families.family_of(model)
    check_quantization(family, args.quantization)
    names = list(families.get(family).output_names)
    if args.format == "saved_model":
        print(f"wrote {export.export_saved_model(model, args.output, output_names=names)}")
        return 0
    representative = None
    if args.quantization == "int8":
        representative = families.representative_data(family, tuple(model.inputs[0].shape[1:]))
    report = export.export_tflite(
        model,
        args.output,
        args.quantization,
        representative,
        output_names=names,
        batch_size=tflite_batch_size(family),
    )
    print(f"wrote {report}")
    return 0


# --------------------------------------------------------------------------- predict


def _predict(args: argparse.Namespace) -> int:
    """Reads and checks every input, then runs the family's `predict_files`."""
    from keras_attn import families
    from keras_attn.utils.images import as_float_image, read_image

    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1. Received: {args.top_k}")
    images = {path: read_image(path) for path in args.inputs}  # every input checked first,
    for path, image in images.items():  # pixel values included, before anything is written
        try:
            as_float_image(image, "image")
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    output = pathlib.Path(args.output) if args.output else None
    predictor = _load(args)
    family = families.get(predictor.family)
    if output is None and family.writes_next_to_input:
        output = pathlib.Path(args.inputs[0]).parent  # next to the (first) input
    family.check_predict_inputs(args.inputs)
    if output is not None:
        if output.exists() and not output.is_dir():
            raise ValueError(f"--output {output} exists and is not a folder")
        output.mkdir(parents=True, exist_ok=True)
    family.predict_files(
        predictor,
        args.inputs,
        images,
        output,
        tile=args.tile,
        overlap=args.overlap,
        self_ensemble=args.self_ensemble,
        top_k=args.top_k,
        refine=args.refine,
    )
    return 0


# --------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> int:
    from keras_attn.demo import run_demo

    for path in run_demo(args.output):
        print(f"wrote {path}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from keras_attn.data import photo_collection

    folder = photo_collection.fetch_photo_collection(
        args.output,
        debs=args.debs,
        force=args.force,
        photos=photo_collection.PHOTOS,
        validation=photo_collection.VALIDATION_PHOTOS,
    )
    count = len(photo_collection.PHOTOS)
    print(
        f"{count} photographs (sha256 checked, licences in LICENSES.json, "
        f"{len(photo_collection.VALIDATION_PHOTOS)} held out in validation.txt) in {folder}"
    )
    return 0
