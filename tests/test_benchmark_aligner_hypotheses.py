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
    for k in ("1", "2"):
        for row in results[k].values():  # the best of K fails no more often than the one kept
            assert row["best_of_k_over_10px_percent"] <= row["over_10px_percent"]


def test_best_of_k_is_the_smallest_error_of_the_hypotheses(tiny_aligner, aligner_pairs):
    from keras_attn.training.evaluation import corner_error

    model, _ = tiny_aligner
    pairs = aligner_pairs[:4]
    one = aligner_hypotheses.with_every_hypothesis(aligner_hypotheses.with_hypotheses(model, 1))
    inputs = {
        "moving": np.stack([p.moving for p in pairs]),
        "fixed": np.stack([p.fixed for p in pairs]),
    }
    out = one.predict_on_batch(inputs)
    # one hypothesis: "every" is the estimate behind the published homography
    published, _ = aligner_hypotheses.HomographyOutputs(pairs[0].moving.shape[:2])(out["every"])
    np.testing.assert_allclose(published, out["homography"], atol=1e-5)
    # two: the published homography is one of the two refined hypotheses of its pair
    two = aligner_hypotheses.with_every_hypothesis(aligner_hypotheses.with_hypotheses(model, 2))
    out2 = two.predict_on_batch(inputs)
    every, _ = aligner_hypotheses.HomographyOutputs(pairs[0].moving.shape[:2])(out2["every"])
    every = np.asarray(every).reshape(len(pairs), 2, 3, 3)
    gaps = np.abs(every - np.asarray(out2["homography"])[:, None]).max(axis=(2, 3)).min(axis=1)
    assert (gaps < 1e-4).all()
    row = aligner_hypotheses.score(one, pairs)
    errors = [corner_error(h, p.corners, 64) for h, p in zip(out["homography"], pairs, strict=True)]
    assert row["best_of_k_over_10px_percent"] == np.mean(np.array(errors) > 10) * 100


def test_bad_source(tmp_path):
    with pytest.raises(SystemExit) as error:
        aligner_hypotheses.main(["--source", str(tmp_path / "nope.keras")])
    assert error.value.code == 2
