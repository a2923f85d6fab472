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

import argparse
import sys

from keras_attn.training.aligner_recipe import AlignerRecipe, add_arguments, train_aligner
from keras_attn.training.recipe_base import recipe_from_args


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    try:
        recipe = recipe_from_args(AlignerRecipe, parser.parse_args(argv))
    except ValueError as error:
        parser.error(str(error))
    command = "python examples/train_aligner.py " + " ".join(sys.argv[1:] if argv is None else argv)
    train_aligner(recipe, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
