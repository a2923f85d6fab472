"""Alignment benchmark: corner error of classical methods and trained aligners on held-out photos.

DeTone's protocol (https://arxiv.org/abs/1606.03798) on the bundled photos held out from every
training run (`validation` split: chelsea, coffee, flower, coins, gravel), each rescaled to a
240-pixel short side: a 128x128 fixed patch, its corners shifted by up to rho pixels, the photo
resampled inside that quadrilateral as the moving patch (`keras_attn.data.alignment_dataset`,
fixed seeds). Conditions: rho 16, rho 32, and rho 32 with an independent random lighting change
of both patches (gain, bias, gamma, noise; `photometric=1.0`).

Methods: identity; OpenCV ECC (`cv2.findTransformECC`, MOTION_HOMOGRAPHY) run coarse-to-fine
over a 3-level pyramid; SIFT and ORB keypoints + ratio test + RANSAC (`cv2.findHomography`);
every model given with `--model LABEL=PATH` (`.keras` in Keras, `.tflite` in LiteRT), and with
`--refine` each `.keras` model again through `keras_attn.models.align(..., refine=True)`.

Reported per method: mean and median corner error (px, mean over the 4 corners of where the
estimated vs the true moving->fixed homography puts the moving patch's corners), % of pairs over
10 px, AUC of the cumulative error curve up to 3/5/10 px, and ms per pair (single thread of
Python calls, batch 1). A method that returns no homography counts as the identity. The pairs
and scores come from `keras_attn.training.evaluation` (`held_out_alignment_pairs`,
`corner_error`, `corner_error_summary`), as in `keras-attn evaluate` and the model cards.

`--dataset photo_collection` scores the validation tiles of the photo collection instead (each
tile rescaled the same way).

Needs `opencv-python-headless` (`pip install -e ".[bench]"`).

Run:
    python benchmarks/aligner.py --pairs-per-image 40 \
        --model ours=saved_models/aligner_homography/model.keras \
        --model ours_tflite=saved_models/aligner_homography/model.tflite \
        --figure runs/aligner_overlay.png
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras_attn  # noqa: E402,F401  (registers the layers before loading .keras files)
from keras_attn.training.evaluation import (  # noqa: E402  (the one implementation)
    ALIGNMENT_SEED,
    corner_error,
    corner_error_summary,
    held_out_alignment_pairs,
)

CONDITIONS = {
    "rho16": {"max_shift": 16.0, "photometric": 0.0},
    "rho32": {"max_shift": 32.0, "photometric": 0.0},
    "rho32+light": {"max_shift": 32.0, "photometric": 1.0},
}


def _uint8(image):
    return np.round(np.clip(image[..., 0], 0, 1) * 255).astype("uint8")


def identity(moving, fixed):
    return np.eye(3)


def ecc(moving, fixed, levels: int = 3, iterations: int = 100):
    """OpenCV ECC coarse-to-fine; ECC's warp maps fixed (template) to moving coordinates."""
    import cv2

    warp = np.eye(3, dtype="float32")
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-5)
    for level in reversed(range(levels)):
        factor = 2**level
        scale = np.diag([factor, factor, 1.0]).astype("float32")
        size = (fixed.shape[1] // factor, fixed.shape[0] // factor)
        template = cv2.resize(fixed[..., 0], size, interpolation=cv2.INTER_AREA)
        image = cv2.resize(moving[..., 0], size, interpolation=cv2.INTER_AREA)
        level_warp = np.linalg.inv(scale) @ warp @ scale
        try:
            _, level_warp = cv2.findTransformECC(
                template,
                image,
                level_warp.astype("float32"),
                cv2.MOTION_HOMOGRAPHY,
                criteria,
                None,
                5,
            )
        except cv2.error:
            return None
        warp = scale @ level_warp @ np.linalg.inv(scale)
    return np.linalg.inv(warp)


def _features(detector, norm, ratio: float = 0.8):
    import cv2

    def estimate(moving, fixed):
        kp1, d1 = detector.detectAndCompute(_uint8(moving), None)
        kp2, d2 = detector.detectAndCompute(_uint8(fixed), None)
        if d1 is None or d2 is None or len(kp1) < 4 or len(kp2) < 4:
            return None
        matches = cv2.BFMatcher(norm).knnMatch(d1, d2, k=2)
        good = [m[0] for m in matches if len(m) == 2 and m[0].distance < ratio * m[1].distance]
        if len(good) < 4:
            return None
        src = np.float32([kp1[m.queryIdx].pt for m in good])
        dst = np.float32([kp2[m.trainIdx].pt for m in good])
        homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
        return homography

    return estimate


def keras_aligner(path, refine: bool = False):
    import keras

    from keras_attn.models import align

    model = keras.saving.load_model(path)

    def estimate(moving, fixed):
        if refine:  # keras_attn.models.align(refine=True): a second pass, kept if NCC improves
            return align(model, moving, fixed, refine=True)["homography"]
        out = model.predict_on_batch({"moving": moving[None], "fixed": fixed[None]})
        return out["homography"][0]

    return estimate


def tflite_aligner(path):
    from keras_attn.export.tflite import TFLiteModel

    runner = TFLiteModel(path)  # as keras_attn.pretrained.load runs aligners

    def estimate(moving, fixed):
        return runner(moving=moving[None], fixed=fixed[None])["homography"][0]

    return estimate


def summarise(errors, seconds) -> dict:
    """The corner-error summary of `keras_attn.training.evaluation` plus the median ms/pair."""
    return {**corner_error_summary(errors), "ms_per_pair": float(np.median(seconds) * 1000)}


def pairs(
    condition: dict,
    pairs_per_image: int,
    seed: int,
    dataset: str = "bundled_photos",
    data_dir: str | None = None,
):
    for pair in held_out_alignment_pairs(
        128, 1, dataset, pairs_per_image=pairs_per_image, seed=seed, data_dir=data_dir, **condition
    ):
        yield pair.moving, pair.fixed, pair.corners


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--pairs-per-image", type=int, default=40, help="pairs per held-out photo")
    parser.add_argument("--seed", type=int, default=ALIGNMENT_SEED, help="seed of the pairs")
    parser.add_argument(
        "--dataset",
        default="bundled_photos",
        help="held-out photos (validation split): bundled_photos, photo_collection (the "
        "validation tiles of `keras-attn data fetch-photos`), folder:/path, or several joined "
        "by +",
    )
    parser.add_argument("--data-dir", help="tfds data directory (default: tfds's own)")
    parser.add_argument(
        "--model", action="append", default=[], help="LABEL=PATH of a .keras or .tflite aligner"
    )
    parser.add_argument(
        "--refine",
        action="store_true",
        help="also run every .keras model through align(refine=True) (row LABEL+refine)",
    )
    parser.add_argument("--no-classical", action="store_true", help="skip the OpenCV methods")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--figure", help="write a before/after overlay of one pair (PNG)")
    args = parser.parse_args(argv)

    methods = {"identity": identity}
    if not args.no_classical:
        import cv2

        methods["ecc_pyramid"] = ecc
        methods["sift_ransac"] = _features(cv2.SIFT_create(), cv2.NORM_L2)
        methods["orb_ransac"] = _features(cv2.ORB_create(2000), cv2.NORM_HAMMING)
    for spec in args.model:
        label, _, path = spec.partition("=")
        if not path:
            parser.error(f"--model takes LABEL=PATH. Received: {spec!r}")
        methods[label] = tflite_aligner(path) if path.endswith(".tflite") else keras_aligner(path)
        if args.refine and not path.endswith(".tflite"):
            methods[f"{label}+refine"] = keras_aligner(path, refine=True)

    results = {}
    for name in args.conditions.split(","):
        condition = CONDITIONS[name]
        data = list(pairs(condition, args.pairs_per_image, args.seed, args.dataset, args.data_dir))
        for label, estimate in methods.items():
            errors, seconds = [], []
            estimate(data[0][0], data[0][1])  # warm-up (graph tracing, allocation)
            for moving, fixed, corners in data:
                start = time.perf_counter()
                homography = estimate(moving, fixed)
                seconds.append(time.perf_counter() - start)
                if homography is None or not np.isfinite(homography).all():
                    homography = np.eye(3)
                errors.append(corner_error(homography, corners))
            results[(name, label)] = summarise(errors, seconds)

    columns = [
        "mean_corner_error_px",
        "median_corner_error_px",
        "over_10px_percent",
        "auc_3px",
        "auc_5px",
        "auc_10px",
        "ms_per_pair",
    ]
    print(f"pairs per condition: {len(data)} ({args.dataset} validation, seed {args.seed})\n")
    print("| condition | method | " + " | ".join(columns) + " |")
    print("|" + "---|" * (len(columns) + 2))
    for (name, label), row in results.items():
        values = " | ".join(f"{row[c]:.2f}" if "auc" not in c else f"{row[c]:.3f}" for c in columns)
        print(f"| {name} | {label} | {values} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({f"{n}/{m}": r for (n, m), r in results.items()}, handle, indent=1)
    if args.figure and args.model:
        _figure(args, methods)
    return 0


def _figure(args, methods):
    from keras_attn.models import warp_image
    from keras_attn.viz import plot_alignment

    label = next(spec.split("=")[0] for spec in args.model)
    moving, fixed, _ = next(
        pairs(CONDITIONS["rho32"], 1, args.seed + 1, args.dataset, args.data_dir)
    )
    homography = methods[label](moving, fixed)
    warped = warp_image(moving, homography)
    plot_alignment(moving, fixed, warped, args.figure)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    raise SystemExit(main())
