"""keras_attn.flags: the flags of `keras-attn train FAMILY` and the example scripts come from
the recipe dataclasses' fields, so a default or a help text is written once."""

import argparse
import dataclasses

import pytest

from keras_attn.flags import add_recipe_flags, parse_recipe
from keras_attn.training.recipe_base import Recipe, recipe_from_args, setting
from keras_attn.training.recipes import TRAINERS, ClassifierRecipe, SuperResolutionRecipe


def _parser(recipe_class) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_recipe_flags(parser, recipe_class)
    return parser


@pytest.mark.parametrize("family", sorted(TRAINERS))
def test_parsed_defaults_are_the_dataclass_defaults(family):
    recipe_class, _ = TRAINERS[family]
    parser = _parser(recipe_class)
    recipe = recipe_from_args(recipe_class, parser.parse_args(["--output", "run"]))
    assert recipe == recipe_class(output="run")
    # Every field is a flag, and every flag a field: nothing hand-copied on either side.
    flags = {a.dest for a in parser._actions if a.dest != "help"}
    assert flags == {f.name for f in dataclasses.fields(recipe_class)}
    assert all(a.help for a in parser._actions)


def test_types_booleans_optionals_and_choices():
    parser = _parser(TRAINERS["aligner"][0])
    args = parser.parse_args(
        ["--output", "o", "--no-jit", "--precision", "mixed_bfloat16", "--steps-per-epoch", "5"]
    )
    assert args.jit is False and args.precision == "mixed_bfloat16" and args.steps_per_epoch == 5
    assert parser.parse_args(["--output", "o"]).jit is True  # the aligner's own default
    assert parser.parse_args(["--output", "o", "--verbose", "2"]).verbose == 2
    assert parser.parse_args(["--output", "o"]).verbose == "auto"

    classifier = _parser(ClassifierRecipe)
    args = classifier.parse_args(["--output", "o", "--weight-decay", "0.05", "--seed", "3"])
    assert args.weight_decay == 0.05 and args.seed == 3 and args.steps_per_epoch is None
    assert classifier.parse_args(["--output", "o", "--model", "classifier_fashion"]).model == (
        "classifier_fashion"
    )
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 'bogus'"):
        classifier.parse_args(["--output", "o", "--model", "bogus"])
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 5"):
        _parser(SuperResolutionRecipe).parse_args(["--output", "o", "--scale", "5"])
    with pytest.raises(argparse.ArgumentError, match="invalid int value: 'x'"):
        classifier.parse_args(["--output", "o", "--epochs", "x"])


def test_parse_recipe_reports_bad_values_as_usage_errors(capsys):
    recipe = parse_recipe(ClassifierRecipe, ["--output", "o", "--label-smoothing", "0.1"])
    assert recipe.label_smoothing == 0.1 and recipe.output == "o"
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe(ClassifierRecipe, ["--output", "o", "--label-smoothing", "1.5"])
    assert exit_info.value.code == 2
    assert "--label-smoothing must be in [0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_recipe(ClassifierRecipe, [])  # --output is required
    assert "the following arguments are required: --output" in capsys.readouterr().err


def test_fields_must_be_settings_with_help():
    with pytest.raises(ValueError, match="help text"):
        setting(3)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Bare(Recipe):
        extra: int = 3

    with pytest.raises(TypeError, match=r"Bare.extra is not a `setting"):
        _parser(Bare)


def test_the_command_line_shows_every_field(capsys):
    import keras_attn_cli

    parser = keras_attn_cli.build_parser(["train", "classifier", "--help"])
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "classifier", "--help"])
    text = capsys.readouterr().out
    for field in dataclasses.fields(ClassifierRecipe):
        assert "--" + field.name.replace("_", "-") in text
    assert "--no-jit" in text and "(Fashion-MNIST recipe: 0.5)" in text
