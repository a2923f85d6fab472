"""The aligner recipe: its settings and checks, starting from another aligner, and a tiny run
through `keras-attn train aligner` that writes an exportable model."""

import json

import keras
import numpy as np
import pytest

import keras_attn_cli as cli
from keras_attn.training import aligner_recipe
from keras_attn.training.aligner_recipe import AlignerRecipe


def run(capsys, *argv):
    """Runs the CLI in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_defaults_are_the_shipped_models_recipe():
    recipe = AlignerRecipe(output="x")
    assert recipe.model == "aligner_homography" and recipe.max_shift == 32.0
    assert (recipe.batch_size, recipe.warmup_steps, recipe.jit) == (8, 100, True)
    assert recipe.dataset == "bundled_photos" and recipe.val_split == "validation"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"model": "sr_tiny_x2"}, r"--model must be an aligner \(\[.*'aligner_tiny'.*'sr_tiny"),
        ({"model": "aligner_huge"}, r"Unknown model 'aligner_huge'"),
        ({"epochs": 0}, r"--epochs must be at least 1\. Received: 0"),
        ({"steps_per_epoch": 0}, r"--steps-per-epoch must be at least 1"),
        ({"batch_size": -2}, r"--batch-size must be at least 1"),
        ({"val_pairs_per_image": 0}, r"--val-pairs-per-image must be at least 1"),
    ],
)
def test_bad_settings_are_rejected(settings, message):
    with pytest.raises(ValueError, match=message):
        AlignerRecipe(output="x", **settings)


def test_load_aligner_names_the_flag_and_loads_a_saved_aligner(tiny_aligner, tmp_path):
    model, path = tiny_aligner
    loaded = aligner_recipe.load_aligner(path)
    for got, want in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=r"^--source '.*nope\.keras' does not exist"):
        aligner_recipe.load_aligner(tmp_path / "nope.keras", flag="--source")
    (tmp_path / "notes.txt").write_text("text")
    with pytest.raises(ValueError, match=r"^--init-from '.*notes\.txt' is not a \.keras file"):
        aligner_recipe.load_aligner(tmp_path / "notes.txt")


def test_train_aligner_help_states_its_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "aligner", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "(default: aligner_homography)" in out and "(default: 32.0)" in out


def test_train_aligner_starts_from_another_aligner_and_writes_an_exportable_model(
    tiny_aligner, photos_dir, tmp_path, capsys
):
    _, source = tiny_aligner
    output = tmp_path / "run"
    argv = [
        *("train", "aligner", "--model", "aligner_tiny", "--epochs", "1"),
        *("--steps-per-epoch", "2", "--batch-size", "2", "--val-pairs-per-image", "1"),
        *("--no-jit", "--data-dir", photos_dir, "--verbose", "0"),
        *("--init-from", source, "--output", output),
    ]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and f"initialised from {source}; not transferred: []" in out
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["command"].startswith("keras-attn train aligner --model aligner_tiny")
    assert metrics["init_from"] == str(source) and metrics["steps"] == 2
    assert metrics["val_pairs"] == 5 and np.isfinite(metrics["val_mace_px"])
    trained = keras.saving.load_model(output / "model.keras")
    assert sorted(trained.output) == ["flow", "homography", "warped"]  # exportable, no corners


def test_a_preset_with_hypotheses_trains_one_and_saves_them_all(
    photos_dir, tmp_path, capsys, monkeypatch
):
    """Training builds the single-hypothesis model (the loss follows hypothesis 0); the saved
    model is the preset, with its global hypotheses and the same weights."""
    import dataclasses

    from keras_attn.models import registry

    spec = registry.get_spec("aligner_tiny")
    with_hypotheses = dataclasses.replace(spec, defaults={**spec.defaults, "hypotheses": 2})
    monkeypatch.setitem(registry._REGISTRY, "aligner_tiny", with_hypotheses)
    built = []
    original = aligner_recipe.models.build_model

    def recording_build(name, /, **overrides):
        model = original(name, **overrides)
        built.append((overrides.get("hypotheses"), model))
        return model

    monkeypatch.setattr(aligner_recipe.models, "build_model", recording_build)
    output = tmp_path / "run"
    argv = [
        *("train", "aligner", "--model", "aligner_tiny", "--epochs", "1"),
        *("--steps-per-epoch", "1", "--batch-size", "2", "--val-pairs-per-image", "1"),
        *("--no-jit", "--data-dir", photos_dir, "--verbose", "0", "--output", output),
    ]
    code, _, _ = run(capsys, *argv)
    assert code == 0
    trained, exported = built[0][1], built[-1][1]
    assert built[0][0] == 1 and not any("select" in layer.name for layer in trained.layers)
    saved = keras.saving.load_model(output / "model.keras")
    assert any(layer.name == "aligner_tiny_select" for layer in saved.layers)
    for got, want in zip(saved.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert exported.count_params() == trained.count_params()


@pytest.fixture
def tiny_flow_preset(monkeypatch):
    """`aligner_tiny` with the dense-flow head, registered for this test only."""
    import dataclasses

    from keras_attn.models import registry

    spec = registry.get_spec("aligner_tiny")
    flow = dataclasses.replace(spec, defaults={**spec.defaults, "head": "flow"})
    monkeypatch.setitem(registry._REGISTRY, "aligner_tiny", flow)


@pytest.mark.parametrize("flow_loss", ["supervised", "photometric"])
def test_a_flow_aligner_started_from_a_homography_aligner_trains_only_its_flow_head(
    flow_loss, tiny_flow_preset, tiny_aligner, photos_dir, tmp_path, capsys
):
    source_model, source = tiny_aligner
    output = tmp_path / "run"
    argv = [
        *("train", "aligner", "--model", "aligner_tiny", "--epochs", "1"),
        *("--steps-per-epoch", "3", "--batch-size", "2", "--val-pairs-per-image", "1"),
        *("--no-jit", "--data-dir", photos_dir, "--verbose", "0", "--deformation", "4"),
        *("--flow-loss", flow_loss, "--learning-rate", "0.01"),
        *("--init-from", source, "--output", output),
    ]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "not transferred: ['aligner_tiny_flow_match'" in out
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["flow_loss"] == flow_loss and metrics["deformation"] == 4.0
    assert metrics["train_homography"] is False and np.isfinite(metrics["val_flow_epe_px"])
    trained = keras.saving.load_model(output / "model.keras")
    assert sorted(trained.output) == ["flow", "homography", "warped"]
    changed = set()
    for layer in trained.layers:
        if not layer.weights:
            continue
        before = (
            source_model.get_layer(layer.name)
            if layer.name in {s.name for s in source_model.layers}
            else None
        )
        if before is None:
            changed.add(layer.name)
            continue
        for got, want in zip(layer.get_weights(), before.get_weights(), strict=True):
            if not np.array_equal(got, want):
                changed.add(layer.name)
    # the homography stage (encoder, iterations) is the source's, bit for bit
    assert changed and all(name.startswith("aligner_tiny_flow") for name in changed)
    head = trained.get_layer("aligner_tiny_flow_context_out").get_weights()[0]
    assert np.abs(head).max() > 0  # started at zero, trained


def test_flow_settings_are_checked():
    with pytest.raises(ValueError, match=r"--flow-loss must be 'supervised' or 'photometric'"):
        AlignerRecipe(output="x", flow_loss="l2")
    with pytest.raises(ValueError, match=r"--deformation must be in \[0, max\(--max-shift, 1\)\]"):
        AlignerRecipe(output="x", deformation=50.0)
