"""Dense-flow benchmark on a real rectified stereo pair: end-point error against ground truth.

Data: `skimage.data.stereo_motorcycle()` (Middlebury 2014 "motorcycle", downsampled 4x to
500x741 by scikit-image, which ships it). Its disparity d is on the LEFT image's grid, +inf
where there is no ground truth (7.3 % of pixels; its docstring says NaN, but there are no NaNs
and no zeros), 7 to 60 px, median about 39 px: the left pixel (y, x) is the right pixel
(y, x - d). The ground-truth flow from left to right is
therefore (u, v) = (-d, 0), a backward flow on the left grid: left(y, x) ~ right(y + v, x + u).

Protocol: N random 128x128 crops (seeded), each taken at the same place in both images, kept
when at least 90 % of its pixels have ground truth; grayscale float32 in [0, 1]
(`skimage.color.rgb2gray`). A pixel whose match falls outside the right crop (up to ~60 px at
the left edge) stays in the score: the crops are what each method sees, as in a flow
benchmark's "all" (occluded included) split. Every method maps (left crop, right crop) to a
(128, 128, 2) flow (u, v) in the convention above (see each function for the conversion).
Scores pool all valid pixels of all crops: mean and median end-point error (EPE, px), bad-3
(% of valid pixels with EPE > 3 px); ms/pair is the median wall time of one call (after one
warm-up call), batch 1. The JSON also holds the mean EPE over valid pixels whose match lies
inside the right crop (`mean_epe_in_frame_px`) and the failures (SIFT: < 4 matches or no
homography; counted as zero flow).

Methods: `identity` (zero flow); OpenCV DIS (preset MEDIUM), Farneback (pyr_scale 0.5, 5 levels,
winsize 15, 3 iterations, poly_n 5, poly_sigma 1.2) and SIFT + ratio test 0.8 + RANSAC
homography (3 px), all skipped with a note when `cv2` is missing (`pip install -e ".[bench]"`);
TV-L1 (`skimage.registration.optical_flow_tvl1`, defaults); the shipped
`aligner_homography` (flow output of `keras_attn.pretrained.load`), and every `--model PATH`
(a `.keras` aligner with the same inputs and outputs, e.g. a future `aligner_flow`).

`--downscale F` shrinks the pair and its disparity by F first (block means; disparity / F):
at full size a 128-px crop holds disparities of up to 60 px, more than dense local methods
bridge; at F = 2 they are 4 to 30 px (from F = 3 no 128-px crop has 90 % ground truth).

Run:
    python benchmarks/stereo_flow.py --crops 50 --seed 0 --json runs/stereo_flow.json
    python benchmarks/stereo_flow.py --crops 50 --seed 0 --downscale 2
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

CROP = 128
MIN_VALID = 0.9
BAD_PX = 3.0
CV2_METHODS = ("dis", "farneback", "sift_ransac")
SHIPPED = ("aligner_homography", "aligner_flow")
METHODS = ("identity", "dis", "farneback", "tvl1", "sift_ransac", *SHIPPED)


# ------------------------------------------------------------------------------------- data


def load_pair(downscale: int = 1):
    """(left, right) grayscale float32 in [0, 1] and the disparity (+inf where invalid),
    optionally `downscale`d (`keras_attn.data.stereo.motorcycle_pair`)."""
    from keras_attn.data.stereo import motorcycle_pair

    return motorcycle_pair(downscale)


def ground_truth_flow(disparity):
    """Left->right flow `(H, W, 2)` = (u, v) = (-d, 0) and its validity mask (finite d > 0)."""
    from keras_attn.data.stereo import disparity_flow

    return disparity_flow(disparity)


def warp_backward(image, flow):
    """`out(y, x) = image(y + v, x + u)` (bilinear, 0 outside): the warp every flow here obeys."""
    from scipy.ndimage import map_coordinates

    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]].astype("float64")
    coords = [rows + flow[..., 1], cols + flow[..., 0]]
    return map_coordinates(image, coords, order=1, mode="constant", cval=0.0)


def sample_crops(valid, count: int, seed: int, size: int = CROP, min_valid: float = MIN_VALID):
    """`count` top-left corners (y, x) of size x size crops with >= min_valid ground truth."""
    rng = np.random.default_rng(seed)
    height, width = valid.shape
    corners = []
    for _ in range(1000 * count):
        if len(corners) == count:
            break
        y, x = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        if valid[y : y + size, x : x + size].mean() >= min_valid:
            corners.append((y, x))
    if len(corners) < count:
        raise RuntimeError(f"Found only {len(corners)} of {count} crops with enough ground truth.")
    return corners


# ---------------------------------------------------------------------------------- methods
# Each method: (left, right) float32 (H, W) in [0, 1] -> flow (H, W, 2) = (u, v) on the left
# grid with left(y, x) ~ right(y + v, x + u); a method may set `.failures` (a list it appends to).


def _uint8(image):
    return np.round(np.clip(image, 0, 1) * 255).astype("uint8")


def identity(left, right):
    return np.zeros((*left.shape, 2), "float32")


def dis(left, right):
    """OpenCV DIS: `calc(prev, next)` with prev(y, x) ~ next(y + v, x + u): already (u, v)."""
    import cv2

    solver = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return solver.calc(_uint8(left), _uint8(right), None)


def farneback(left, right):
    """OpenCV Farneback, same convention as DIS (prev = left, next = right)."""
    import cv2

    return cv2.calcOpticalFlowFarneback(_uint8(left), _uint8(right), None, 0.5, 5, 15, 3, 5, 1.2, 0)


def tvl1(left, right):
    """scikit-image TV-L1: returns (v, u) (row, col first) such that warping the second
    (moving) image by it gives the first: reference(r, c) ~ moving(r + v, c + u). With
    reference = left and moving = right that is our convention once the axes are swapped."""
    from skimage.registration import optical_flow_tvl1

    v, u = optical_flow_tvl1(left, right, dtype="float32")
    return np.stack([u, v], axis=-1)


def homography_flow(homography, shape):
    """Flow of a 3x3 map of left pixels (x, y) to right ones: H applied to the grid - grid."""
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype("float64")
    points = np.stack([cols, rows, np.ones_like(cols)], axis=-1) @ np.asarray(homography).T
    mapped = points[..., :2] / points[..., 2:]
    return (mapped - np.stack([cols, rows], axis=-1)).astype("float32")


def sift_ransac(ratio: float = 0.8, threshold: float = 3.0):
    """SIFT + ratio test + RANSAC homography left->right (`cv2.findHomography(left_pts,
    right_pts)`), whose flow on the left grid is our convention; zero flow (a failure) with
    fewer than 4 matches or no homography."""
    import cv2

    detector = cv2.SIFT_create()
    failures = []

    def estimate(left, right):
        kp1, d1 = detector.detectAndCompute(_uint8(left), None)
        kp2, d2 = detector.detectAndCompute(_uint8(right), None)
        homography = None
        if d1 is not None and d2 is not None and len(kp1) >= 2 and len(kp2) >= 2:
            matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1, d2, k=2)
            good = [m[0] for m in matches if len(m) == 2 and m[0].distance < ratio * m[1].distance]
            if len(good) >= 4:
                src = np.float32([kp1[m.queryIdx].pt for m in good])
                dst = np.float32([kp2[m.trainIdx].pt for m in good])
                homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, threshold)
        if homography is None or not np.isfinite(homography).all():
            failures.append(1)
            return identity(left, right)
        return homography_flow(homography, left.shape)

    estimate.failures = failures
    return estimate


def keras_aligner(model):
    """A keras_attn aligner: `flow` is on the FIXED grid with fixed(y, x) ~ moving(y + v, x + u),
    channels (u, v) (`keras_attn.models.aligner.FLOW_CONVENTION`), so fixed = left and
    moving = right give our convention as is."""
    channels = model.inputs[0].shape[-1]

    def estimate(left, right):
        def batch(image):
            return np.repeat(image[None, ..., None], channels, axis=-1).astype("float32")

        out = model.predict_on_batch({"moving": batch(right), "fixed": batch(left)})
        return np.asarray(out["flow"][0], "float32")

    return estimate


def shipped_aligner(name: str = "aligner_homography"):
    from keras_attn import pretrained

    return keras_aligner(pretrained.load(name))


def file_aligner(path):
    import keras

    import keras_attn  # noqa: F401  (registers the layers before loading .keras files)

    return keras_aligner(keras.saving.load_model(path, compile=False))


def model_label(path) -> str:
    """`saved_models/aligner_flow/model.keras` -> `aligner_flow`; `runs/x.keras` -> `x`."""
    path = pathlib.Path(path)
    return path.parent.name if path.stem == "model" and path.parent.name else path.stem


def build_methods(names, model_paths=()):
    """{label: estimate} for the requested names (cv2 ones skipped with a note when missing)."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; choose from {list(METHODS)}.")
    try:
        import cv2  # noqa: F401
    except ImportError:
        skipped = [n for n in names if n in CV2_METHODS]
        if skipped:
            print(
                f"note: cv2 is missing, skipping {', '.join(skipped)} (pip install -e '.[bench]')"
            )
        names = [n for n in names if n not in CV2_METHODS]
    factories = {
        "identity": lambda: identity,
        "dis": lambda: dis,
        "farneback": lambda: farneback,
        "tvl1": lambda: tvl1,
        "sift_ransac": sift_ransac,
        **{name: (lambda name=name: shipped_aligner(name)) for name in SHIPPED},
    }
    methods = {name: factories[name]() for name in names}
    for path in model_paths:
        methods[model_label(path)] = file_aligner(path)
    return methods


