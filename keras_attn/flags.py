"""Command-line flags generated from a training recipe's dataclass fields.

A recipe field `batch_size: int = setting(64, help="images per batch")` becomes the flag
`--batch-size` (type `int`, default 64, that help text); a field without a default is a required
flag; `X | None` fields take an `X` and default to None; `bool` fields are `--jit/--no-jit`;
`choices` (a sequence, or a function returning one) and `type` (a parser of the text) come from
the setting. The defaults are therefore written once, in the recipe, for `keras-attn train
FAMILY` and the example scripts alike.

    parser = argparse.ArgumentParser()
    add_recipe_flags(parser, ClassifierRecipe)
    recipe = recipe_from_args(ClassifierRecipe, parser.parse_args(argv))

or, for a script, `recipe = parse_recipe(ClassifierRecipe, argv, description=...)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from keras_attn.training.recipe_base import recipe_from_args


def _flag_type(annotation):
    """The scalar type of an annotation (`int | None` -> int)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            raise TypeError(f"a recipe field of type {annotation} needs a `type` in its setting")
        return members[0]
    return annotation


def add_recipe_flags(parser: argparse.ArgumentParser, recipe_class) -> None:
    """Adds one `--flag` per field of `recipe_class` (see the module docstring)."""
    hints = typing.get_type_hints(recipe_class)
    for field in dataclasses.fields(recipe_class):
        meta = dict(field.metadata)
        if "help" not in meta:
            raise TypeError(f"{recipe_class.__name__}.{field.name} is not a `setting(...)`")
        kwargs = {"help": meta.pop("help"), "dest": field.name}
        choices = meta.pop("choices", None)
        if callable(choices):
            choices = choices()
        required = field.default is dataclasses.MISSING
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = field.default
        parse = meta.pop("type", None)
        if meta:
            raise TypeError(f"{recipe_class.__name__}.{field.name}: unknown settings {list(meta)}")
        annotation = hints[field.name]
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = parse or _flag_type(annotation)
            if choices is not None:
                kwargs["choices"] = list(choices)
        parser.add_argument("--" + field.name.replace("_", "-"), **kwargs)


def parse_recipe(recipe_class, argv: list[str] | None = None, *, description: str = ""):
    """The recipe of a script's command line (`argv`, default `sys.argv[1:]`); a bad value is
    argparse's one-line usage error (exit status 2)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_recipe_flags(parser, recipe_class)
    args = parser.parse_args(argv)
    try:
        return recipe_from_args(recipe_class, args)
    except ValueError as error:
        parser.error(str(error))
