"""
Title: Ship a trained model into saved_models/<name>/ with a measured model card
Description: loads a trained `.keras`, MEASURES every number of its card on held-out data
(Keras and each TFLite variant), and writes the folder atomically with
`keras_attn.pretrained.package_model`: model.keras, saved_model/, model.tflite, model_fp16.tflite,
model_int8.tflite and card.json (sha256 of every file). Every metric in the card comes from the
command recorded in `metrics.command`; the training command and its own log are kept apart under
`training`.

- `--family sr`: PSNR-Y / SSIM-Y (Y channel, `scale`-pixel border crop) over the FULL held-out
  bundled photos (`bundled_photos` validation split; HR cropped to a multiple of the scale, LR
  its antialiased bicubic downscale), for the model, bicubic upsampling and every TFLite file
  (its PSNR loss vs Keras); params; MACs at 256x256; ms per 256x256 input at batch 1 (median)
  for Keras and each TFLite file.
- `--family classifier`: accuracy on the test split of `--dataset` (default `bundled_digits`)
  through Keras and every TFLite file; for `fashion_mnist` also on the 256 test items the package
  carries (the card check that needs no download); params; MACs at the input size; ms per
  image at batch 1 (median) for Keras and each TFLite file.
- `--family aligner`: DeTone's protocol on the held-out photos (`bundled_photos` validation
  split, 240-pixel short side, corners shifted up to 32 px, `--pairs-per-image` pairs per photo,
  fixed seed): mean / median corner error, % over 10 px, AUC@3/5/10 for Keras, the identity and
  every TFLite file (float32 and float16 only: quantised coordinates break the warp, so no
  model_int8.tflite); params; ms per pair at batch 1 (median) for Keras and each TFLite file;
  the homography and flow conventions in the card.

A family is one `plan_<family>` function returning a `Plan`; add one to `FAMILIES` for a new one.

Run:
    python scripts/ship_model.py --model runs/sr_x2/model.keras --name sr_x2 --family sr \
        --training-command "python examples/train_super_resolution.py --scale 2 ..." \
        --training-log runs/sr_x2/metrics.json --output-root saved_models
    python scripts/ship_model.py --model runs/aligner_homography/model.keras \
        --name aligner_homography --family aligner \
        --training-command "python examples/train_aligner.py ..." \
        --training-log runs/aligner_homography/metrics.json --output-root saved_models
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import pathlib
import re
import shlex
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_attn  # noqa: E402,F401  (registers the layers before loading .keras files)
from keras_attn import data, families, pretrained  # noqa: E402
from keras_attn.data import classification, fashion_mnist  # noqa: E402
from keras_attn.export import TFLiteModel, available_cores  # noqa: E402
from keras_attn.models.aligner import FLOW_CONVENTION, HOMOGRAPHY_CONVENTION  # noqa: E402
from keras_attn.models.aligner_serving import ANY_SIZE_ENDPOINT, aligner_endpoints  # noqa: E402
from keras_attn.models.aligner_tasks import has_dense_flow  # noqa: E402
from keras_attn.models.super_resolution import model_scale  # noqa: E402
from keras_attn.training import evaluation  # noqa: E402
from keras_attn.training.recipe_base import json_ready  # noqa: E402
from keras_attn.utils.model_io import load_keras_model  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from complexity import count_macs  # noqa: E402  (benchmarks/complexity.py)

README_START = "<!-- shipped-models:start -->"
README_END = "<!-- shipped-models:end -->"
ZOO_START = "<!-- zoo:start -->"  # the zoo table of the repository's README.md
ZOO_END = "<!-- zoo:end -->"


@dataclasses.dataclass
class Plan:
    """What a family contributes to `package_model`: its card fields and Keras metrics, the
    quantisations, the parity inputs, and `evaluate(folder)` measuring the exported files."""

    card: dict
    quantizations: tuple[str, ...]
    sample_inputs: dict[str, np.ndarray]
    evaluate: Callable[[pathlib.Path], dict]
    representative_data: Callable | None = None
    extra_endpoints: dict | None = None


def _tflite_files(folder: pathlib.Path) -> list[str]:
    return [name for name in pretrained.TFLITE_FILES.values() if (folder / name).exists()]


# calls timed per latency number of a card (after one warm-up call)
TIMED_CALLS = 20
# the side of the input the SR cards are timed on, as docs/benchmarks.md's latency tables
SR_LATENCY_SIZE = 256


def _ms_per_call(run: Callable, batch: np.ndarray, calls: int = TIMED_CALLS) -> float:
    """Median wall time (ms) of `run(batch)` over `calls` calls, after one warm-up call (which
    also lets LiteRT resize its tensors to the batch)."""
    run(batch)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        run(batch)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds) * 1000)


def _timing_protocol(key: str, what: str) -> str:
    return (
        f"{key}: median of {TIMED_CALLS} calls on {what} at batch 1 after one warm-up call: "
        "Keras model.predict_on_batch, TFLite the LiteRT serving_default runner with its "
        f"default threads (every core: {available_cores()} here) and XNNPACK"
    )


# --------------------------------------------------------------------------- super-resolution


def plan_sr(model: keras.Model, args: argparse.Namespace) -> Plan:
    scale = model_scale(model)
    pairs = evaluation.held_out_pairs(scale)
    timing_key = f"ms_per_{SR_LATENCY_SIZE}x{SR_LATENCY_SIZE}_image"
    timing_input = (
        np.random.default_rng(0)
        .uniform(size=(1, SR_LATENCY_SIZE, SR_LATENCY_SIZE, 3))
        .astype("float32")
    )  # the time does not depend on the content
    keras_scores = evaluation.evaluate_super_resolution(
        lambda batch: model(batch, training=False), scale, pairs
    )
    bicubic = evaluation.evaluate_super_resolution(None, scale, pairs)
    per_image = {
        name: {
            **scores,
            "bicubic_psnr_y_db": bicubic.per_image[name]["psnr_y_db"],
            "bicubic_ssim_y": bicubic.per_image[name]["ssim_y"],
        }
        for name, scores in keras_scores.per_image.items()
    }
    also = {}
    for dataset in getattr(args, "also_evaluate", None) or []:
        # more held-out photos, on the same protocol (e.g. the photo collection's validation)
        extra = evaluation.held_out_pairs(scale, dataset, "validation")
        ours = evaluation.evaluate_super_resolution(
            lambda batch: model(batch, training=False), scale, extra
        )
        baseline = evaluation.evaluate_super_resolution(None, scale, extra)
        also[dataset] = {
            "split": "validation",
            "images": [name for name, _, _ in extra],
            "psnr_y_db": ours.psnr_y,
            "ssim_y": ours.ssim_y,
            "bicubic_psnr_y_db": baseline.psnr_y,
            "gain_over_bicubic_db": ours.psnr_y - baseline.psnr_y,
            "command": f"keras-attn evaluate {args.name} --dataset {dataset} --split validation",
        }
        print(f"{dataset}: PSNR-Y {ours.psnr_y:.3f} dB (bicubic {baseline.psnr_y:.3f} dB)")
    metrics = {
        "psnr_y_db": keras_scores.psnr_y,
        "ssim_y": keras_scores.ssim_y,
        "bicubic_psnr_y_db": bicubic.psnr_y,
        "bicubic_ssim_y": bicubic.ssim_y,
        "gain_over_bicubic_db": keras_scores.psnr_y - bicubic.psnr_y,
        "per_image": per_image,
        "macs_at_256x256": count_macs(model, 256),
        timing_key: _ms_per_call(model.predict_on_batch, timing_input),
        **({"also_held_out": also} if also else {}),
        "evaluation": {
            "dataset": "bundled_photos",
            "split": "validation",
            "images": [name for name, _, _ in pairs],
            "protocol": (
                f"full images; HR cropped to a multiple of {scale}; LR = tf.image.resize("
                "bicubic, antialias=True) of HR, clipped; PSNR/SSIM on the BT.601 Y channel "
                f"(MATLAB rgb2ycbcr) after a {scale}-pixel border crop, SSIM with an 11x11 "
                "Gaussian window (sigma 1.5); bicubic = tf.image.resize(LR, bicubic), clipped; "
                "mean over the images"
            ),
            "timing": _timing_protocol(
                timing_key,
                f"one {SR_LATENCY_SIZE}x{SR_LATENCY_SIZE} RGB input "
                f"({scale * SR_LATENCY_SIZE}x{scale * SR_LATENCY_SIZE} out)",
            ),
        },
    }

    def evaluate(folder: pathlib.Path) -> dict:
        """PSNR/SSIM-Y of the SavedModel and of every TFLite file on the same photos."""
        import tensorflow as tf

        signature = tf.saved_model.load(str(folder / "saved_model")).signatures["serving_default"]
        saved_diff = max(
            float(np.abs(signature(image=tf.constant(lr[None]))["upscaled"].numpy()[0] - out).max())
            for (_, lr, _), out in zip(pairs, keras_scores.outputs.values(), strict=True)
        )
        results = {"saved_model": {"max_abs_diff_vs_keras": saved_diff}, "tflite": {}}
        for name in _tflite_files(folder):
            runner = TFLiteModel(folder / name)
            scores = evaluation.evaluate_super_resolution(
                lambda batch, runner=runner: runner(image=batch), scale, pairs
            )
            results["tflite"][name] = {
                "psnr_y_db": scores.psnr_y,
                "ssim_y": scores.ssim_y,
                "psnr_loss_vs_keras_db": keras_scores.psnr_y - scores.psnr_y,
                "max_abs_diff_vs_keras": max(
                    float(np.abs(scores.outputs[key] - keras_scores.outputs[key]).max())
                    for key in scores.outputs
                ),
                timing_key: _ms_per_call(
                    lambda batch, runner=runner: runner(image=batch), timing_input
                ),
            }
        return results

    first_name, first_lr, _ = pairs[0]
    card = {
        "family": "sr",
        "task": f"super-resolution x{scale}",
        "scale": scale,
        "description": (
            f"RCAN-style x{scale} super-resolution ({model.name}): RGB in, RGB out, any H and W."
        ),
        "inputs": {"image": {"range": [0.0, 1.0], "layout": "NHWC RGB, any height and width"}},
        "outputs": {
            "upscaled": {"range": [0.0, 1.0], "layout": f"NHWC RGB, {scale}x the input size"}
        },
        "key_metric": "psnr_y_db",
        "metrics": metrics,
    }
    quantizations = ("float16", "int8" if args.int8 == "full" else "dynamic")
    representative = None
    if args.int8 == "full":
        representative = families.representative_data("sr", (None, None, 3))
    print(f"Keras PSNR-Y {keras_scores.psnr_y:.3f} dB (bicubic {bicubic.psnr_y:.3f} dB)")
    return Plan(card, quantizations, {"image": first_lr[None]}, evaluate, representative)


# --------------------------------------------------------------------------- classifier


# What a classifier card says about the data it was trained and tested on, per dataset.
CLASSIFIER_DATASETS = {
    "bundled_digits": {
        "description": "scikit-learn's handwritten digits",
        "items": "8x8 scan",
        "preprocessing": "white digit on black; bilinear (antialiased) resize to the input "
        "size, as keras_attn.data.classification.preprocess",
    },
    "fashion_mnist": {
        "description": "Zalando's Fashion-MNIST (28x28 grayscale photos of clothing)",
        "items": "28x28 image",
        "preprocessing": "white garment on black, as in the dataset; values / 255; no resize "
        "at 28x28 (else bilinear, as keras_attn.data.classification.preprocess)",
    },
}


def plan_classifier(model: keras.Model, args: argparse.Namespace) -> Plan:
    input_shape = tuple(model.inputs[0].shape[1:])
    dataset = args.dataset or "bundled_digits"
    about = CLASSIFIER_DATASETS.get(dataset, {"description": dataset, "items": "image"})
    test_data = evaluation.classifier_test_data(input_shape, dataset)
    keras_result = evaluation.evaluate_classifier(
        lambda batch: model(batch, training=False), test_data
    )
    images = np.concatenate([batch.numpy() for batch, _ in test_data])
    keras_probabilities = np.asarray(model.predict(images, verbose=0))
    num_classes = keras_probabilities.shape[-1]
    classes = classification.class_names(dataset) or [str(i) for i in range(num_classes)]

    def evaluate(folder: pathlib.Path) -> dict:
        """Accuracy of every TFLite file on the same test split, and its agreement with Keras."""
        results = {"tflite": {}}
        for name in _tflite_files(folder):
            runner = TFLiteModel(folder / name)
            accuracy = evaluation.evaluate_classifier(
                lambda batch, runner=runner: runner(image=batch), test_data
            )
            probabilities = runner(image=images)["probabilities"]
            agreement = np.mean(probabilities.argmax(-1) == keras_probabilities.argmax(-1))
            results["tflite"][name] = {
                **accuracy,
                "top1_agreement_with_keras": float(agreement),
                "max_abs_diff_vs_keras": float(np.abs(probabilities - keras_probabilities).max()),
                "ms_per_image": _ms_per_call(
                    lambda batch, runner=runner: runner(image=batch), images[:1]
                ),
            }
        return results

    metrics = {
        **keras_result,
        "macs_at_input_size": count_macs(model),
        "ms_per_image": _ms_per_call(model.predict_on_batch, images[:1]),
        "evaluation": {
            "dataset": dataset,
            "split": "test",
            "protocol": (
                "every test example once, unaugmented, preprocessed as in training "
                "(keras_attn.data.classification_dataset: bilinear antialiased resize of the "
                f"{about['items']} to {input_shape[0]}x{input_shape[1]}); top-1 accuracy"
            ),
            "timing": _timing_protocol(
                "ms_per_image", f"the first test image ({input_shape[0]}x{input_shape[1]})"
            ),
        },
    }
    if dataset == "fashion_mnist":
        # The bundled sample of the test split: the card check that needs no dataset download.
        sample_images, sample_labels = fashion_mnist.load_test_sample()
        predicted = np.asarray(model.predict(sample_images / 255.0, verbose=0)).argmax(-1)
        metrics["bundled_test_sample"] = {
            "examples": len(sample_labels),
            "errors": int((predicted != sample_labels).sum()),
            "accuracy": float((predicted == sample_labels).mean()),
            "source": "keras_attn.data.fashion_mnist.load_test_sample() (the first "
            f"{len(sample_labels)} items of the official test file)",
        }
    card = {
        "family": "classifier",
        "task": f"image classification ({num_classes} classes)",
        "description": f"SE attention ResNet ({model.name}) for {about['description']}.",
        "classes": list(classes),
        "inputs": {
            "image": {
                "range": [0.0, 1.0],
                "layout": f"NHWC, {input_shape[0]}x{input_shape[1]} grayscale",
                "preprocessing": about.get("preprocessing", "values / 255"),
            }
        },
        "outputs": {"probabilities": {"range": [0.0, 1.0], "layout": "(B, classes) softmax"}},
        "key_metric": "accuracy",
        "metrics": metrics,
    }
    quantizations = ("float16", "int8" if args.int8 != "dynamic" else "dynamic")
    representative = families.representative_data(
        "classifier", input_shape, count=64, dataset=dataset
    )
    print(f"Keras accuracy {keras_result['accuracy']:.4f} on {keras_result['examples']} examples")
    return Plan(card, quantizations, {"image": images[:8]}, evaluate, representative)


# --------------------------------------------------------------------------- aligner


# size (px) of the non-planar residual of the held-out pairs a dense-flow aligner is scored on
FLOW_DEFORMATION = 8.0


def _ms_per_pair(run: Callable, pairs: list) -> float:
    """Median wall time (ms) of `run(moving, fixed)` at batch 1 over `pairs`, after a warm-up."""
    run(pairs[0].moving[None], pairs[0].fixed[None])
    seconds = []
    for pair in pairs:
        start = time.perf_counter()
        run(pair.moving[None], pair.fixed[None])
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds) * 1000)


def plan_aligner(model: keras.Model, args: argparse.Namespace) -> Plan:
    height, width, channels = model.inputs[0].shape[1:]
    if height != width:
        raise ValueError(f"The held-out pairs are square; the aligner takes {height}x{width}")
    pairs = evaluation.held_out_alignment_pairs(
        height, channels, pairs_per_image=args.pairs_per_image
    )
    keras_scores = evaluation.evaluate_aligner(model, pairs, batch_size=8)
    identity = evaluation.evaluate_aligner(None, pairs)
    keras_ms = _ms_per_pair(
        lambda moving, fixed: model.predict_on_batch({"moving": moving, "fixed": fixed}), pairs
    )
    dense = has_dense_flow(model)
    if dense:  # the dense flow against the true flow of held-out pairs with depth
        flow_pairs = evaluation.held_out_alignment_pairs(
            height, channels, pairs_per_image=args.pairs_per_image, deformation=FLOW_DEFORMATION
        )
        keras_flow = evaluation.evaluate_flow(model, flow_pairs)
    also = {}
    for dataset in getattr(args, "also_evaluate", None) or []:
        # more held-out photos on the same protocol (e.g. the photo collection's validation tiles)
        extra = evaluation.held_out_alignment_pairs(
            height, channels, dataset, "validation", pairs_per_image=args.pairs_per_image
        )
        scores = evaluation.evaluate_aligner(model, extra, batch_size=8)
        also[dataset] = {
            "split": "validation",
            **scores.as_dict(),
            "identity": evaluation.evaluate_aligner(None, extra).summary,
            "command": f"keras-attn evaluate {args.name} --dataset {dataset} --split validation",
        }
        print(
            f"{dataset}: median corner error {scores.summary['median_corner_error_px']:.3f} px, "
            f"{scores.summary['over_10px_percent']:.1f} % over 10 px on {len(extra)} pairs"
        )

    def evaluate(folder: pathlib.Path) -> dict:
        """Corner errors and ms/pair of every TFLite file on the same pairs; SavedModel parity."""
        import tensorflow as tf

        signature = tf.saved_model.load(str(folder / "saved_model")).signatures["serving_default"]
        served = evaluation.evaluate_aligner(
            lambda moving, fixed: signature(moving=tf.constant(moving), fixed=tf.constant(fixed)),
            pairs,
            batch_size=8,
        )
        results = {
            "saved_model": {
                "max_corner_difference_vs_keras_px": evaluation.corner_disagreement(
                    served.homographies, keras_scores.homographies, height
                )
            },
            "tflite": {},
        }
        for name in _tflite_files(folder):
            runner = TFLiteModel(folder / name)  # as pretrained.load runs it

            def run(moving, fixed, runner=runner):
                return runner(moving=moving, fixed=fixed)

            scores = evaluation.evaluate_aligner(run, pairs, batch_size=8)
            results["tflite"][name] = {
                **scores.as_dict(),
                "mean_corner_error_change_vs_keras_px": (
                    scores.summary["mean_corner_error_px"]
                    - keras_scores.summary["mean_corner_error_px"]
                ),
                "max_corner_difference_vs_keras_px": evaluation.corner_disagreement(
                    scores.homographies, keras_scores.homographies, height
                ),
                "ms_per_pair": _ms_per_pair(run, pairs),
            }
            if dense:
                flow = evaluation.evaluate_flow(run, flow_pairs)
                flow["mean_epe_change_vs_keras_px"] = (
                    flow["mean_epe_px"] - keras_flow["mean_epe_px"]
                )
                results["tflite"][name]["flow"] = flow
        return results

    colour = "grayscale" if channels == 1 else "RGB"
    image = {"range": [0.0, 1.0], "layout": f"NHWC, {height}x{width} {colour}"}
    metrics = {
        **keras_scores.as_dict(),
        "identity": identity.summary,
        "ms_per_pair": keras_ms,
        **({"also_held_out": also} if also else {}),
        "evaluation": {
            "dataset": "bundled_photos",
            "split": "validation",
            "images": data.photo_names("validation"),
            "pairs_per_image": args.pairs_per_image,
            "max_shift_px": evaluation.ALIGNMENT_MAX_SHIFT,
            "seed": evaluation.ALIGNMENT_SEED,
            "protocol": (
                "DeTone et al. 2016: each held-out photo rescaled to a 240-pixel short side; a "
                f"{height}x{width} fixed patch, its 4 corners shifted uniformly by up to "
                f"{evaluation.ALIGNMENT_MAX_SHIFT:g} px, the photo resampled inside that "
                "quadrilateral as the moving patch, no lighting change "
                "(keras_attn.training.evaluation.held_out_alignment_pairs); corner error = mean "
                "distance over the 4 corners between where the estimated and the true "
                "moving->fixed homography put the moving patch's corners; AUC of the "
                "cumulative error curve up to 3/5/10 px, normalised to [0, 1]; a non-finite "
                "homography counts as the identity; identity = doing nothing"
            ),
            "timing": (
                f"ms_per_pair: median over the {len(pairs)} pairs at batch 1 after one warm-up "
                "call: Keras model.predict_on_batch, TFLite the LiteRT serving_default runner "
                f"with its default threads; {os.cpu_count()} CPU cores"
            ),
        },
    }
    if dense:
        metrics["flow"] = {
            **keras_flow,
            "deformation_px": FLOW_DEFORMATION,
            "protocol": (
                "the same held-out DeTone pairs with a random non-planar residual of up to "
                f"{FLOW_DEFORMATION:g} px (smooth depth plus an object moved on its own; "
                "keras_attn.data.alignment.random_deformation, same seed); end-point error "
                "of the flow output against the true backward flow, pooled over the pixels "
                "whose true match lies inside the moving image"
            ),
        }
    card = {
        "family": "aligner",
        "task": "image alignment (homography moving -> fixed, backward flow, warped image)"
        if not dense
        else "image alignment (homography moving -> fixed, dense backward flow, warped image)",
        "description": (
            f"Correlation-matching aligner ({model.name}): siamese CNN features with "
            "self-attention, a global match then coarse-to-fine homography refinement"
            + (
                ", then a dense residual flow (a stride-2 match refined by a context network, "
                "and a full-resolution correction)"
                if dense
                else ""
            )
            + f"; {height}x{width} {colour} pairs."
        ),
        "inputs": {
            "moving": {**image, "role": "the image to align (warped onto fixed)"},
            "fixed": {**image, "role": "the reference image"},
        },
        "outputs": {
            "homography": {"layout": "(B, 3, 3)", "convention": HOMOGRAPHY_CONVENTION},
            "flow": {"layout": f"(B, {height}, {width}, 2) pixels", "convention": FLOW_CONVENTION},
            "warped": {
                "range": [0.0, 1.0],
                "layout": f"(B, {height}, {width}, {channels}): moving resampled onto the fixed "
                "grid along flow (bilinear, zeros outside)",
            },
        },
        "conventions": {"homography": HOMOGRAPHY_CONVENTION, "flow": FLOW_CONVENTION},
        "key_metric": "median_corner_error_px",
        "metrics": metrics,
    }
    print(
        f"Keras mean corner error {keras_scores.summary['mean_corner_error_px']:.3f} px "
        f"(identity {identity.summary['mean_corner_error_px']:.3f} px) on {len(pairs)} pairs, "
        f"{keras_ms:.1f} ms/pair"
    )
    sample = {"moving": pairs[0].moving[None], "fixed": pairs[0].fixed[None]}
    endpoints = aligner_endpoints(model)

    def evaluate_all(folder: pathlib.Path) -> dict:
        results = evaluate(folder)
        results["saved_model"][ANY_SIZE_ENDPOINT] = _any_size_parity(model, folder, pairs[:8])
        return results

    return Plan(card, ("float16",), sample, evaluate_all, extra_endpoints=endpoints)


def _any_size_parity(model, folder: pathlib.Path, pairs) -> dict:
    """The SavedModel's any-size endpoint against `keras_attn.align` with the Keras model, on
    held-out pairs resized to 480x640 (moving) and 360x512 (fixed): the largest distance
    between where the two homographies put the moving image's corners, and ms per pair."""
    import tensorflow as tf

    from keras_attn.models.aligner import align

    endpoint = tf.saved_model.load(str(folder / "saved_model")).signatures[ANY_SIZE_ENDPOINT]
    worst, seconds = 0.0, []
    for pair in pairs:
        moving = tf.image.resize(pair.moving, (480, 640)).numpy()
        fixed = tf.image.resize(pair.fixed, (360, 512)).numpy()
        expected = align(model, moving, fixed)["homography"]
        start = time.perf_counter()
        served = endpoint(moving=tf.constant(moving[None]), fixed=tf.constant(fixed[None]))
        seconds.append(time.perf_counter() - start)
        corners = np.array([[0, 0, 1], [639, 0, 1], [639, 479, 1], [0, 479, 1]], "float64")
        mapped = [corners @ np.asarray(h, "float64").T for h in (expected, served["homography"][0])]
        mapped = [m[:, :2] / m[:, 2:] for m in mapped]
        worst = max(worst, float(np.linalg.norm(mapped[0] - mapped[1], axis=-1).max()))
    return {
        "inputs": "moving 480x640, fixed 360x512 (held-out pairs resized)",
        "max_corner_difference_vs_align_px": worst,
        "ms_per_pair": float(np.median(seconds[1:]) * 1000),
    }