# ---------------------------------------------------------------------------------- scoring


def end_point_error(flow, truth):
    """Per-pixel Euclidean distance between two (H, W, 2) flows."""
    return np.sqrt(((np.asarray(flow, "float64") - truth) ** 2).sum(axis=-1))


def summarise(errors, in_frame, seconds, failures: int = 0) -> dict:
    """Pooled EPE statistics over valid pixels (1-D arrays) and the median ms/pair."""
    errors = np.asarray(errors, "float64")
    return {
        "mean_epe_px": float(errors.mean()),
        "median_epe_px": float(np.median(errors)),
        "bad_3px_percent": float((errors > BAD_PX).mean() * 100),
        "mean_epe_in_frame_px": float(errors[np.asarray(in_frame)].mean()),
        "ms_per_pair": float(np.median(seconds) * 1000),
        "failures": int(failures),
        "pixels": int(errors.size),
    }


def evaluate(estimate, crops):
    """Runs one method over the crops [(left, right, truth, valid, in_frame)] -> summary."""
    estimate(crops[0][0], crops[0][1])  # warm-up (graph tracing, allocation)
    failures = getattr(estimate, "failures", None)
    already = len(failures) if failures is not None else 0
    errors, in_frame, seconds = [], [], []
    for left, right, truth, valid, inside in crops:
        start = time.perf_counter()
        flow = estimate(left, right)
        seconds.append(time.perf_counter() - start)
        flow = np.where(np.isfinite(flow), flow, 0.0)
        errors.append(end_point_error(flow, truth)[valid])
        in_frame.append(inside[valid])
    failed = len(failures) - already if failures is not None else 0
    return summarise(np.concatenate(errors), np.concatenate(in_frame), seconds, failed)


