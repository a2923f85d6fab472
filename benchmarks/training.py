"""Training benchmark: train-step throughput with XLA off/on x float32 / mixed_bfloat16 /
mixed_float16, and the
input pipeline against the train step, for each model family.

Answers issue #7 items 4 and 5. Every family is set up as its training recipe sets it up (same
preset, batch, loss, metrics, optimizer, schedule and pipeline; `keras_attn.training`):

- `sr`: `sr_small_x2` on 96x96 HR crops (48x48 LR), batch 16, Charbonnier loss, PSNR-Y and
  SSIM-Y metrics, Adam with warm-up (`train_super_resolution`); unit: images (LR/HR pairs).
- `classifier`: `classifier_digits` on 32x32x1, batch 64, sparse cross-entropy, accuracy
  (`train_classifier`, no label smoothing); unit: images.
- `aligner`: `aligner_homography` built with `return_corners=True` and trained through its
  corner output (`keras.Model(inputs, corners)`), `CornerLoss`, mean corner error, Adam with
  `clipnorm=1` (`aligner_recipe`), batch 8; unit: image pairs.

Item 4, throughput. For each family and each of the four settings `jit_compile=False` / `True`
(passed explicitly: "auto" means no XLA on a CPU) x `float32` / `mixed_bfloat16` /
`mixed_float16` (set with
`keras.config.set_dtype_policy` before the model is built and restored afterwards;
`keras.backend.clear_session()` before every case; Keras wraps the optimizer in a
`LossScaleOptimizer` under mixed_float16) the model is compiled and trained with
`model.train_on_batch` on one fixed batch taken from the real training pipeline, so the input
pipeline is not timed. The first step is timed alone ("first step": tracing, plus XLA compilation
when on); `--warmup` steps in all (the first included) run untimed, then `--steps` timed steps.
Reported: the median step time and images/s = batch / median step. A case that raises is caught
and its error's first line is reported instead. "Default" is the setting with the shortest median
step per family (the README states the training defaults from it).

Item 5, input pipeline vs model. The same training `tf.data` pipeline (on the bundled datasets
`bundled_photos` / `bundled_digits`, the recipes' settings) is iterated alone: `--pipeline-warmup`
batches untimed (the first fills the cache and shuffle buffer), then `--pipeline-batches` batches
timed; the time per batch is their mean. It is compared with the train step of the family's
default setting: the pipeline can be the bottleneck when its batch time exceeds half the step
time (`prefetch` overlaps the two, but on this 2-core CPU they share the cores, and the pipeline
measured alone has them to itself, so the ratio is a lower bound).

CPU timings move with the machine's load (another job on the 2 cores): the table's footer gives
`os.getloadavg()` at the start and end; compare rows of one run, not runs.

Progress goes to stderr, the Markdown tables to stdout, every number (every step time) to
`--json`.

Run:
    nice -n 10 python benchmarks/training.py --json runs/benchmark_training.json \
        > runs/benchmark_training.md                       # the full tables, ~8 minutes
    python benchmarks/training.py --quick --xla off      # smoke test (classifier): ~25 s

The default run took 7.8 minutes on the 2-core CPU at load ~1-1.5 (no other job). Most of it is
first steps: tracing the aligner's train step takes ~40 s without XLA and 60-100 s with it, and
the SR model's mixed_float16 step without XLA ~4 s: TensorFlow logs "oneDNN supports DT_HALF
only on platforms with AVX-512. Falling back to the default Eigen-based implementation" (this
Xeon has AVX-512F/VNNI but not the AVX512-FP16 that oneDNN's float16 kernels need).
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
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attn import data  # noqa: E402
from keras_attn.data import classification  # noqa: E402
from keras_attn.models import registry  # noqa: E402
from keras_attn.training import aligner_recipe, recipes  # noqa: E402
from keras_attn.training.fit import TrainConfig, make_optimizer  # noqa: E402
from keras_attn.training.losses import (
    CornerLoss,
    get_loss,  # noqa: E402
)
from keras_attn.training.metrics import (  # noqa: E402
    PSNRY,
    SSIMY,
    MeanCornerError,  # noqa: E402
)

FAMILIES = ("sr", "classifier", "aligner")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
JIT = (False, True)
PIPELINE_BOTTLENECK_FRACTION = 0.5


@dataclasses.dataclass(frozen=True)
class Settings:
    """What `run_benchmark` measures; the flags of `main`."""

    families: tuple[str, ...] = FAMILIES
    steps: int = 5
    warmup: int = 2
    pipeline_batches: int = 20
    pipeline_warmup: int = 3
    precisions: tuple[str, ...] = PRECISIONS
    jit: tuple[bool, ...] = JIT
    data_dir: str | None = None
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "warmup", "pipeline_batches", "pipeline_warmup"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        unknown = set(self.families) - set(FAMILIES)
        if unknown or not self.families:
            raise ValueError(f"families must be some of {list(FAMILIES)}. Received: {unknown}")
        if set(self.precisions) - set(PRECISIONS) or not self.precisions:
            raise ValueError(
                f"precisions must be some of {list(PRECISIONS)}. Received: {self.precisions}"
            )
        if set(self.jit) - {False, True} or not self.jit:
            raise ValueError(f"jit must be some of (False, True). Received: {self.jit}")


# --------------------------------------------------------------------------- the families


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family as its recipe trains it.

    `pipeline(data_dir, seed)` is the training `tf.data.Dataset` exactly as the recipe feeds it
    to `fit`; `trainee(data_dir)` builds (under the current dtype policy) the model that `fit`
    trains and returns it with its loss, metrics and `TrainConfig` (the optimizer's schedule).
    """

    name: str
    preset: str
    unit: str
    batch_size: int
    setup: str
    pipeline: Callable[[str | None, int], tf.data.Dataset]
    trainee: Callable[[str | None], tuple]


