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

import json
import pathlib
import sys

from keras_attn.flags import parse_recipe
from keras_attn.training.recipes import (
    ClassifierRecipe,
    loss_and_metric,  # noqa: F401  (used by the tests)
    train_classifier,
)

TITLE = __doc__.split("\n")[1].removeprefix("Title: ")


def parse_args(argv=None) -> ClassifierRecipe:
    """The recipe of the command line; flags and defaults come from its fields."""
    return parse_recipe(ClassifierRecipe, argv, description=TITLE)


def main(argv=None) -> int:
    ## Setup, data, model, train, evaluate: see keras_attn/training/
    recipe = parse_args(argv)
    command = " ".join(
        [
            f"python examples/{pathlib.Path(__file__).name}",
            *(sys.argv[1:] if argv is None else argv),
        ]
    )
    summary = train_classifier(recipe, command=command)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
