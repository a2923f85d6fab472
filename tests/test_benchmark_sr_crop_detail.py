"""benchmarks/sr_crop_detail.py on the bundled photos: the table and every number behind it."""

import json
import pathlib

import numpy as np

from keras_attn import data
from tests.helpers import load_script

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_table_counts_the_flat_crops_of_the_stream_and_the_tiles(photos_dir, tmp_path, capsys):
    benchmark = load_script(REPO / "benchmarks" / "sr_crop_detail.py", "sr_crop_detail")
    out = tmp_path / "detail.json"
    argv = ["--dataset", "bundled_photos", "--val-dataset", "bundled_photos", "--batches", "4"]
    argv += ["--min-detail", "5", "--data-dir", photos_dir, "--json", str(out)]
    assert benchmark.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| crops | count | share under 5 | median detail |" in printed
    rows = json.loads(out.read_text())["rows"]
    every = rows["bundled_photos training crops"]
    kept = rows["bundled_photos training crops, --min-detail 5"]
    assert every["count"] == kept["count"] == 64
    assert kept["share_under"] < every["share_under"]  # the flat crops are mostly dropped
    assert kept["median"] > every["median"]
    tiles = data.super_resolution_dataset(
        "bundled_photos", "validation", 2, 96, 16, training=False, data_dir=photos_dir
    )
    values = np.concatenate([data.super_resolution.crop_detail(*pair).numpy() for pair in tiles])
    validation = rows["bundled_photos validation tiles"]
    assert validation["count"] == len(values)
    assert np.isclose(validation["median"], np.median(values), rtol=1e-6)
    assert f"| bundled_photos validation tiles | {len(values)} |" in printed