SR = recipes.SuperResolutionRecipe(output="unused")
CLASSIFIER = recipes.ClassifierRecipe(output="unused")


ALIGNER = aligner_recipe.AlignerRecipe(output="unused")  # the shipped model's recipe


def sr_pipeline(data_dir, seed):
    return data.super_resolution_dataset(
        SR.dataset,
        SR.train_split,
        SR.scale,
        SR.patch_size,
        SR.batch_size,
        training=True,
        data_dir=data_dir,
        seed=seed,
    )


def sr_trainee(data_dir):
    model = registry.build_model(f"{SR.model}_x{SR.scale}")
    config = TrainConfig(
        epochs=SR.epochs,
        steps_per_epoch=SR.steps_per_epoch,
        learning_rate=SR.learning_rate,
        warmup_steps=SR.warmup_steps,
    )
    metrics = [PSNRY(border=SR.scale), SSIMY(border=SR.scale)]
    return model, get_loss(SR.loss), metrics, config


def classifier_channels() -> int:
    return registry.get_spec(CLASSIFIER.model).defaults["input_shape"][-1]


def classifier_pipeline(data_dir, seed):
    num_classes = classification.num_classes(CLASSIFIER.dataset, data_dir)
    _, _, targets = recipes.loss_and_metric(CLASSIFIER.label_smoothing, num_classes)
    dataset = classification.classification_dataset(
        CLASSIFIER.dataset,
        CLASSIFIER.train_split,
        CLASSIFIER.batch_size,
        CLASSIFIER.image_size,
        True,
        data_dir=data_dir,
        seed=seed,
        channels=classifier_channels(),
    )
    return dataset.map(targets)


def classifier_trainee(data_dir):
    num_classes = classification.num_classes(CLASSIFIER.dataset, data_dir)
    loss, accuracy, _ = recipes.loss_and_metric(CLASSIFIER.label_smoothing, num_classes)
    size = CLASSIFIER.image_size
    model = registry.build_model(
        CLASSIFIER.model,
        input_shape=(size, size, classifier_channels()),
        num_classes=num_classes,
    )
    train_size = classification.num_examples(CLASSIFIER.dataset, CLASSIFIER.train_split, data_dir)
    config = TrainConfig(
        epochs=CLASSIFIER.epochs,
        steps_per_epoch=max(1, math.ceil((train_size or 1) / CLASSIFIER.batch_size)),
        learning_rate=CLASSIFIER.learning_rate,
        warmup_steps=CLASSIFIER.warmup_steps,
    )
    return model, loss, [accuracy], config


