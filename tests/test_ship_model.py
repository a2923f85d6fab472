"""scripts/ship_model.py: what a card says about the training data."""

import argparse
import json
import pathlib

import keras
import pytest

from keras_attn import data, models
from keras_attn.data import photo_collection
from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ship():
    return load_script(ROOT / "scripts" / "ship_model.py", "ship_model_script")


def section(ship, tmp_path, family, log, training_dataset=None):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(log))
    args = argparse.Namespace(
        family=family,
        training_log=str(path),
        training_command="train it",
        training_dataset=training_dataset,
    )
    return ship.training_section(args)["data"]


def test_the_card_names_the_photos_each_dataset_trained_on(ship, tmp_path):
    collection = [p.name for p in photo_collection.PHOTOS]
    train = [n for n in collection if n not in photo_collection.VALIDATION_PHOTOS]
    both = section(ship, tmp_path, "sr", {"dataset": "bundled_photos+photo_collection"})
    assert both["images"] == data.photo_names("train") + train and len(train) == 17
    # an older log without the field: the flag says it
    flow = section(ship, tmp_path, "aligner", {}, training_dataset="photo_collection")
    assert flow["dataset"] == "photo_collection" and flow["images"] == train
    assert "DeTone pairs" in flow["pairs"]
    default = section(ship, tmp_path, "aligner", {})
    assert default["dataset"] == "bundled_photos"
    assert default["images"] == data.photo_names("train")
    online = section(ship, tmp_path, "sr", {"dataset": "div2k/bicubic_x2"})
    assert "images" not in online  # not known here


def test_an_aligner_card_scores_more_held_out_photos_on_the_same_protocol(ship):
    keras.utils.set_random_seed(0)
    model = models.build_model("aligner_tiny")
    args = argparse.Namespace(pairs_per_image=1, also_evaluate=["bundled_photos"], name="tiny")
    metrics = ship.plan_aligner(model, args).card["metrics"]
    also = metrics["also_held_out"]["bundled_photos"]
    # the same photos and seed: the same 5 pairs and scores as the card's own
    assert also["pairs"] == metrics["pairs"] == 5
    assert also["median_corner_error_px"] == metrics["median_corner_error_px"]
    assert also["identity"] == metrics["identity"]
    assert also["command"] == "keras-attn evaluate tiny --dataset bundled_photos --split validation"
