"""
Title: Train the keras_attn super-resolution network (RCAN-style, SE channel attention)
Description: random HR crops from real photos, LR by bicubic downscaling, Charbonnier loss,
PSNR-Y / SSIM-Y on held-out photos after every epoch, resumable from its output folder.

Run (defaults: the bundled photos, offline):
    python examples/train_super_resolution.py --model sr_fast --scale 2 --output runs/sr_x2
    python examples/train_super_resolution.py --model sr_fast --scale 3 \
        --init-from runs/sr_x2/model.keras \
        --output runs/sr_x3
Run the same command again after an interruption: it resumes from the last backup (every epoch
and every --checkpoint-minutes inside one). `--dataset bundled_photos+photo_collection` adds 22
Debian photographs (`keras-attn data fetch-photos` first); `--dataset folder:/path` any folder.
With a network, any tfds image dataset works: `--dataset div2k/bicubic_x2` (HR images only).
Writes model.keras, history.csv and metrics.json (validation PSNR/SSIM-Y, bicubic baseline,
params, command, wall time). The run itself is
`keras_attn.training.recipes.train_super_resolution`, the same function behind
`keras-attn train sr`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from keras_attn.training import recipes
from keras_attn.training.recipes import bicubic_psnr  # noqa: F401  (kept for importers)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    recipes.add_super_resolution_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    ## Setup, data, model, train, evaluate: see keras_attn/training/recipes.py
    args = parse_args(argv)
    recipe = recipes.recipe_from_args(recipes.SuperResolutionRecipe, args)
    command = " ".join([pathlib.Path(sys.argv[0]).name, *(argv or sys.argv[1:])])
    summary = recipes.train_super_resolution(recipe, command=command)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
