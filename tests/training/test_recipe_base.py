"""What every recipe shares: its settings, the run wrapper (seed, precision, metrics.json) and the
training schedule taken from the settings."""

import argparse
import dataclasses
import json

import keras
import numpy as np
import pytest

from keras_attn.training import recipe_base
from keras_attn.training.recipe_base import Recipe


def test_verbosity_is_auto_or_an_integer():
    assert recipe_base.verbosity("auto") == "auto"
    assert recipe_base.verbosity("2") == 2
    with pytest.raises(ValueError):
        recipe_base.verbosity("loud")


def test_a_setting_is_a_field_with_its_help_and_flag_properties():
    field = recipe_base.setting(3, help="how many", choices=(1, 3))
    assert field.default == 3
    assert dict(field.metadata) == {"help": "how many", "choices": (1, 3)}
    with pytest.raises(ValueError, match="needs a help text"):
        recipe_base.setting(3)


def test_recipe_needs_an_output_and_is_frozen(tmp_path):
    with pytest.raises(TypeError):
        Recipe()  # the output folder has no default
    recipe = Recipe(output=str(tmp_path), epochs=2)
    assert recipe.epochs == 2 and recipe.seed == 0 and recipe.strategy == "default"
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.epochs = 3
    assert all(field.metadata["help"] for field in dataclasses.fields(Recipe))


def test_recipe_from_args_takes_the_fields_of_the_same_names(tmp_path):
    defaults = Recipe(output="x")
    values = {field.name: getattr(defaults, field.name) for field in dataclasses.fields(Recipe)}
    values.update(output=str(tmp_path), epochs=7, seed=11)
    args = argparse.Namespace(**values, unrelated="ignored")
    recipe = recipe_base.recipe_from_args(Recipe, args)
    assert recipe == Recipe(output=str(tmp_path), epochs=7, seed=11)


def test_train_config_carries_the_recipe_schedule():
    recipe = Recipe(
        output="x",
        epochs=3,
        learning_rate=0.01,
        warmup_steps=5,
        jit=True,
        verbose=0,
        checkpoint_minutes=2.5,
    )
    config = recipe_base.train_config(recipe, 7, weight_decay=0.1)
    assert (config.epochs, config.steps_per_epoch, config.total_steps) == (3, 7, 21)
    assert (config.learning_rate, config.warmup_steps, config.weight_decay) == (0.01, 5, 0.1)
    assert config.jit_compile is True and config.verbose == 0
    assert config.checkpoint_minutes == 2.5
    assert recipe_base.train_config(recipe, 7).weight_decay is None


def test_run_recipe_seeds_applies_the_policy_and_writes_metrics(tmp_path, capsys):
    recipe = Recipe(output=str(tmp_path / "run"), seed=3, precision="mixed_bfloat16", batch_size=4)
    seen = {}

    def body(output, strategy):
        seen["output"] = output
        seen["policy"] = keras.config.dtype_policy().name
        seen["draw"] = np.random.random()
        return {"model": "toy", "score": 0.5}

    summary = recipe_base.run_recipe(recipe, "keras-attn train toy --seed 3", body)
    np.random.seed(3)
    assert seen["draw"] == np.random.random()  # seeded with the recipe's seed first
    assert seen["output"] == tmp_path / "run" and seen["output"].is_dir()
    assert seen["policy"] == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # restored afterwards
    assert list(summary)[:3] == ["model", "command", "score"]
    assert summary["command"] == "keras-attn train toy --seed 3" and summary["score"] == 0.5
    assert summary["strategy"] == "default" and summary["replicas"] == 1
    assert summary["wall_time_s_this_call"] >= 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == summary
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.json"]
    assert "1 replica" in capsys.readouterr().out  # the line saying what runs where


def test_metrics_json_is_strict_json_when_a_baseline_is_infinite(tmp_path):
    # bicubic reproduces a flat validation tile exactly: its mean PSNR is infinite, and the gain
    # over it minus infinity; JSON has neither, so metrics.json records null
    recipe = Recipe(output=str(tmp_path))

    def body(output, strategy):
        baseline = float("inf")
        return {
            "model": "toy",
            "bicubic": baseline,
            "gain": 40.0 - baseline,
            "nested": {"nan": float("nan"), "ok": [1.5, float("-inf")]},
        }

    summary = recipe_base.run_recipe(recipe, "cmd", body)
    assert summary["bicubic"] == float("inf")  # the returned summary keeps Python's values
    text = (tmp_path / "metrics.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    written = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert written["bicubic"] is None and written["gain"] is None
    assert written["nested"] == {"nan": None, "ok": [1.5, None]}


def test_run_recipe_restores_the_policy_and_writes_nothing_when_the_body_fails(tmp_path):
    recipe = Recipe(output=str(tmp_path), precision="mixed_float16")

    def body(output, strategy):
        assert keras.config.dtype_policy().name == "mixed_float16"
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        recipe_base.run_recipe(recipe, "cmd", body)
    assert keras.config.dtype_policy().name == "float32"
    assert not (tmp_path / "metrics.json").exists()
