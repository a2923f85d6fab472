"""How a run trains: `TrainConfig` (epochs x steps, learning rate, warm-up, weight decay, XLA,
logging) and the optimiser it makes (Adam or AdamW, linear warm-up then cosine decay).

Keras alone, no TensorFlow: the same schedule on every Keras backend (`scripts/portable_sr.py`
trains with it on JAX); `keras_attn.training.fit` uses it under TensorFlow.
"""

from __future__ import annotations

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train: epochs x steps, the optimiser schedule, XLA, logging."""

    epochs: int = 10
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    final_learning_rate_fraction: float = 0.01
    weight_decay: float | None = None
    clipnorm: float | None = None
    jit_compile: bool = False
    verbose: int | str = "auto"
    checkpoint_minutes: float = 10.0

    def __post_init__(self):
        for name in ("epochs", "steps_per_epoch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0. Received: {self.learning_rate!r}")
        if not self.checkpoint_minutes > 0:
            raise ValueError(
                f"checkpoint_minutes must be > 0. Received: {self.checkpoint_minutes!r}"
            )

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def learning_rate_schedule(config: TrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up to `learning_rate`, then cosine decay to a fraction of it."""
    warmup = min(config.warmup_steps, config.total_steps - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=max(1, config.total_steps - warmup),
        alpha=config.final_learning_rate_fraction,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    schedule = learning_rate_schedule(config)
    if config.weight_decay:
        return keras.optimizers.AdamW(
            schedule, weight_decay=config.weight_decay, clipnorm=config.clipnorm
        )
    return keras.optimizers.Adam(schedule, clipnorm=config.clipnorm)
