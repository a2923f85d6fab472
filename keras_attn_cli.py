"""The `keras-attn` console script, light: it builds the command line without importing
TensorFlow (so `keras-attn --help` answers at once), then imports `keras_attn.cli` for the
command that runs, with TensorFlow's start-up log lines kept off the terminal.

    keras-attn list                                   shipped models, then architectures
    keras-attn info NAME                              a shipped model's card
    keras-attn train FAMILY --output DIR              sr, classifier or aligner (resumes)
    keras-attn evaluate NAME_OR_PATH                  held-out PSNR/SSIM-Y, accuracy or corner error
    keras-attn export PATH --format tflite --output F SavedModel or TFLite (+ quantisation)
    keras-attn predict NAME_OR_PATH IMAGE...          next to the input (aligner: MOVING FIXED)
    keras-attn demo --output DIR                      shipped models on held-out photos
    keras-attn data fetch-photos [--output DIR]       the Debian photo collection (apt-get)

Bad input ends with one line on stderr, `keras-attn <command>: error: ...`, and exit status 2.
Set KERAS_ATTN_DEBUG=1 to get the traceback instead (and TensorFlow's log lines).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile

FORMATS = ("keras", "saved_model", "tflite")
VARIANTS = ("fp32", "fp16", "int8")
FAMILY_TITLES = {
    "sr": "super-resolution",
    "classifier": "image classifier",
    "aligner": "homography/flow aligner",
}


class _UsageError(ValueError):
    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), reported by `main`."""

    def error(self, message):
        raise _UsageError(self.prog, message)


def _message(error: BaseException) -> str:
    """`keras_attn.utils.errors.one_line(error)`; when keras_attn itself cannot be imported (no
    TensorFlow), the import error's own message."""
    try:
        from keras_attn.utils.errors import one_line
    except ImportError:
        return " ".join(str(error).split()) or type(error).__name__
    return one_line(error)


def _add_model_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NAME_OR_PATH", help="a shipped model name or a .keras")
    parser.add_argument(
        "--format", default="keras", choices=FORMATS, help="format of a shipped model to run"
    )
    parser.add_argument("--variant", choices=VARIANTS, help="TFLite variant (None: fp32)")


