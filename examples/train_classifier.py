"""
Title: Train a keras_attn attention classifier (ResNet-style, attention in every block)
Description: any registered classifier preset on any supervised tfds image dataset, Adam with a
cosine schedule, random translations (and horizontal flips only where the dataset allows them),
accuracy on the held-out split after every epoch and at the end, resumable from its output folder.

Run (defaults: the SE classifier_digits preset on scikit-learn's bundled digits, offline):
    python examples/train_classifier.py --output runs/classifier_digits
    python examples/train_classifier.py --model cbam_resnet --dataset cifar10 --epochs 30 \
        --output runs/cbam_resnet_cifar10
Run the same command again after an interruption: it resumes from the last completed epoch.
Writes model.keras, history.csv and metrics.json (test accuracy, params, command, wall time).
The run itself is `keras_attn.training.recipes.train_classifier`, the same function behind
`keras-attn train classifier`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from keras_attn.training import recipes
from keras_attn.training.recipes import loss_and_metric  # noqa: F401  (used by the tests)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[1].removeprefix("Title: "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    recipes.add_classifier_arguments(parser)
    args = parser.parse_args(argv)
    try:
        recipes.recipe_from_args(recipes.ClassifierRecipe, args)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None) -> int:
    ## Setup, data, model, train, evaluate: see keras_attn/training/recipes.py
    args = parse_args(argv)
    recipe = recipes.recipe_from_args(recipes.ClassifierRecipe, args)
    command = " ".join([pathlib.Path(sys.argv[0]).name, *(argv or sys.argv[1:])])
    summary = recipes.train_classifier(recipe, command=command)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
