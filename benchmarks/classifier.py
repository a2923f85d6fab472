"""Classifier benchmark: plain ResNet vs each attention type on the digits, at equal parameters.

Answers issue #5. On scikit-learn's bundled digits (`bundled_digits`: fixed stratified split,
1,438 train / 359 test scans, upscaled to 32x32 grayscale) it trains, for several seeds, the
`classifier_digits` layout (small stem, 3 stages x 1 basic residual block) without attention
(`plain`) and with each attention type, and measures training throughput with and without XLA:

- Equal parameter count. The budget is the plain CNN at the preset widths (16, 32, 64):
  78,426 parameters (the shipped SE `classifier_digits` has 81,254). For every other variant the
  widths are the preset widths times one factor, each rounded to a multiple of 4 and at least 16
  (TF's oneDNN crashes on gradients through stride-2 convolutions with fewer channels), and the
  factor is the one whose parameter count is closest to the budget (bisection over the distinct
  width tuples of factors 0.5-2.5: the count grows with the factor). A variant more than
  `--tolerance` (10 %) away is flagged in the table and never called ">= plain".
- Where the attention goes (`TYPE@STAGES` overrides, e.g. `self@23`): `se`, `cbam`, `spatial`
  gate the residual branch in every stage (SENet, CBAM); `nonlocal` follows the stages 2-3
  (16x16, 8x8; Wang et al. put non-local blocks in res3/res4, not at the highest resolution);
  `self` replaces the second 3x3 convolution in stage 3 only (BoTNet, the `botnet` preset).
  In every stage, attention at 32x32 (1,024 tokens) costs ~1.5 s (`nonlocal`) and ~20 s
  (`self`) per batch-64 step on a 2-core CPU instead of ~0.3 s.
- Accuracy. The recipe of the shipped model (examples/train_classifier.py): batch 64, Adam with
  a cosine decay from 2e-3 to 2e-5 and no warm-up, label smoothing 0.1, random translations of
  up to 4 pixels, one pass over the train split per epoch (23 steps), no XLA; seed s sets the
  weights, the shuffle and the augmentation (`keras.utils.set_random_seed(s)` after
  `keras.backend.clear_session()`). Test accuracy on all 359 test scans after the last epoch:
  mean +- sample std over seeds, min-max, errors per seed, and whether the mean reaches the
  plain CNN's mean. The shipped model (40 epochs) scored 99.72 % (1 error); after its epoch 10
  its test accuracy moved between 98.05 % and 100 % from one epoch to the next. One error is
  0.28 %: read small gaps against the std.
- Throughput. Images/s of the training step (`train_on_batch` on one fixed batch, so the input
  pipeline is not timed), compiled with `jit_compile=False` and with `jit_compile=True` (passed
  explicitly: "auto" means no XLA on a CPU), after `--throughput-warmup` steps (XLA compiles on
  the first), over `--throughput-steps` steps, from the first seed's initial weights. The shape
  never changes, so XLA compiles once. CPU timings move with the machine's load: compare rows
  of one run, not runs.

Progress goes to stderr, the Markdown table to stdout, every number (per-seed accuracies, step
times, fit times) to `--json`.

Run:
    python benchmarks/classifier.py --json runs/benchmark_classifier.json   # the full table
    python benchmarks/classifier.py --epochs 1 --seeds 0 --attention plain,se \
        --throughput-steps 3                                                 # smoke, ~2 minutes

Duration of the default run (6 variants x 3 seeds x 20 epochs x 23 steps, 12 throughput
measurements), estimated from the smoke run above on the 2-core CPU while another training job
kept it busy (load ~4): a steady no-XLA train step of batch 64 took 0.13 s (plain, se), and
cbam, spatial, nonlocal up to ~1.7x that (6 variants ~ 7.6 plain steps); an XLA warm-up
(compilation) 11-12 s, an XLA step 0.30-0.35 s. Training: 3 x 460 x 7.6 plain steps at
0.13-0.3 s = 23-52 minutes; tracing and evaluation per run ~3 minutes in all; throughput ~5
minutes; width search under 1 minute: about 30-60 minutes in all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attn.data import classification  # noqa: E402
from keras_attn.layers.registry import ATTENTION_LAYERS  # noqa: E402
from keras_attn.models import registry  # noqa: E402
from keras_attn.models.classifier import attention_classifier  # noqa: E402
from keras_attn.training.fit import TrainConfig, make_optimizer  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from complexity import closest_to_budget  # noqa: E402  (benchmarks/complexity.py)

PRESET = dict(registry.get_spec("classifier_digits").defaults)  # a copy: never edit the registry
DATASET = "bundled_digits"
NUM_CLASSES = PRESET["num_classes"]
CHANNELS = PRESET["input_shape"][-1]
PLAIN = "plain"
# Stages (counted from 1) that get each attention type unless `TYPE@STAGES` says otherwise.
DEFAULT_STAGES = {
    "se": (1, 2, 3),
    "cbam": (1, 2, 3),
    "spatial": (1, 2, 3),
    "nonlocal": (2, 3),
    "self": (3,),
}
DEFAULT_VARIANTS = (PLAIN, "se", "cbam", "spatial", "nonlocal", "self")
WIDTH_MULTIPLE = 4
MIN_WIDTH = 16  # oneDNN crashes on stride-2 convolution gradients below 16 channels
FACTORS = np.round(np.arange(0.5, 2.5001, 0.005), 3)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What `run_benchmark` trains and times; the flags of `main`."""

    variants: tuple[str, ...] = DEFAULT_VARIANTS
    epochs: int = 20
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 64
    image_size: int = 32
    steps_per_epoch: int | None = None  # None: one pass over the train split
    learning_rate: float = 2e-3
    label_smoothing: float = 0.1
    throughput_steps: int = 30
    throughput_warmup: int = 5
    tolerance: float = 0.10
    data_dir: str | None = None


