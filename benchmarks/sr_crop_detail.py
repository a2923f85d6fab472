"""How much an SR training stream leaves to restore, against the held-out tiles it is scored on.

`keras_attn.data.super_resolution.crop_detail` of each crop: the RMS of HR minus the bicubic
upscale of its LR, in 8-bit levels (0: flat). The table gives, for the training stream of
`--dataset` (every crop, and with `--min-detail`) and for the validation tiles of each
`--val-dataset`, the crops counted, the share under the threshold and the median detail.

Run:
    python benchmarks/sr_crop_detail.py             # x2, bundled + collection, threshold 2
    python benchmarks/sr_crop_detail.py --scale 4 --patch-size 192
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_attn import data  # noqa: E402
from keras_attn.data.super_resolution import crop_detail  # noqa: E402


def details(dataset, batches: int | None = None) -> np.ndarray:
    """`crop_detail` of every crop of `dataset` (its first `batches` batches when given)."""
    if batches is not None:
        dataset = dataset.take(batches)
    return np.concatenate([crop_detail(lr, hr).numpy() for lr, hr in dataset])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="bundled_photos+photo_collection")
    parser.add_argument(
        "--val-dataset",
        action="append",
        default=None,
        help="validation tiles to compare with (repeatable; default: bundled_photos and "
        "photo_collection)",
    )
    parser.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    parser.add_argument("--patch-size", type=int, default=96)
    parser.add_argument("--batches", type=int, default=60, help="training batches of 16 crops")
    parser.add_argument("--min-detail", type=float, default=2.0, help="the threshold, levels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="tfds data directory")
    parser.add_argument("--json", default=None, help="also write the rows here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    threshold = args.min_detail

    def stream(min_detail):
        dataset = data.super_resolution_dataset(
            args.dataset,
            "train",
            args.scale,
            args.patch_size,
            16,
            data_dir=args.data_dir,
            seed=args.seed,
            min_detail=min_detail,
        )
        return details(dataset, args.batches)

    rows = {
        f"{args.dataset} training crops": stream(0.0),
        f"{args.dataset} training crops, --min-detail {threshold:g}": stream(threshold),
    }
    for name in args.val_dataset or ["bundled_photos", "photo_collection"]:
        tiles = data.super_resolution_dataset(
            name,
            "validation",
            args.scale,
            args.patch_size,
            16,
            training=False,
            data_dir=args.data_dir,
        )
        rows[f"{name} validation tiles"] = details(tiles)

    print(
        f"x{args.scale}, {args.patch_size}-pixel HR crops; detail = RMS of HR minus the bicubic "
        "upscale of its LR, 8-bit levels"
    )
    print(f"| crops | count | share under {threshold:g} | median detail |")
    print("|---|---|---|---|")
    summary = {}
    for label, values in rows.items():
        share, median = float(np.mean(values < threshold)), float(np.median(values))
        summary[label] = {"count": len(values), "share_under": share, "median": median}
        print(f"| {label} | {len(values)} | {100 * share:.1f} % | {median:.2f} |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"threshold": threshold, "rows": summary}, file, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