FAMILIES: dict[str, Callable[[keras.Model, argparse.Namespace], Plan]] = {
    "sr": plan_sr,
    "classifier": plan_classifier,
    "aligner": plan_aligner,
}
DEFAULT_TRAINING_DATA = {
    "sr": {"dataset": "bundled_photos", "split": "train", "images": data.photo_names("train")},
    "classifier": {"dataset": "bundled_digits", "split": "train"},
    "aligner": {
        "dataset": "bundled_photos",
        "split": "train",
        "images": data.photo_names("train"),
        "pairs": "DeTone pairs made on the fly (random rescale, corner shifts, lighting change)",
    },
}


# --------------------------------------------------------------------------- main


def _training_images(dataset: str) -> list[str] | None:
    """The names of the photos a `+`-joined photo dataset trains on, or None if unknown."""
    from keras_attn.data import photo_collection, photo_folder

    names = []
    for part in dataset.split("+"):
        if part == "bundled_photos":
            names += data.photo_names("train")
        elif part == "photo_collection":
            held_out = photo_collection.VALIDATION_PHOTOS
            names += [p.name for p in photo_collection.PHOTOS if p.name not in held_out]
        elif part.startswith("folder:"):
            folder = pathlib.Path(part.removeprefix("folder:")).expanduser()
            names += [path.stem for path in photo_folder.split_files(folder)["train"]]
        else:
            return None
    return names