def make_crops(count: int, seed: int, downscale: int = 1):
    """The benchmark's crops: [(left, right, truth, valid, in_frame)] and their corners."""
    left, right, disparity = load_pair(downscale)
    truth, valid = ground_truth_flow(disparity)
    corners = sample_crops(valid, count, seed)
    cols = np.arange(CROP, dtype="float32")[None, :]
    crops = []
    for y, x in corners:
        window = (slice(y, y + CROP), slice(x, x + CROP))
        crop_truth = truth[window]
        target = cols + crop_truth[..., 0]
        inside = (target >= 0) & (target <= CROP - 1)
        crops.append((left[window], right[window], crop_truth, valid[window], inside))
    return crops, corners


def figure(crops, methods: dict, path, index: int | None = None) -> int:
    """Draws one crop (by default the one whose true disparity varies most) with
    `keras_attn.viz.plot_flow`: the views, the true and each method's disparity, and the left
    view over the right one warped by the last method's flow. Returns the crop index."""
    from keras_attn.viz import plot_flow

    if index is None:
        index = int(np.argmax([np.std(c[2][..., 0][c[3]]) for c in crops]))
    left, right, truth, valid, _ = crops[index]
    flows = {label: estimate(left, right) for label, estimate in methods.items()}
    warped = np.clip(warp_backward(right, list(flows.values())[-1]), 0, 1)
    plot_flow(left, right, flows, path, truth=truth, valid=valid, warped=warped)
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--crops", type=int, default=50, help="number of 128x128 crops")
    parser.add_argument("--seed", type=int, default=0, help="seed of the crop positions")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--model", action="append", default=[], help="PATH of another .keras aligner (repeatable)"
    )
    parser.add_argument(
        "--downscale",
        type=int,
        default=1,
        help="shrink the pair (and its disparity) by this factor first: 2 gives disparities of "
        "4 to 30 px (3 and more leave no 128-px crop with 90 %% ground truth)",
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--figure",
        help="also draw the crop whose disparity varies most: views, true and estimated "
        "disparity of every method, and the last method's warped overlay (PNG path)",
    )
    args = parser.parse_args(argv)
    if args.downscale < 1:
        parser.error(f"--downscale must be at least 1. Received: {args.downscale}")

    crops, corners = make_crops(args.crops, args.seed, args.downscale)
    methods = build_methods(args.methods, args.model)
    results = {label: evaluate(estimate, crops) for label, estimate in methods.items()}

    valid_share = np.mean([c[3].mean() for c in crops]) * 100
    in_frame_share = np.mean([c[4][c[3]].mean() for c in crops]) * 100
    print(
        f"stereo_motorcycle downscaled {args.downscale}x, {len(crops)} crops {CROP}x{CROP} "
        f"(seed {args.seed}), "
        f"{valid_share:.1f} % valid ground truth, {in_frame_share:.1f} % of it inside the "
        f"right crop\n"
    )
    print("| method | mean EPE (px) | median EPE (px) | bad>3px (%) | ms/pair |")
    print("|---|---|---|---|---|")
    for label, row in results.items():
        print(
            f"| {label} | {row['mean_epe_px']:.2f} | {row['median_epe_px']:.2f} | "
            f"{row['bad_3px_percent']:.1f} | {row['ms_per_pair']:.1f} |"
        )
    if args.figure:
        index = figure(crops, methods, args.figure)
        print(f"\nwrote {args.figure} (crop {index}, top-left {corners[index]})")
    for label, row in results.items():
        if row["failures"]:
            print(f"\n{label}: {row['failures']} of {len(crops)} crops failed (zero flow)")
    if args.json:
        payload = {
            "protocol": {
                "crops": len(crops),
                "seed": args.seed,
                "crop_size": CROP,
                "downscale": args.downscale,
                "min_valid": MIN_VALID,
                "corners_yx": corners,
                "convention": "left->right backward flow (u, v): left(y, x) ~ right(y+v, x+u)",
            },
            "results": results,
        }
        with open(args.json, "w") as handle:
            json.dump(payload, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
