"""scripts/ship_model.py: what a card says about the training data."""

import argparse
import json
import pathlib

import keras
import numpy as np
import pytest
from PIL import Image

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


def test_the_card_names_the_photos_each_dataset_trained_on(ship, tmp_path, monkeypatch):
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
    # a folder of the user's photos: its training split (validation.txt holds out the rest)
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("b_photo", "a_photo", "held"):
        Image.fromarray(data.load_photo("coffee")[:32, :32]).save(folder / f"{name}.png")
    (folder / "validation.txt").write_text("held.png\n")
    mixed = section(ship, tmp_path, "sr", {"dataset": f"bundled_photos+folder:{folder}"})
    assert mixed["images"] == data.photo_names("train") + ["a_photo", "b_photo"]
    assert mixed["dataset"] == f"bundled_photos+folder:{folder}"  # tmp_path is not in ~
    monkeypatch.setenv("HOME", str(tmp_path))
    log = {
        "dataset": f"bundled_photos+folder:{folder}",
        "command": f"train --dataset folder:{folder}",
    }
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(log))
    args = argparse.Namespace(
        family="sr", training_log=str(path), training_command="c", training_dataset=None
    )
    home = ship.training_section(args)
    assert home["data"]["dataset"] == "bundled_photos+folder:~/mine"
    assert home["log"]["dataset"] == "bundled_photos+folder:~/mine"
    assert home["log"]["command"] == "train --dataset folder:~/mine"
    assert home["data"]["images"] == mixed["images"]
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


def test_ms_per_call_is_the_median_after_one_warm_up_call(ship):
    seen = []
    ms = ship._ms_per_call(lambda batch: seen.append(batch.shape), np.zeros((1, 4)), calls=5)
    assert seen == [(1, 4)] * 6 and 0.0 <= ms < 1000.0


def test_sr_and_classifier_cards_time_keras_and_every_tflite_file(ship, tmp_path):
    """The zoo table's latency column comes from these keys (`ms_per_*` of model.tflite)."""
    from keras_attn.export import export_saved_model, export_tflite
    from keras_attn.pretrained import OUTPUT_NAMES

    keras.utils.set_random_seed(0)
    model = models.super_resolution(scale=2, channels=8, num_groups=1, blocks_per_group=1)
    plan = ship.plan_sr(model, argparse.Namespace(name="tiny", also_evaluate=None, int8="dynamic"))
    metrics = plan.card["metrics"]
    assert metrics["ms_per_256x256_image"] > 0.0
    assert metrics["evaluation"]["timing"].startswith("ms_per_256x256_image: median of 20 calls")
    assert "one 256x256 RGB input (512x512 out)" in metrics["evaluation"]["timing"]
    export_saved_model(model, tmp_path / "saved_model", output_names=list(OUTPUT_NAMES["sr"]))
    export_tflite(
        model,
        tmp_path / "model.tflite",
        saved_model_dir=tmp_path / "saved_model",
        output_names=list(OUTPUT_NAMES["sr"]),
    )
    tflite = plan.evaluate(tmp_path)["tflite"]
    assert list(tflite) == ["model.tflite"] and tflite["model.tflite"]["ms_per_256x256_image"] > 0

    classifier = models.build_model("attention_cnn_tiny", input_shape=(32, 32, 1), num_classes=10)
    args = argparse.Namespace(dataset="bundled_digits", int8="full")
    plan = ship.plan_classifier(classifier, args)
    assert plan.card["metrics"]["ms_per_image"] > 0.0
    assert "the first test image (32x32)" in plan.card["metrics"]["evaluation"]["timing"]


def test_the_card_counts_the_training_time_of_every_call_of_a_resumed_run(ship, tmp_path):
    # A resumed run's last call (here a rerun of the finished command) trained nothing: the
    # card's time comes from the steps/s of every epoch in history.csv, not from that call.
    log = {"epochs": 3, "steps": 300, "wall_time_s_this_call": 11.0, "bicubic": float("inf")}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(log))  # Infinity, as logs written before strict JSON hold
    args = argparse.Namespace(
        family="sr", training_log=str(path), training_command="c", training_dataset=None
    )
    training = ship.training_section(args)
    assert training["wall_time_s"] == 11.0  # no history: the log's time
    assert training["log"]["bicubic"] is None  # the card is strict JSON
    rows = ["epoch,loss,steps_per_s,wall_time", "0,1,4.0,1", "1,1,5.0,2", "2,1,10.0,3"]
    (tmp_path / "history.csv").write_text("\n".join(rows) + "\n")
    assert ship.training_section(args)["wall_time_s"] == 25.0 + 20.0 + 10.0
    # a history of another run length (or without the column) does not describe this log
    (tmp_path / "history.csv").write_text("\n".join(rows[:3]) + "\n")
    assert ship.training_section(args)["wall_time_s"] == 11.0
