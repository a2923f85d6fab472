"""Upscale memory benchmark: peak resident memory and time of tiled vs untiled `upscale`.

Runs `keras_attn.models.upscale` with the shipped `sr_x2` model on a mosaic of real photos
(the bundled scikit-image photos, each resized to 512x512 with anti-aliasing and laid out 4x4
into a 2048x2048 image, then resized to each case's size), and reports per case:

- peak RSS: `ru_maxrss` of a fresh subprocess that imported TensorFlow, loaded the model, built
  the input and ran one small warm-up call before the measured `upscale` (so every case has the
  same fixed cost and its own peak);
- extra RSS: the peak minus the RSS right before the measured call, i.e. what the upscale itself
  needed;
- wall time of the one measured call.

Untiled 2048x2048 is not run by default (it needs several GiB): the untiled rows grow with the
pixel count, so 4x the 1024x1024 extra RSS is an extrapolation for it; measure it with
`--untiled 512 1024 2048` where the memory is there. The agreement
check upscales one `--agreement-size` input both ways and prints max and mean |tiled - untiled|
over all pixels and away from the seams (output pixels farther than `scale * overlap` from any
tile edge that is not an image edge).

Run:
    python benchmarks/upscale_memory.py                        # the full table (several minutes)
    python benchmarks/upscale_memory.py --smoke                # 256x256, tile 128 (quick check)
    python benchmarks/upscale_memory.py --tiled 2048:256 --untiled 512 1024 --agreement-size 512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MOSAIC_SIDE = 2048
PHOTO_SIDE = 512


def photo_mosaic(size: int):
    """A `(size, size, 3)` uint8 image made of real photos (see the module docstring)."""
    import numpy as np
    import skimage.transform

    from keras_attn import data

    per_row = MOSAIC_SIDE // PHOTO_SIDE
    names = sorted(data.photo_names())
    mosaic = np.zeros((MOSAIC_SIDE, MOSAIC_SIDE, 3), "float32")
    for index in range(per_row * per_row):
        photo = data.load_photo(names[index % len(names)]).astype("float32") / 255.0
        tile = skimage.transform.resize(photo, (PHOTO_SIDE, PHOTO_SIDE), anti_aliasing=True)
        row, col = divmod(index, per_row)
        mosaic[
            row * PHOTO_SIDE : (row + 1) * PHOTO_SIDE, col * PHOTO_SIDE : (col + 1) * PHOTO_SIDE
        ] = tile
    if size != MOSAIC_SIDE:
        mosaic = skimage.transform.resize(mosaic, (size, size), anti_aliasing=size < MOSAIC_SIDE)
    return np.round(np.clip(mosaic, 0.0, 1.0) * 255.0).astype("uint8")


def run_case(model_name: str, size: int, tile: int | None, overlap: int) -> dict:
    """Child mode: one measured `upscale` call; returns the row of the table."""
    import resource

    import numpy as np
    import psutil

    from keras_attn import pretrained
    from keras_attn.models.super_resolution import upscale

    model = pretrained.load(model_name)
    image = photo_mosaic(size)
    upscale(model, image[:32, :32])  # warm-up: first-call costs are not the image's
    baseline = psutil.Process().memory_info().rss
    start = time.perf_counter()
    upscaled = upscale(model, image, tile=tile, overlap=overlap)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "size": size,
        "tile": tile,
        "overlap": overlap,
        "peak_rss_mib": peak / 2**20,
        "extra_rss_mib": (peak - baseline) / 2**20,
        "wall_s": wall,
        "output_shape": list(upscaled.shape),
        "output_mean": float(np.mean(upscaled)),
    }


def seam_mask(size: int, tile: int, overlap: int, scale: int):
    """Output pixels farther than `scale * overlap` from every interior tile edge."""
    import numpy as np

    from keras_attn.models.super_resolution import _tile_starts

    margin = scale * overlap
    edges = set()
    for start in _tile_starts(size, tile, overlap):
        edges.update(e for e in (start, start + tile) if 0 < e < size)
    far = np.ones(size * scale, bool)
    positions = np.arange(size * scale)
    for edge in edges:
        far &= np.abs(positions - edge * scale) >= margin
    return far[:, None] & far[None, :]


def agreement(model_name: str, size: int, tile: int, overlap: int) -> dict:
    """Child mode: max and mean |tiled - untiled| on one float input, all and away from seams."""
    import numpy as np

    from keras_attn import pretrained
    from keras_attn.models.super_resolution import model_scale, upscale

    model = pretrained.load(model_name)
    image = photo_mosaic(size).astype("float32") / 255.0
    difference = np.abs(upscale(model, image) - upscale(model, image, tile=tile, overlap=overlap))
    far = seam_mask(size, tile, overlap, model_scale(model))
    return {
        "size": size,
        "tile": tile,
        "overlap": overlap,
        "max_abs_diff": float(difference.max()),
        "mean_abs_diff": float(difference.mean()),
        "max_abs_diff_away_from_seams": float(difference[far].max()) if far.any() else None,
        "mean_abs_diff_away_from_seams": float(difference[far].mean()) if far.any() else None,
        "fraction_away_from_seams": float(far.mean()),
    }


def child(arguments: list[str]) -> dict:
    """Runs one case in a fresh interpreter; returns the JSON it printed last."""
    command = [sys.executable, __file__, *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {result.returncode}: {tail}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def parse_tiled(value: str) -> tuple[int, int]:
    """argparse type of `--tiled`: `SIZE:TILE`."""
    size, tile = value.split(":")
    return int(size), int(tile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sr_x2", help="shipped SR model (default: sr_x2)")
    parser.add_argument(
        "--tiled",
        type=parse_tiled,
        nargs="*",
        default=[(2048, 256), (2048, 512)],
        help="SIZE:TILE cases (default: 2048:256 2048:512)",
    )
    parser.add_argument(
        "--untiled",
        type=int,
        nargs="*",
        default=[512, 1024],
        help="input sides run without tiles (default: 512 1024)",
    )
    parser.add_argument("--overlap", type=int, default=16, help="tile overlap (default: 16)")
    parser.add_argument(
        "--agreement-size", type=int, default=512, help="input side of the check (default: 512)"
    )
    parser.add_argument(
        "--agreement-tile", type=int, default=256, help="tile of the check (default: 256)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="quick check of the script: 256x256 tiled by 128 and untiled, agreement on 256",
    )
    parser.add_argument("--json", help="also write the rows and the agreement to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # child: SIZE,TILE (TILE 0: none)
    parser.add_argument("--agreement", action="store_true", help=argparse.SUPPRESS)  # child
    args = parser.parse_args()

    if args.agreement:
        print(
            json.dumps(
                agreement(args.model, args.agreement_size, args.agreement_tile, args.overlap)
            )
        )
        return
    if args.case:
        size, tile = (int(v) for v in args.case.split(","))
        print(json.dumps(run_case(args.model, size, tile or None, args.overlap)))
        return
    if args.smoke:
        args.tiled, args.untiled = [(256, 128)], [256]
        args.agreement_size, args.agreement_tile = 256, 128

    common = ["--model", args.model, "--overlap", str(args.overlap)]
    cases = [(size, tile) for size, tile in args.tiled] + [(size, 0) for size in args.untiled]
    print(f"{args.model}, overlap {args.overlap}, one call per case in a fresh process")
    print("| input | tile | peak RSS (MiB) | extra RSS (MiB) | wall (s) |")
    print("|---|---|---|---|---|", flush=True)
    rows = []
    for size, tile in cases:
        row = child(["--case", f"{size},{tile}", *common])
        label = f"{tile}" if tile else "none"
        if "error" in row:
            print(f"| {size}x{size} | {label} | failed: {row['error']} | | |", flush=True)
            continue
        rows.append(row)
        print(
            f"| {size}x{size} | {label} | {row['peak_rss_mib']:.0f} | {row['extra_rss_mib']:.0f} "
            f"| {row['wall_s']:.1f} |",
            flush=True,
        )

    check = child(
        [
            "--agreement",
            "--agreement-size",
            str(args.agreement_size),
            "--agreement-tile",
            str(args.agreement_tile),
            *common,
        ]
    )
    print()
    if "error" in check:
        print(f"agreement check failed: {check['error']}")
    else:
        away = check["max_abs_diff_away_from_seams"]
        print(
            f"tiled (tile {check['tile']}, overlap {check['overlap']}) vs untiled on "
            f"{check['size']}x{check['size']}, float pixels in [0, 1]: max |diff| "
            f"{check['max_abs_diff']:.2e}, mean {check['mean_abs_diff']:.2e}; away from seams "
            f"({check['fraction_away_from_seams']:.0%} of pixels): "
            + (
                f"max {away:.2e}, mean {check['mean_abs_diff_away_from_seams']:.2e}"
                if away is not None
                else "none"
            )
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "agreement": check}, handle, indent=1)


if __name__ == "__main__":
    main()
