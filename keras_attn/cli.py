"""The commands of `keras-attn`; each is a thin call into the library.

The parser and the error handling live in the top-level module `keras_attn_cli` (light: no
TensorFlow until a command runs); `main` here is the same entry point, for
`python -m keras_attn.cli`. Each `_command(args)` returns the exit status.
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
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
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
    print("\n".join(lines))
    return 0


# --------------------------------------------------------------------------- train


def _train(args: argparse.Namespace) -> int:
    from keras_attn.training.recipes import TRAINERS

    _, run = TRAINERS[args.family]
    summary = run(args, command=args.command_line)
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
    from keras_attn.models.super_resolution import model_scale
    from keras_attn.training import evaluation

    predictor = _load(args)
    show_progress = sys.stdout.isatty() and not args.json
    dataset, split = evaluation.default_dataset(predictor.family, predictor.card)
    dataset, split = args.dataset or dataset, args.split or split
    result = {"model": predictor.source, "family": predictor.family, "dataset": dataset}
    result["split"] = split
    if predictor.family == "sr":
        scale = model_scale(predictor)
        pairs = evaluation.held_out_pairs(scale, dataset, split, data_dir=args.data_dir)
        runner = _Progress(predictor, len(pairs), "image") if show_progress else predictor
        model_scores = evaluation.evaluate_super_resolution(runner, scale, pairs)
        bicubic = evaluation.evaluate_super_resolution(None, scale, pairs)
        result.update(
            scale=scale,
            **model_scores.as_dict(),
            bicubic_psnr_y_db=bicubic.psnr_y,
            bicubic_ssim_y=bicubic.ssim_y,
        )
        result["per_image"] = {
            name: {**scores, "bicubic_psnr_y_db": bicubic.per_image[name]["psnr_y_db"]}
            for name, scores in model_scores.per_image.items()
        }
    elif predictor.family == "aligner":
        runner = _Progress(predictor, None, "batch") if show_progress else predictor
        result.update(_evaluate_aligner(runner, dataset, split, args))
    else:
        test_data = evaluation.classifier_test_data(
            predictor.input_shape, dataset, split, data_dir=args.data_dir
        )
        runner = _Progress(predictor, None, "batch") if show_progress else predictor
        result.update(evaluation.evaluate_classifier(runner, test_data))
    if show_progress:
        runner.done()
    if args.json:
        print(json.dumps(result, indent=1))
    elif predictor.family == "aligner":
        _print_alignment(result)
    elif predictor.family == "sr":
        print(f"{result['model']}: x{result['scale']} on {dataset} {split} (PSNR-Y dB / SSIM-Y)")
        print(f"  {'image':<24} {'model':>16} {'bicubic PSNR':>13}")
        for name, scores in result["per_image"].items():
            print(
                f"  {name:<24} {scores['psnr_y_db']:>7.2f} / {scores['ssim_y']:.4f} "
                f"{scores['bicubic_psnr_y_db']:>13.2f}"
            )
        print(
            f"  {'mean':<24} {result['psnr_y_db']:>7.2f} / {result['ssim_y']:.4f} "
            f"{result['bicubic_psnr_y_db']:>13.2f}"
        )
    else:
        print(
            f"{result['model']}: accuracy {result['accuracy']:.4f} "
            f"({result['examples'] - result['errors']}/{result['examples']}) on {dataset} {split}"
        )
    return 0


def _evaluate_aligner(predictor, dataset: str, split: str, args: argparse.Namespace) -> dict:
    """Corner errors of the aligner and of the identity on held-out DeTone pairs."""
    from keras_attn.training import evaluation

    height, width, channels = predictor.input_shape
    if height != width:
        raise ValueError(f"The held-out pairs are square; the aligner takes {height}x{width}")
    if args.pairs_per_image < 1:
        raise ValueError(f"--pairs-per-image must be at least 1. Received: {args.pairs_per_image}")
    pairs = evaluation.held_out_alignment_pairs(
        height,
        channels,
        dataset,
        split,
        pairs_per_image=args.pairs_per_image,
        data_dir=args.data_dir,
    )
    scores = evaluation.evaluate_aligner(predictor, pairs, batch_size=8)
    identity = evaluation.evaluate_aligner(None, pairs)
    return {
        "max_shift_px": evaluation.ALIGNMENT_MAX_SHIFT,
        "seed": evaluation.ALIGNMENT_SEED,
        "pairs_per_image": args.pairs_per_image,
        **scores.as_dict(),
        "identity": identity.summary,
    }


# One protocol for aligners everywhere: median, share over 10 px and AUC@5 lead, the mean after.
ALIGNMENT_ROWS = {
    "median_corner_error_px": "median corner error (px)",
    "over_10px_percent": "pairs over 10 px (%)",
    "auc_5px": "AUC @ 5 px",
    "auc_3px": "AUC @ 3 px",
    "auc_10px": "AUC @ 10 px",
    "mean_corner_error_px": "mean corner error (px)",
}


def _print_alignment(result: dict) -> None:
    print(
        f"{result['model']}: {result['pairs']} DeTone pairs from {result['dataset']} "
        f"{result['split']} (corners shifted up to {result['max_shift_px']:g} px, seed "
        f"{result['seed']})"
    )
    print(f"  {'':<26} {'model':>9} {'identity':>9}")
    for key, label in ALIGNMENT_ROWS.items():
        print(f"  {label:<26} {result[key]:>9.3f} {result['identity'][key]:>9.3f}")
    if result["non_finite"]:
        print(f"  {result['non_finite']} non-finite homographies counted as the identity")


# --------------------------------------------------------------------------- export


def _export(args: argparse.Namespace) -> int:
    import keras

    from keras_attn import export, pretrained
    from keras_attn.export.package import check_quantization
    from keras_attn.training import evaluation

    if args.format == "saved_model" and args.quantization:
        raise ValueError("--quantization applies to --format tflite only")
    path = pathlib.Path(args.model)
    if path.suffix == ".keras":
        if not path.is_file():
            raise ValueError(f"{path} does not exist")
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as error:  # noqa: BLE001 - zip/h5/config errors of a bad file
            raise ValueError(f"{path} is not a loadable .keras model: {error}") from None
    else:
        model = pretrained.load(args.model, "keras")
    family = evaluation.family_of(model)
    check_quantization(family, args.quantization)
    names = pretrained.OUTPUT_NAMES[family]
    if args.format == "saved_model":
        print(f"wrote {export.export_saved_model(model, args.output, output_names=names)}")
        return 0
    representative = None
    if args.quantization == "int8":
        representative = evaluation.calibration_data(family, tuple(model.inputs[0].shape[1:]))
    report = export.export_tflite(
        model, args.output, args.quantization, representative, output_names=names
    )
    print(f"wrote {report}")
    return 0


# --------------------------------------------------------------------------- predict


def _classifier_input(image, input_shape: tuple):
    """A file's pixels preprocessed as in training: channels converted, bilinear resize."""
    import numpy as np

    from keras_attn.data.classification import ClassificationConfig, preprocess
    from keras_attn.models._images import as_float_image

    pixels = np.round(as_float_image(image, "image") * 255.0).astype("uint8")
    config = ClassificationConfig(image_size=input_shape[0], channels=input_shape[-1])
    return (preprocess(pixels, config).numpy().astype("float32") / 255.0)[None]


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from keras_attn.data.image_files import read_image, write_png
    from keras_attn.models.super_resolution import model_scale, upscale

    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1. Received: {args.top_k}")
    from keras_attn.models._images import as_float_image

    images = {path: read_image(path) for path in args.inputs}  # every input checked first,
    for path, image in images.items():  # pixel values included, before anything is written
        try:
            as_float_image(image, "image")
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    output = pathlib.Path(args.output) if args.output else None
    predictor = _load(args)
    if output is None and predictor.family in ("sr", "aligner"):
        output = pathlib.Path(args.inputs[0]).parent  # next to the (first) input
    if predictor.family == "aligner":
        _check_aligner_inputs(args, images, output, predictor)
    if output is not None:
        if output.exists() and not output.is_dir():
            raise ValueError(f"--output {output} exists and is not a folder")
        output.mkdir(parents=True, exist_ok=True)
    if predictor.family == "aligner":
        return _predict_aligner(args, images, output, predictor)

    if predictor.family == "sr":
        scale = model_scale(predictor)
        for path, image in images.items():
            upscaled = upscale(
                predictor, image, tile=args.tile, overlap=args.overlap, progress=bool(args.tile)
            )
            if upscaled.dtype != np.uint8:  # 16-bit and float files come back as 8-bit PNGs
                upscaled = np.round(np.clip(upscaled / _top(upscaled), 0, 1) * 255).astype("uint8")
            target = output / f"{pathlib.Path(path).stem}_x{scale}.png"
            write_png(target, upscaled)
            (height, width), (new_height, new_width) = image.shape[:2], upscaled.shape[:2]
            print(
                f"{path}: {width}x{height} -> {new_width}x{new_height} (x{scale}, "
                f"{predictor.source}); wrote {target}"
            )
        return 0

    classes = (predictor.card or {}).get("classes")
    predictions = {}
    for path, image in images.items():
        probabilities = predictor(_classifier_input(image, predictor.input_shape))[0]
        order = np.argsort(probabilities)[::-1][: args.top_k]
        top = [
            {"class": classes[i] if classes else int(i), "probability": float(probabilities[i])}
            for i in order
        ]
        predictions[path] = top
        shown = ", ".join(f"{entry['class']} ({entry['probability']:.3f})" for entry in top)
        print(f"{path}: {shown}")
    if output is not None:
        target = output / "predictions.json"
        target.write_text(json.dumps(predictions, indent=1))
        print(f"wrote {target}")
    return 0


