"""
Title: Train the keras_attn aligner (correlation matching + coarse-to-fine homography refinement)
Description: DeTone-style pairs made on the fly from real photos (corner shifts up to 32 px,
random lighting changes), corner loss on every refinement iteration, mean corner error on
held-out photos after every epoch, resumable from its output folder.

Run (defaults: the bundled photos, offline):
    python examples/train_aligner.py --output runs/aligner_homography
Run the same command again after an interruption: it resumes from the last completed epoch.
With a network, any tfds image dataset works: `--dataset coco/2017 --val-split validation`.
"""

from __future__ import annotations

import json
import pathlib
import sys

from keras_attn.flags import parse_recipe
from keras_attn.training.aligner_recipe import AlignerRecipe, train_aligner

TITLE = __doc__.split("\n")[1].removeprefix("Title: ")


def parse_args(argv=None) -> AlignerRecipe:
    """The recipe of the command line; flags and defaults come from its fields."""
    return parse_recipe(AlignerRecipe, argv, description=TITLE)


def main(argv=None) -> int:
    ## Setup, data, model, train, evaluate: see keras_attn/training/
    recipe = parse_args(argv)
    command = " ".join(
        [
            f"python examples/{pathlib.Path(__file__).name}",
            *(sys.argv[1:] if argv is None else argv),
        ]
    )
    summary = train_aligner(recipe, command=command)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