# --------------------------------------------------------------------------- variants and widths


def parse_variant(spec: str, num_stages: int) -> tuple | None:
    """`"plain"` -> `None`; `"se"` / `"nonlocal@23"` -> the per-stage attention list."""
    name, _, stages = spec.strip().lower().partition("@")
    if name == PLAIN and not stages:
        return None
    if name not in ATTENTION_LAYERS:
        raise ValueError(
            f"Unknown attention {name!r} in {spec!r}: use {PLAIN!r} or one of "
            f"{list(ATTENTION_LAYERS)}, optionally with @STAGES (e.g. 'self@3')."
        )
    if stages and not (stages.isdigit() and all(1 <= int(s) <= num_stages for s in stages)):
        raise ValueError(f"Stages of {spec!r} must be digits in 1..{num_stages}.")
    chosen = tuple(int(s) for s in stages) if stages else DEFAULT_STAGES[name]
    return tuple(name if stage in chosen else None for stage in range(1, num_stages + 1))


def build(attention, widths, image_size: int = 32) -> keras.Model:
    return attention_classifier(
        (image_size, image_size, CHANNELS),
        NUM_CLASSES,
        attention=attention,
        widths=widths,
        depths=PRESET["depths"],
        stem=PRESET.get("stem", "small"),
    )


def scaled_widths(factor: float) -> tuple[int, ...]:
    """The preset widths times `factor`, each rounded to a multiple of `WIDTH_MULTIPLE` and at
    least `MIN_WIDTH`."""
    return tuple(
        max(MIN_WIDTH, WIDTH_MULTIPLE * round(width * factor / WIDTH_MULTIPLE))
        for width in PRESET["widths"]
    )


def match_widths(attention, budget: int) -> tuple[tuple[int, ...], int]:
    """The widths (uniformly scaled preset widths) whose parameter count is closest to `budget`,
    and that count. Counts grow with the factor, so a bisection needs ~8 model builds."""
    candidates = list(dict.fromkeys(scaled_widths(factor) for factor in FACTORS))

    def params(widths) -> int:
        count = build(attention, widths).count_params()
        keras.backend.clear_session()
        return count

    return closest_to_budget(candidates, params, budget)


# --------------------------------------------------------------------------- training and timing


def datasets(settings: Settings, seed: int):
    """(endless augmented train batches, test batches), labels one-hot for label smoothing."""

    def load(split, training):
        return classification.classification_dataset(
            DATASET,
            split,
            settings.batch_size,
            settings.image_size,
            training,
            data_dir=settings.data_dir,
            seed=seed,
            channels=CHANNELS,
        )

    def one_hot(images, labels):
        return images, tf.one_hot(labels, NUM_CLASSES)

    return load("train", True).map(one_hot), load("test", False)


def compiled_model(attention, widths, settings: Settings, steps_per_epoch: int, jit: bool):
    model = build(attention, widths, settings.image_size)
    config = TrainConfig(
        epochs=settings.epochs,
        steps_per_epoch=steps_per_epoch,
        learning_rate=settings.learning_rate,
    )
    model.compile(
        optimizer=make_optimizer(config),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=jit,
    )
    return model