def _check_aligner_inputs(args: argparse.Namespace, images: dict, output, predictor) -> None:
    if len(args.inputs) != 2:
        raise ValueError(
            f"an aligner takes exactly two images, MOVING then FIXED. Received "
            f"{len(args.inputs)}: {' '.join(args.inputs)}"
        )


def _predict_aligner(args: argparse.Namespace, images: dict, output, predictor) -> int:
    """Aligns MOVING onto FIXED: `<moving-stem>_warped.png` and `<moving-stem>_homography.json`."""
    import numpy as np

    from keras_attn._io import atomic_path
    from keras_attn.data.image_files import write_png
    from keras_attn.models.aligner import HOMOGRAPHY_CONVENTION, align

    _check_aligner_inputs(args, images, output, predictor)
    moving_path, fixed_path = args.inputs
    result = align(predictor, images[moving_path], images[fixed_path], refine=args.refine)
    warped = result["warped"]
    if warped.dtype != np.uint8:  # 16-bit and float files come back as 8-bit PNGs
        warped = np.round(np.clip(warped / _top(warped), 0, 1) * 255).astype("uint8")
    stem = pathlib.Path(moving_path).stem
    write_png(output / f"{stem}_warped.png", warped)
    record = {
        "moving": moving_path,
        "fixed": fixed_path,
        "model": predictor.source,
        "moving_size": list(images[moving_path].shape[:2]),
        "fixed_size": list(images[fixed_path].shape[:2]),
        "working_size": list(predictor.input_shape[:2]),
        "homography": result["homography"].astype("float64").tolist(),
        "convention": HOMOGRAPHY_CONVENTION,
    }
    target = output / f"{stem}_homography.json"
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    height, width = images[moving_path].shape[:2]
    corners = np.array(
        [[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]]
    )
    mapped = corners @ result["homography"].astype("float64").T
    shift = np.linalg.norm(mapped[:, :2] / mapped[:, 2:] - corners[:, :2], axis=1).mean()
    matrix = np.array2string(result["homography"], precision=3, suppress_small=True, separator=",")
    print(
        f"{moving_path} -> {fixed_path}: homography {' '.join(matrix.split())} (corners move "
        f"{shift:.1f} px on average); wrote {output / f'{stem}_warped.png'} and {target}"
    )
    return 0


def _top(image) -> float:
    import numpy as np

    return 65535.0 if image.dtype == np.uint16 else 1.0


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


# `python -m keras_attn.cli` and `keras_attn.cli.main` run the same command line as
# `keras-attn` (its parser lives in the light top-level module keras_attn_cli).
from keras_attn_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
