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

import json
import pathlib
import sys

from keras_attn.flags import parse_recipe
from keras_attn.training.recipes import (
    SuperResolutionRecipe,
    bicubic_psnr,  # noqa: F401  (kept for importers)
    train_super_resolution,
)

TITLE = __doc__.split("\n")[1].removeprefix("Title: ")


def parse_args(argv=None) -> SuperResolutionRecipe:
    """The recipe of the command line; flags and defaults come from its fields."""
    return parse_recipe(SuperResolutionRecipe, argv, description=TITLE)


def main(argv=None) -> int:
    ## Setup, data, model, train, evaluate: see keras_attn/training/
    recipe = parse_args(argv)
    command = " ".join(
        [
            f"python examples/{pathlib.Path(__file__).name}",
            *(sys.argv[1:] if argv is None else argv),
        ]
    )
    summary = train_super_resolution(recipe, command=command)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
