"""Model registry (after timm): named presets of the builders, built by name with overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "classifier", "aligner" or "sr"
    builder: Callable[..., keras.Model]
    defaults: dict
    description: str


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, family: str, builder: Callable[..., keras.Model], description: str = "", **defaults
) -> None:
    """Registers `builder(**defaults)` under `name`; names are unique."""
    if name in _REGISTRY:
        raise ValueError(f"A model named {name!r} is already registered.")
    _REGISTRY[name] = ModelSpec(name, family, builder, dict(defaults), description)


def list_models(family: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally of one family."""
    return sorted(n for n, spec in _REGISTRY.items() if family in (None, spec.family))


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Registered models: {list_models()}")
    return _REGISTRY[name]


def build_model(name: str, /, **overrides) -> keras.Model:
    """Builds the registered model `name`; keyword arguments override its preset (`name=`
    too: the Keras model's name, which defaults to the preset's)."""
    spec = get_spec(name)
    kwargs = {**spec.defaults, **overrides}
    kwargs.setdefault("name", name)
    return spec.builder(**kwargs)
