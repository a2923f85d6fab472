"""benchmarks/aligner_hypotheses.py on the tiny aligner: K = 1 is the source model itself."""

import json
import pathlib

import numpy as np
import pytest

from tests.helpers import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
aligner_hypotheses = load_script(
    ROOT / "benchmarks" / "aligner_hypotheses.py", "benchmark_aligner_hypotheses"
)


def test_one_hypothesis_rebuild_equals_the_source(tiny_aligner, aligner_pairs):
    model, _ = tiny_aligner
    rebuilt = aligner_hypotheses.with_hypotheses(model, 1)
    inputs = {
        "moving": np.stack([p.moving for p in aligner_pairs[:3]]),
        "fixed": np.stack([p.fixed for p in aligner_pairs[:3]]),
    }
    np.testing.assert_allclose(
        rebuilt(inputs)["homography"], model(inputs)["homography"], atol=1e-6
    )
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    assert aligner_hypotheses.with_hypotheses(model, 3).count_params() == model.count_params()


def test_table_and_json(tiny_aligner, photos_dir, tmp_path, capsys, monkeypatch):
    _, path = tiny_aligner
    monkeypatch.setenv("KERAS_ATTN_PHOTO_COLLECTION", str(tmp_path / "not_fetched"))
    out = tmp_path / "results.json"
    argv = ["--source", str(path), "--hypotheses", "1", "2", "--pairs-per-image", "1"]
    assert aligner_hypotheses.main([*argv, "--data-dir", photos_dir, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "photo collection skipped" in printed
    assert printed.count("| bundled rho 32 |") == 2
    results = json.loads(out.read_text())
    assert set(results) == {"1", "2"}
    assert results["1"]["bundled rho 32"]["pairs"] == 5


def test_bad_source(tmp_path):
    with pytest.raises(SystemExit) as error:
        aligner_hypotheses.main(["--source", str(tmp_path / "nope.keras")])
    assert error.value.code == 2