def train_and_evaluate(attention, widths, seed: int, settings: Settings, steps: int) -> dict:
    """Trains one variant from scratch with `seed`; test accuracy and errors after training."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    train_data, test_data = datasets(settings, seed)
    model = compiled_model(attention, widths, settings, steps, jit=False)
    started = time.perf_counter()
    model.fit(train_data, epochs=settings.epochs, steps_per_epoch=steps, shuffle=False, verbose=0)
    fit_seconds = time.perf_counter() - started
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in test_data])
    predicted = np.argmax(model.predict(test_data, verbose=0), axis=-1)
    errors = int(np.sum(predicted != labels))
    return {
        "seed": seed,
        "accuracy": 1.0 - errors / len(labels),
        "errors": errors,
        "test_examples": len(labels),
        "fit_seconds": fit_seconds,
        "fit_images_per_s": settings.epochs * steps * settings.batch_size / fit_seconds,
    }


def training_throughput(attention, widths, seed: int, settings: Settings, jit: bool) -> dict:
    """Images/s of the compiled train step on one fixed batch, after a warm-up."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    images, targets = next(iter(datasets(settings, seed)[0]))
    model = compiled_model(attention, widths, settings, 1, jit=jit)
    started = time.perf_counter()
    for _ in range(settings.throughput_warmup):
        model.train_on_batch(images, targets)  # returns numpy logs: the step has finished
    warmup_seconds = time.perf_counter() - started
    step_seconds = []
    for _ in range(settings.throughput_steps):
        started = time.perf_counter()
        model.train_on_batch(images, targets)
        step_seconds.append(time.perf_counter() - started)
    return {
        "jit_compile_requested": jit,
        "jit_compile_used": bool(model.jit_compile),  # Keras turns it off for unsupported layers
        "images_per_s": settings.batch_size * len(step_seconds) / sum(step_seconds),
        "median_step_s": statistics.median(step_seconds),
        "step_seconds": step_seconds,
        "warmup_seconds": warmup_seconds,
    }


# --------------------------------------------------------------------------- the benchmark


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_benchmark(settings: Settings) -> dict:
    """Matches widths, trains every variant for every seed, times the train step; all numbers."""
    started = time.perf_counter()
    num_stages = len(PRESET["widths"])
    attentions = {spec: parse_variant(spec, num_stages) for spec in settings.variants}
    steps = settings.steps_per_epoch or math.ceil(
        classification.num_examples(DATASET, "train", settings.data_dir) / settings.batch_size
    )
    budget = build(None, PRESET["widths"]).count_params()
    keras.backend.clear_session()
    log(f"parameter budget: plain CNN at widths {PRESET['widths']}: {budget:,}")

    variants = {}
    for spec, attention in attentions.items():
        if attention is None:  # the reference itself
            widths, params = tuple(PRESET["widths"]), budget
        else:
            widths, params = match_widths(attention, budget)
        off = params / budget - 1.0
        matched = abs(off) <= settings.tolerance
        variants[spec] = {
            "attention": attention,
            "widths": widths,
            "params": params,
            "params_vs_budget": off,
            "matched": matched,
        }
        log(
            f"{spec}: widths {widths}, {params:,} params ({off:+.1%}, "
            f"{'within' if matched else 'NOT within'} ±{settings.tolerance:.0%})"
        )

    for spec, variant in variants.items():
        attention, widths = variant["attention"], variant["widths"]
        variant["throughput"], variant["xla_speedup"] = {}, None
        if settings.throughput_steps > 0:
            for key, jit in (("no_xla", False), ("xla", True)):
                timing = training_throughput(attention, widths, settings.seeds[0], settings, jit)
                variant["throughput"][key] = timing
                log(f"{spec}: {timing['images_per_s']:.0f} img/s with jit_compile={jit}")
            variant["xla_speedup"] = (
                variant["throughput"]["xla"]["images_per_s"]
                / variant["throughput"]["no_xla"]["images_per_s"]
            )
        variant["runs"] = []
        for seed in settings.seeds:
            run = train_and_evaluate(attention, widths, seed, settings, steps)
            variant["runs"].append(run)
            log(
                f"{spec} seed {seed}: test accuracy {run['accuracy']:.2%} "
                f"({run['errors']}/{run['test_examples']} errors), fit {run['fit_seconds']:.0f} s"
            )
        accuracies = [run["accuracy"] for run in variant["runs"]]
        variant["accuracy_mean"] = statistics.fmean(accuracies)
        variant["accuracy_std"] = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        variant["accuracy_min"], variant["accuracy_max"] = min(accuracies), max(accuracies)

    plain = next((v for v in variants.values() if v["attention"] is None), None)
    for variant in variants.values():
        variant["mean_at_least_plain"] = (
            None if plain is None else variant["accuracy_mean"] >= plain["accuracy_mean"]
        )

    return {
        "settings": dataclasses.asdict(settings),
        "dataset": DATASET,
        "preset": "classifier_digits",
        "depths": PRESET["depths"],
        "steps_per_epoch": steps,
        "budget": {"params": budget, "reference": f"plain CNN at widths {PRESET['widths']}"},
        "variants": variants,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "cpu_count": os.cpu_count(),
        "wall_seconds": time.perf_counter() - started,
    }