def aligner_pipeline(data_dir, seed):
    patch, _, channels = registry.get_spec(ALIGNER.model).defaults.get("input_shape", (128, 128, 1))
    dataset = data.alignment_dataset(
        ALIGNER.dataset,
        ALIGNER.train_split,
        patch_size=patch,
        max_shift=ALIGNER.max_shift,
        batch_size=ALIGNER.batch_size,
        training=True,
        channels=channels,
        photometric=ALIGNER.photometric,
        pairs_per_image=8,
        data_dir=data_dir,
        seed=seed,
    )
    return dataset.map(lambda inputs, targets: (inputs, targets["corners"]))


def aligner_trainee(data_dir):
    model = registry.build_model(ALIGNER.model, return_corners=True)
    trainee = keras.Model(
        model.inputs, model.get_layer(f"{model.name}_corners").output, name=f"{model.name}_train"
    )
    config = TrainConfig(
        epochs=ALIGNER.epochs,
        steps_per_epoch=ALIGNER.steps_per_epoch,
        learning_rate=ALIGNER.learning_rate,
        warmup_steps=ALIGNER.warmup_steps,
        clipnorm=1.0,
    )
    return trainee, CornerLoss(), [MeanCornerError()], config


def families() -> dict[str, Family]:
    return {
        "sr": Family(
            "sr",
            f"{SR.model}_x{SR.scale}",
            "images",
            SR.batch_size,
            f"{SR.patch_size}x{SR.patch_size} HR crops, {SR.loss} loss, PSNR-Y + SSIM-Y",
            sr_pipeline,
            sr_trainee,
        ),
        "classifier": Family(
            "classifier",
            CLASSIFIER.model,
            "images",
            CLASSIFIER.batch_size,
            f"{CLASSIFIER.image_size}x{CLASSIFIER.image_size}x{classifier_channels()}, "
            "sparse cross-entropy, accuracy",
            classifier_pipeline,
            classifier_trainee,
        ),
        "aligner": Family(
            "aligner",
            ALIGNER.model,
            "pairs",
            ALIGNER.batch_size,
            "128x128x1 pairs, corner output (return_corners=True), CornerLoss, MACE",
            aligner_pipeline,
            aligner_trainee,
        ),
    }


# --------------------------------------------------------------------------- measurements


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def case_name(jit: bool, precision: str) -> str:
    return f"{precision}{' + XLA' if jit else ''}"


def fixed_batch(family: Family, settings: Settings):
    """One batch of the real training pipeline, as tensors."""
    iterator = iter(family.pipeline(settings.data_dir, settings.seed))
    batch = next(iterator)
    del iterator  # stops the pipeline's background threads
    return batch


def time_train_step(family: Family, batch, jit: bool, precision: str, settings: Settings) -> dict:
    """Compiles the family's trainee under `precision` with `jit_compile=jit` and times
    `train_on_batch` on `batch`; a failure is returned as `{"error": first line}`."""
    result = {"jit_compile_requested": jit, "precision": precision, "error": None}
    keras.backend.clear_session()
    keras.utils.set_random_seed(settings.seed)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        model, loss, metrics, config = family.trainee(settings.data_dir)
        model.compile(optimizer=make_optimizer(config), loss=loss, metrics=metrics, jit_compile=jit)
        inputs, targets = batch
        started = time.perf_counter()
        logs = model.train_on_batch(inputs, targets, return_dict=True)  # numpy: step finished
        result["first_step_s"] = time.perf_counter() - started
        for _ in range(settings.warmup - 1):
            model.train_on_batch(inputs, targets)
        step_seconds = []
        for _ in range(settings.steps):
            started = time.perf_counter()
            logs = model.train_on_batch(inputs, targets, return_dict=True)
            step_seconds.append(time.perf_counter() - started)
        result["jit_compile_used"] = bool(model.jit_compile)  # Keras may turn it off
        result["params"] = model.count_params()
        result["step_seconds"] = step_seconds
        result["median_step_s"] = statistics.median(step_seconds)
        result["per_s"] = family.batch_size / result["median_step_s"]
        result["final_loss"] = float(logs["loss"])
    except Exception as error:  # noqa: BLE001 - a failing case is a result, not a crash
        result["error"] = first_line(error)
    finally:
        keras.config.set_dtype_policy(previous_policy)
        keras.backend.clear_session()
    return result