def _home_folder(text: str) -> str:
    return text.replace(f"folder:{pathlib.Path.home()}/", "folder:~/")


def training_seconds(log_path: str | os.PathLike, log: dict) -> float | None:
    """The run's training time in seconds, over every call of a resumed run: each epoch's steps
    over its steps/s in the `history.csv` beside the log (validation not counted). Without that
    column, the log's wall time of its last call (all of it for a run that was never resumed;
    rerunning a finished run's command writes a log whose last call trained nothing)."""
    history = pathlib.Path(log_path).with_name("history.csv")
    epochs, steps = log.get("epochs"), log.get("steps")
    if history.exists() and epochs and steps:
        with history.open(newline="") as file:
            rates = [float(row.get("steps_per_s") or 0) for row in csv.DictReader(file)]
        if len(rates) == epochs and all(rate > 0 for rate in rates):
            return round(sum(steps / epochs / rate for rate in rates), 1)
    return log.get("wall_time_s_this_call")


def training_section(args: argparse.Namespace) -> dict:
    # strict JSON: a log written before metrics.json had no infinities may hold one (an
    # infinite bicubic baseline on a flat validation tile); the card records it as null
    log = json_ready(json.loads(pathlib.Path(args.training_log).read_text()))
    # a folder under the home directory is written as folder:~/..., which the folder builder
    # expands in the reader's own home (the log has this machine's absolute path)
    for key in ("command", "dataset"):
        if isinstance(log.get(key), str):
            log[key] = _home_folder(log[key])
    training_data = dict(DEFAULT_TRAINING_DATA[args.family])
    dataset = log.get("dataset") or args.training_dataset or training_data["dataset"]
    training_data["dataset"] = _home_folder(dataset)
    training_data["split"] = log.get("train_split", training_data["split"])
    if "images" in training_data:
        images = _training_images(dataset)
        if images is None:
            del training_data["images"]
        else:
            training_data["images"] = images
    return {
        "command": args.training_command,
        "wall_time_s": training_seconds(args.training_log, log),
        "steps": log.get("steps"),
        "batch_size": log.get("batch_size"),
        "data": training_data,
        "log_file": str(args.training_log),
        "log": log,
    }