def markdown_table(results: dict) -> str:
    tolerance = results["settings"]["tolerance"]
    lines = [
        "| attention | widths | params (vs budget) | acc mean ± std | min–max | errors/359 "
        "per seed | >= plain? | img/s no-XLA | img/s XLA | XLA speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec, v in results["variants"].items():
        label = spec
        if v["attention"] is not None:
            stages = ",".join(str(i) for i, a in enumerate(v["attention"], start=1) if a)
            label = f"{spec.partition('@')[0]} (stages {stages})"
        params = f"{v['params']:,} ({v['params_vs_budget']:+.1%})"
        if not v["matched"]:
            params += f" **not within ±{tolerance:.0%}**"
            verdict = "n/a (not matched)"
        elif v["mean_at_least_plain"] is None:
            verdict = "- (no plain run)"
        else:
            verdict = "yes" if v["mean_at_least_plain"] else "no"
        if v["throughput"]:
            no_xla, xla = v["throughput"]["no_xla"], v["throughput"]["xla"]
            xla_note = "" if xla["jit_compile_used"] else " (Keras turned XLA off)"
            speed = (
                f"{no_xla['images_per_s']:.0f} | {xla['images_per_s']:.0f}{xla_note} | "
                f"{v['xla_speedup']:.2f}x"
            )
        else:
            speed = "- | - | -"
        lines.append(
            f"| {label} | {'/'.join(map(str, v['widths']))} | {params} | "
            f"{v['accuracy_mean']:.2%} ± {100 * v['accuracy_std']:.2f} | "
            f"{v['accuracy_min']:.2%}–{v['accuracy_max']:.2%} | "
            f"{' / '.join(str(run['errors']) for run in v['runs'])} | {verdict} | {speed} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Plain vs attention classifiers on the digits at equal parameter count.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = Settings()
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs per run")
    parser.add_argument(
        "--seeds", default=",".join(map(str, defaults.seeds)), help="comma-separated seeds"
    )
    parser.add_argument(
        "--attention",
        default=",".join(defaults.variants),
        help="comma-separated variants: plain or TYPE[@STAGES], e.g. self@3",
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="batch size")
    parser.add_argument(
        "--throughput-steps",
        type=int,
        default=defaults.throughput_steps,
        help="timed train steps per throughput measurement (0: no throughput)",
    )
    parser.add_argument(
        "--throughput-warmup",
        type=int,
        default=defaults.throughput_warmup,
        help="untimed train steps before them (XLA compiles on the first)",
    )
    parser.add_argument(
        "--tolerance", type=float, default=defaults.tolerance, help="allowed params mismatch"
    )
    parser.add_argument("--data-dir", help="tfds data directory (None: tfds's own)")
    parser.add_argument("--json", help="write every number (per-seed too) to this JSON file")
    args = parser.parse_args(argv)
    settings = Settings(
        variants=tuple(s.strip() for s in args.attention.split(",") if s.strip()),
        epochs=args.epochs,
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        batch_size=args.batch_size,
        throughput_steps=args.throughput_steps,
        throughput_warmup=args.throughput_warmup,
        tolerance=args.tolerance,
        data_dir=args.data_dir,
    )
    for spec in settings.variants:
        try:
            parse_variant(spec, len(PRESET["widths"]))
        except ValueError as error:
            parser.error(str(error))

    results = run_benchmark(settings)
    print(
        f"{DATASET} (train 1,438 / test 359), {settings.epochs} epochs x "
        f"{results['steps_per_epoch']} steps of batch {settings.batch_size}, seeds "
        f"{', '.join(map(str, settings.seeds))}; params budget {results['budget']['params']:,} "
        f"({results['budget']['reference']}, ±{settings.tolerance:.0%}); "
        f"wall time {results['wall_seconds'] / 60:.1f} min"
    )
    print(markdown_table(results))
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