def time_pipeline(family: Family, settings: Settings) -> dict:
    """Seconds per batch of the training pipeline alone, after its warm-up batches."""
    dataset = family.pipeline(settings.data_dir, settings.seed)
    started = time.perf_counter()
    iterator = iter(dataset)
    next(iterator)
    first_batch_s = time.perf_counter() - started
    for _ in range(settings.pipeline_warmup - 1):
        next(iterator)
    batch_seconds = []
    for _ in range(settings.pipeline_batches):
        started = time.perf_counter()
        next(iterator)
        batch_seconds.append(time.perf_counter() - started)
    del iterator
    return {
        "first_batch_s": first_batch_s,
        "batch_seconds": batch_seconds,
        "mean_batch_s": statistics.fmean(batch_seconds),
        "median_batch_s": statistics.median(batch_seconds),
    }


def fastest_case(cases: dict) -> str | None:
    timed = {key: case for key, case in cases.items() if case["error"] is None}
    if not timed:
        return None
    return min(timed, key=lambda key: timed[key]["median_step_s"])


def run_family(family: Family, settings: Settings) -> dict:
    log(f"{family.name}: timing the input pipeline ({settings.pipeline_batches} batches)")
    pipeline = time_pipeline(family, settings)
    log(f"{family.name}: pipeline {pipeline['mean_batch_s'] * 1000:.1f} ms/batch")
    batch = fixed_batch(family, settings)
    cases = {}
    for precision in settings.precisions:
        for jit in settings.jit:
            name = case_name(jit, precision)
            case = time_train_step(family, batch, jit, precision, settings)
            cases[name] = case
            if case["error"]:
                log(f"{family.name} {name}: FAILED: {case['error']}")
            else:
                log(
                    f"{family.name} {name}: first step {case['first_step_s']:.1f} s, median step "
                    f"{case['median_step_s']:.3f} s, {case['per_s']:.1f} {family.unit}/s"
                )
    default = fastest_case(cases)
    if default is not None:
        step_s = cases[default]["median_step_s"]
        pipeline["default_step_s"] = step_s
        pipeline["ratio_to_step"] = pipeline["mean_batch_s"] / step_s
        pipeline["could_bottleneck"] = pipeline["ratio_to_step"] > PIPELINE_BOTTLENECK_FRACTION
    params = next((c["params"] for c in cases.values() if c["error"] is None), None)
    return {
        "preset": family.preset,
        "unit": family.unit,
        "batch_size": family.batch_size,
        "setup": family.setup,
        "params": params,
        "cases": cases,
        "default": default,
        "pipeline": pipeline,
    }


