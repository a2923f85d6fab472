"""benchmarks/super_resolution.py: the held-out table (classical rows, one row per model), with
whole images and with overlapping tiles."""

import pathlib

import keras
import numpy as np

from keras_attn import models
from keras_attn.training import evaluation
from tests.helpers import load_script

REPO = pathlib.Path(__file__).resolve().parents[1]


def rows(table: str) -> dict[str, list[str]]:
    return {
        cells[1].strip(): [cell.strip() for cell in cells[2:-1]]
        for cells in (line.split("|") for line in table.splitlines() if line.startswith("| "))
    }


def test_quality_table_without_speed_whole_and_tiled(tmp_path, capsys):
    benchmark = load_script(REPO / "benchmarks" / "super_resolution.py", "sr_benchmark")
    keras.utils.set_random_seed(0)
    path = tmp_path / "tiny.keras"
    models.build_model("sr_tiny_x2").save(path)
    argv = ["--model", f"tiny={path}", "--dataset", "bundled_photos", "--no-speed"]
    assert benchmark.main(argv) == 0
    whole = rows(capsys.readouterr().out)
    assert list(whole) == [
        "method",
        "nearest",
        "bicubic",
        "lanczos3",
        "tiny",
    ]
    assert whole["method"] == ["PSNR-Y / SSIM-Y bundled_photos", "params"]
    # bicubic: the number every evaluation of the held-out photos reports
    pairs = evaluation.held_out_pairs(2)
    expected = evaluation.evaluate_super_resolution(None, 2, pairs).psnr_y
    assert float(whole["bicubic"][0].split("/")[0]) == round(expected, 2)
    assert whole["tiny"][1] == "16,404"

    assert benchmark.main([*argv, "--tile", "64"]) == 0
    tiled = rows(capsys.readouterr().out)
    # a small convolutional model sees less than the 16-pixel overlap: tiles change ~nothing
    psnr = [float(table["tiny"][0].split("/")[0]) for table in (whole, tiled)]
    assert np.isclose(*psnr, atol=0.02)
    assert tiled["bicubic"] == whole["bicubic"]

    assert benchmark.main([*argv, "--self-ensemble"]) == 0
    ensembled = rows(capsys.readouterr().out)
    assert list(ensembled)[-2:] == ["tiny", "tiny x8 self-ensemble"]
    model = keras.saving.load_model(path)
    outputs = [models.upscale(model, lr, self_ensemble=True) for _, lr, _ in pairs]
    expected = np.mean(
        [
            evaluation.score_upscaled(o, hr, 2)[0]
            for o, (_, _, hr) in zip(outputs, pairs, strict=True)
        ]
    )
    assert float(ensembled["tiny x8 self-ensemble"][0].split("/")[0]) == round(expected, 2)