# --------------------------------------------------------------------------- parser


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; `train`'s family flags (from the recipes, which need TensorFlow) are only
    built when `argv` asks for `train`."""

    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = _Parser(prog="keras-attn", description="Attention layers and models for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, run, help):
        sub = commands.add_parser(name, help=help, description=help, formatter_class=defaults)
        sub.set_defaults(run=run)
        return sub

    listing = command("list", "_list", "list registered architectures and shipped models")
    listing.add_argument("--json", action="store_true", help="print JSON instead of text")

    info = command("info", "_info", "print a shipped model's card (data, command, metrics)")
    info.add_argument("name", metavar="NAME", help="a shipped model name (keras-attn list)")
    info.add_argument("--json", action="store_true", help="print the whole card as JSON")

    train = command("train", "_train", "train a model family (resumes from --output)")
    families = train.add_subparsers(dest="family", required=True, metavar="FAMILY")
    wants_train = bool(argv) and argv[0] == "train"
    if wants_train:
        with _quiet_native_stderr():
            from keras_attn.flags import add_recipe_flags
            from keras_attn.training.recipes import TRAINERS
    for family, title in FAMILY_TITLES.items():
        sub = families.add_parser(
            family,
            help=f"train a {title} model",
            description=f"Train a {title} model; resumes when --output holds a run.",
            formatter_class=defaults,
        )
        if wants_train:
            add_recipe_flags(sub, TRAINERS[family][0])

    evaluate = command(
        "evaluate",
        "_evaluate",
        "PSNR/SSIM-Y (SR), accuracy (classifier) or corner error on DeTone pairs (aligner) on "
        "held-out data",
    )
    _add_model_source(evaluate)
    evaluate.add_argument(
        "--dataset",
        help="tfds dataset (None: a shipped model's card's; else bundled_photos for SR and "
        "aligners, bundled_digits for classifiers)",
    )
    evaluate.add_argument(
        "--split", help="held-out split (None: validation for SR and aligners, else test)"
    )
    evaluate.add_argument(
        "--pairs-per-image",
        type=int,
        default=20,
        help="aligner: DeTone pairs per held-out photo (corners shifted up to 32 px, fixed seed)",
    )
    evaluate.add_argument("--data-dir", help="tfds data directory (None: tfds's own)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")

    export = command("export", "_export", "export a model as a SavedModel or TFLite file")
    export.add_argument("model", metavar="PATH", help="a .keras file or a shipped model name")
    export.add_argument(
        "--format", required=True, choices=["saved_model", "tflite"], help="export format"
    )
    export.add_argument(
        "--quantization",
        choices=["float16", "dynamic", "int8"],
        help="TFLite quantisation (None: float32); int8 calibrates on the family's training "
        "data; aligners take float16 only (quantised coordinates break the warp)",
    )
    export.add_argument("--output", required=True, help="SavedModel folder or .tflite file")

    predict = command(
        "predict",
        "_predict",
        "upscale images (SR), print the top classes (classifier) or align MOVING onto FIXED "
        "(aligner: writes <moving>_warped.png and <moving>_homography.json)",
    )
    _add_model_source(predict)
    predict.add_argument(
        "inputs",
        metavar="IMAGE",
        nargs="+",
        help="image files (PNG, JPEG...); an aligner takes exactly two, MOVING then FIXED, of "
        "any size (the network works at its input size; the homography is mapped back)",
    )
    predict.add_argument(
        "--output",
        help="folder for the upscaled PNGs (SR), the warped PNG and homography JSON (aligner) "
        "or predictions.json (classifier); None: next to the (first) input image, and no "
        "predictions.json",
    )
    predict.add_argument("--tile", type=int, help="SR: process in tiles of this input size")
    predict.add_argument("--overlap", type=int, default=16, help="SR: overlap between tiles")
    predict.add_argument(
        "--self-ensemble",
        action="store_true",
        help="SR: average over the 8 flips and turns of the input (slightly better, 8x the time)",
    )
    predict.add_argument("--top-k", type=int, default=3, help="classifier: classes to print")
    predict.add_argument(
        "--refine",
        action="store_true",
        help="aligner: a second pass on the warped image, kept where it raises the overlap's "
        "correlation (fewer failures at large shifts, 6x the time)",
    )

    demo = command("demo", "_demo", "run the shipped models on held-out photos and write figures")
    demo.add_argument("--output", default="demo_output", help="folder for the PNGs and index.html")

    data = command("data", "_data", "fetch data sets that come from Debian's archive")
    data.add_argument(
        "what",
        choices=["fetch-photos"],
        help="fetch-photos: 22 photographs from plasma-workspace-wallpapers and "
        "mate-backgrounds (apt-get download + dpkg-deb, no root), for `--dataset "
        "photo_collection`",
    )
    data.add_argument(
        "--output",
        help="folder (None: $KERAS_ATTN_PHOTO_COLLECTION or "
        "~/.keras/datasets/keras_attn_photo_collection, where training looks)",
    )
    data.add_argument("--debs", help="a folder that already holds the two .deb files")
    data.add_argument("--force", action="store_true", help="fetch again even if complete")
    return parser


@contextlib.contextmanager
def _quiet_native_stderr():
    """Keeps what TensorFlow's C++ code writes to stderr while it loads (oneDNN and CPU-feature
    notices, which no environment variable silences in TF 2.21) off the terminal; shown again
    if the import fails."""
    if os.environ.get("KERAS_ATTN_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
        args, extras = parser.parse_known_args(argv)
        if extras:
            words = ["keras-attn", getattr(args, "command", None), getattr(args, "family", None)]
            prog = " ".join(word for word in words if word)
            raise _UsageError(prog, f"unrecognized arguments: {' '.join(extras)}")
    except _UsageError as error:
        print(f"{error.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    args.command_line = shlex.join(["keras-attn", *argv])
    try:
        with _quiet_native_stderr():
            import keras_attn.cli as commands
        return getattr(commands, args.run)(args)
    except KeyboardInterrupt:
        print(f"keras-attn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("KERAS_ATTN_DEBUG"):
            raise
        print(f"keras-attn {args.command}: error: {_message(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