def run_benchmark(settings: Settings) -> dict:
    """Every measurement of every family in `settings`; all numbers."""
    started = time.perf_counter()
    load_start = os.getloadavg()
    available = families()
    results = {}
    for name in settings.families:
        results[name] = run_family(available[name], settings)
    return {
        "settings": dataclasses.asdict(settings),
        "families": results,
        "pipeline_bottleneck_fraction": PIPELINE_BOTTLENECK_FRACTION,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "cpu_count": os.cpu_count(),
        "wall_seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- tables


def cell(text: str, limit: int = 90) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def default_cell(result: dict) -> str:
    """The fastest setting, and how much slower the runner-up is (small gaps are noise)."""
    default = result["default"]
    if default is None:
        return "none ran"
    timed = sorted(
        (case["median_step_s"], name)
        for name, case in result["cases"].items()
        if case["error"] is None
    )
    if len(timed) < 2:
        return default
    (best, _), (second, runner_up) = timed[:2]
    return f"{default} (next: {runner_up}, {second / best - 1:+.0%} step time)"


def markdown_tables(results: dict) -> str:
    settings = results["settings"]
    names = [case_name(jit, p) for p in settings["precisions"] for jit in settings["jit"]]
    lines = [
        f"Training throughput: `train_on_batch` on one fixed batch, median of {settings['steps']} "
        f"steps after {settings['warmup']} warm-up steps (the first one compiles).",
        "",
        "| family | preset | batch | " + " | ".join(names) + " | default (fastest) |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for family, result in results["families"].items():
        row = [family, result["preset"], str(result["batch_size"])]
        for name in names:
            case = result["cases"][name]
            if case["error"]:
                row.append(f"failed: {cell(case['error'])}")
            else:
                row.append(f"{case['per_s']:.1f} {result['unit']}")
        row.append(default_cell(result))
        lines.append("| " + " | ".join(row) + " |")

    lines += [
        "",
        "| family | setting | first step s (compile) | median step s | per s | XLA used | loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for family, result in results["families"].items():
        for name in names:
            case = result["cases"][name]
            if case["error"]:
                lines.append(f"| {family} | {name} | failed: {cell(case['error'], 200)} ||||")
                continue
            lines.append(
                f"| {family} | {name} | {case['first_step_s']:.2f} | "
                f"{case['median_step_s']:.3f} | {case['per_s']:.1f} {result['unit']} | "
                f"{'yes' if case['jit_compile_used'] else 'no'} | {case['final_loss']:.4g} |"
            )

    fraction = results["pipeline_bottleneck_fraction"]
    lines += [
        "",
        f"Input pipeline alone (mean of {settings['pipeline_batches']} batches after "
        f"{settings['pipeline_warmup']} warm-up batches) vs the train step in the default "
        f"setting; the pipeline could be the bottleneck when its batch time > {fraction} x the "
        "step time.",
        "",
        "| family | pipeline s/batch | first batch s | default train step s | pipeline / step | "
        "bottleneck? |",
        "|---|---|---|---|---|---|",
    ]
    for family, result in results["families"].items():
        pipeline = result["pipeline"]
        if "ratio_to_step" in pipeline:
            step = f"{pipeline['default_step_s']:.3f} ({result['default']})"
            ratio = f"{pipeline['ratio_to_step']:.2f}"
            verdict = "could be" if pipeline["could_bottleneck"] else "no"
        else:
            step, ratio, verdict = "- (no case ran)", "-", "-"
        lines.append(
            f"| {family} | {pipeline['mean_batch_s']:.4f} | {pipeline['first_batch_s']:.2f} | "
            f"{step} | {ratio} | {verdict} |"
        )

    start, end = results["load_average_start"], results["load_average_end"]
    lines += [
        "",
        f"Load average (1/5/15 min) at start {start[0]:.2f}/{start[1]:.2f}/{start[2]:.2f}, at end "
        f"{end[0]:.2f}/{end[1]:.2f}/{end[2]:.2f}; {results['cpu_count']} CPUs; TensorFlow "
        f"{results['versions']['tensorflow']}, Keras {results['versions']['keras']}; wall time "
        f"{results['wall_seconds'] / 60:.1f} min.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def split_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Train-step throughput (XLA x precision) and input pipeline per family.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = Settings()
    parser.add_argument(
        "--families", default=",".join(defaults.families), help="comma-separated families"
    )
    for flag, help_text in (
        ("steps", "timed train steps"),
        ("warmup", "untimed train steps before them, the first (compiling) one included"),
        ("pipeline_batches", "timed batches of the input pipeline"),
        ("pipeline_warmup", "untimed batches before them (the first fills the cache)"),
    ):
        parser.add_argument(
            f"--{flag.replace('_', '-')}", type=int, default=getattr(defaults, flag), help=help_text
        )
    parser.add_argument(
        "--precisions",
        default=",".join(defaults.precisions),
        help="comma-separated dtype policies: float32, mixed_bfloat16, mixed_float16",
    )
    parser.add_argument(
        "--xla", default="off,on", help="comma-separated jit_compile settings: off, on"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: classifier only, 1 warm-up + 1 timed step, 1 + 3 pipeline batches "
        "(instead of --families, --steps, --warmup, --pipeline-*)",
    )
    parser.add_argument("--data-dir", help="tfds data directory (None: tfds's own)")
    parser.add_argument("--json", help="write every number (every step time) to this JSON file")
    args = parser.parse_args(argv)
    xla = {"off": False, "on": True}
    if not split_list(args.xla) or set(split_list(args.xla)) - set(xla):
        parser.error(f"--xla must be some of off,on. Received: {args.xla!r}")
    jit = tuple(xla[item] for item in split_list(args.xla))
    if args.quick:
        sizes = dict(families=("classifier",), steps=1, warmup=1, pipeline_batches=3)
        sizes["pipeline_warmup"] = 1
    else:
        sizes = {key: getattr(args, key) for key in ("steps", "warmup", "pipeline_batches")}
        sizes.update(families=split_list(args.families), pipeline_warmup=args.pipeline_warmup)
    try:
        settings = Settings(
            **sizes, precisions=split_list(args.precisions), jit=jit, data_dir=args.data_dir
        )
    except ValueError as error:
        parser.error(str(error))

    results = run_benchmark(settings)
    print(markdown_tables(results))
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