def _rewrite_block(readme: pathlib.Path, start: str, end: str, table: str) -> bool:
    """Replaces the text between `start` and `end` in `readme` by `table`; True if it did."""
    if not readme.exists() or start not in readme.read_text():
        return False
    text = readme.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    readme.write_text(pattern.sub(lambda _: f"{start}\n{table}\n{end}", text))
    return True


def update_readme(root: pathlib.Path) -> bool:
    """Regenerates the table between the markers of `root/README.md`; True if it did."""
    return _rewrite_block(
        root / "README.md", README_START, README_END, pretrained.render_table(root=root)
    )


def update_zoo_table(root: pathlib.Path) -> list[pathlib.Path]:
    """Regenerates the tables of the repository one folder above the catalogue (for
    `--output-root saved_models`): the zoo table of README.md and the `render_table` copy in
    docs/benchmarks.md. Returns the files it rewrote."""
    repository = root.absolute().parent
    rewritten = []
    readme = repository / "README.md"
    if _rewrite_block(readme, ZOO_START, ZOO_END, pretrained.render_zoo_table(root=root)):
        rewritten.append(readme)
    benchmarks = repository / "docs" / "benchmarks.md"
    if _rewrite_block(benchmarks, README_START, README_END, pretrained.render_table(root=root)):
        rewritten.append(benchmarks)
    return rewritten


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="the trained .keras file")
    parser.add_argument("--name", required=True, help="folder name, <family>_<variant>")
    parser.add_argument("--family", required=True, choices=sorted(FAMILIES), help="family")
    parser.add_argument("--training-command", required=True, help="the exact training command")
    parser.add_argument(
        "--training-log", required=True, help="metrics.json written by the training run"
    )
    parser.add_argument("--output-root", default="saved_models", help="catalogue folder")
    parser.add_argument(
        "--training-dataset",
        help="the dataset it trained on, where the training log does not record it",
    )
    parser.add_argument(
        "--also-evaluate",
        action="append",
        default=[],
        metavar="DATASET",
        help="score the validation split of this dataset too, e.g. photo_collection (sr: full "
        "images; aligner: DeTone pairs from its validation images or tiles; same protocol); "
        "recorded under metrics.also_held_out",
    )
    parser.add_argument(
        "--dataset",
        help="classifier: the tfds dataset whose test split scores it and whose train split "
        "calibrates int8 (default: bundled_digits), e.g. fashion_mnist",
    )
    parser.add_argument(
        "--int8",
        choices=["auto", "dynamic", "full"],
        default="auto",
        help="model_int8.tflite: dynamic-range or full integer (auto: dynamic for sr, whose "
        "full-int8 error is ~0.1; full for classifiers, calibrated on training images; none "
        "for aligners, whose warp breaks with quantised coordinates)",
    )
    parser.add_argument(
        "--pairs-per-image",
        type=int,
        default=evaluation.ALIGNMENT_PAIRS_PER_IMAGE,
        help="aligner: held-out DeTone pairs per validation photo (5 photos)",
    )
    parser.add_argument("--note", action="append", default=[], help="a note for the card")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", args.name):
        parser.error(f"--name must look like <family>_<variant>. Received: {args.name!r}")
    if args.family == "aligner" and args.int8 != "auto":
        parser.error("--int8 does not apply to aligners: they ship float32 and float16 only")
    if args.pairs_per_image < 1:
        parser.error(f"--pairs-per-image must be at least 1. Received: {args.pairs_per_image}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.int8 == "auto":
        args.int8 = {"sr": "dynamic", "classifier": "full"}.get(args.family)
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "scripts/ship_model.py", *argv])
    started = time.time()

    model = load_keras_model(args.model, argument="--model")
    plan = FAMILIES[args.family](model, args)
    card = dict(plan.card)
    card["architecture"] = model.name
    card["metrics"] = {"command": command, **card["metrics"]}
    card["training"] = training_section(args)
    card["source"] = {"path": args.model, "sha256": pretrained.sha256_of(args.model)}
    if args.note:
        card["notes"] = args.note

    folder = pretrained.package_model(
        model,
        args.name,
        args.output_root,
        card=card,
        representative_data=plan.representative_data,
        quantizations=plan.quantizations,
        sample_inputs=plan.sample_inputs,
        evaluate=plan.evaluate,
        extra_endpoints=plan.extra_endpoints,
    )
    shipped = pretrained.card(args.name, root=args.output_root)
    summary = {
        "folder": str(folder),
        "total_bytes": shipped["total_bytes"],
        shipped["key_metric"]: shipped["metrics"][shipped["key_metric"]],
        "tflite": shipped["metrics"]["tflite"],
        "wall_time_s": round(time.time() - started, 1),
    }
    print(json.dumps(summary, indent=1))
    if update_readme(pathlib.Path(args.output_root)):
        print(f"updated the table in {pathlib.Path(args.output_root) / 'README.md'}")
    for path in update_zoo_table(pathlib.Path(args.output_root)):
        print(f"updated the table in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
