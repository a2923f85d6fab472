"""`package_model`: one catalogue folder (Keras, SavedModel, TFLite files and a card with their
sha256), written atomically, that `keras_attn.pretrained` verifies and loads."""

import shutil

import numpy as np
import pytest

from keras_attn import pretrained
from keras_attn.export import package


def tiny_card():
    return {"family": "sr", "task": "test", "key_metric": "psnr_y_db", "metrics": {"psnr_y_db": 1}}


@pytest.fixture(scope="module")
def packaged(sr_model, tmp_path_factory):
    """`package_model` run once: (root, the names `evaluate` saw in the temporary folder)."""
    root = tmp_path_factory.mktemp("catalogue")
    evaluated = []

    def evaluate(path):
        evaluated.append(sorted(p.name for p in path.iterdir()))
        return {"extra": 2.0}

    folder = pretrained.package_model(
        sr_model,
        "sr_tiny",
        root,
        card={**tiny_card(), "inputs": {"image": {"range": [0, 1]}}},
        quantizations=("float16",),
        evaluate=evaluate,
    )
    assert folder == root / "sr_tiny"
    return root, evaluated


def test_package_model_writes_a_verifiable_folder(sr_model, packaged, rng):
    root, evaluated = packaged
    folder = root / "sr_tiny"
    assert evaluated == [["model.keras", "model.tflite", "model_fp16.tflite", "saved_model"]]
    card = pretrained.card("sr_tiny", root=root)
    assert card["metrics"] == {"psnr_y_db": 1, "extra": 2.0}
    assert card["params"] == sr_model.count_params()
    assert card["inputs"] == [
        {"name": "image", "shape": [None, None, None, 3], "dtype": "float32", "range": [0, 1]}
    ]
    assert card["outputs"][0]["name"] == "upscaled"
    assert set(card["versions"]) >= {"keras_attn", "keras", "tensorflow", "python"}
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert set(card["files"]) == on_disk - {"card.json"}
    for relative, entry in card["files"].items():
        assert entry["sha256"] == pretrained.sha256_of(folder / relative)
    assert card["parity"]["tflite"]["model_fp16.tflite"]["max_abs_diff_vs_keras"]["upscaled"] < 5e-3
    x = rng.uniform(size=(1, 12, 10, 3)).astype("float32")
    expected = np.asarray(sr_model(x))
    np.testing.assert_allclose(pretrained.load("sr_tiny", root=root)(x), expected, atol=1e-6)
    tflite = pretrained.load("sr_tiny", "tflite", variant="fp16", root=root)
    np.testing.assert_allclose(tflite(x)["upscaled"], expected, atol=5e-3)


def test_failed_packaging_leaves_the_previous_folder(sr_model, packaged, tmp_path, monkeypatch):
    shutil.copytree(packaged[0] / "sr_tiny", tmp_path / "sr_tiny")
    before = {p: p.read_bytes() for p in (tmp_path / "sr_tiny").rglob("*") if p.is_file()}

    def broken_export(*args, **kwargs):
        raise RuntimeError("converter died halfway")

    monkeypatch.setattr(package, "export_tflite", broken_export)
    with pytest.raises(RuntimeError, match="converter died"):
        pretrained.package_model(
            sr_model, "sr_tiny", tmp_path, card={**tiny_card(), "task": "v2"}, quantizations=()
        )
    after = {p: p.read_bytes() for p in (tmp_path / "sr_tiny").rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr_tiny"]  # no temporary leftovers
    assert pretrained.card("sr_tiny", root=tmp_path)["task"] == "test"


def test_package_model_bad_arguments(sr_model, tmp_path):
    with pytest.raises(ValueError, match="representative_data"):
        pretrained.package_model(sr_model, "m", tmp_path, card=tiny_card(), quantizations=("int8",))
    with pytest.raises(ValueError, match="choose one"):
        pretrained.package_model(
            sr_model,
            "m",
            tmp_path,
            card=tiny_card(),
            quantizations=("dynamic", "int8"),
            representative_data=lambda: [],
        )
    with pytest.raises(ValueError, match="quantizations must be among"):
        pretrained.package_model(sr_model, "m", tmp_path, card=tiny_card(), quantizations=("q4",))
    assert not list(tmp_path.iterdir())
